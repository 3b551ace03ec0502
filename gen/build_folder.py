"""Build folders: where ``nnfab build`` writes, and what ``nnfab verify BUILD_DIR`` reads.

Writing is staged: every file goes into a temporary folder beside the target, which replaces
the target only when complete, so a failed or interrupted build never leaves a folder that
looks whole. An existing target is replaced only when it is empty or an nnfab build folder
(it holds a ``manifest.json`` that nnfab wrote); any other folder is refused, never wiped.

Reading is checked: the manifest records the SHA-256 of the Verilog and of the model files,
and :func:`open_build_folder` refuses a folder whose files are missing or differ from what the
build wrote, so ``nnfab verify BUILD_DIR`` proves the folder's own Verilog and model.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nnfab.errors import ModelError, OutputError

__all__ = ["MANIFEST", "BuildFolder", "file_hashes", "is_build_folder", "open_build_folder",
           "output_name", "read_manifest", "staged_folder"]

MANIFEST = "manifest.json"


def output_name(name):
    """A file or folder name made from a model name, which is data and never a path.

    Characters other than letters, digits, ``-``, ``_`` and ``.`` become ``_``; leading dots
    are dropped (no hidden names, no ``..``); an empty result becomes ``model``.

    >>> output_name("/tmp/victim"), output_name("../x"), output_name("digits-mlp")
    ('_tmp_victim', '_x', 'digits-mlp')
    """
    text = re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".")
    return text[:100] or "model"


def is_build_folder(path):
    """Whether ``path`` is a folder holding a ``manifest.json`` that nnfab wrote."""
    manifest = Path(path) / MANIFEST
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "nnfab_version" in document


def _check_target(out_dir):
    """Raise OutputError if ``out_dir`` may not be created or replaced."""
    shown = str(out_dir)
    try:
        resolved = out_dir.resolve()
        cwd = Path.cwd().resolve()
    except OSError as exc:
        raise OutputError(f"Output folder {shown!r} cannot be used: {exc.strerror}") from None
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"Output folder {shown!r} is or contains the current folder; give a "
                          f"new folder, such as build/NAME")
    for parent in reversed(out_dir.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"Output folder {shown!r} cannot be created: {str(parent)!r} "
                              f"is a file")
    if out_dir.exists() or out_dir.is_symlink():
        if out_dir.is_symlink() or not out_dir.is_dir():
            raise OutputError(f"Output folder {shown!r} exists and is not a folder; give a "
                              f"new folder or an earlier nnfab build folder")
        if any(out_dir.iterdir()) and not is_build_folder(out_dir):
            raise OutputError(f"Output folder {shown!r} exists and is not an nnfab build "
                              f"folder (no manifest.json written by nnfab); nnfab replaces "
                              f"only empty folders and its own build folders")


@contextlib.contextmanager
def staged_folder(out_dir):
    """Write a build folder atomically: yields an empty staging folder to fill, which then
    replaces ``out_dir``.

    If the body raises (or is interrupted), the staging folder is removed and ``out_dir`` is
    left as it was.

    Raises
    ------
    OutputError
        Before anything is written, if ``out_dir`` is the current folder or one of its
        parents, lies below a file, is a file, or is a non-empty folder that is not an nnfab
        build folder; or if the folder cannot be written (the message names the OS error).
    """
    out_dir = Path(out_dir)
    _check_target(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"Output folder {str(out_dir)!r} cannot be written: "
                          f"{exc.strerror or exc}") from None
    try:
        os.chmod(staging, 0o755)
        yield staging
        _replace(staging, out_dir)
    except OSError as exc:
        raise OutputError(f"Output folder {str(out_dir)!r} cannot be written: "
                          f"{exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(staging, out_dir):
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    _check_target(out_dir)  # it may have changed while the build ran
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
    try:
        os.replace(out_dir, old / "dir")
        try:
            os.replace(staging, out_dir)
        except OSError:
            os.replace(old / "dir", out_dir)
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder, names):
    """``{name: SHA-256 hex digest}`` of the files ``names`` in ``folder``."""
    return {name: _sha256(Path(folder) / name) for name in names}


@dataclass(frozen=True)
class BuildFolder:
    """A checked build folder.

    Attributes
    ----------
    path : pathlib.Path
    manifest : dict
        The parsed ``manifest.json``.
    verilog_path : pathlib.Path
        The folder's Verilog file, whose hash equals the manifest's record.
    model_path : pathlib.Path
        The folder's ``model.json`` (with its ``model.npz``), likewise checked.
    """

    path: Path
    manifest: dict
    verilog_path: Path
    model_path: Path


def read_manifest(path):
    """The parsed ``manifest.json`` of the build folder ``path``, unchecked otherwise.

    Raises
    ------
    ModelError
        If it is missing, not UTF-8 JSON, or not an object written by nnfab.
    """
    path = Path(path)
    shown = str(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{shown!r} is not an nnfab build folder (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"Build folder {shown!r}: {MANIFEST} is not UTF-8 text") from None
    except ValueError as exc:
        raise ModelError(f"Build folder {shown!r}: {MANIFEST} is not valid JSON ({exc})") \
            from None
    except OSError as exc:
        raise ModelError(f"Build folder {shown!r}: {MANIFEST} cannot be read "
                         f"({exc.strerror})") from None
    if not isinstance(manifest, dict) or "nnfab_version" not in manifest:
        raise ModelError(f"Build folder {shown!r}: {MANIFEST} was not written by nnfab (no "
                         f"'nnfab_version')")
    return manifest


def open_build_folder(path):
    """Read a build folder's manifest and check its files against it.

    Raises
    ------
    ModelError
        If ``manifest.json`` is missing, unreadable or not nnfab's; if the folder is a sweep's
        output or a board build; if it records no file hashes (a folder from before nnfab
        recorded them); if a recorded
        file is missing or differs from what the build wrote.
    """
    path = Path(path)
    shown = str(path)
    manifest = read_manifest(path)
    if "sweep" in manifest:
        raise ModelError(f"{shown!r} is the output folder of nnfab sweep (sweep "
                         f"{manifest['sweep']!r}), not a build folder; build its best point with "
                         f"nnfab sweep ... --pick CONSTRAINTS (e.g. 'lut<5000'), then verify "
                         f"that folder")
    if "board" in manifest:
        raise ModelError(f"Build folder {shown!r} is a board build (its design is the board's "
                         f"top, not the network alone); verify the model instead: nnfab "
                         f"verify {str(path / 'model.json')!r}")
    recorded = manifest.get("files")
    verilog = manifest.get("verilog")
    if not isinstance(recorded, dict) or not isinstance(verilog, str) or \
            verilog not in recorded or "model.json" not in recorded:
        raise ModelError(f"Build folder {shown!r}: {MANIFEST} records no file hashes (built "
                         f"by an older nnfab?); build it again with nnfab build")
    for key in ("latency", "initiation_interval"):
        value = manifest.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ModelError(f"Build folder {shown!r}: {MANIFEST} records {key} {value!r}, "
                             f"not a cycle count; build it again with nnfab build")
    for name, digest in sorted(recorded.items()):
        if Path(name).name != name:
            raise ModelError(f"Build folder {shown!r}: {MANIFEST} names a file outside the "
                             f"folder, {name!r}")
        file = path / name
        if not file.is_file():
            raise ModelError(f"Build folder {shown!r}: {name} is missing; build it again "
                             f"with nnfab build")
        if _sha256(file) != digest:
            raise ModelError(f"Build folder {shown!r}: {name} differs from what nnfab build "
                             f"wrote (its SHA-256 is not the one {MANIFEST} records); "
                             f"build it again with nnfab build")
    return BuildFolder(path, manifest, path / verilog, path / "model.json")
