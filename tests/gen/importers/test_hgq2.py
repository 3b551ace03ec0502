"""HGQ2 models (Keras 3 ``.keras``) import without Keras, HGQ2 or TensorFlow; nnfab's golden
model equals HGQ2's own forward pass code for code on every layer; the RTL equals the golden
model; HGQ2's quantizer equals nnfab's formats under every rounding and overflow mode; what is
not supported is refused naming the layer.

The files in ``tests/data/hgq2`` come from ``examples/make_hgq2_model.py`` (HGQ2 0.2.0, Keras
3.15, JAX 0.10)."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.casts import quantize, to_float
from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.importers.hgq2 import OVERFLOWS, ROUNDINGS, Hgq2Quantizer, _datalane
from nnfab.gen.load import detect_kind, load_model
from nnfab.ir.quantize import lanes_format
from nnfab.sim.golden.network import trace_network
from nnfab.sim.golden.quantize import quantize_lanes
from tests.cli_results import assert_verify_passed

DATA = Path(__file__).resolve().parents[2] / "data" / "hgq2"

#: Framework tensor -> IR layer holding it, per model (``inputs`` aside).
TENSORS = {
    "hgq2_mlp": {"fc1_iq": "fc1_iq", "fc1": "fc1_relu", "fc2_iq": "fc2_iq", "fc2": "fc2_relu",
                 "fc3_iq": "fc3_iq", "fc3": "fc3_oq"},
    # conv_iq (one format) is the model's input format; the ReLU is fused into the conv;
    # requant is a Quantizer layer, fc has no input quantizer.
    "hgq2_cnn": {"conv": "conv", "flatten": "flatten", "requant": "requant", "fc": "fc"},
}


def _codes(values, fmt, what):
    """Raw codes of framework values in ``fmt``, checked exact."""
    values = np.asarray(values, dtype=np.float64)
    codes = quantize(values, fmt.replace(rounding="TRN", overflow="WRAP"))
    assert np.array_equal(to_float(codes, fmt), values), f"{what} is not exact in {fmt}"
    return codes


@pytest.mark.parametrize("stem,n", [("hgq2_mlp", 1000), ("hgq2_cnn", 300)])
def test_layers_equal_hgq2_forward_pass(stem, n):
    path = DATA / f"{stem}.keras"
    assert detect_kind(path) == "keras3"
    model = load_model(path).model
    ref = np.load(DATA / f"{stem}_layers.npz")
    assert sorted(ref.files) == sorted(["inputs", *TENSORS[stem]] + (
        ["conv_iq"] if stem == "hgq2_cnn" else []))
    codes = _codes(ref["inputs"], model.input_format, "inputs")
    assert codes.shape[0] == n
    trace = trace_network(model, codes)
    compared = {}
    for tensor, layer in TENSORS[stem].items():
        got = np.asarray(trace[layer])
        want = _codes(ref[tensor].reshape(got.shape), model.layer(layer).output_format, tensor)
        compared[tensor] = (want.size, int(np.sum(got != want)))
    if stem == "hgq2_cnn":  # HGQ2's conv input quantizer: the model's input format
        want = _codes(ref["conv_iq"], model.input_format, "conv_iq")
        compared["conv_iq"] = (want.size, int(np.sum(codes != want)))
    print(stem, compared)
    assert all(bad == 0 for _, bad in compared.values())
    assert sum(size for size, _ in compared.values()) == sum(
        ref[k].size for k in ref.files if k != "inputs")


def test_per_element_formats_and_modes_are_imported():
    model = load_model(DATA / "hgq2_mlp.keras").model
    iq = model.layer("fc1_iq")
    assert iq.kind == "quantize" and iq.fin == model.input_format
    assert sum(f is None for f in iq.formats) == 2  # zero-bit lanes
    assert not iq.formats[5].signed  # the unsigned lane
    assert len(set(iq.formats) - {None}) > 3
    assert {(f.rounding.name, f.overflow.name) for f in iq.formats if f} == {("RND", "WRAP")}
    fc2_iq = model.layer("fc2_iq")
    assert {(f.rounding.name, f.overflow.name) for f in fc2_iq.formats} == {("TRN", "SAT")}
    fc3_iq = model.layer("fc3_iq")  # one format for the whole tensor: a cast
    assert fc3_iq.kind == "activation" and fc3_iq.function == "linear"
    assert fc3_iq.fout == FixedFormat(5, 3, rounding="RND_INF", overflow="SAT_SYM")
    assert {(f.rounding.name, f.overflow.name) for f in model.layer("fc3_oq").formats} == \
        {("RND_CONV", "SAT_SYM")}
    assert model.layer("fc1").output_format == model.layer("fc1").spec.accumulator


def test_imports_without_keras_hgq2_or_tensorflow():
    code = ("import sys; from nnfab.gen.load import load_model; "
            f"load_model({str(DATA / 'hgq2_mlp.keras')!r}); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'keras', 'hgq', 'tensorflow', 'jax', 'quantizers', 'torch'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def _quantizer(name, conf, k, i, f):
    """An Hgq2Quantizer of kif lanes, variables in the order Keras 3 saves them."""
    k = np.asarray(k, dtype=np.uint8)[None]
    i, f = (np.asarray(v, dtype=np.float32)[None] for v in (i, f))
    variables = [f, k, i, np.float32(0.01)] if conf["overflow_mode"] == "WRAP" else [i, f, k]
    return Hgq2Quantizer(name, {"q_type": "kif", **conf}, variables)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("overflow", OVERFLOWS)
def test_quantizer_modes_equal_hgq2(rounding, overflow):
    table = np.load(DATA / "hgq2_quantizers.npz")
    x, want = table["x"].astype(np.float64), table[f"{rounding}__{overflow}"]
    q = _quantizer("q", {"round_mode": rounding, "overflow_mode": overflow},
                   table["k"], table["i"], table["f"])
    formats = list(q.formats((len(table["k"]),)))
    assert formats[-1] is None  # k + i + f = 0
    fin = FixedFormat(16, 8)
    batch = np.repeat(quantize(x, fin)[:, None], len(formats), axis=1)
    fout = lanes_format(formats)
    got = to_float(quantize_lanes(batch, fin=fin, formats=formats, fout=fout), fout)
    assert np.array_equal(got, want.astype(np.float64))  # nnfab's formats, ap_fixed casts
    # and the float32 path used for kernels and biases
    assert np.array_equal(q.apply(np.repeat(x[:, None], len(formats), axis=1)[None])[0],
                          want.astype(np.float64))


def test_stochastic_rounding_imports_as_its_inference_mode():
    q = _quantizer("q", {"round_mode": "S_RND_CONV", "overflow_mode": "SAT"}, [1], [2], [3])
    assert q.formats((1,))[0] == FixedFormat(6, 3, rounding="RND_CONV", overflow="SAT")


def _edited(tmp_path, edit, stem="hgq2_mlp"):
    """A copy of a test model with its config.json edited by ``edit(config)``."""
    target = tmp_path / f"{stem}.keras"
    with zipfile.ZipFile(DATA / f"{stem}.keras") as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit({layer["config"]["name"]: layer for layer in config["config"]["layers"]})
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return target


def _set(layer, key, value, conf="iq_conf"):
    def edit(layers):
        layers[layer]["config"][conf]["config"][key] = value
    return edit


def _layer(layer, key, value):
    def edit(layers):
        layers[layer][key] = value
        layers[layer]["config"]["name"] = layer
    return edit


def _layer_config(layer, key, value):
    def edit(layers):
        layers[layer]["config"][key] = value
    return edit


@pytest.mark.parametrize("edit,message", [
    (_set("fc2", "overflow_mode", "WRAP_SM"),
     "Quantizer 'fc2_iq': round_mode 'TRN', overflow_mode 'WRAP_SM' are not supported; use "
     "round_mode TRN, RND, RND_CONV, TRN_ZERO, RND_ZERO, RND_INF, RND_MIN_INF (or S_ of one) "
     "and overflow_mode WRAP, SAT, SAT_SYM"),
    (_set("fc1", "q_type", "float", conf="kq_conf"),
     "Quantizer 'fc1_kq': q_type 'float' is not supported; nnfab imports fixed-point "
     "quantizers ('kif', 'kbi')"),
    (_set("fc3", "scaler", 0.5, conf="oq_conf"),
     "Quantizer 'fc3_oq': scaler 0.5 is not supported; use None"),
    (_layer("fc2", "class_name", "QBatchNormDense"),
     "Layer 'fc2': HGQ2 model layer 'QBatchNormDense' is not supported (supported: "
     "InputLayer, QDense, QConv2D, Quantizer, Flatten, Activation, ReLU, Dropout)"),
    (_layer_config("fc1", "activation", "tanh"),
     "Layer 'fc1': activation 'tanh' is not supported in an HGQ2 model; use relu or "
     "linear"),
])
def test_unsupported_is_refused(tmp_path, edit, message):
    with pytest.raises(UnsupportedLayerError, match=f"^{re.escape(message)}$"):
        load_model(_edited(tmp_path, edit))


def test_formats_varying_over_pixels_are_refused():
    fmt = FixedFormat(8, 3)
    # (pixel, channel) widths: channel formats differ from one pixel to the next.
    q = _quantizer("conv_iq", {"round_mode": "RND", "overflow_mode": "SAT"}, [[1, 1], [1, 1]],
                   [[2, 2], [3, 3]], [[4, 4], [4, 4]])
    with pytest.raises(UnsupportedLayerError, match=re.escape(
            "Quantizer 'conv_iq': gives the elements of one channel of its (2, 2) tensor "
            "different formats; nnfab takes one format per element of the last axis "
            "(homogeneous_axis covering the other axes)")):
        _datalane("conv_iq", q, fmt, (2, 2), False)


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["hgq2_mlp", "hgq2_cnn"])
def test_verify_rtl(stem):
    result = CliRunner().invoke(main, ["verify", str(DATA / f"{stem}.keras"), "--random", "300"])
    assert_verify_passed(result, 300)
