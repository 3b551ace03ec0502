"""LaneQuantizer (per-element requantize) against its golden model, in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from nnfab.fixed import FixedFormat
from nnfab.ir import QuantizeLayer
from nnfab.ir.quantize import lanes_format
from nnfab.hdl.quantize import LaneQuantizer
from nnfab.sim.golden.quantize import quantize_lanes
from nnfab.sim.golden.network import run_layer

FIN = FixedFormat(12, 5)
FORMATS = (FixedFormat(6, 4), None, FixedFormat(10, 4, rounding="RND_CONV", overflow="SAT"),
           FixedFormat(5, 3, signed=False), FixedFormat(8, 2, rounding="RND", overflow="SAT_SYM"))


def test_lane_quantizer_matches_golden():
    fout = lanes_format(FORMATS)
    dut = LaneQuantizer(fin=FIN, formats=FORMATS, fout=fout)
    rng = np.random.default_rng(3)
    x = rng.integers(FIN.min_code, FIN.max_code + 1, (200, len(FORMATS)))
    x[:5] = [[FIN.min_code] * 5, [FIN.max_code] * 5, [0] * 5, [-1] * 5, [1] * 5]
    want = quantize_lanes(x, fin=FIN, formats=FORMATS, fout=fout)
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for row in x:
            ctx.set(dut.i.payload, [int(v) for v in row])
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append([int(v) for v in ctx.get(dut.o.payload)])
        ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(np.array(got), want)
    assert dut.latency == 1 and dut.initiation_interval == 1


def test_zero_bit_lanes_give_zero():
    y = quantize_lanes(np.array([[100, -7]]), fin=FIN, formats=(None, None),
                       fout=lanes_format((None, None)))
    assert y.tolist() == [[0, 0]]


def test_lane_format_must_fit_output():
    with pytest.raises(ValueError, match="Lane 0 format fixed<8,6> does not fit the output "
                                         "format fixed<8,4> exactly"):
        LaneQuantizer(fin=FIN, formats=(FixedFormat(8, 6),), fout=FixedFormat(8, 4))


def test_quantize_layer_golden_and_formats():
    layer = QuantizeLayer("q", shape=(5,), fin=FIN, formats=FORMATS)
    assert layer.output_format == FixedFormat(10, 4)
    x = np.arange(-10, 10).reshape(4, 5) * 37
    assert np.array_equal(run_layer(layer, x), quantize_lanes(x, fin=FIN, formats=FORMATS,
                                                              fout=layer.output_format))
