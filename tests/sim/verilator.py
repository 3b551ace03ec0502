"""Running a stream engine against its golden outputs on Verilator (see ``stream_tb.py``)."""

import json

from nnfab.packing import pack
from nnfab.sim.runner import run_cocotb

__all__ = ["run_stream_test"]


def run_stream_test(dut, *, toplevel, inputs, input_formats, expected, output_formats, seed,
                    data_dir, p_idle=0.3, p_stall=0.4, schedule=None, frame_size=None):
    """Stream ``inputs`` (one list of codes per vector) through ``dut`` on Verilator and check
    the outputs against ``expected`` code for code, plus latency and II; returns the
    :class:`~nnfab.sim.runner.CocotbResults`.

    ``schedule``, optional, is ``(input_cycles, output_cycles)``: the exact full-rate cycle of
    every transfer (any origin); a non-integer ``dut.initiation_interval`` is then not checked
    as a constant gap. ``frame_size`` (inputs per frame) adds random gaps between frames in
    the back-pressure pass."""
    ii = dut.initiation_interval
    data = {
        "seed": seed, "p_idle": p_idle, "p_stall": p_stall,
        "latency": dut.latency,
        "initiation_interval": ii if isinstance(ii, int) and schedule is None else None,
        "words_in": [hex(pack(row, input_formats)) for row in inputs],
        "words_out": [hex(pack(row, output_formats)) for row in expected],
    }
    if schedule is not None:
        input_cycles, output_cycles = schedule
        data["input_cycles"] = [t - input_cycles[0] for t in input_cycles]
        data["output_cycles"] = [t - input_cycles[0] for t in output_cycles]
    if frame_size is not None:
        data["frame_size"] = frame_size
    path = data_dir / f"{toplevel}.json"
    path.write_text(json.dumps(data))
    return run_cocotb(dut, toplevel=toplevel, test_module="tests.sim.stream_tb",
                      extra_env={"NNFAB_TB_DATA": str(path)})
