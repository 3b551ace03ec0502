"""cocotb test of the HDL harness (:mod:`nnfab.sim.harness`): Python wakes only at start and end.

The clock is cocotb's C-level clock (``impl="gpi"``); the test pulses reset, waits for the
harness's ``done``, then reads its counters and the output file and writes, to the JSON file
named by ``+nnfab_json=``, the same figures :mod:`nnfab.sim.network_tb` writes (``words_out``,
``latency``, ``initiation_interval``, ``cycles``) plus ``timed_out`` and ``counters``. The
comparison with the golden model happens outside the simulator. A watchdog timeout fails the
test with the counts reached.
"""

import json
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

PERIOD_NS = 10
_COUNTERS = ("cycle", "n_in", "n_out", "first_in_cycle", "first_out_cycle", "warmup_max_gap",
             "warmup_last_out_cycle", "stall_cycles", "idle_cycles", "longest_stall",
             "longest_idle", "stall_runs", "idle_runs")


def _plusarg(name):
    value = cocotb.plusargs.get(f"nnfab_{name}")
    if not isinstance(value, str) or not value:
        raise ValueError(f"Plusarg +nnfab_{name}= is missing; run the harness through "
                         f"nnfab.sim.harness.run_harness")
    return value


@cocotb.test()
async def harness_run(dut):
    in_path, out_path, json_path = (Path(_plusarg(name)) for name in ("in", "out", "json"))
    n_in, warmup_in, warmup_out, max_cycles = (
        int(_plusarg(name)) for name in ("n_in", "warmup_in", "warmup_out", "max_cycles"))
    if not in_path.is_file():
        raise FileNotFoundError(f"Input file {str(in_path)!r} does not exist")
    dut.rst.value = 1
    Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start(start_high=False)
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    # The harness's watchdog ends the run; this timer (one simulator callback, no Python in
    # between) only catches a harness that never leaves reset.
    await with_timeout(RisingEdge(dut.done), (max_cycles + 16) * PERIOD_NS, "ns")
    # One more edge: every write of the final cycle (and the output file's close) is done.
    await RisingEdge(dut.clk)
    counters = {name: int(getattr(dut, name).value) for name in _COUNTERS}
    timed_out = bool(dut.timed_out.value)
    words_out = [line.strip() for line in out_path.read_text().splitlines() if line.strip()]
    warm = counters["n_in"] >= warmup_in and counters["n_out"] >= warmup_out
    result = {
        "words_out": [hex(int(word, 16)) for word in words_out],
        "latency": (counters["first_out_cycle"] - counters["first_in_cycle"]
                    if counters["n_out"] else None),
        "initiation_interval": (counters["warmup_max_gap"]
                                if warm and warmup_in > int(cocotb.plusargs.get(
                                    "nnfab_per_vector", 1)) else None),
        "cycles": (counters["warmup_last_out_cycle"] - counters["first_in_cycle"] + 1
                   if warm else None),
        "timed_out": timed_out,
        "counters": counters,
    }
    json_path.write_text(json.dumps(result))
    assert len(words_out) == counters["n_out"], (
        f"The output file holds {len(words_out)} transfers, the harness counted "
        f"{counters['n_out']}")
    assert not timed_out, (
        f"Watchdog: after {counters['cycle']} cycles {counters['n_in']} of {n_in} inputs were "
        f"accepted and {counters['n_out']} of {_plusarg('n_out')} outputs produced")
