"""A board build of the on-chip trainer: :class:`~nnfab.hdl.trainable_mlp.TrainableMLP` behind
the streaming UART link (:class:`~nnfab.boards.stream_link.StreamLink`, protocol in
``boards/host_link.md``) in a :class:`~nnfab.boards.top.BoardTop`, through the board tool flow
(:func:`nnfab.boards.flow.run_flow`)."""

import json
from pathlib import Path

from nnfab.errors import BoardError
from nnfab.gen.build_folder import staged_folder
from nnfab.hdl.trainable_mlp import TrainableMLP, batch_cycles_per_sample
from nnfab.hdl.unused import discard
from nnfab.training_mlp import TrainableMLPSpec

from .build import DEFAULT_BAUD, BoardBuildResult
from .flow import board_and_clock, board_figures, capacity_text, figures_markdown, run_flow, \
    tool_seconds_line
from .stream_link import StreamLink
from .top import BoardTop

__all__ = ["trainer_top", "build_trainer_for_board"]

#: File name of the trainer's bitstream, before the board's suffix.
BITSTREAM_NAME = "trainer"


def trainer_top(spec, target, clock_mhz, *, baud=DEFAULT_BAUD):
    """The board top of the trainer of ``spec`` on ``target`` (a
    :class:`~nnfab.boards.board.BoardTarget`) at ``clock_mhz``.

    Raises
    ------
    TypeError
        If ``spec`` is not a TrainableMLPSpec.
    BoardError
        If the clock or the baud rate cannot be made.
    """
    trainer = TrainableMLP(spec)
    try:
        return BoardTop(trainer, target=target, clock_mhz=clock_mhz, baud=baud,
                        link=StreamLink)
    except (ValueError, BoardError) as exc:
        discard(trainer)  # a rejected design is not an unused one
        raise BoardError(str(exc)) from None


def build_trainer_for_board(spec, out_dir, board, clock_mhz=None, progress=None, *,
                            baud=DEFAULT_BAUD, seed=1):
    """Build the trainer of ``spec`` into a bitstream for ``board``; report resources, Fmax
    and training speed.

    Writes the folder ``out_dir`` whole or not at all (as
    :func:`~nnfab.boards.build.build_for_board`): ``trainer.bit`` / ``trainer.bin``,
    ``report.json``, ``report.md`` and the tools' files in ``out_dir/build``.

    Parameters
    ----------
    spec : TrainableMLPSpec
    out_dir : path
    board : str
        A name of :data:`nnfab.boards.targets.TARGETS`.
    clock_mhz : float, optional
        The board's ``default_clock_mhz`` if None (a PLL makes other clocks).
    progress : callable, optional
        Called with a short description before each step.
    baud : int
    seed : int
        nextpnr's placement seed.

    Returns
    -------
    BoardBuildResult
        ``report`` holds ``resources``, ``synthesis_cells``, ``clock`` (with ``fmax_mhz`` and
        ``meets_timing``), ``cycles_per_sample``
        (:func:`~nnfab.hdl.trainable_mlp.batch_cycles_per_sample`), ``samples_per_second`` at
        the clock, ``line_samples_per_second`` (what the UART carries), ``bitstream_bytes``
        and ``tool_seconds``.

    Raises
    ------
    TypeError
        If ``spec`` is not a TrainableMLPSpec.
    BoardError
        If the board is unknown, the clock or baud rate cannot be made, or the design does not
        fit (the message says by how much and suggests a larger reuse factor).
    ToolchainError
        If a YoWASP tool is missing or fails.
    """
    if not isinstance(spec, TrainableMLPSpec):
        raise TypeError(f"Specification must be a TrainableMLPSpec, not {spec!r}")
    target, clock_mhz = board_and_clock(board, clock_mhz)
    say = progress or (lambda text: None)
    bitstream = BITSTREAM_NAME + target.bitstream_suffix
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as staging:
        say("elaborating the trainer")
        top = trainer_top(spec, target, clock_mhz, baud=baud)
        flow = run_flow(top, target, staging, bitstream, say=say, seed=seed,
                        not_fit=lambda counts, what: _not_fit_message(spec, target, counts,
                                                                      what))
        report = _report(spec, target, top, flow, clock_mhz, baud,
                         (staging / bitstream).stat().st_size)
        (staging / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True)
                                             + "\n")
        (staging / "report.md").write_text(trainer_report_markdown(report))
    return BoardBuildResult(out_dir, out_dir / bitstream, report)


def _not_fit_message(spec, target, counts, what):
    return (f"Trainer {'-'.join(map(str, spec.layer_sizes))} (reuse factor "
            f"{spec.reuse_factor}) does not fit {target.name} ({target.device}) after {what}: "
            f"{capacity_text(target, counts)}; try a larger reuse factor")


def _report(spec, target, top, flow, clock_mhz, baud, bitstream_bytes):
    figures = board_figures(target, top, flow, clock_mhz)
    cycles = batch_cycles_per_sample(spec)
    link = top.link
    line_bytes = link.input_bytes + spec.n_out * link.output_bytes
    return {
        "board": target.name, "device": target.device, "package": target.package,
        "design": "trainer", "layers": list(spec.layer_sizes), "loss": spec.loss,
        "n_params": spec.n_params, "batch_size": spec.batch_size,
        "reuse_factor": spec.reuse_factor,
        "lanes": [spec.lanes(l) for l in range(1, spec.n_layers + 1)],
        "bitstream": BITSTREAM_NAME + target.bitstream_suffix,
        "bitstream_bytes": bitstream_bytes, **figures,
        "cycles_per_sample": round(cycles, 1),
        "samples_per_second": round(top.f_clock_mhz * 1e6 / cycles),
        # 10 bits per byte (8N1): a sample in and its outputs back
        "line_samples_per_second": round(baud / (10 * line_bytes), 1),
        "host_link": {"kind": "stream", "baud": baud, "divisor": top.divisor,
                      "sample_bytes": link.input_bytes, "output_bytes": link.output_bytes,
                      "rx_fifo_bytes": link.rx_depth},
    }


def trainer_report_markdown(report):
    """``report.md`` of a trainer board build from its ``report.json`` content."""
    link = report["host_link"]
    lines = [f"# Trainer {'-'.join(map(str, report['layers']))} on {report['board']} "
             f"({report['device']})", "",
             f"Bitstream `{report['bitstream']}` ({report['bitstream_bytes']:,} bytes); "
             f"{report['n_params']:,} parameters, batches of {report['batch_size']}, reuse "
             f"factor {report['reuse_factor']} (lanes "
             f"{', '.join(map(str, report['lanes']))}).", "",
             *figures_markdown(report),
             f"- {report['cycles_per_sample']} cycles per sample (update included) = "
             f"{report['samples_per_second']:,} samples/s at the clock; the UART carries "
             f"{report['line_samples_per_second']} samples/s",
             f"- host link (stream): {link['baud']} baud, {link['sample_bytes']}-byte samples, "
             f"{link['output_bytes']}-byte outputs, {link['rx_fifo_bytes']}-byte receive FIFO",
             tool_seconds_line(report)]
    return "\n".join(lines) + "\n"
