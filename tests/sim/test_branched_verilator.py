"""The QONNX branched model's graph (``branched_model_ch_last.onnx``: depthwise-separable
convolutions, LeakyReLU, max pooling, nearest upsampling, a Concat of a skip branch) as RTL
on Verilator through the HDL harness, 0 mismatches at full rate and under random idle cycles
and back-pressure at both ends.

The file's input is a fixed 256x256 frame: that run is ``bench/branched_full_image.py``
(minutes of simulation). Here the same graph is built at an 8x8 frame
(:func:`tests.gen.branched_model.at_frame`: same layers, weights, formats and kernels), with the
analytic skip-FIFO depths that large frames get, and the reuse factors of a 64-multiplier
budget per layer. Most of the time is the Verilator build of the whole design (~7 MB of
Verilog, about as large as at 256x256)."""

import numpy as np
import pytest

from ..gen.branched_model import at_frame, load_branched, run_rtl


@pytest.mark.slow
def test_branched_graph_rtl_at_8x8_under_stalls():
    from amaranth.back import verilog

    from nnfab.gen.assemble import CONSTANT_WEIGHTS, Network
    from nnfab.gen.emit import verilog_name
    from nnfab.gen.skip_fifos import analytic_skip_fifo_depths

    model = at_frame(load_branched(max_multipliers=64), (8, 8))
    depths = analytic_skip_fifo_depths(model, CONSTANT_WEIGHTS.engine)
    assert set(depths) == {("Concat_3", 0), ("Concat_3", 1)}
    network = Network(model, skip_fifo_depths=depths)
    text = verilog.convert(network, name=verilog_name(model.name), emit_src=False)
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(0, 0.5, (2, 8, 8, 3)),
                        rng.uniform(-1.5, 1.5, (2, 8, 8, 3))])  # the last two saturate
    run = run_rtl(model, text, x, seed=8, stall=0.2, burst=300, cache_dir=None)
    assert run["cocotb_tests"] == [1, 1]
    assert not run["timed_out"]
    assert run["outputs"] == run["outputs_expected"] == 2 * 4 * 64
    assert run["stall_cycles"] > 0 and run["idle_cycles"] > 0
    assert run["mismatched_codes"] == 0, run
