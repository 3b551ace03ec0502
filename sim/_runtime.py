"""Verilator's run-time library, compiled once per flag set and shared between builds: its
objects (:class:`RuntimeObjects`) and a precompiled header of its headers
(:class:`RuntimeHeaders`); used by :mod:`nnfab.sim.runner`."""

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import toolchain

__all__ = ["RuntimeHeaders", "RuntimeObjects"]

# Bump when the kept objects or the recipe change in a way the key misses.
_FORMAT = 2


class RuntimeObjects:
    """Verilator's run-time library objects (``verilated.o``, ``verilated_vpi.o``, ...) of a
    build folder, shared between builds.

    They do not depend on the design, only on the compiler flags, the ``VM_*`` settings that
    Verilator writes into ``Vtop_classes.mk`` (tracing, coverage, timing, threads) and the
    Verilator and compiler versions, yet every build compiled them again: about 20 CPU seconds
    at ``-O2``, the larger part of a small design's build. After a build they are kept in
    ``<cache_dir>/runtime-<key>``; before the next build with the same key they are copied
    into its folder after Verilator ran and before make, newer than ``Vtop.mk`` (which they
    depend on), so make links them instead of compiling.

    With ``main=True``, the object is cocotb's ``verilator.o`` (the simulator's ``main``), kept
    in ``<cache_dir>/runtime-main-<key>``: it includes the top-level class declaration
    (``Vtop.h``), whose hash is part of the key. Every harness build (:mod:`nnfab.sim.harness`)
    has the same top-level ports and so the same ``Vtop.h``: 1.1 CPU seconds saved per build.

    A build in another cache folder (a test's own, or ``--no-cache``'s temporary one) also
    reads them from the folders in ``fallbacks`` (the default cache): they are only read
    there, never written, so such a build leaves the default cache as it was.
    """

    def __init__(self, sim_dir, make_args, *, fallbacks=(), main=False):
        self._sim_dir = Path(sim_dir)
        text = _classes_text(self._sim_dir)
        settings = _settings(text)
        if main:
            self._init_main(make_args, settings, fallbacks)
            return
        # The objects listed under "VM_GLOBAL_FAST += \" (one per continued line).
        names = []
        for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:[ \t]+\S+ \\\n)*)",
                                text, re.M):
            names += [word for word in block.split() if word != "\\"]
        self.names = [f"{name}.o" for name in names]
        recipe = {
            **_toolchain_recipe(),
            # The per-cycle and run-once code's levels do not reach the run-time library
            # (compiled at OPT_GLOBAL), so builds at -O0 and -O1 share its objects.
            "make_args": [arg for arg in make_args
                          if not arg.startswith(("OPT_FAST=", "OPT_SLOW="))],
            "settings": settings,
            "objects": self.names,
        }
        self._keep_in("runtime", recipe, fallbacks)

    def _keep_in(self, prefix, recipe, fallbacks):
        self.folder = self._sim_dir.parent / f"{prefix}-{_key(recipe)[:16]}"
        self._sources = _sources(self._sim_dir, self.folder.name, fallbacks)

    def _init_main(self, make_args, settings, fallbacks):
        # Vtop.mk's rule "verilator.o: /path/to/cocotb/.../verilator.cpp".
        mk = self._sim_dir / "Vtop.mk"
        rule = re.search(r"^verilator\.o: *(\S+)", mk.read_text(encoding="utf-8"), re.M) \
            if mk.is_file() else None
        top = self._sim_dir / "Vtop.h"
        self.names = ["verilator.o"] if rule and Path(rule.group(1)).is_file() \
            and top.is_file() else []
        recipe = {
            **_toolchain_recipe(),
            "make_args": [arg for arg in make_args if not arg.startswith("-j")],
            "settings": settings,
            "main": [_file_hash(Path(rule.group(1))), _file_hash(top)] if self.names else None,
        }
        self._keep_in("runtime-main", recipe, fallbacks)

    def restore(self):
        """Copy the kept objects into the build folder (from its cache folder, else the first
        fallback that has them all); False when none are kept."""
        if not self.names:
            return False
        for folder in self._sources:
            if not all((folder / name).is_file() for name in self.names):
                continue
            try:
                for name in self.names:
                    target = self._sim_dir / name
                    shutil.copyfile(folder / name, target)
                    os.utime(target)  # newer than Vtop.mk, written by Verilator just before
            except OSError:
                # Removed (by a cache prune) while copied: make compiles them all.
                for name in self.names:
                    (self._sim_dir / name).unlink(missing_ok=True)
                return False
            return True
        return False

    def store(self):
        """Keep the build folder's objects, unless objects of this key are kept already."""
        if not self.names or self.folder.is_dir():
            return
        if not all((self._sim_dir / name).is_file() for name in self.names):
            return
        staging = Path(tempfile.mkdtemp(prefix=".runtime-", dir=self._sim_dir.parent))
        try:
            for name in self.names:
                shutil.copyfile(self._sim_dir / name, staging / name)
            os.rename(staging, self.folder)  # atomic: a reader sees all objects or none
        except OSError:
            pass  # a concurrent build kept them first
        finally:
            shutil.rmtree(staging, ignore_errors=True)


#: Make rules of a build that uses :class:`RuntimeHeaders`: Verilator's per-build precompiled
#: headers become empty stamps, and ``nnfab-pch`` compiles the shared one with exactly the
#: flags (and so the macros) of the rule that compiles the design's per-cycle code.
_HEADERS_MAKEFILE = """\
# Written by nnfab.sim._runtime.RuntimeHeaders.
$(VM_PREFIX)__pch.h.fast.gch $(VM_PREFIX)__pch.h.slow.gch:
\ttouch $@
nnfab-pch-fast:
\t$(CXX) $(OPT_FAST) $(CXXFLAGS) $(CPPFLAGS) $(CFG_CXXFLAGS_PCH) $(NNFAB_PCH) -o $(NNFAB_PCH).gch
nnfab-pch-slow:
\t$(CXX) $(OPT_SLOW) $(CXXFLAGS) $(CPPFLAGS) $(CFG_CXXFLAGS_PCH) $(NNFAB_PCH) -o $(NNFAB_PCH).gch
"""
_HEADERS_MAKEFILE_NAME = "nnfab_runtime_pch.mk"
_HEADER_NAME = "nnfab_verilated.h"


class RuntimeHeaders:
    """A precompiled header of Verilator's run-time library headers (``verilated.h`` and
    the others ``Vtop__pch.h`` includes), compiled once per flag set and shared between builds.

    Verilator's makefile precompiles ``Vtop__pch.h`` in every build with more than one C++
    file, twice (for the per-cycle and the run-once code), and that header includes the
    design's own class declaration: on the QONNX TFC (10 MB of C++) two 74 MB headers, 5 of
    the build's 20 CPU seconds, and each file then loads one. Here the design's files include
    a header of the run-time library only, compiled once per optimization level and flag set
    into ``<cache_dir>/runtime-pch-<key>``, and parse the design's declarations themselves:
    the TFC's C++ compiled in 12.1 instead of 19.9 CPU seconds (g++ 12, ``-O0``).

    The shared header is found by its path, so the build's correctness never rests on it: a
    precompiled header g++ finds unusable (other flags) is ignored and the header's text is
    read instead. Builds of one C++ file (``VM_PARALLEL_BUILDS = 0``, which Verilator's
    makefile compiles without a precompiled header) and cache paths make cannot quote (white
    space) are left as they are. As :class:`RuntimeObjects`, it is read from ``fallbacks``
    too, and only written in the build's own cache folder.
    """

    def __init__(self, sim_dir, make_args, *, fallbacks=()):
        self._sim_dir = Path(sim_dir)
        text = _classes_text(self._sim_dir)
        pch = self._sim_dir / "Vtop__pch.h"
        pch_text = pch.read_text(encoding="utf-8") if pch.is_file() else ""
        self.includes = re.findall(r'^#include "(verilated\w*\.h)"$', pch_text, re.M)
        levels = {}
        for arg in make_args:
            for part in ("FAST", "SLOW"):
                if arg.startswith(f"OPT_{part}="):
                    levels[part.lower()] = arg.split("=", 1)[1]
        settings = _settings(text)
        self.used = ("VM_PARALLEL_BUILDS = 1" in settings and bool(self.includes)
                     and not re.search(r"[\s#$:;=\\]", str(self._sim_dir.parent)))
        recipe = {**_toolchain_recipe(), "settings": settings, "includes": self.includes,
                  "make_args": [arg for arg in make_args
                                if not arg.startswith(("OPT_FAST=", "OPT_SLOW=", "-j"))]}
        self._folders = {}
        for part in ("fast", "slow"):
            key = _key({**recipe, "level": levels.get(part, "")})
            self._folders[part] = f"runtime-pch-{key[:16]}"
        self._fallbacks = fallbacks

    def _find(self, part):
        for folder in _sources(self._sim_dir, self._folders[part], self._fallbacks):
            if (folder / f"{_HEADER_NAME}.gch").is_file():
                return folder / _HEADER_NAME
        return None

    def make_args(self, execute, make):
        """Make arguments that point the build's files at the shared header, compiling it
        first if no folder has it (``execute`` runs a list of commands, as the runner's; ``make`` is
        the build's make command); ``[]`` when the build keeps Verilator's own headers (see
        the class documentation, or the header's compilation failed)."""
        if not self.used:
            return []
        makefile = self._sim_dir / _HEADERS_MAKEFILE_NAME
        makefile.write_text(_HEADERS_MAKEFILE, encoding="utf-8")
        make = [*make, "-f", _HEADERS_MAKEFILE_NAME]
        args = []
        for part in ("fast", "slow"):
            header = self._find(part) or self._compile(part, execute, make)
            if header is None:
                return []
            args.append(f"VK_PCH_I_{part.upper()}=-include {header}")
        return ["-f", _HEADERS_MAKEFILE_NAME, *args]

    def _compile(self, part, execute, make):
        folder = self._sim_dir.parent / self._folders[part]
        staging = Path(tempfile.mkdtemp(prefix=".runtime-pch-", dir=self._sim_dir.parent))
        try:
            header = staging / _HEADER_NAME
            header.write_text("// Verilator's run-time library headers, precompiled once per "
                              "flag set by nnfab.sim._runtime.\n" + "".join(
                                  f'#include "{name}"\n' for name in self.includes),
                              encoding="utf-8")
            try:
                execute([[*make, f"NNFAB_PCH={header}", f"nnfab-pch-{part}"]])
            except SystemExit:
                return None
            try:
                os.rename(staging, folder)  # atomic: a reader sees the header whole or not
            except OSError:
                pass  # a concurrent build kept one first
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._find(part)


def _classes_text(sim_dir):
    classes = Path(sim_dir) / "Vtop_classes.mk"
    return classes.read_text(encoding="utf-8") if classes.is_file() else ""


def _settings(classes_text):
    """The ``VM_TRACE = 0`` lines of a ``Vtop_classes.mk``."""
    return re.findall(r"^VM_\w+ = .*$", classes_text, re.M)


def _toolchain_recipe():
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    return {"format": _FORMAT, "verilator": toolchain.verilator_version(),
            "verilator_root": str(toolchain.verilator_root()),
            "compiler": [compiler, os.stat(compiler).st_mtime_ns] if compiler else None}


def _file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _key(recipe):
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _sources(sim_dir, name, fallbacks):
    """The folder ``name`` in the build's cache, then in each fallback cache."""
    return [sim_dir.parent / name] + [Path(folder) / name for folder in fallbacks
                                      if Path(folder).resolve() != sim_dir.parent]
