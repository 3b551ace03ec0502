"""Verilator's runtime library, compiled once per recipe and reused by every design's build.

Every Verilator build compiles the same runtime sources (``verilated.cpp``, ``verilated_vpi.cpp``,
``verilated_dpi.cpp``, ``verilated_threads.cpp``) into its object folder: 8–15 s of a small
design's build on two cores, whatever the design. The objects depend only on the compile command
make would run for them (compiler, flags, defines such as ``VM_TRACE``, the include folders of
the Verilator install) and on the compiler itself, so they are cached under that command's hash
and copied into a new build folder before make runs; make then sees them up to date and links
them. A cache entry is written to a temporary folder and renamed into place, so a concurrent or
interrupted build never sees half an entry.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["RUNTIME_OBJECTS", "reuse_runtime_objects"]

#: The runtime objects a cocotb VPI build links (Verilator's ``VK_GLOBAL_OBJS`` for it).
RUNTIME_OBJECTS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


def _compiler_identity(env):
    cxx = env.get("CXX", "c++")
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, env=env,
                              check=False).stdout
    except OSError:
        return cxx


def _recipe(make, sim_dir, env, objects):
    """make's dry-run commands for ``objects`` with the build folder's path taken out, or
    None when make does not know how to build one of them."""
    dry = subprocess.run(make + ["-n", "-B"] + list(objects), capture_output=True, text=True,
                         env=env, check=False)
    if dry.returncode:
        return None
    return dry.stdout.replace(str(sim_dir), "<build>")


def reuse_runtime_objects(make, sim_dir, cache_root, env, run):
    """Put cached runtime objects into ``sim_dir``, compiling and caching them on a miss.

    Parameters
    ----------
    make : list of str
        The make command of the build (``make -C sim_dir -f Vtop.mk ...``), without targets.
    sim_dir : pathlib.Path
        The verilated build folder.
    cache_root : pathlib.Path
        Folder of the build cache; entries go to ``cache_root / "runtime-objects"``.
    env : dict
        The build's environment.
    run : callable
        ``run([command])`` runs make (logged, interruptible) on a miss.

    Returns
    -------
    bool or None
        True when cached objects were reused, False when they were compiled and cached, None
        when the build does not use the usual runtime objects (nothing done).
    """
    sim_dir = Path(sim_dir)
    recipe = _recipe(make, sim_dir, env, RUNTIME_OBJECTS)
    if recipe is None:
        return None
    key = hashlib.sha256((recipe + _compiler_identity(env)).encode()).hexdigest()[:20]
    entry = Path(cache_root) / "runtime-objects" / key
    if all((entry / name).is_file() for name in RUNTIME_OBJECTS):
        for name in RUNTIME_OBJECTS:
            # A fresh copy: newer than its sources, so make takes it as built.
            shutil.copyfile(entry / name, sim_dir / name)
        return True
    run([make + list(RUNTIME_OBJECTS)])
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=entry.parent))
    try:
        for name in RUNTIME_OBJECTS:
            shutil.copyfile(sim_dir / name, staging / name)
        os.rename(staging, entry)
    except OSError:
        # Another build cached the same objects first (or the disk is full): use ours anyway.
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return False
