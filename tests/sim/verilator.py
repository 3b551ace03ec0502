"""Running a stream engine against its golden outputs on Verilator (see ``stream_tb.py``)."""

import json

from nnfab.packing import pack
from nnfab.sim.runner import run_cocotb

__all__ = ["run_stream_test"]


def run_stream_test(dut, *, toplevel, inputs, input_formats, expected, output_formats, seed,
                    data_dir, p_idle=0.3, p_stall=0.4):
    """Stream ``inputs`` (one list of codes per vector) through ``dut`` on Verilator and check
    the outputs against ``expected`` code for code, plus latency and II; returns the
    :class:`~nnfab.sim.runner.CocotbResults`."""
    data = {
        "seed": seed, "p_idle": p_idle, "p_stall": p_stall,
        "latency": dut.latency, "initiation_interval": dut.initiation_interval,
        "words_in": [hex(pack(row, input_formats)) for row in inputs],
        "words_out": [hex(pack(row, output_formats)) for row in expected],
    }
    path = data_dir / f"{toplevel}.json"
    path.write_text(json.dumps(data))
    return run_cocotb(dut, toplevel=toplevel, test_module="tests.sim.stream_tb",
                      extra_env={"NNFAB_TB_DATA": str(path)})
