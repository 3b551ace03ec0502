"""Fuzzing model files: every case loads (and builds cheaply) or fails with one clear NnfabError
line; never a traceback, never more than 30 s, never a known-invalid file accepted.

The fast tier runs a few hundred seeded cases; the slow tier 2,000 structured and 600 byte-level
cases. A failure names the case (seed and mutation), so it replays.
"""

import os

import numpy as np
import pytest

from .fuzz import (CASE_SECONDS, base_models, byte_case, real_files, run_case, structured_case,
                   write_native)


def _structured(n, seed, tmp_path):
    models = base_models()
    outcomes = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        what, doc, arrays, must_reject = structured_case(rng, models)
        path = write_native(tmp_path / f"s{k}", doc, arrays)
        outcomes.append(run_case(f"seed [{seed}, {k}] {what}", path, must_reject))
    return outcomes


def _bytes(n, seed, tmp_path):
    files = real_files()
    for _, _, parts in files:
        for part in parts:
            if not part.exists():
                pytest.fail(f"{part} is not available: shared/ must be beside the repository")
    outcomes = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        what, path, must_reject = byte_case(rng, files, tmp_path / f"b{k}")
        outcomes.append(run_case(f"seed [{seed}, {k}] {what}", path, must_reject))
    return outcomes


def _summary(kind, outcomes):
    slowest = max(outcomes, key=lambda o: o.seconds)
    rejected = sum(o.error is not None for o in outcomes)
    # Messages of the importers' last guard (gen/importers/__init__.py): clean, but less precise.
    guarded = sum(o.error is not None and "as Keras writes it" in o.error or
                  o.error is not None and "as nnfab reads it" in o.error for o in outcomes)
    line = (f"{kind}: {len(outcomes)} cases, {rejected} rejected, "
            f"{len(outcomes) - rejected} loaded, "
            f"{sum(o.must_reject for o in outcomes)} must-reject (all rejected), 0 tracebacks, "
            f"0 Python error texts, {guarded} by the importers' last guard, "
            f"slowest {slowest.seconds:.2f} s ({slowest.case}), "
            f"total {sum(o.seconds for o in outcomes):.1f} s")
    print(line)
    report = os.environ.get("NNFAB_FUZZ_REPORT")
    if report:
        with open(report, "a") as file:
            file.write(line + "\n")
    assert slowest.seconds < CASE_SECONDS
    return rejected


def test_structured_fast(tmp_path):
    outcomes = _structured(200, 2026, tmp_path)
    rejected = _summary("structured", outcomes)
    # The mutations are mostly invalid, but some valid ones load and build.
    assert 0 < rejected < len(outcomes)


def test_bytes_fast(tmp_path):
    outcomes = _bytes(120, 2026, tmp_path)
    rejected = _summary("bytes", outcomes)
    assert 0 < rejected < len(outcomes)


@pytest.mark.slow
def test_structured_slow(tmp_path):
    _summary("structured", _structured(2000, 7, tmp_path))


@pytest.mark.slow
def test_bytes_slow(tmp_path):
    _summary("bytes", _bytes(600, 7, tmp_path))
