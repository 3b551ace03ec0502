"""cocotb tests for on-chip training designs.

``training_run``: streams the packed sample words of ``$NNFAB_TB_DATA`` (JSON: ``words_in``,
``n_out_words``) into a :class:`~nnfab.hdl.trainable_dense.TrainableDense` and writes every
output word and the cycle count to ``$NNFAB_TB_OUT``. The driver wakes only on ``i.ready``
rising and on output transfers, not every cycle, so Verilator runs freely between samples.

``update_units``: four update units side by side (members ``i0..i3``/``o0..o3``), each fed its
input words with random idle cycles and back-pressure and checked against the expected words.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from nnfab.sim.streams import StreamSink, StreamSource

PERIOD_NS = 10


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _drive(dut, words):
    dut.i__valid.value = 1
    for word in words:
        dut.i__payload.value = word
        await ReadOnly()
        if not dut.i__ready.value:
            await RisingEdge(dut.i__ready)
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
    dut.i__valid.value = 0


async def _collect(dut, n, out):
    dut.o__ready.value = 1
    while len(out) < n:
        await ReadOnly()
        if dut.o__valid.value:
            out.append(dut.o__payload.value.to_signed())
            await RisingEdge(dut.clk)
        else:
            await RisingEdge(dut.o__valid)


@cocotb.test(skip=os.environ.get("NNFAB_TB_KIND") != "training")
async def training_run(dut):
    with open(os.environ["NNFAB_TB_DATA"]) as file:
        data = json.load(file)
    await _reset(dut)
    start = get_sim_time(unit="ns")
    words = [int(w, 16) for w in data["words_in"]]
    out = []
    cocotb.start_soon(_drive(dut, words))
    await _collect(dut, data["n_out_words"], out)
    cycles = int((get_sim_time(unit="ns") - start) // PERIOD_NS)
    with open(os.environ["NNFAB_TB_OUT"], "w") as file:
        json.dump({"words_out": out, "cycles": cycles}, file)


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
