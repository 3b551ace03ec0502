"""Generic in-simulator cocotb test for a stream engine with members ``i`` and ``o``.

``$NNFAB_TB_DATA`` names a JSON file (written by :func:`tests.sim.verilator.run_stream_test`)
with the packed input words, the expected output words (from the golden model), the seed,
and the engine's ``latency`` and ``initiation_interval``. The test streams everything twice:
at full rate, measuring latency and II, then with random idle cycles and back-pressure.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from nnfab.sim.streams import StreamSink, StreamSource

PERIOD_NS = 10


@cocotb.test()
async def stream_matches_golden(dut):
    with open(os.environ["NNFAB_TB_DATA"]) as file:
        data = json.load(file)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    rng = random.Random(data["seed"])
    inputs = [int(w, 16) for w in data["words_in"]]
    expected = [int(w, 16) for w in data["words_out"]]
    for p_idle, p_stall in ((0.0, 0.0), (data["p_idle"], data["p_stall"])):
        source = StreamSource(dut, "i", dut.clk, period_ns=PERIOD_NS, rng=rng, p_idle=p_idle)
        sink = StreamSink(dut, "o", dut.clk, period_ns=PERIOD_NS, rng=rng, p_stall=p_stall)
        cocotb.start_soon(source.send(inputs))
        got = await sink.receive(len(inputs))
        mismatches = [n for n, (g, e) in enumerate(zip(got, expected)) if g != e]
        assert not mismatches, (f"seed {data['seed']}, idle {p_idle}, stall {p_stall}: "
                                f"{len(mismatches)} mismatches, first at vector {mismatches[0]}")
        if p_idle == 0.0 and p_stall == 0.0:
            latency = sink.produced_at[0] - source.accepted_at[0]
            assert latency == data["latency"], f"measured latency {latency}"
            gaps = {b - a for a, b in zip(source.accepted_at, source.accepted_at[1:])}
            assert gaps <= {data["initiation_interval"]}, f"measured II {gaps}"
