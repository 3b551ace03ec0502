"""Keras SimpleRNN, LSTM and GRU models written here with h5py and JSON (no TensorFlow): the
importer's float model against an independent NumPy evaluation of Keras' cell equations
(kernel (n_in, G * units), gate order LSTM i, f, c, o and GRU z, r, h, GRU ``reset_after``
biases (2, 3 * units)); then PTQ, and the quantized network's engine against its golden model,
bit for bit."""

import random

import numpy as np
import pytest

from nnfab.casts import to_float
from nnfab.errors import UnsupportedLayerError
from nnfab.gen.assemble import Network
from nnfab.gen.importers import load
from nnfab.gen.load import load_model
from nnfab.gen.native import load_native, save_native
from nnfab.sim.golden.network import run_network

from ...streams import codes, run_stream
from .test_keras_conv import _keras_model

N_IN, UNITS, STEPS = 3, 4, 5
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def keras_reference(cls, x, kernel, recurrent_kernel, bias, return_sequences,
                    reset_after=True):
    """Keras' recurrent layers step by step (tanh activation, sigmoid recurrent activation)."""
    n = recurrent_kernel.shape[0]
    h, c, states = np.zeros((x.shape[0], n)), np.zeros((x.shape[0], n)), []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if cls == "SimpleRNN":
            h = np.tanh(xt @ kernel + h @ recurrent_kernel + bias)
        elif cls == "LSTM":
            z = xt @ kernel + h @ recurrent_kernel + bias
            i, f = sigmoid(z[:, :n]), sigmoid(z[:, n:2 * n])
            c = f * c + i * np.tanh(z[:, 2 * n:3 * n])
            h = sigmoid(z[:, 3 * n:]) * np.tanh(c)
        elif not reset_after:  # GRU, Keras' GRUCell with reset_after=False
            mx = xt @ kernel + bias
            z = sigmoid(mx[:, :n] + h @ recurrent_kernel[:, :n])
            r = sigmoid(mx[:, n:2 * n] + h @ recurrent_kernel[:, n:2 * n])
            hh = np.tanh(mx[:, 2 * n:] + (r * h) @ recurrent_kernel[:, 2 * n:])
            h = z * h + (1 - z) * hh
        else:  # GRU, reset_after=True
            mx, mh = xt @ kernel + bias[0], h @ recurrent_kernel + bias[1]
            z, r = sigmoid(mx[:, :n] + mh[:, :n]), sigmoid(mx[:, n:2 * n] + mh[:, n:2 * n])
            hh = np.tanh(mx[:, 2 * n:] + r * mh[:, 2 * n:])
            h = z * h + (1 - z) * hh
        states.append(h)
    return np.stack(states, axis=1) if return_sequences else h


def recurrent_model(tmp_path, cls, return_sequences, rng, extra=None, reset_after=True, *,
                    n_in=N_IN, units=UNITS, steps=STEPS):
    """A Keras ``cls`` layer alone (json+h5 in ``tmp_path``) with seeded normal weights;
    returns the json path and the weights. ``bench/recurrent.py`` sizes it."""
    g = GATES[cls]
    weights = {"kernel": rng.normal(0, 0.5, (n_in, g * units)),
               "recurrent_kernel": rng.normal(0, 0.5, (units, g * units)),
               "bias": rng.normal(0, 0.3, (2, g * units) if cls == "GRU" and reset_after
                                  else g * units)}
    cfg = {"units": units, "return_sequences": return_sequences, "activation": "tanh",
           **({"recurrent_activation": "sigmoid"} if cls != "SimpleRNN" else {}),
           **({"reset_after": reset_after} if cls == "GRU" else {}), **(extra or {})}
    path = _keras_model(tmp_path, [(cls, "rnn", cfg)], {"rnn": weights}, (steps, n_in),
                        name=cls.lower())
    return path, weights


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_float_recurrent_matches_keras_equations(tmp_path, cls, return_sequences):
    rng = np.random.default_rng(len(cls) + return_sequences)
    path, w = recurrent_model(tmp_path, cls, return_sequences, rng)
    model = load(path, kind="keras-json")
    x = rng.normal(size=(16, STEPS, N_IN))
    want = keras_reference(cls, x, w["kernel"], w["recurrent_kernel"], w["bias"],
                           return_sequences)
    assert model.forward(x).shape == want.shape
    assert np.max(np.abs(model.forward(x) - want)) < 1e-12


@pytest.mark.parametrize("return_sequences", [True, False])
def test_float_gru_reset_before_matches_keras_equations(tmp_path, return_sequences):
    """GRU with ``reset_after=False``: one bias row, ``r`` applied to ``h`` before ``U_h``."""
    rng = np.random.default_rng(60 + return_sequences)
    path, w = recurrent_model(tmp_path, "GRU", return_sequences, rng, reset_after=False)
    model = load(path, kind="keras-json")
    x = rng.normal(size=(16, STEPS, N_IN))
    want = keras_reference("GRU", x, w["kernel"], w["recurrent_kernel"], w["bias"],
                           return_sequences, reset_after=False)
    assert model.forward(x).shape == want.shape
    assert np.max(np.abs(model.forward(x) - want)) < 1e-12
    after = keras_reference("GRU", x, w["kernel"], w["recurrent_kernel"],
                            np.stack([w["bias"], 0 * w["bias"]]), return_sequences)
    assert np.max(np.abs(after - want)) > 1e-3  # the two variants differ on these weights
    save_native(model, tmp_path / "float.json")  # the native float form keeps the variant
    assert np.array_equal(load_native(tmp_path / "float.json").forward(x), model.forward(x))


def test_quantized_gru_reset_before_engine_equals_golden(tmp_path):
    """PTQ of a GRU with ``reset_after=False`` (its reset products calibrated), then as
    :func:`check_quantized`; the layer keeps the variant and states its two passes."""
    rng = np.random.default_rng(47)
    path, _ = recurrent_model(tmp_path, "GRU", True, rng, reset_after=False)
    spec = check_quantized(path, rng, 47).layers[0].spec
    assert (spec.reset_after, spec.recurrent_biases) == (False, None)
    assert spec.reset_product_format is not None


@pytest.mark.parametrize("cls,return_sequences", [("LSTM", False), ("GRU", True),
                                                  ("SimpleRNN", True)])
def test_quantized_recurrent_engine_equals_golden(tmp_path, cls, return_sequences):
    """PTQ of the Keras model; the whole network (Amaranth simulator, random idle and
    back-pressure) gives exactly the golden codes, and the golden model stays near float."""
    seed = 40 + len(cls)
    rng = np.random.default_rng(seed)
    path, _ = recurrent_model(tmp_path, cls, return_sequences, rng)
    check_quantized(path, rng, seed)


def check_quantized(path, rng, seed):
    """PTQ of the float model at ``path``; assert its network equals its golden model under
    idle and back-pressure, and the golden model stays near the float one."""
    loaded = load_model(path, calibration=rng.normal(size=(200, STEPS, N_IN)))
    model = loaded.model
    assert [layer.kind for layer in model.layers] == ["recurrent"]
    x = rng.normal(size=(6, STEPS, N_IN))
    x_codes = np.clip(np.round(x * 2.0**model.input_format.fraction_width),
                      model.input_format.min_code, model.input_format.max_code).astype(np.int64)
    x_codes[0] = model.input_format.max_code
    golden = run_network(model, x_codes)
    error = np.abs(to_float(golden[1:], model.output_format) -
                   loaded.float_model.forward(to_float(x_codes[1:], model.input_format)))
    # 8-bit PTQ: the SimpleRNN's random recurrent kernel amplifies errors step by step (its
    # largest reaches 0.24 at step 5 over 200 sequences; LSTM and GRU stay below 0.05).
    assert error.mean() < 0.03 and error.max() < 0.3, f"seed {seed}: PTQ error {error.max()}"
    steps = [list(map(int, step)) for seq in x_codes for step in seq]
    expected = [list(map(int, row)) for row in golden.reshape(-1, model.output_shape[-1])]
    run = run_stream(Network(model), steps, rng=random.Random(seed), p_idle=0.3, p_stall=0.3,
                     n_outputs=len(expected))
    assert [codes(o) for o in run.outputs] == expected, f"seed {seed}"
    return model


def test_go_backwards_is_refused(tmp_path):
    path, _ = recurrent_model(tmp_path, "LSTM", False, np.random.default_rng(1),
                              extra={"go_backwards": True})
    with pytest.raises(UnsupportedLayerError,
                       match="^Layer 'rnn': go_backwards=True is not supported; only False$"):
        load(path, kind="keras-json")
