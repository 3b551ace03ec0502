"""The one-entry skid FIFO: Amaranth's ``SyncFIFO(depth=1)`` cycle for cycle, without the
zero-width addresses Verilator refuses."""

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFO
from amaranth.sim import Simulator

from nnfab.hdl.pipeline import OneEntryFIFO


def test_one_entry_fifo_equals_amaranths_one_entry_sync_fifo():
    m = Module()
    m.submodules.ours = ours = OneEntryFIFO(8)
    m.submodules.theirs = theirs = SyncFIFO(width=8, depth=1)
    rng = np.random.default_rng(4)
    stimulus = [(int(w), int(r), int(d)) for w, r, d in
                zip(rng.integers(0, 2, 3000), rng.integers(0, 2, 3000),
                    rng.integers(0, 256, 3000))]
    seen = {"writes": 0, "reads": 0}

    async def bench(ctx):
        for w_en, r_en, data in stimulus:
            for fifo in (ours, theirs):
                ctx.set(fifo.w_en, w_en)
                ctx.set(fifo.r_en, r_en)
                ctx.set(fifo.w_data, data)
            mine = [ctx.get(s) for s in (ours.w_rdy, ours.r_rdy, ours.level)]
            assert mine == [ctx.get(s) for s in (theirs.w_rdy, theirs.r_rdy, theirs.level)]
            if mine[1]:
                assert ctx.get(ours.r_data) == ctx.get(theirs.r_data)
                seen["reads"] += r_en
            seen["writes"] += w_en and mine[0]
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["writes"] > 500 and seen["reads"] > 500


def test_one_entry_fifo_verilog_has_no_negative_ranges():
    fifo = OneEntryFIFO(8)
    text = verilog.convert(fifo, ports=[fifo.w_data, fifo.w_en, fifo.w_rdy, fifo.r_data,
                                        fifo.r_en, fifo.r_rdy], emit_src=False)
    assert "[-1:0]" not in text
    theirs = SyncFIFO(width=8, depth=1)
    assert "[-1:0]" in verilog.convert(theirs, ports=[theirs.w_data, theirs.w_en],
                                       emit_src=False)  # why OneEntryFIFO exists
