"""A failure you can debug: verify of a broken design traces the first mismatching vector and
names the layer whose output first differs (issue 16). Runs on Verilator."""

import numpy as np
import pytest
from amaranth.back import verilog as amaranth_verilog

from nnfab.gen.assemble import Network
from nnfab.gen.emit import verilog_name
from nnfab.gen.native import load_native
from nnfab.gen.verify import verify

from .conftest import tiny_mlp


@pytest.mark.slow
@pytest.mark.parametrize("layer,weight", [("d1", (0, 1)), ("d2", (1, 0))])
def test_flipped_weight_bit_is_caught_and_its_layer_named(write_model, layer, weight):
    doc, arrays = tiny_mlp()
    model = load_native(write_model(doc, arrays, name="good"))
    broken_arrays = dict(arrays)
    broken_arrays[f"{layer}.w"] = arrays[f"{layer}.w"].copy()
    # One bit of one weight of the layer (one whose change the relu and the output
    # saturation do not hide for these inputs).
    broken_arrays[f"{layer}.w"][weight] ^= 1 << 4
    broken = load_native(write_model(doc, broken_arrays, name="broken"))
    network = Network(broken)
    text = amaranth_verilog.convert(network, name=verilog_name(broken.name), emit_src=False)

    x = np.random.default_rng(2).uniform(0, 3, (40, 4))
    result = verify(model, x, verilog=text, seed=1,
                    timing=(network.latency, network.initiation_interval))

    assert result.n_mismatches > 0 and not result.passed
    report = result.debug
    assert report is not None
    assert report.vector == result.first_mismatches[0][0]
    assert report.layer == layer
    assert report.trace_path.suffix == ".fst" and report.trace_path.stat().st_size > 0
    assert report.signals == tuple(f"nnfab_harness.dut.{layer}.o__{port}"
                                   for port in ("payload", "valid", "ready"))
    assert report.verilog_module == f"\\tiny.{layer}"
    assert report.expected != report.got
    if layer == "d2":  # the output layer: its traced output is the mismatch verify saw
        assert report.got == result.first_mismatches[0][2]
    lines = report.lines()
    assert lines[1] == f"first layer that differs: {layer!r}"
    assert str(report.trace_path) in lines[0]


@pytest.mark.slow
def test_jobs_split_the_vectors_and_merge_them_in_order(write_model):
    """verify --jobs: shards simulated by separate processes of one build, merged in order;
    the same outputs, latency and initiation interval as one process."""
    doc, arrays = tiny_mlp()
    model = load_native(write_model(doc, arrays, name="good"))
    x = np.random.default_rng(3).uniform(-3, 3, (50, 4))
    one = verify(model, x, seed=4)
    three = verify(model, x, seed=4, jobs=3)
    assert one.passed and three.passed
    assert three.cocotb_tests == (3, 3, 0)
    assert three.rtl_outputs.tolist() == one.rtl_outputs.tolist()
    assert len(three.rtl_outputs) == 50
    assert (three.measured_latency, three.measured_initiation_interval) == \
        (one.measured_latency, one.measured_initiation_interval)


def test_jobs_must_be_positive():
    with pytest.raises(ValueError, match=r"^Jobs must be a positive integer, not 0$"):
        verify(None, np.zeros((1, 4)), jobs=0)
