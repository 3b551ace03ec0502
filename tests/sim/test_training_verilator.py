"""On-chip training on Verilator: the four update units against their golden models, and whole
training runs (linear regression with SGD and Adam, breast cancer with Adam) against the NumPy
fixed-point reference, epoch by epoch."""

import json

import numpy as np
import pytest
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.gen.train import train
from nnfab.hdl.optim import UpdateUnit
from nnfab.sim.runner import run_cocotb

from ..hdl.test_optim import KINDS, golden_stream, random_spec, random_stream


class _Units(wiring.Component):
    """Four update units side by side: members ``i0..i3``, ``o0..o3``."""

    def __init__(self, units):
        self._units = units
        members = {}
        for n, unit in enumerate(units):
            members[f"i{n}"] = In(stream.Signature(unit.i.payload.shape()))
            members[f"o{n}"] = Out(stream.Signature(unit.o.payload.shape()))
        super().__init__(members)

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        for n, unit in enumerate(self._units):
            m.submodules[f"unit{n}"] = unit
            wiring.connect(m, wiring.flipped(getattr(self, f"i{n}")), unit.i)
            wiring.connect(m, unit.o, wiring.flipped(getattr(self, f"o{n}")))
        return m


def _pack(spec, depth, index, weight, grad, step):
    layout = UpdateUnit(spec, depth=depth).i.payload.shape()
    words = []
    for values in zip(index, weight, grad, step):
        word = 0
        for (name, field), value in zip(layout, values):
            word |= (int(value) & ((1 << field.width) - 1)) << field.offset
        words.append(hex(word))
    return words


@pytest.mark.slow
def test_update_units_on_verilator(tmp_path):
    seed = 2026
    rng = np.random.default_rng(seed)
    units, entries = [], []
    for kind in KINDS:
        spec = random_spec(kind, rng, stochastic=kind in ("sgd", "adam"))
        depth = 8
        index, weight, grad, step = random_stream(spec, rng, depth, 1200)
        expected = golden_stream(spec, depth, index, weight, grad, step)
        half = len(index) // 2
        units.append(UpdateUnit(spec, depth=depth))
        entries.append({
            "kind": kind, "width": spec.weight_format.width,
            "words_in": _pack(spec, depth, index[:half], weight[:half], grad[:half], step[:half]),
            "expected": expected[:half].tolist(),
            "words_in2": _pack(spec, depth, index[half:], weight[half:], grad[half:], step[half:]),
            "expected2": expected[half:].tolist(),
        })
    data = tmp_path / "units.json"
    data.write_text(json.dumps({"seed": seed, "units": entries}))
    results = run_cocotb(_Units(units), toplevel="update_units",
                         test_module="nnfab.sim.training_tb",
                         extra_env={"NNFAB_TB_KIND": "units", "NNFAB_TB_DATA": str(data)})
    assert (results.total, results.passed, results.skipped) == (1, 1, 0), f"seed {seed}"


@pytest.mark.slow
@pytest.mark.parametrize("optimizer,epochs", [("sgd", 8), ("adam", 16)])
def test_linear_regression_in_rtl(optimizer, epochs, tmp_path):
    seed = 0
    result = train("regression", optimizer=optimizer, epochs=epochs, seed=seed)
    assert len(result.weights_rtl) == epochs
    for e, (rtl, ref) in enumerate(zip(result.weights_rtl, result.weights_fixed)):
        assert rtl.tolist() == ref.tolist(), f"seed {seed}, epoch {e + 1}"
    w, b = result.weights_rtl[-1][0] * 2.0 ** -12
    # The data are noisy (sigma 0.1, 100 samples): the least-squares fit itself is ~0.02 off.
    assert abs(w - 3) < 0.05 and abs(b - 2) < 0.05, f"seed {seed}: w {w}, b {b}"


@pytest.mark.slow
def test_breast_cancer_adam_in_rtl(tmp_path):
    seed = 0
    png = tmp_path / "losses.png"
    result = train("breast-cancer", optimizer="adam", epochs=10, seed=seed, png=png)
    for e, (rtl, ref) in enumerate(zip(result.weights_rtl, result.weights_fixed)):
        assert rtl.tolist() == ref.tolist(), f"seed {seed}, epoch {e + 1}"
    assert result.losses_rtl == result.losses_fixed  # the same codes give the same floats
    # Fixed point against float: approximate by nature (quantized inputs, tables, rounding).
    assert np.allclose(result.losses_rtl, result.losses_float, rtol=0.1), f"seed {seed}"
    assert result.losses_rtl[-1] < 0.5 * result.losses_rtl[0]
    assert abs(result.accuracy_rtl - result.accuracy_float) <= 0.02, f"seed {seed}"
    assert result.accuracy_rtl > 0.9
    assert png.is_file() and png.stat().st_size > 10_000


@pytest.mark.slow
def test_mlp_train_command_in_rtl(tmp_path):
    """``nnfab train --layers``: backpropagation on Verilator equals the fixed-point reference
    after every epoch, and the exported model gives the accuracy training reported."""
    from click.testing import CliRunner

    from nnfab.casts import quantize
    from nnfab.cli.train import train_command
    from nnfab.gen.native import load_native
    from nnfab.sim.golden.network import run_network

    folder = tmp_path / "model"
    result = CliRunner().invoke(train_command, [
        "--dataset", "breast-cancer", "--layers", "30,4,2", "--epochs", "2",
        "--export", str(folder)])
    assert result.exit_code == 0, result.output
    assert "RTL weights equal the fixed-point reference after every epoch: True" in result.output
    line = next(s for s in result.output.splitlines() if s.startswith("test accuracy: RTL "))
    accuracy_rtl = float(line.split()[3].rstrip(","))
    assert accuracy_rtl > 0.9, result.output
    model = load_native(folder / "trained-mlp.json")
    x, y = np.load(folder / "test_inputs.npy"), np.load(folder / "test_labels.npy")
    labels = run_network(model, quantize(x, model.input_format)).ravel()
    assert f"{np.mean(labels == y):.4f}" == f"{accuracy_rtl:.4f}"
