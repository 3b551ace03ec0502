"""Access to the golden vectors in ``shared/vectors`` (computed by the real libraries)."""

import csv
import functools
import gzip
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nnfab.fixed import FixedFormat

__all__ = ["shared_dir", "ApFixedCase", "ap_fixed_cases"]


def shared_dir():
    """``shared/`` beside the repository (as CI checks it out), or ``$NNFAB_SHARED_DIR``."""
    if "NNFAB_SHARED_DIR" in os.environ:
        return Path(os.environ["NNFAB_SHARED_DIR"])
    return Path(__file__).resolve().parents[2] / "shared"


@dataclass(frozen=True)
class ApFixedCase:
    """All rows of ``ap_fixed_casts.csv.gz`` for one source and one destination format.

    ``src`` is None for casts from double; then ``inputs`` holds floats, else raw codes of
    ``src`` (signed integers, converted from the file's unsigned bit patterns). ``expected``
    holds the raw codes of ``dst`` that ``ap_fixed`` produced.
    """

    src: FixedFormat | None
    dst: FixedFormat
    inputs: np.ndarray
    expected: np.ndarray

    @property
    def id(self):
        return f"{self.src or 'double'}->{self.dst.to_ap_type()}"


@functools.cache
def ap_fixed_cases():
    """The 168,000 ``ap_fixed`` casts, grouped into :class:`ApFixedCase` objects (560 of them)."""
    path = shared_dir() / "vectors" / "ap_fixed_casts.csv.gz"
    if not path.exists():
        pytest.fail(f"Golden vectors not found at {path}; set NNFAB_SHARED_DIR")
    groups = defaultdict(list)
    with gzip.open(path, "rt") as file:
        for row in csv.reader(file):
            groups[tuple(row[:-2])].append(row[-2:])
    cases = []
    for key, rows in groups.items():
        if key[0] == "fx":
            _, s, w, i, ds, dw, di, q, o = key
            src = FixedFormat(int(w), int(i), signed=s == "1")
            inputs = np.array([src.bits_to_code(int(a)) for a, _ in rows], dtype=np.int64)
        else:
            _, ds, dw, di, q, o = key
            src = None
            inputs = np.array([float(a) for a, _ in rows], dtype=np.float64)
        dst = FixedFormat(int(dw), int(di), signed=ds == "1", rounding=q, overflow=o)
        expected = np.array([dst.bits_to_code(int(b)) for _, b in rows], dtype=np.int64)
        cases.append(ApFixedCase(src, dst, inputs, expected))
    return tuple(cases)
