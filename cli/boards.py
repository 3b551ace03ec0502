"""Command line of the board flow: ``nnfab build --board``, ``nnfab boards``, ``nnfab run``."""

import json
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from nnfab.errors import NnfabError

__all__ = ["board_options", "board_build_from_cli", "boards_command", "run_command"]

console = Console(highlight=False)


def board_options(function):
    """``--board NAME``, ``--clock-mhz F`` and ``--pnr-timeout MINUTES``, for ``nnfab
    build``."""
    from nnfab.boards.board import DEFAULT_PNR_TIMEOUT_MINUTES  # no board packages needed

    function = click.option("--pnr-timeout", "pnr_timeout", type=click.FloatRange(min=0),
                            default=None,
                            help=f"With --board: stop placement and routing (nextpnr) after "
                                 f"this many minutes of wall time and fail with the "
                                 f"design's utilisation (default "
                                 f"{DEFAULT_PNR_TIMEOUT_MINUTES}; 0: no limit).")(function)
    function = click.option("--clock-mhz", type=float, default=None,
                            help="Clock of the network on the board (default: the board's; a "
                                 "PLL makes it); without --board, the clock the fused "
                                 "shift-add layers are pipelined for (default 100 MHz, "
                                 "ECP5 delay model).")(function)
    function = click.option("--board", default=None,
                            help="Build a bitstream for this board (see `nnfab boards`).")(
        function)
    return function


def board_build_from_cli(loaded_model, out_dir, board, clock_mhz, console, progress=None,
                         max_multipliers=None, pnr_timeout=None, reuse_factor=None):
    """Run :func:`~nnfab.boards.build.build_for_board` for ``nnfab build --board`` and print
    its report. ``max_multipliers`` (``--max-multipliers``) also bounds the multipliers of
    each layer with its weights in ROM (the board's budget if None); ``reuse_factor``
    (``--reuse-factor``: an int, or a dict by layer name) sets the ROM layers' reuse factors
    instead (``build_for_board``'s ``rom_reuse``); ``pnr_timeout`` (``--pnr-timeout``) limits
    placement and routing to that many minutes (None: the default limit, 0: none).

    Parameters
    ----------
    loaded_model : nnfab.gen.load.LoadedModel or nnfab.ir.Model
    out_dir : path
    board : str
    clock_mhz : float or None
    console : rich.console.Console
    progress : callable, optional
        Called with a short description before each step.

    Raises
    ------
    click.ClickException
        With the message of any :class:`~nnfab.errors.NnfabError`.
    """
    model = getattr(loaded_model, "model", loaded_model)
    try:
        from nnfab.boards.build import build_for_board
        from nnfab.boards.board import DEFAULT_PNR_TIMEOUT_MINUTES
        from nnfab.boards.targets import target as find_target

        find_target(board)  # an unknown board is refused before anything is written
        result = build_for_board(model, out_dir, board, clock_mhz, progress=progress,
                                 max_multipliers=max_multipliers, rom_reuse=reuse_factor,
                                 pnr_timeout_minutes=DEFAULT_PNR_TIMEOUT_MINUTES
                                 if pnr_timeout is None else pnr_timeout,
                                 layouts=(getattr(loaded_model, "input_layout", None),
                                          getattr(loaded_model, "output_layout", None)),
                                 input_quantization=getattr(loaded_model,
                                                            "input_quantization", None))
    except NnfabError as exc:
        raise click.ClickException(str(exc)) from None
    console.print((Path(out_dir) / "report.md").read_text())
    console.print(f"Bitstream: {result.bitstream}")
    return result


@click.command("boards")
def boards_command():
    """List the boards `nnfab build --board` targets."""
    try:
        from nnfab.boards.targets import TARGETS
    except NnfabError as exc:
        raise click.ClickException(str(exc)) from None

    table = Table(title="Boards")
    for column in ("board", "device", "package", "LUT4", "FF", "DSP", "block RAM",
                   "clock MHz (osc → default)"):
        table.add_column(column)
    for t in TARGETS.values():
        table.add_row(t.name, t.device, t.package, f"{t.luts:,}", f"{t.flip_flops:,}",
                      str(t.dsps), f"{t.block_rams} ({t.block_ram_kbits} Kb)",
                      f"{t.oscillator_mhz:g} → {t.default_clock_mhz:g}")
    # A fixed width when not on a terminal, so that pipes and tests see whole names.
    (console if console.is_terminal else Console(highlight=False, width=140)).print(table)


@click.command("run")
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyUSB1.")
@click.option("--inputs", "inputs_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A .npy of input codes, shape (batch, *input_shape), in the build's "
                   "layout or the model file's (e.g. NCHW).")
@click.option("--baud", type=int, default=None, help="Baud rate (default: the build's).")
@click.option("--output", "output_path", type=click.Path(dir_okay=False), default=None,
              help="Write the outputs (codes) to this .npy, image outputs in the model "
                   "file's layout (e.g. NCHW).")
def run_command(build_dir, port, inputs_path, baud, output_path):
    """Run inferences on a board built with `nnfab build --board`."""
    from nnfab.boards.host import BoardClient
    from nnfab.gen.build_folder import read_manifest
    from nnfab.gen.input_quantization import InputQuantization
    from nnfab.gen.tensor_layout import manifest_layout

    from .commands import load_inputs

    try:
        client = BoardClient.open(build_dir, port, baud=baud)
        try:
            manifest = read_manifest(build_dir)
            section = manifest["input"]
            where = f"Build folder {build_dir!r}: manifest.json"
            inputs = load_inputs(inputs_path, section["shape"], manifest_layout(section, where),
                                 InputQuantization.from_manifest(section, where))
            outputs = client.run(inputs)
            # Image outputs go back to the model file's layout, as its inputs came.
            layout = manifest_layout(manifest.get("output", {}), where)
            if layout is not None and layout.transposes and outputs.ndim == 4:
                outputs = layout.to_model(outputs)
        finally:
            client.close()
    except (NnfabError, ValueError) as exc:
        raise click.ClickException(f"{inputs_path}: {exc}" if isinstance(exc, ValueError)
                                   else str(exc)) from None
    if output_path:
        np.save(output_path, outputs)
    console.print(json.dumps(outputs.reshape(len(outputs), -1).tolist()))
