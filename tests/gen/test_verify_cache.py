"""verify's caches end to end: an unchanged model is neither converted nor compiled again, and
``use_cache=False`` (``--no-cache``) touches neither cache. Runs on Verilator."""

import numpy as np
import pytest

from nnfab.gen.native import load_native
from nnfab.gen.verify import verify

from .conftest import tiny_mlp


@pytest.mark.slow
def test_second_verify_skips_conversion_and_build(write_model, tmp_path):
    doc, arrays = tiny_mlp()
    model = load_native(write_model(doc, arrays))
    x = np.random.default_rng(5).uniform(-3, 3, (20, 4))
    cache = tmp_path / "cache"
    first = verify(model, x, cache_dir=cache)
    again = verify(load_native(write_model(doc, arrays, name="again")), x, cache_dir=cache)
    assert first.passed and again.passed
    assert (first.verilog_cached, first.build_cached) == (False, False)
    assert (again.verilog_cached, again.build_cached) == (True, True)
    assert again.rtl_outputs.tolist() == first.rtl_outputs.tolist()
    assert len(list((cache / "verilog").glob("*.v"))) == 1

    bypass = tmp_path / "untouched"
    fresh = verify(model, x, cache_dir=bypass, use_cache=False)
    assert fresh.passed and (fresh.verilog_cached, fresh.build_cached) == (False, False)
    assert not bypass.exists()
