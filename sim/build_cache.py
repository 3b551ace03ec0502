"""The cache of Verilator builds that :func:`nnfab.sim.runner.run_cocotb` keeps: where it lives,
the key that names a build's folder, and the pruning of what a finished build no longer needs.

A build lives in ``<cache_dir>/<toplevel>-<key>``, where the key is the SHA-256 of the Verilog
text and of the build's recipe: the top-level names, the Verilator and cocotb versions and
installation folders, and the compile and make arguments. The folders are part of it because the
simulator binary loads cocotb's VPI library from the installation it was linked against (an
absolute run path): a build made from another virtual environment, perhaps one since deleted, is
another build, never run. A folder is complete when it holds :data:`MARKER_NAME`.
"""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import cocotb

from . import toolchain

__all__ = ["MARKER_NAME", "build_folder", "cocotb_lib_dir", "default_cache_dir",
           "prune_build_folder", "prune_runs"]

# Bump when the layout of a build folder or the build recipe changes in a way the key misses.
_FORMAT = 1
#: The file a build folder holds once its build has finished.
MARKER_NAME = ".nnfab-build-complete"


def default_cache_dir():
    """Folder under which :func:`~nnfab.sim.runner.run_cocotb` caches Verilator builds.

    Returns
    -------
    pathlib.Path
        ``$NNFAB_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/nnfab/verilator``, else
        ``~/.cache/nnfab/verilator``.
    """
    if os.environ.get("NNFAB_CACHE_DIR"):
        return Path(os.environ["NNFAB_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "nnfab" / "verilator"
    return Path.home() / ".cache" / "nnfab" / "verilator"


def cocotb_lib_dir():
    """The folder of cocotb's shared libraries (``libcocotbvpi_verilator.so`` and the rest),
    as a resolved path: a simulator binary is linked with it as its run path."""
    return os.path.realpath(os.path.join(os.path.dirname(cocotb.__file__), "libs"))


def build_folder(cache_dir, verilog_text, toplevel, *, compile_args, make_args, timescale,
                 top_module=None, public_flat_rw=True):
    """The folder of a build in ``cache_dir``: ``<cache_dir>/<toplevel>-<key>``, the key being
    the first 16 hexadecimal digits of the SHA-256 of ``verilog_text`` and the recipe."""
    recipe = {
        "format": _FORMAT,
        "toplevel": toplevel,
        "verilator": toolchain.verilator_version(),
        "cocotb": cocotb.__version__,
        # The binary's run path names cocotb's library folder, and the objects were built
        # against this Verilator's headers: another installation is another build.
        "cocotb_libs": cocotb_lib_dir(),
        "verilator_root": str(toolchain.verilator_root()),
        "compile_args": list(compile_args),
        "timescale": timescale,
        "make_args": list(make_args),
    }
    if top_module is not None:
        recipe["top_module"] = top_module
    if not public_flat_rw:
        recipe["public_flat_rw"] = False
    digest = hashlib.sha256()
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    digest.update(b"\0")
    digest.update(verilog_text.encode("utf-8"))
    return Path(cache_dir) / f"{toplevel}-{digest.hexdigest()[:16]}"


def prune_build_folder(folder, keep):
    """Delete what only the compiler needed (sources, objects, precompiled headers: about
    100 MB for a large design), keeping the names in ``keep`` and hidden files."""
    for path in Path(folder).iterdir():
        if path.name in keep or path.name.startswith("."):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def prune_runs(build_dir, keep=3, min_age_s=3600):
    """Delete ``run-*`` folders of a cached build beyond the newest ``keep``, if older than
    ``min_age_s`` (a concurrent run may still be writing a recent one)."""
    runs = sorted(Path(build_dir).glob("run-*"), key=lambda p: p.stat().st_mtime,
                  reverse=True)
    now = time.time()
    for run in runs[keep:]:
        try:
            if now - run.stat().st_mtime > min_age_s:
                shutil.rmtree(run, ignore_errors=True)
        except OSError:
            pass
