"""Activations on Verilator: one design holding one unit per activation, one build, one cocotb
test per unit (``activations_tb.py``), stimulus and expected words from the golden model."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.hdl.activations import Activation, Argmax
from nnfab.hdl.softmax import Softmax
from nnfab.packing import pack
from nnfab.sim.golden import activations as golden
from nnfab.sim.runner import run_cocotb
from nnfab.tables import exp_table, reciprocal_table, sigmoid_table

TB_DIR = Path(__file__).parent
SEED = 20250
N_VECTORS = 600

F8 = FixedFormat(8, 3)
UNITS = {
    "relu": dict(kind="relu", n=4, fin=F8, fout=FixedFormat(6, 2, rounding="RND",
                                                            overflow="SAT")),
    "leaky_relu": dict(kind="leaky_relu", n=4, fin=F8,
                       fout=FixedFormat(8, 2, rounding="RND_CONV", overflow="WRAP"),
                       alpha_format=FixedFormat(8, 0), alpha_code=38),
    "hard_sigmoid": dict(kind="hard_sigmoid", n=4, fin=F8,
                         fout=FixedFormat(8, 0, signed=False, rounding="RND", overflow="SAT")),
    "sigmoid": dict(kind="sigmoid", n=4, fin=F8,
                    fout=FixedFormat(8, 1, rounding="RND", overflow="SAT_ZERO"),
                    table=sigmoid_table(table_size=256,
                                        table_format=FixedFormat(10, 2, rounding="RND"))),
    "tanh": dict(kind="tanh", n=2, fin=FixedFormat(16, 4),
                 fout=FixedFormat(12, 1, rounding="RND_CONV", overflow="SAT_SYM")),
}
ARGMAX = dict(n=6, fin=F8)
SOFTMAX = dict(n=4, fin=F8, fout=FixedFormat(8, 0, signed=False, rounding="RND", overflow="SAT"),
               exp_table=exp_table(table_size=256,
                                   table_format=FixedFormat(12, 1, signed=False,
                                                            rounding="RND")),
               inv_table=reciprocal_table(table_size=256, input_range=4,
                                          table_format=FixedFormat(12, 1, signed=False,
                                                                   rounding="RND",
                                                                   overflow="SAT")))


class ActivationBank(wiring.Component):
    """One unit per activation side by side, each with its own ``<unit>_i``/``<unit>_o``."""

    def __init__(self):
        self._units = {name: Activation(**params) for name, params in UNITS.items()}
        self._units["argmax"] = Argmax(**ARGMAX)
        self._units["softmax"] = Softmax(**SOFTMAX)
        members = {}
        for name, unit in self._units.items():
            members[f"{name}_i"] = In(unit.i.signature.flip())
            members[f"{name}_o"] = Out(unit.o.signature)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name, unit in self._units.items():
            m.submodules[name] = unit
            wiring.connect(m, wiring.flipped(getattr(self, f"{name}_i")), unit.i)
            wiring.connect(m, unit.o, wiring.flipped(getattr(self, f"{name}_o")))
        return m


def _vectors(rng):
    """Packed input and expected output words per unit, from the golden model."""
    def random_inputs(fin, n):
        x = np.array([[rng.randint(fin.min_code, fin.max_code) for _ in range(n)]
                      for _ in range(N_VECTORS)], dtype=np.int64)
        x[:3] = [[fin.min_code] * n, [fin.max_code] * n, [0] * n]
        return x

    vectors = {}
    for name, params in UNITS.items():
        params = dict(params)
        kind, n, fin, fout = (params.pop(key) for key in ("kind", "n", "fin", "fout"))
        x = random_inputs(fin, n)
        y = golden.activation(kind, x, fin=fin, fout=fout, **params)
        vectors[name] = (x, [fin] * n, y, [fout] * n)
    x = random_inputs(ARGMAX["fin"], ARGMAX["n"])
    y = golden.argmax(x, fin=ARGMAX["fin"])[:, None]
    vectors["argmax"] = (x, [ARGMAX["fin"]] * ARGMAX["n"], y, [FixedFormat(3, 3, signed=False)])
    x = random_inputs(SOFTMAX["fin"], SOFTMAX["n"])
    y = golden.softmax(x, **{k: v for k, v in SOFTMAX.items() if k != "n"})
    vectors["softmax"] = (x, [SOFTMAX["fin"]] * SOFTMAX["n"], y,
                          [SOFTMAX["fout"]] * SOFTMAX["n"])
    return {name: {"inputs": [pack(row, fins) for row in x],
                   "expected": [pack(row, fouts) for row in y]}
            for name, (x, fins, y, fouts) in vectors.items()}


@pytest.mark.slow
def test_activations_on_verilator(tmp_path):
    vectors_file = tmp_path / "vectors.json"
    vectors_file.write_text(json.dumps(_vectors(random.Random(SEED))))
    results = run_cocotb(ActivationBank(), toplevel="activations", test_module="activations_tb",
                         python_search=[TB_DIR],
                         extra_env={"NNFAB_ACTIVATIONS_VECTORS": str(vectors_file)},
                         seed=SEED)
    print(f"\nbuild {results.build_seconds:.1f} s (built: {results.built}), "
          f"simulation {results.run_seconds:.1f} s")
    assert results.total == results.passed == 7, \
        f"seed {SEED}: {results.failed} failed, see {results.results_file}"
