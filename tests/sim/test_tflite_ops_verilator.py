"""TFLite's int8 ADD and global average on Verilator (the Verilog Amaranth writes, through the HDL
harness), with random idle cycles and back-pressure at both ends, against the golden model code
for code.

The harness drives one input stream, so the two-input ADD runs behind a wrapper that carries
both operands in one transfer (``i0`` and ``i1`` valid together): the data path is proven on
every pair of int8 codes, the independent stalls of the two inputs only in Amaranth's
simulator (tests/hdl/test_add_tflite.py)."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nnfab.hdl.add_tflite import INT8, AddTfliteEngine
from nnfab.hdl.pool_tflite import GlobalAveragePoolTfliteEngine
from nnfab.hdl.vector_pipeline import vector_signature
from nnfab.packing import pack, unpack
from nnfab.sim.golden.tflite import add_int8, average_int8
from nnfab.sim.harness import run_harness
from nnfab.tflite_ops import AverageDivider

from ..hdl.test_add_tflite import resnet_add_params
from ..hdl.test_pool_tflite import edge_sums, frames_with_sums


class PairedAdd(wiring.Component):
    """:class:`AddTfliteEngine` with both operands in one input transfer: lanes ``0..n-1`` of
    ``i`` are input 1, lanes ``n..2n-1`` input 2."""

    def __init__(self, params, lanes):
        self.add = AddTfliteEngine(params, lanes=lanes)
        self._lanes = lanes
        super().__init__({"i": In(vector_signature(INT8, 2 * lanes)),
                          "o": Out(vector_signature(INT8, lanes))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.add = add = self.add
        n = self._lanes
        m.d.comb += [add.i0.valid.eq(self.i.valid), add.i1.valid.eq(self.i.valid),
                     self.i.ready.eq(add.i0.ready)]
        m.d.comb += [add.i0.payload[j].eq(self.i.payload[j]) for j in range(n)]
        m.d.comb += [add.i1.payload[j].eq(self.i.payload[n + j]) for j in range(n)]
        wiring.connect(m, add.o, wiring.flipped(self.o))
        return m


@pytest.mark.slow
def test_add_every_code_pair_on_verilator():
    """ResNet-8's first ADD on all 65,536 pairs of int8 codes (16 lanes, 4,096 transfers)."""
    params = resnet_add_params()[3]
    lanes = 16
    a, b = (v.reshape(-1, lanes) for v in np.meshgrid(np.arange(-128, 128),
                                                      np.arange(-128, 128)))
    want = add_int8(a, b, params)
    formats = [INT8] * (2 * lanes)
    run = run_harness(PairedAdd(params, lanes), toplevel="add_tflite",
                      words_in=[pack([int(v) for v in (*ra, *rb)], formats)
                                for ra, rb in zip(a, b)],
                      n_out=len(a), warmup_in=16, warmup_out=16, seed=3, p_idle=0.3,
                      p_stall=0.3, burst=4)
    assert not run.timed_out
    got = np.array([unpack(word, [INT8] * lanes) for word in run.words_out])
    assert got.shape == want.shape == (4096, lanes) and np.array_equal(got, want)
    assert run.latency == 6 and run.initiation_interval == 1
    assert run.counters["stall_cycles"] > 0 and run.counters["idle_cycles"] > 0


@pytest.mark.slow
def test_global_average_on_verilator():
    """KWS's average (125 pixels of 64 channels per frame): edge and seeded random frames."""
    count, lanes = 125, 64
    sums = edge_sums(count, lanes, np.random.default_rng(17), n_random=40)
    frames = frames_with_sums(sums, count)
    want = average_int8(sums, count)
    run = run_harness(GlobalAveragePoolTfliteEngine(AverageDivider(count), lanes=lanes),
                      toplevel="average_pool_tflite",
                      words_in=[pack([int(v) for v in pixel], [INT8] * lanes)
                                for pixel in frames.reshape(-1, lanes)],
                      n_out=len(sums), warmup_in=2 * count, warmup_out=2, seed=9, p_idle=0.3,
                      p_stall=0.3, burst=4, transfers_per_vector=count)
    assert not run.timed_out
    got = np.array([unpack(word, [INT8] * lanes) for word in run.words_out])
    assert got.shape == want.shape and np.array_equal(got, want)
    assert run.latency == count + 3 and run.initiation_interval == count
    assert run.counters["stall_cycles"] > 0 and run.counters["idle_cycles"] > 0
