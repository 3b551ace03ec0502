"""The Verilog cache of ``nnfab verify``: keyed by the model, the options and nnfab's source."""

import json

import numpy as np
import pytest

import nnfab.gen.verilog_cache as verilog_cache
from nnfab.gen.native import load_native
from nnfab.gen.passes import ChooseReuseFactors
from nnfab.gen.verilog_cache import cached_verilog, model_key

from .conftest import tiny_mlp


@pytest.fixture
def tiny(write_model):
    def load(weights=None, name="model"):
        doc, arrays = tiny_mlp(weights)
        return load_native(write_model(doc, arrays, name=name))
    return load


class Converter:
    def __init__(self, text="module tiny; endmodule\n"):
        self.calls = 0
        self.text = text

    def __call__(self):
        self.calls += 1
        return self.text, {"latency": 7, "initiation_interval": 1}


def test_second_call_is_a_hit(tiny, tmp_path):
    convert = Converter()
    first = cached_verilog(tiny(), convert, cache_dir=tmp_path, multiplier_threshold=3)
    second = cached_verilog(tiny(), convert, cache_dir=tmp_path, multiplier_threshold=3)
    details = {"latency": 7, "initiation_interval": 1}
    assert first == (convert.text, details, False)
    assert second == (convert.text, details, True)
    assert convert.calls == 1
    assert len(list((tmp_path / "verilog").glob("*.v"))) == 1


def test_one_weight_code_changes_the_key(tiny):
    doc, arrays = tiny_mlp()
    weights = arrays["d1.w"].copy()
    weights[1, 2] ^= 1
    assert model_key(tiny()) == model_key(tiny(name="again"))
    assert model_key(tiny()) != model_key(tiny(weights))


def test_reuse_factor_and_options_change_the_key(tiny):
    model = tiny()
    folded, _ = ChooseReuseFactors(reuse_factor=2).apply(model)
    assert model_key(model) != model_key(folded)
    assert model_key(model, multiplier_threshold=3) != model_key(model, multiplier_threshold=4)


def test_source_change_changes_the_key(tiny, monkeypatch):
    before = model_key(tiny())
    monkeypatch.setattr(verilog_cache, "source_fingerprint", lambda: "edited engine")
    assert model_key(tiny()) != before


def test_source_fingerprint_covers_the_engines():
    import nnfab.hdl
    assert len(verilog_cache.source_fingerprint()) == 64
    # Computed from files: hashing the same files again gives the same digest.
    verilog_cache.source_fingerprint.cache_clear()
    assert verilog_cache.source_fingerprint() == verilog_cache.source_fingerprint()
    assert nnfab.hdl.__path__


def test_bypass_neither_reads_nor_writes(tiny, tmp_path):
    convert = Converter()
    cached_verilog(tiny(), convert, cache_dir=tmp_path)
    result = cached_verilog(tiny(), convert, cache_dir=tmp_path / "other", use_cache=False)
    assert result[2] is False and convert.calls == 2
    assert not (tmp_path / "other").exists()
    assert cached_verilog(tiny(), convert, cache_dir=tmp_path, use_cache=False)[2] is False
    assert convert.calls == 3


def test_damaged_entry_is_converted_again(tiny, tmp_path):
    convert = Converter()
    cached_verilog(tiny(), convert, cache_dir=tmp_path)
    (text,) = (tmp_path / "verilog").glob("*.v")
    text.write_text("module truncated")
    assert cached_verilog(tiny(), convert, cache_dir=tmp_path) == \
        (convert.text, {"latency": 7, "initiation_interval": 1}, False)
    assert convert.calls == 2
    assert cached_verilog(tiny(), convert, cache_dir=tmp_path)[2] is True


def test_least_recently_used_entries_are_pruned(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(verilog_cache, "MAX_ENTRIES", 2)
    convert = Converter()
    for threshold in (1, 2, 3):
        cached_verilog(tiny(), convert, cache_dir=tmp_path, multiplier_threshold=threshold)
    kept = [json.loads(p.read_text())["options"]["multiplier_threshold"]
            for p in (tmp_path / "verilog").glob("*.json")]
    assert sorted(kept) == [2, 3]
    assert len(list((tmp_path / "verilog").glob("*.v"))) == 2


def test_unknown_field_type_is_never_cached(tiny, tmp_path):
    class Opaque:
        pass

    model = tiny()
    object.__setattr__(model.layers[0], "name", Opaque())
    assert model_key(model) is None
    convert = Converter()
    cached_verilog(model, convert, cache_dir=tmp_path)
    cached_verilog(model, convert, cache_dir=tmp_path)
    assert convert.calls == 2
    assert not (tmp_path / "verilog").exists()


def test_object_arrays_are_not_hashed():
    with pytest.raises(verilog_cache._Unhashable):
        verilog_cache._walk(np.array([object()]), lambda data: None)
