"""cocotb tests for on-chip training designs (whole trainers run inside the HDL harness, see
:mod:`nnfab.gen.train`).

``update_units``: four update units side by side (members ``i0..i3``/``o0..o3``), each fed its
input words with random idle cycles and back-pressure and checked against the expected words.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from nnfab.sim.streams import StreamSink, StreamSource

PERIOD_NS = 10


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test(skip=os.environ.get("NNFAB_TB_KIND") != "units")
async def update_units(dut):
    with open(os.environ["NNFAB_TB_DATA"]) as file:
        data = json.load(file)
    await _reset(dut)
    rng = random.Random(data["seed"])
    for p_idle, p_stall in ((0.0, 0.0), (0.3, 0.4)):
        sinks, received = [], []
        for n, unit in enumerate(data["units"]):
            source = StreamSource(dut, f"i{n}", dut.clk, period_ns=PERIOD_NS, rng=rng,
                                  p_idle=p_idle)
            sink = StreamSink(dut, f"o{n}", dut.clk, period_ns=PERIOD_NS, rng=rng,
                              p_stall=p_stall)
            cocotb.start_soon(source.send([int(w, 16) for w in unit["words_in"]]))
            sinks.append((sink, unit))
        for n, (sink, unit) in enumerate(sinks):
            got = await sink.receive(len(unit["expected"]))
            mask = (1 << unit["width"]) - 1
            expected = [e & mask for e in unit["expected"]]
            bad = [k for k, (g, e) in enumerate(zip(got, expected)) if g != e]
            assert not bad, (f"seed {data['seed']}, unit {n} ({unit['kind']}), idle {p_idle}: "
                             f"{len(bad)} mismatches, first at update {bad[0]}")
        # The state memories carry over: the second pass continues from the first's state,
        # which the expected words (computed over both passes) account for.
        data["units"] = [dict(u, words_in=u["words_in2"], expected=u["expected2"])
                         for u in data["units"]]
