"""Branching Keras models from hls4ml configs against hls4ml's own C simulation: a residual CNN
(Conv -> ReLU -> Conv, skip ``Add``, ReLU, Flatten, Dense) and an MLP with a skip ``Add`` and a
``Concatenate`` (the models of ``tests/gen/importers/test_keras_functional.py``'s kind, written
with h5py). Every traced layer, the joins included, equals nnfab's golden model code for code,
and nnfab's RTL on Verilator, with random idle and back-pressure, equals hls4ml's outputs."""

import numpy as np
import pytest
import yaml

from nnfab.gen.hls4ml import load_hls4ml
from nnfab.gen.verify import verify

from ..importers.test_keras_functional import skip_mlp, write_functional
from .test_against_hls4ml import SEED, compare_layers, edge_case_inputs

pytest.importorskip("hls4ml")


def residual_cnn(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    c = 3
    w = {"conv1": {"kernel": rng.normal(0, 0.4, (3, 3, c, c)), "bias": rng.normal(0, 0.1, c)},
         "conv2": {"kernel": rng.normal(0, 0.4, (3, 3, c, c)), "bias": rng.normal(0, 0.1, c)},
         "dense": {"kernel": rng.normal(0, 0.5, (6 * 6 * c, 3)), "bias": rng.normal(0, 0.1, 3)}}
    same = {"kernel_size": [3, 3], "padding": "same", "strides": [1, 1], "filters": c}
    path = write_functional(tmp_path, "rescnn", (6, 6, c), [
        ("Conv2D", "conv1", {**same, "activation": "relu"}, ["input_1"]),
        ("Conv2D", "conv2", same, ["conv1"]),
        ("Add", "skip", {}, ["conv2", "input_1"]),
        ("Activation", "relu2", {"activation": "relu"}, ["skip"]),
        ("Flatten", "flat", {}, ["relu2"]),
        ("Dense", "dense", {"units": 3, "activation": "linear"}, ["flat"]),
    ], w)
    return path, w


def _project(tmp_path, keras_json):
    config = {"KerasJson": keras_json.name,
              "KerasH5": keras_json.with_name(keras_json.stem + "_weights.h5").name,
              "OutputDir": "hls4ml-prj", "ProjectName": keras_json.stem,
              "Part": "xcu250-figd2104-2L-e", "IOType": "io_parallel",
              "HLSConfig": {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1,
                                      "Strategy": "Latency"}}}
    path = tmp_path / f"{keras_json.stem}_config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("make,n", [(skip_mlp, 500), (residual_cnn, 200)])
def test_branching_models_equal_hls4ml_layer_by_layer_and_on_rtl(tmp_path, make, n):
    keras_json, _ = make(tmp_path)
    config = _project(tmp_path, keras_json)
    _, model = load_hls4ml(config)
    assert any(layer.kind == "add" for layer in model.layers)
    x = edge_case_inputs(model)[:n]
    want = compare_layers(model, x, tmp_path, config)
    result = verify(model, x, seed=SEED, input_cast="format", p_stall=0.3)
    assert result.passed, result.first_mismatches
    assert np.array_equal(np.asarray(result.rtl_outputs, dtype=np.int64), want)
