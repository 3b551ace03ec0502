"""Running a stream engine against its golden outputs on Verilator, in the HDL harness.

The data plane runs inside the simulator (:mod:`nnfab.sim.harness`): every input is streamed
twice, first at full rate (the warm-up, whose transfer cycles give the latency, every gap
between inputs and, if asked, the whole schedule), then with the harness's seeded random idle
cycles on the input and back-pressure on the output. Python wakes only at the start and the
end, so long runs cost Verilator's time, not cocotb's. The runs are short (thousands of
cycles), so the simulator is compiled at ``-O0``: large engines build faster.
"""

from nnfab.packing import pack
from nnfab.sim.harness import run_harness

__all__ = ["run_stream_test"]

# Longest idle or stall burst of a framed run: gaps between frames as long as the 30 cycles the
# Python drivers left (uniform 1 to 30, anywhere in the stream, frame boundaries included).
_FRAME_BURST = 30


def run_stream_test(dut, *, toplevel, inputs, input_formats, expected, output_formats, seed,
                    p_idle=0.3, p_stall=0.4, schedule=None, frame_size=None, cache_dir=None):
    """Stream ``inputs`` (one list of codes per vector) through ``dut`` on Verilator, twice,
    and check every output against ``expected`` code for code, plus latency and II; returns
    the :class:`~nnfab.sim.harness.HarnessRun`.

    ``schedule``, optional, is ``(input_cycles, output_cycles)``: the exact full-rate cycle of
    every transfer (any origin); a non-integer ``dut.initiation_interval`` is then not checked
    as a constant gap. ``frame_size`` (inputs per frame) makes idle and stall bursts up to 30
    cycles long, as gaps between frames."""
    words = [pack(row, input_formats) for row in inputs]
    want = [pack(row, output_formats) for row in expected]
    run = run_harness(dut, toplevel=toplevel, words_in=words + words, n_out=2 * len(want),
                      warmup_in=len(words), warmup_out=len(want), seed=seed, p_idle=p_idle,
                      p_stall=p_stall, burst=_FRAME_BURST if frame_size else 1,
                      transfer_cycles=True, optimize=False, cache_dir=cache_dir)
    assert not run.timed_out, f"seed {seed}: watchdog, {run.counters}"
    for phase, got in (("full rate", run.words_out[:len(want)]),
                       ("idle and back-pressure", run.words_out[len(want):])):
        mismatches = [n for n, (g, e) in enumerate(zip(got, want)) if g != e]
        assert len(got) == len(want) and not mismatches, (
            f"seed {seed}, {phase}: {len(got)} outputs of {len(want)}, {len(mismatches)} "
            f"mismatches, first at vector {mismatches[:1]}")
    # The stall pass really had both: the harness forces at least one of each.
    assert run.counters["stall_cycles"] > 0 and run.counters["idle_cycles"] > 0, run.counters
    accepted, produced = run.input_cycles, run.output_cycles
    assert len(accepted) == len(words) and len(produced) == len(want)
    latency = produced[0] - accepted[0]
    assert latency == dut.latency, f"measured latency {latency}, not {dut.latency}"
    ii = dut.initiation_interval
    if isinstance(ii, int) and schedule is None:
        gaps = {b - a for a, b in zip(accepted, accepted[1:])}
        assert gaps <= {ii}, f"measured II {gaps}, not {ii}"
    if schedule is not None:
        # Both lists relative to the first input transfer.
        for name, measured, cycles in (("input_cycles", accepted, schedule[0]),
                                       ("output_cycles", produced, schedule[1])):
            measured = [t - accepted[0] for t in measured]
            cycles = [t - schedule[0][0] for t in cycles]
            first = next((n for n, (a, b) in enumerate(zip(measured, cycles)) if a != b), None)
            assert measured == cycles, f"{name}: first difference at transfer {first}"
    return run
