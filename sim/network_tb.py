"""cocotb test that streams a whole input set through a generated network with Python drivers
and records the outputs.

``nnfab verify`` ran this until the HDL harness (:mod:`nnfab.sim.harness`, whose cocotb side
wakes only at start and end) replaced it; it stays as the reference that
``bench/verify_speed.py`` compares the harness with, and writes the same JSON figures.

``$NNFAB_TB_DATA`` names a JSON file with ``words_in`` (hexadecimal packed input transfers),
``n_out`` (output transfers expected), ``warmup`` (input transfers streamed first with no
back-pressure, to measure latency and initiation interval), ``p_stall`` (chance of holding
``o.ready`` low in a cycle afterwards), ``p_idle`` (chance of holding ``i.valid`` low in a
cycle afterwards), ``transfers_per_vector`` (input transfers per inference) and ``seed``. The
measured initiation interval is the largest gap between the first transfers of consecutive
inferences in the warm-up. The outputs, in order, and the measured
figures are written to the JSON file named by ``$NNFAB_TB_OUT``; the comparison with the golden
model happens outside the simulator.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from .streams import StreamSink, StreamSource

PERIOD_NS = 10


@cocotb.test()
async def stream_inputs_collect_outputs(dut):
    with open(os.environ["NNFAB_TB_DATA"]) as file:
        data = json.load(file)
    words = [int(w, 16) for w in data["words_in"]]
    n_out, warmup = data["n_out"], data["warmup"]
    out_per_in = n_out / len(words)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    rng = random.Random(data["seed"])
    outputs, measured = [], {}
    per_vector = data.get("transfers_per_vector", 1)
    phases = [(words[:warmup], 0.0, 0.0),
              (words[warmup:], data["p_stall"], data.get("p_idle", 0.0))]
    for phase, (chunk, p_stall, p_idle) in enumerate(phases):
        if not chunk:
            continue
        source = StreamSource(dut, "i", dut.clk, period_ns=PERIOD_NS, rng=rng, p_idle=p_idle)
        sink = StreamSink(dut, "o", dut.clk, period_ns=PERIOD_NS, rng=rng, p_stall=p_stall)
        sending = cocotb.start_soon(source.send(chunk))
        expected = round(len(chunk) * out_per_in)
        outputs += await sink.receive(expected, max_cycles=200 * len(chunk) + 100_000)
        # A frame's last outputs can leave before its last input pixels are taken (a pooling
        # layer that drops the last row): the next phase's source must not start before.
        await sending
        if phase == 0:
            measured["latency"] = sink.produced_at[0] - source.accepted_at[0]
            starts = source.accepted_at[::per_vector]
            gaps = [b - a for a, b in zip(starts, starts[1:])]
            measured["initiation_interval"] = max(gaps) if gaps else None
            measured["cycles"] = sink.produced_at[-1] - source.accepted_at[0] + 1
    with open(os.environ["NNFAB_TB_OUT"], "w") as file:
        json.dump({"words_out": [hex(w) for w in outputs], **measured}, file)
