"""nnfab built from an hls4ml project config against hls4ml's own C simulation of the same
config: every traced layer of ``hls_model.trace()`` equals nnfab's golden model code for code,
and nnfab's RTL on Verilator equals hls4ml's outputs (those of ``trace()``, which runs the
top function that ``predict()`` runs), on 2,000 seeded inputs plus edge values (the input
format's extremes, values that wrap in it, rounding boundaries)."""

import numpy as np
import pytest
import yaml

from nnfab.casts import quantize
from nnfab.gen.hls4ml import load_hls4ml
from nnfab.gen.load import prepare_model
from nnfab.gen.verify import verify
from nnfab.sim.golden.network import trace_network

from .conftest import HLS4ML_MODELS
from .reference import hls4ml_trace

N_RANDOM = 2_000
SEED = 11


def edge_case_inputs(model):
    """2,000 N(0, 1.5) values on the input format's grid, then edge rows: the most negative and
    most positive codes, zero, one LSB, values beyond the range (hls4ml wraps them) and values
    between grid points (hls4ml truncates them)."""
    fmt = model.input_format
    rng = np.random.default_rng(SEED)
    grid = np.round(rng.normal(0.0, 1.5, (N_RANDOM, *model.input_shape)) / float(fmt.lsb))
    x = grid * float(fmt.lsb)
    lo, hi, lsb = float(fmt.min_value), float(fmt.max_value), float(fmt.lsb)
    edges = [lo, hi, 0.0, lsb, -lsb, hi + 8.0, lo - 8.0, 0.4 * lsb, -0.6 * lsb, 1.5 * lsb]
    rows = [np.full(model.input_shape, value) for value in edges]
    rows.append(np.resize(np.array(edges), model.input_shape))
    return np.concatenate([x, np.array(rows)])


def _codes(values, fmt):
    """Raw codes of exact values (hls4ml's traces hold the fixed-point values as doubles)."""
    codes = quantize(np.asarray(values, dtype=np.float64), fmt.replace(rounding="TRN",
                                                                        overflow="WRAP"))
    back = np.ldexp(codes.astype(np.float64), -fmt.fraction_width)
    assert np.array_equal(back, values), f"trace values are not exact in {fmt}"
    return codes


def _config(name, tmp_path, reuse_factor=None):
    """The shared config, or a copy in ``tmp_path`` (model paths made absolute) with another
    Model ReuseFactor."""
    path = HLS4ML_MODELS / name
    if reuse_factor is None:
        return path
    raw = yaml.safe_load(path.read_text())
    raw["HLSConfig"]["Model"]["ReuseFactor"] = reuse_factor
    for key in ("KerasJson", "KerasH5", "OnnxModel"):
        if key in raw:
            raw[key] = str(HLS4ML_MODELS / raw[key])
    copy = tmp_path / name
    copy.write_text(yaml.safe_dump(raw))
    return copy


def compare_layers(model, x, tmp_path, path):
    y_hls, traced = hls4ml_trace(path, x, tmp_path / "hls4ml-project")
    codes = quantize(x, model.input_format)
    ours = trace_network(model, codes)
    compared = {}
    # hls4ml removes a Flatten (a reshape: no numbers change) from its graph.
    layers = [layer for layer in model.layers if layer.kind != "flatten" or layer.name in traced]
    for layer in layers:
        assert layer.name in traced, f"hls4ml traced no layer {layer.name!r} ({sorted(traced)})"
        want = _codes(traced[layer.name].reshape(len(x), *layer.output_shape),
                      layer.output_format)
        got = np.asarray(ours[layer.name], dtype=np.int64)
        compared[layer.name] = (want.size, int(np.sum(got != want)))
    assert set(traced) == {layer.name for layer in layers}
    print({name: f"{bad} of {n} differ" for name, (n, bad) in compared.items()})
    assert all(bad == 0 for _, bad in compared.values())
    return _codes(y_hls.reshape(len(x), *model.output_shape), model.output_format)


@pytest.mark.slow
@pytest.mark.parametrize("name,rtl_reuse_factor", [
    # RTL at the config's reuse factor 1: the design `nnfab build` makes of it, which
    # tests/gen/test_cli_shared_models.py builds too (one worker: one conversion, cached).
    pytest.param("keras-config.yml", None, marks=pytest.mark.xdist_group("hls4ml_keras_config")),
    ("onnx-config.yml", 4),      # RTL at reuse factor 4 (same numbers in hls4ml)
])
def test_every_layer_and_the_rtl_equal_hls4ml(name, rtl_reuse_factor, tmp_path):
    path = HLS4ML_MODELS / name
    _, model = load_hls4ml(path)
    x = edge_case_inputs(model)
    want = compare_layers(model, x, tmp_path, path)

    # The design `nnfab build` makes of the config: at reuse factor 1 every dense layer is an
    # adder graph with its products cast to accum_t (FuseShiftAdd).
    _, rtl_model = load_hls4ml(_config(name, tmp_path, rtl_reuse_factor))
    rtl_model = prepare_model(rtl_model)
    fused = [layer.kind == "shift_add_dense" for layer in rtl_model.layers
             if layer.kind in ("dense", "shift_add_dense")]
    assert all(fused) if rtl_reuse_factor is None else not any(fused)
    result = verify(rtl_model, x, seed=SEED, input_cast="format")
    print(f"{name}: RTL {result.n_mismatches} mismatches in {result.n_vectors} vectors, "
          f"{ {k: round(v, 1) for k, v in result.seconds.items()} }")
    assert result.passed, result.first_mismatches
    assert np.array_equal(np.asarray(result.rtl_outputs, dtype=np.int64), want)


QKERAS_CONFIGS = ["qkeras_3layer_config.yml", "qkeras_mnist_dense_config.yml",
                  "qkeras_mnist_cnn_config.yml"]


def _qkeras_inputs(model, n):
    rng = np.random.default_rng(SEED)
    if len(model.input_shape) == 3 or model.input_shape[0] == 784:  # MNIST pixels in [0, 1)
        return np.floor(rng.random((n, *model.input_shape)) * 2**10) / 2**10
    return edge_case_inputs(model)


@pytest.mark.slow
@pytest.mark.parametrize("name,n", [("qkeras_3layer_config.yml", None),
                                    ("qkeras_mnist_dense_config.yml", 2_000),
                                    ("qkeras_mnist_cnn_config.yml", 300)])
def test_qkeras_config_equals_hls4ml_on_its_dequantized_twin(name, n, tmp_path):
    """Without TensorFlow: hls4ml simulates the float twin holding the QKeras-quantized weights
    (:func:`reference.dequantized_twin`) under the same config."""
    from .reference import dequantized_twin

    path = HLS4ML_MODELS / "config-files" / name
    _, model = load_hls4ml(path)
    x = _qkeras_inputs(model, n)
    compare_layers(model, x, tmp_path, dequantized_twin(path, tmp_path / "twin"))


@pytest.mark.slow
def test_qkeras_jet_tagger_config_rtl():
    """The QKeras jet tagger's hls4ml config in RTL against the golden model (its layers equal
    hls4ml's in the tests above)."""
    _, model = load_hls4ml(HLS4ML_MODELS / "config-files" / "qkeras_3layer_config.yml")
    x = edge_case_inputs(model)
    result = verify(model, x, seed=SEED, input_cast="format")
    print(f"qkeras_3layer config: RTL {result.n_mismatches} mismatches in {result.n_vectors} "
          f"vectors, { {k: round(v, 1) for k, v in result.seconds.items()} }")
    assert result.n_vectors == len(x)
    assert result.passed, result.first_mismatches


@pytest.mark.slow
@pytest.mark.parametrize("name", QKERAS_CONFIGS)
def test_qkeras_config_equals_hls4ml_with_qkeras(name, tmp_path, monkeypatch):
    """hls4ml on the QKeras model itself: needs the qkeras package (TensorFlow)."""
    pytest.importorskip("qkeras", reason="hls4ml converts QKeras layers by calling the qkeras "
                                         "package, which needs TensorFlow; not installed here")
    monkeypatch.chdir(HLS4ML_MODELS)  # the configs' model paths are relative to this folder
    path = HLS4ML_MODELS / "config-files" / name
    _, model = load_hls4ml(path)
    raw = yaml.safe_load(path.read_text())
    for key in ("KerasJson", "KerasH5"):
        raw[key] = str(HLS4ML_MODELS / raw[key])
    copy = tmp_path / name
    copy.write_text(yaml.safe_dump(raw))
    compare_layers(model, _qkeras_inputs(model, 500), tmp_path, copy)


@pytest.mark.slow
def test_capped_auto_types_equal_hls4ml(tmp_path):
    """``result: auto`` capped by ``Model.Precision.maximum`` (the sums then wrap in
    ``fixed<24,10>``), against hls4ml's C simulation layer by layer."""
    raw = yaml.safe_load((HLS4ML_MODELS / "keras-config.yml").read_text())
    raw["HLSConfig"].update(
        Model={"Precision": {"default": "ap_fixed<16,6>", "maximum": "ap_fixed<24,10>"},
               "ReuseFactor": 1},
        LayerType={"Dense": {"Precision": {"result": "auto"}}})
    for key in ("KerasJson", "KerasH5"):
        raw[key] = str(HLS4ML_MODELS / raw[key])
    path = tmp_path / "keras-config.yml"
    path.write_text(yaml.safe_dump(raw))
    _, model = load_hls4ml(path)
    assert {str(layer.output_format) for layer in model.layers[::2]} == {"fixed<24,10>"}
    compare_layers(model, edge_case_inputs(model), tmp_path, path)
