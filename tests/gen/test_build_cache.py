"""``nnfab build`` and ``nnfab verify`` share the Verilog cache: a model converted before with
the same options by the same nnfab is not converted or timed again, and the build folder is
the same, byte for byte, as a conversion's. Covers a chain of vector layers (latency summed),
a CNN that streams pixels (latency simulated) and a residual graph (skip FIFO depths and
latency simulated)."""

import numpy as np
import pytest

import nnfab.gen.timing as timing
from nnfab.gen.emit import build_outputs
from nnfab.gen.verify import verify

from .conftest import tiny_mlp
from .test_graph import residual_cnn
from nnfab.gen.native import load_native

FILES = ("manifest.json", "report.md", "model.json", "model.npz")


def _no_conversion(*args, **kwargs):
    raise AssertionError("converted again")


def _same_folders(a, b, top):
    for name in (*FILES, f"{top}.v"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("make", ["chain", "residual_cnn"])
def test_second_build_is_the_cached_conversion(make, write_model, tmp_path, monkeypatch):
    model = (load_native(write_model(*tiny_mlp())) if make == "chain" else residual_cnn())
    cache = tmp_path / "cache"
    fresh = build_outputs(model, tmp_path / "fresh", use_cache=False)
    first = build_outputs(model, tmp_path / "first", cache_dir=cache)
    assert not (tmp_path / "fresh-cache").exists()
    monkeypatch.setattr(timing, "convert_network", _no_conversion)
    monkeypatch.setattr(timing, "simulate_timing", _no_conversion)
    said = []
    again = build_outputs(model, tmp_path / "again", cache_dir=cache, progress=said.append)
    assert any("from the cache" in line for line in said)
    top = fresh.manifest["top"]
    _same_folders(tmp_path / "fresh", tmp_path / "first", top)
    _same_folders(tmp_path / "fresh", tmp_path / "again", top)
    assert again.manifest == fresh.manifest
    if make == "residual_cnn":
        assert again.manifest["latency_source"] == "simulated"
        assert any("skip_fifo_depths" in row for row in again.manifest["layers"])


@pytest.mark.slow
def test_verify_after_build_reuses_its_conversion(write_model, tmp_path, monkeypatch):
    model = load_native(write_model(*tiny_mlp()))
    cache = tmp_path / "cache"
    build_outputs(model, tmp_path / "out", cache_dir=cache)
    monkeypatch.setattr(timing, "convert_network", _no_conversion)
    x = np.random.default_rng(3).uniform(-3, 3, (30, *model.input_shape))
    result = verify(model, x, seed=3, cache_dir=cache)
    assert result.verilog_cached and result.passed and result.n_mismatches == 0
