"""The content-addressed store of sweep points: one JSON file per evaluated point, named by
the SHA-256 of everything its figures depend on.

The key (:meth:`PointStore.key`) hashes the model's files, the point's options, the
evaluation settings (:meth:`~nnfab.boards.sweep_point.SweepSettings.key`) and nnfab's source
fingerprint of every package a point's figures depend on
(:func:`~nnfab.gen.verilog_cache.source_fingerprint`), so a rerun of a sweep
finds the points it finished, an interrupted sweep resumes where it stopped, and an edit of
nnfab never meets figures of the old code. Entries live in ``<cache_dir>/sweep/`` (the cache
folder of :func:`nnfab.sim.runner.default_cache_dir`, ``$NNFAB_CACHE_DIR`` to move it) and
are never pruned: delete the folder to reclaim the space.
"""

import hashlib
import json
from pathlib import Path

from nnfab.gen.verilog_cache import VERILOG_PACKAGES, source_fingerprint, write_atomically

__all__ = ["PointStore"]

# Bump when the rows' layout or the key's recipe changes.
_FORMAT = 2
#: A point's figures depend on the Verilog's code and also on the golden models and the
#: simulator harness (nnfab.sim), and on the synthesis and the point evaluation (nnfab.boards).
_SOURCES = VERILOG_PACKAGES + ("nnfab.sim", "nnfab.boards")


class PointStore:
    """Rows of evaluated points by key.

    Parameters
    ----------
    cache_dir : path, optional
        Root of nnfab's caches (:func:`~nnfab.sim.runner.default_cache_dir` if None).
    """

    def __init__(self, cache_dir=None):
        from nnfab.sim.runner import default_cache_dir

        self._root = Path(default_cache_dir() if cache_dir is None else cache_dir) / "sweep"

    @property
    def root(self):
        return self._root

    def __repr__(self):
        return f"PointStore(cache_dir={str(self._root.parent)!r})"

    @staticmethod
    def key(model_hash, point, settings_key):
        """SHA-256 hex digest of a point: the model, its options and the settings."""
        document = {"format": _FORMAT, "source": source_fingerprint(_SOURCES), "model": model_hash,
                    "point": point, "settings": settings_key}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def _path(self, key):
        return self._root / key[:2] / f"{key}.json"

    def get(self, key):
        """The stored row of ``key``, or None (also for a damaged entry)."""
        try:
            row = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return row if isinstance(row, dict) and row.get("key") == key else None

    def put(self, key, row):
        """Store ``row`` (JSON-serializable) under ``key``, atomically."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(dict(row, key=key), sort_keys=True) + "\n")
