"""Generic in-simulator cocotb test for a stream engine with members ``i`` and ``o``.

``$NNFAB_TB_DATA`` names a JSON file (written by :func:`tests.sim.verilator.run_stream_test`)
with the packed input words, the expected output words (from the golden model), the seed,
and the engine's ``latency`` and ``initiation_interval``. The test streams everything twice:
at full rate, measuring latency and II, then with random idle cycles and back-pressure.

Optional keys, for engines whose outputs do not match their inputs one to one (convolution
with strides or padding, pooling, flatten): ``"initiation_interval": null`` skips the
constant-gap check; ``"input_cycles"`` and ``"output_cycles"`` give the exact full-rate cycles
of every input and output transfer, relative to the first input transfer; ``"frame_size"``
(inputs per frame) makes the second pass leave a random gap of up to ``"max_frame_gap"``
cycles (default 30) between frames. The number of outputs is always ``len(words_out)``.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

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
        full_rate = p_idle == 0.0 and p_stall == 0.0
        cocotb.start_soon(send_frames(source, dut, inputs, rng, data, full_rate))
        got = await sink.receive(len(expected))
        mismatches = [n for n, (g, e) in enumerate(zip(got, expected)) if g != e]
        assert not mismatches, (f"seed {data['seed']}, idle {p_idle}, stall {p_stall}: "
                                f"{len(mismatches)} mismatches, first at vector {mismatches[0]}")
        if full_rate:
            latency = sink.produced_at[0] - source.accepted_at[0]
            assert latency == data["latency"], f"measured latency {latency}"
            if data["initiation_interval"] is not None:
                gaps = {b - a for a, b in zip(source.accepted_at, source.accepted_at[1:])}
                assert gaps <= {data["initiation_interval"]}, f"measured II {gaps}"
            start = source.accepted_at[0]
            for key, cycles in (("input_cycles", source.accepted_at),
                                ("output_cycles", sink.produced_at)):
                if key in data:
                    measured = [t - start for t in cycles]
                    assert measured == data[key], (
                        f"{key}: first difference at transfer "
                        f"{next(n for n, (a, b) in enumerate(zip(measured, data[key])) if a != b)}")


async def send_frames(source, dut, inputs, rng, data, full_rate):
    """All inputs at once, or frame by frame with random gaps when ``frame_size`` is given."""
    size = data.get("frame_size")
    if full_rate or not size:
        await source.send(inputs)
        return
    for start in range(0, len(inputs), size):
        await source.send(inputs[start:start + size])
        gap = rng.randint(0, data.get("max_frame_gap", 30))
        if gap:
            await ClockCycles(dut.clk, gap)
