"""Verilator's run-time library objects, compiled once per flag set and shared between builds
(see :class:`RuntimeObjects`; used by :mod:`nnfab.sim.runner`)."""

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import toolchain

__all__ = ["RuntimeObjects"]

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
    depend on), so make links them instead of compiling. cocotb's ``verilator.o`` includes the
    design's class declaration and is always compiled.

    A build in another cache folder (a test's own, or ``--no-cache``'s temporary one) also
    reads them from the folders in ``fallbacks`` (the default cache): they are only read
    there, never written, so such a build leaves the default cache as it was.
    """

    def __init__(self, sim_dir, make_args, *, fallbacks=()):
        self._sim_dir = Path(sim_dir)
        classes = self._sim_dir / "Vtop_classes.mk"
        text = classes.read_text(encoding="utf-8") if classes.is_file() else ""
        # "VM_TRACE = 0" lines, and the objects listed under "VM_GLOBAL_FAST += \" (one per
        # continued line).
        settings = re.findall(r"^VM_\w+ = .*$", text, re.M)
        names = []
        for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:[ \t]+\S+ \\\n)*)",
                                text, re.M):
            names += [word for word in block.split() if word != "\\"]
        self.names = [f"{name}.o" for name in names]
        compiler = shutil.which(os.environ.get("CXX", "c++"))
        recipe = {
            "format": _FORMAT,
            "verilator": toolchain.verilator_version(),
            "verilator_root": str(toolchain.verilator_root()),
            "compiler": [compiler, os.stat(compiler).st_mtime_ns] if compiler else None,
            # The per-cycle and run-once code's levels do not reach the run-time library
            # (compiled at OPT_GLOBAL), so builds at -O0 and -O1 share its objects.
            "make_args": [arg for arg in make_args
                          if not arg.startswith(("OPT_FAST=", "OPT_SLOW="))],
            "settings": settings,
            "objects": self.names,
        }
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        self.folder = self._sim_dir.parent / f"runtime-{key[:16]}"
        self._sources = [self.folder] + [Path(folder) / self.folder.name for folder in fallbacks
                                         if Path(folder).resolve() != self._sim_dir.parent]

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
