"""QKeras QSimpleRNN, QLSTM and QGRU models written here with h5py and JSON (no TensorFlow or
QKeras): the imported model's golden output equals, code for code, an independent float32
NumPy forward pass of QKeras 0.9's cell equations (``qrecurrent.py``) on the quantized
weights, with QKeras' quantizers re-implemented here (``quantizers.py``); and the refusals."""

import json
import random
import re

import h5py
import numpy as np
import pytest

from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.assemble import Network
from nnfab.gen.importers import load
from nnfab.gen.native import load_native, save_native
from nnfab.sim.golden.network import run_network

from ...streams import codes, run_stream
from .test_keras_conv import _keras_model

N_IN, UNITS = 3, 4
GATES = {"QSimpleRNN": 1, "QLSTM": 4, "QGRU": 3}
INPUT_FORMAT = FixedFormat(8, 3)
F32 = np.float32


def quantized_bits(x, bits, integer):
    """QKeras ``quantized_bits(bits, integer, alpha=1)``: float32, ``tf.round`` half to even."""
    m = F32(2.0 ** (bits - 1 - integer))
    return np.clip(np.round(F32(x) * m), -2.0 ** (bits - 1), 2.0 ** (bits - 1) - 1).astype(
        F32) / m


def hard_sigmoid(x):
    """QKeras' ``hard_sigmoid`` (slope 1/2)."""
    return np.clip(F32(0.5) * x + F32(0.5), F32(0), F32(1))


def quantized_tanh(x, bits):
    m = F32(2.0 ** (bits - 1))
    p = F32(2) * hard_sigmoid(x) - F32(1)
    return np.clip(np.round(p * m) / m, F32(-1), F32(1) - F32(1) / m)


def quantized_sigmoid(x, bits):
    m = F32(2.0 ** bits)
    return np.clip(np.round(hard_sigmoid(x) * m) / m, F32(0), F32(1) - F32(1) / m)


def smooth(function, bits, low):
    """QKeras ``quantized_tanh(bits, use_real_tanh=1)`` / ``quantized_sigmoid(bits,
    use_real_sigmoid=1)``: float32 function, rounded half to even, clipped."""
    m = F32(2.0 ** bits)
    return lambda v: np.clip(np.round(function(F32(v)) * m) / m, F32(low), F32(1) - F32(1) / m)


ACTIVATIONS = {"quantized_tanh(4)": lambda v: quantized_tanh(v, 4),
               "quantized_tanh(6)": lambda v: quantized_tanh(v, 6),
               "quantized_sigmoid(4)": lambda v: quantized_sigmoid(v, 4),
               "hard_sigmoid": hard_sigmoid,
               "quantized_tanh(4,use_real_tanh=1)": smooth(np.tanh, 3, -1),
               "quantized_sigmoid(4,0,1)": smooth(lambda v: F32(1) / (F32(1) + np.exp(-v)), 4,
                                                  0)}


def qkeras_reference(cls, x, w, cfg):
    """QKeras' ``call`` of QSimpleRNNCell, QLSTMCell (implementation 2, fused) and QGRUCell
    (``reset_after`` true or false) in float32, the state quantizer applied to ``h`` and ``c``
    as a step reads them (not to the output)."""
    q = lambda v: quantized_bits(v, 4, 0)  # noqa: E731  (every weight quantizer of these tests)
    state_quantizer = cfg.get("state_quantizer")
    qs = lambda v: v  # noqa: E731
    if state_quantizer:
        bits, integer = map(int, re.match(r"quantized_bits\((\d+),(\d+)", state_quantizer).groups())
        qs = lambda v: quantized_bits(v, bits, integer)  # noqa: E731
    kernel, recurrent, bias = q(w["kernel"]), q(w["recurrent_kernel"]), q(w["bias"])
    act = ACTIVATIONS[cfg["activation"]]
    rec = ACTIVATIONS.get(cfg.get("recurrent_activation"))
    n = UNITS
    x = F32(x)
    h = np.zeros((x.shape[0], n), F32)
    c = np.zeros_like(h)
    states = []
    for t in range(x.shape[1]):
        h, c = qs(h), qs(c)
        if cls == "QSimpleRNN":
            h = act(x[:, t] @ kernel + bias + h @ recurrent)
        elif cls == "QLSTM":
            z = x[:, t] @ kernel + h @ recurrent + bias
            i, f, o = rec(z[:, :n]), rec(z[:, n:2 * n]), rec(z[:, 3 * n:])
            c = f * c + i * act(z[:, 2 * n:3 * n])
            h = o * act(c)
        elif not cfg["reset_after"]:  # one bias row; r applied to h before U_h
            mx, mh = x[:, t] @ kernel + bias, h @ recurrent
            zg, r = rec(mx[:, :n] + mh[:, :n]), rec(mx[:, n:2 * n] + mh[:, n:2 * n])
            hh = act(mx[:, 2 * n:] + (r * h) @ recurrent[:, 2 * n:])
            h = zg * h + (F32(1) - zg) * hh
        else:
            mx, mh = x[:, t] @ kernel + bias[0], h @ recurrent + bias[1]
            zg, r = rec(mx[:, :n] + mh[:, :n]), rec(mx[:, n:2 * n] + mh[:, n:2 * n])
            hh = act(mx[:, 2 * n:] + r * mh[:, 2 * n:])
            h = zg * h + (F32(1) - zg) * hh
        states.append(h)
    return np.stack(states, axis=1) if cfg["return_sequences"] else h


def qkeras_model(tmp_path, cls, rng, n_steps, **extra):
    g = GATES[cls]
    two_biases = cls == "QGRU" and extra.get("reset_after", True)
    weights = {"kernel": rng.normal(0, 0.5, (N_IN, g * UNITS)),
               "recurrent_kernel": rng.normal(0, 0.5, (UNITS, g * UNITS)),
               "bias": rng.normal(0, 0.3, (2, g * UNITS) if two_biases else g * UNITS)}
    quantizer = "quantized_bits(4,0,alpha=1)"
    cfg = {"units": UNITS, "return_sequences": True, "kernel_quantizer": quantizer,
           "recurrent_quantizer": quantizer, "bias_quantizer": quantizer,
           "activation": "quantized_tanh(4)",
           **({"recurrent_activation": "quantized_sigmoid(4)"} if cls != "QSimpleRNN" else {}),
           **({"reset_after": True} if cls == "QGRU" else {}), **extra}
    path = _keras_model(tmp_path, [(cls, "rnn", cfg)], {"rnn": weights}, (n_steps, N_IN),
                        name=cls.lower())
    return path, weights, cfg


def check_against_reference(tmp_path, cls, seed, n_steps, **extra):
    rng = np.random.default_rng(seed)
    path, weights, cfg = qkeras_model(tmp_path, cls, rng, n_steps, **extra)
    model = load(path, kind="keras-json", input_format=INPUT_FORMAT)
    fmt = INPUT_FORMAT
    x = rng.integers(fmt.min_code, fmt.max_code + 1, size=(300, n_steps, N_IN))
    x[:4] = np.array([fmt.max_code, fmt.min_code, 0, fmt.min_code + 1])[:, None, None]  # edges
    got = run_network(model, x)
    want = qkeras_reference(cls, x * F32(fmt.lsb), weights, cfg)
    out = model.output_format
    want_codes = want.astype(np.float64) * 2.0 ** out.fraction_width
    assert np.array_equal(want_codes, np.round(want_codes)), "reference off the output grid"
    assert np.array_equal(np.asarray(got, dtype=np.int64), want_codes.astype(np.int64)), \
        f"seed {seed}"
    return model


@pytest.mark.parametrize("cls,n_steps,extra", [
    ("QSimpleRNN", 6, {"activation": "quantized_tanh(6)",
                       "state_quantizer": "quantized_bits(6,0,alpha=1)"}),
    ("QSimpleRNN", 4, {"activation": "quantized_tanh(4,use_real_tanh=1)"}),  # a table
    ("QLSTM", 3, {}),
    ("QLSTM", 8, {"state_quantizer": "quantized_bits(8,1,alpha=1)"}),
    ("QGRU", 8, {"state_quantizer": "quantized_bits(6,0,alpha=1)"}),
    ("QLSTM", 1, {"return_sequences": False, "recurrent_activation": "hard_sigmoid"}),
    ("QGRU", 3, {"return_sequences": False}),
    ("QGRU", 5, {"reset_after": False, "state_quantizer": "quantized_bits(6,0,alpha=1)"}),
    ("QGRU", 3, {"reset_after": False, "return_sequences": False}),
])
def test_golden_equals_qkeras_equations(tmp_path, cls, n_steps, extra):
    model = check_against_reference(tmp_path, cls, 11 + n_steps, n_steps, **extra)
    assert [layer.kind for layer in model.layers] == ["recurrent"]
    # The native form keeps every format, table and QKeras' hard sigmoid slope.
    save_native(model, tmp_path / "native.json")
    again = load_native(tmp_path / "native.json")
    x = np.random.default_rng(5).integers(-128, 128, size=(50, n_steps, N_IN))
    assert np.array_equal(run_network(again, x), run_network(model, x))


def test_whole_model_h5_equals_json(tmp_path):
    """The same QGRU as a whole-model ``.h5`` (config in ``model_config``, weights under
    ``model_weights``, QKeras' cell sub-group names) gives the json model's codes."""
    rng = np.random.default_rng(8)
    path, weights, _ = qkeras_model(tmp_path, "QGRU", rng, 4,
                                    state_quantizer="quantized_bits(6,0,alpha=1)")
    with h5py.File(tmp_path / "whole.h5", "w") as file:
        file.attrs["model_config"] = path.read_text()
        group = file.create_group("model_weights").create_group("rnn")
        names = [f"rnn/qgru_cell/{key}:0" for key in weights]
        for name, value in zip(names, weights.values()):
            group.create_dataset(name, data=value)
        group.attrs["weight_names"] = [n.encode() for n in names]
    x = rng.integers(-128, 128, size=(40, 4, N_IN))
    from_json = load(path, kind="keras-json", input_format=INPUT_FORMAT)
    whole = load(tmp_path / "whole.h5", kind="hdf5", input_format=INPUT_FORMAT)
    assert np.array_equal(run_network(whole, x), run_network(from_json, x))


def test_qgru_default_is_reset_before(tmp_path):
    """A QGRU config without ``reset_after`` takes QGRU's default, False."""
    path, _, _ = qkeras_model(tmp_path, "QGRU", np.random.default_rng(3), 3, reset_after=False)
    doc = json.loads(path.read_text())
    del doc["config"]["layers"][1]["config"]["reset_after"]
    path.write_text(json.dumps(doc))
    spec = load(path, kind="keras-json", input_format=INPUT_FORMAT).layers[0].spec
    assert (spec.reset_after, spec.recurrent_biases) == (False, None)


@pytest.mark.parametrize("cls,n_steps,extra", [
    ("QSimpleRNN", 4, {"activation": "quantized_tanh(4,use_real_tanh=1)"}),
    ("QGRU", 6, {"return_sequences": False, "state_quantizer": "quantized_bits(6,0,alpha=1)"}),
    ("QGRU", 4, {"reset_after": False, "state_quantizer": "quantized_bits(6,0,alpha=1)"}),
])
def test_engine_equals_golden(tmp_path, cls, n_steps, extra):
    """The imported layer's engine (Amaranth simulator, random idle and back-pressure): a
    smooth activation's 2,048-entry table; QKeras' hard sigmoid slope in GRU gates and the
    state quantizer's cast of the state fed back."""
    seed = 30 + n_steps
    rng = np.random.default_rng(seed)
    path, _, _ = qkeras_model(tmp_path, cls, rng, n_steps, **extra)
    model = load(path, kind="keras-json", input_format=INPUT_FORMAT)
    fmt = INPUT_FORMAT
    x = rng.integers(fmt.min_code, fmt.max_code + 1, size=(5, n_steps, N_IN))
    x[0] = fmt.max_code
    golden = run_network(model, x)
    steps = [list(map(int, step)) for seq in x for step in seq]
    expected = [list(map(int, row)) for row in golden.reshape(-1, model.output_shape[-1])]
    run = run_stream(Network(model), steps, rng=random.Random(seed), p_idle=0.3, p_stall=0.3,
                     n_outputs=len(expected))
    assert [codes(o) for o in run.outputs] == expected, f"seed {seed}"


@pytest.mark.parametrize("cls,n_steps,extra,message", [
    ("QGRU", 3, {"recurrent_quantizer": None},
     "Layer 'rnn': recurrent_quantizer=None is not supported in a QGRU (QKeras 0.9 then "
     "multiplies the state by the input kernel); use a quantizer"),
    ("QLSTM", 3, {"go_backwards": True},
     "Layer 'rnn': go_backwards=True is not supported; only False"),
    ("QLSTM", 3, {"activation": "tanh"},
     "Layer 'rnn': activation 'tanh' is not supported; QKeras computes it in float32, which "
     "no fixed-point format reproduces; use quantized_tanh, quantized_sigmoid, hard_sigmoid, "
     "hard_tanh, quantized_bits, quantized_relu, relu or linear"),
    ("QLSTM", 3, {"recurrent_activation": "quantized_sigmoid(4,0,1)"},
     "Layer 'rnn': recurrent_activation 'quantized_sigmoid(4,0,1)' on pre-activations in "
     "fixed<15,5> needs a table of 8192 entries to be exact; nnfab accepts up to 4096 (fewer "
     "fraction bits in the pre-activations or a hard activation)"),
    ("QLSTM", 3, {"activation": "quantized_tanh(4,use_real_tanh=1)"},
     "Layer 'rnn': activation 'quantized_tanh(4,use_real_tanh=1)' is not supported in a QLSTM "
     "(its table would read the cell state too, a second input format); use a hard "
     "quantized_tanh"),
    ("QLSTM", 3, {"recurrent_activation": "quantized_sigmoid(4,1)"},
     "Layer 'rnn': quantized_sigmoid symmetric 1 is not supported; use 0"),
    ("QLSTM", 3, {"state_quantizer": "quantized_po2(4)"},
     "Layer 'rnn': state_quantizer 'quantized_po2(4)' is not supported; use quantized_bits or "
     "quantized_relu"),
    ("QLSTM", 5, {},
     "Layer 'rnn': the cell state of this QLSTM would need fixed<27,4> to be exact over 5 "
     "steps; QKeras computes them in float32 (24 significant bits), which rounds them; use a "
     "state_quantizer, quantizing activations (quantized_tanh, quantized_sigmoid), narrower "
     "weights or fewer steps"),
])
def test_refusals(tmp_path, cls, n_steps, extra, message):
    path, _, _ = qkeras_model(tmp_path, cls, np.random.default_rng(3), n_steps, **extra)
    with pytest.raises(UnsupportedLayerError, match=f"^{re.escape(message)}$"):
        load(path, kind="keras-json", input_format=INPUT_FORMAT)
