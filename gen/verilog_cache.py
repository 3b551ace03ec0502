"""Cache of converted Verilog, keyed by the model, the build options and nnfab's own source.

Converting a whole network to Verilog (elaborating its engines, then Amaranth's back end) takes
seconds, more than simulating 10,000 vectors in the HDL harness. :func:`cached_verilog` keeps
the Verilog text of every converted model, with the figures measured on it (latency, initiation
interval, and for networks that needed a simulation the cycles per inference and the skip
FIFOs' depths: see :func:`nnfab.gen.timing.network_details`), under a key that changes whenever
anything the Verilog depends on changes:

- the model: every field of the model and of each of its layers (a walk over the IR's frozen
  dataclasses: names, shapes, formats, reuse factors, activation parameters and tables, the
  weight and bias codes as bytes), which covers all the native format stores (its JSON and
  arrays) and also what a fused layer adds to it (its parts, adder widths);
- the build options (``multiplier_threshold``);
- nnfab's version and a fingerprint of its source (the SHA-256 of every ``.py`` file of the
  packages ``nnfab``, ``nnfab.hdl`` and ``nnfab.gen``), and the Amaranth version, so an edited
  engine or a new release never meets Verilog converted by the old one.

Entries live in ``<cache_dir>/verilog`` (``cache_dir`` as for the Verilator builds, see
:func:`nnfab.sim.runner.default_cache_dir`): ``<key>.v`` and ``<key>.json``. A hit refreshes the
entry's time; after each new entry, the least recently used entries beyond
:data:`MAX_ENTRIES` are deleted. A model the walk cannot describe (a field of a type it does not
know) is never cached: it is converted every time.
"""

import dataclasses
import enum
import functools
import hashlib
import importlib.util
import json
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["MAX_ENTRIES", "cached_verilog", "model_key", "source_fingerprint",
           "write_atomically"]

#: Entries kept in the cache folder (least recently used ones beyond are deleted). An entry
#: is the Verilog text (0.3 MB on average in the test suite, 6 MB at most), small beside the
#: Verilator builds of the same designs; 32 entries lasted about 9 minutes of the test suite on
#: two workers, so the second conversion of a model another test had converted earlier missed.
MAX_ENTRIES = 128
# Bump when the entries' layout or the key's recipe changes (2: the details of the network).
_FORMAT = 2


class _Unhashable(Exception):
    """A model field of a type the walk does not describe."""


#: The packages whose code shapes the Verilog.
VERILOG_PACKAGES = ("nnfab", "nnfab.hdl", "nnfab.gen")


@functools.cache
def source_fingerprint(packages=VERILOG_PACKAGES):
    """SHA-256 of nnfab's version, the Amaranth version and the source of ``packages`` (by
    default those whose code shapes the Verilog: ``nnfab``, ``nnfab.hdl``, ``nnfab.gen`` and
    their subpackages).

    Returns
    -------
    str
        Hex digest; computed once per process and tuple of packages.
    """
    digest = hashlib.sha256()
    for name in ("nnfab", "amaranth"):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "?"
        digest.update(f"{name}={version}\0".encode())
    # Found without importing the packages (importing the engines takes a while).
    for package in packages:
        for folder in importlib.util.find_spec(package).submodule_search_locations:
            root = Path(folder)
            recursive = package != "nnfab"  # nnfab's folder holds only its own modules
            files = root.rglob("*.py") if recursive else root.glob("*.py")
            for path in sorted(files):
                digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes())
                digest.update(b"\0")
    return digest.hexdigest()


def _walk(value, update):
    """Feed a canonical byte form of ``value`` to ``update``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, enum.Enum):
        update(f"{type(value).__qualname__}.{value.name};".encode())
    elif isinstance(value, np.ndarray) and value.dtype == object:
        # Codes too wide for int64 are Python ints.
        flat = value.reshape(-1).tolist()
        if not all(type(item) is int for item in flat):
            raise _Unhashable("array of objects other than int")
        update(f"ndarray:object:{value.shape}:{','.join(map(str, flat))};".encode())
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise _Unhashable(f"array of {value.dtype}")
        array = np.ascontiguousarray(value)
        update(f"ndarray:{array.dtype.str}:{array.shape}:".encode())
        update(array.tobytes())
        update(b";")
    elif isinstance(value, np.generic):
        _walk(value.item(), update)
    elif isinstance(value, (tuple, list)):
        update(f"{type(value).__name__}[{len(value)}](".encode())
        for item in value:
            _walk(item, update)
        update(b")")
    elif isinstance(value, dict):
        update(f"dict[{len(value)}](".encode())
        for key in sorted(value, key=repr):
            _walk(key, update)
            _walk(value[key], update)
        update(b")")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        update(f"{cls.__module__}.{cls.__qualname__}(".encode())
        for item in dataclasses.fields(value):
            update(f"{item.name}=".encode())
            _walk(getattr(value, item.name), update)
        kind = getattr(value, "kind", None)
        if isinstance(kind, str):
            update(f"kind={kind};".encode())
        update(b")")
    else:
        raise _Unhashable(type(value).__qualname__)


def model_key(model, **options):
    """Cache key of the Verilog of ``model`` built with ``options``.

    Parameters
    ----------
    model : nnfab.ir.Model
    **options
        Build options that change the Verilog (JSON-serializable values).

    Returns
    -------
    str or None
        SHA-256 hex digest, or None when the model holds a field the key cannot describe.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": _FORMAT, "source": source_fingerprint(),
                              "options": options}, sort_keys=True).encode())
    try:
        _walk(model, digest.update)
    except _Unhashable:
        return None
    return digest.hexdigest()


def _prune(folder, keep):
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for meta in entries[keep:]:
        for path in (meta, meta.with_suffix(".v")):
            path.unlink(missing_ok=True)


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file beside it, so that readers see the
    old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def cached_verilog(model, convert, *, cache_dir, use_cache=True, **options):
    """The Verilog text of ``model`` and the details measured on it, from the cache or from
    ``convert()``.

    Parameters
    ----------
    model : nnfab.ir.Model
    convert : callable
        ``convert() -> (verilog, details)``, run on a miss; ``details`` is a JSON-serializable
        dict with at least ``latency`` and ``initiation_interval`` (cycles).
    cache_dir : str or os.PathLike
        Root of nnfab's caches; entries go to its ``verilog`` folder.
    use_cache : bool
        False converts and neither reads nor writes the cache.
    **options
        The build options passed to ``convert`` (part of the key).

    Returns
    -------
    verilog : str
    details : dict
        As ``convert`` gave them when the entry was written.
    hit : bool
        Whether the text came from the cache.
    """
    key = model_key(model, **options) if use_cache else None
    folder = Path(cache_dir) / "verilog"
    if key is not None:
        meta_path, text_path = folder / f"{key}.json", folder / f"{key}.v"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            verilog = text_path.read_text(encoding="utf-8")
            details = meta["details"]
            if (hashlib.sha256(verilog.encode()).hexdigest() == meta["sha256"]
                    and isinstance(details, dict)):
                now = time.time()
                os.utime(meta_path, (now, now))
                return verilog, details, True
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a miss, or a damaged entry: convert again and overwrite it
    verilog, details = convert()
    if key is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(text_path, verilog)
        write_atomically(meta_path, json.dumps({
            "model": model.name, "details": details, "options": options,
            "sha256": hashlib.sha256(verilog.encode()).hexdigest(),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, sort_keys=True) + "\n")
        _prune(folder, MAX_ENTRIES)
    return verilog, details, False
