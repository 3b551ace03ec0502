"""Keras functional models with branches, written here with h5py (no TensorFlow): a residual
CNN (Conv -> BN -> ReLU -> Conv, skip Add, ReLU, GlobalAveragePooling, Dense) and an MLP with a
skip Add and a Concatenate. Their float models are checked against NumPy evaluations of the
Keras definitions, PTQ turns them into graphs of the IR, and (slow) ``nnfab verify`` proves the
RTL with random idle and back-pressure on Verilator."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.errors import UnsupportedLayerError
from nnfab.cli import main
from nnfab.gen.importers import load
from nnfab.gen.load import load_model

from .test_keras_conv import _conv_reference, write_keras_weights


def _node(*sources):
    return [[[name, 0, 0, {}] for name in sources]]


def write_functional(tmp_path, name, input_shape, layers, weights):
    """A Keras 2 functional model: ``layers`` are ``(class, name, config, inbound names)``."""
    entries = [{"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
                "config": {"name": "input_1", "dtype": "float32",
                           "batch_input_shape": [None, *input_shape]}}]
    entries += [{"class_name": cls, "name": lname, "config": {"name": lname, **cfg},
                 "inbound_nodes": _node(*inbound)} for cls, lname, cfg, inbound in layers]
    last = layers[-1][1]
    (tmp_path / f"{name}.json").write_text(json.dumps(
        {"class_name": "Functional", "config": {
            "name": name, "layers": entries, "input_layers": [["input_1", 0, 0]],
            "output_layers": [[last, 0, 0]]}}))
    write_keras_weights(tmp_path / f"{name}_weights.h5", weights)
    return tmp_path / f"{name}.json"


def residual_cnn(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    c = 4
    w = {"conv1": {"kernel": rng.normal(0, 0.4, (3, 3, c, c)), "bias": rng.normal(0, 0.1, c)},
         "bn1": {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
                 "moving_mean": rng.normal(0, 0.2, c),
                 "moving_variance": rng.uniform(0.5, 2, c)},
         "conv2": {"kernel": rng.normal(0, 0.4, (3, 3, c, c)), "bias": rng.normal(0, 0.1, c)},
         "dense": {"kernel": rng.normal(0, 0.5, (c, 3)), "bias": rng.normal(0, 0.1, 3)}}
    path = write_functional(tmp_path, "resnet_block", (8, 8, c), [
        ("Conv2D", "conv1", {"filters": c, "kernel_size": [3, 3], "padding": "same"},
         ["input_1"]),
        ("BatchNormalization", "bn1", {"epsilon": 1e-3}, ["conv1"]),
        ("ReLU", "relu1", {}, ["bn1"]),
        ("Conv2D", "conv2", {"filters": c, "kernel_size": [3, 3], "padding": "same"},
         ["relu1"]),
        ("Add", "skip", {}, ["conv2", "input_1"]),
        ("Activation", "relu2", {"activation": "relu"}, ["skip"]),
        ("GlobalAveragePooling2D", "gap", {}, ["relu2"]),
        ("Dense", "dense", {"units": 3, "activation": "linear"}, ["gap"]),
    ], w)
    return path, w


def skip_mlp(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    w = {"d1": {"kernel": rng.normal(0, 0.4, (16, 16)), "bias": rng.normal(0, 0.1, 16)},
         "d2": {"kernel": rng.normal(0, 0.4, (16, 16)), "bias": rng.normal(0, 0.1, 16)},
         "out": {"kernel": rng.normal(0, 0.4, (32, 5)), "bias": rng.normal(0, 0.1, 5)}}
    path = write_functional(tmp_path, "skip_mlp", (16,), [
        ("Dense", "d1", {"units": 16, "activation": "relu"}, ["input_1"]),
        ("Dense", "d2", {"units": 16, "activation": "linear"}, ["d1"]),
        ("Dropout", "drop", {"rate": 0.2}, ["d2"]),
        ("Add", "skip", {}, ["drop", "input_1"]),
        ("Concatenate", "cat", {"axis": -1}, ["skip", "d1"]),
        ("Dense", "out", {"units": 5, "activation": "linear"}, ["cat"]),
    ], w)
    return path, w


def test_residual_cnn_float_model_is_the_keras_graph(tmp_path):
    path, w = residual_cnn(tmp_path)
    model = load(path, kind="keras-json")
    x = np.random.default_rng(1).normal(size=(6, 8, 8, 4))
    conv1 = _conv_reference(x, w["conv1"]["kernel"], w["conv1"]["bias"], 1, "same")
    bn = w["bn1"]
    bn1 = (conv1 - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] \
        + bn["beta"]
    conv2 = _conv_reference(np.maximum(bn1, 0), w["conv2"]["kernel"], w["conv2"]["bias"], 1,
                            "same")
    gap = np.maximum(conv2 + x, 0).mean(axis=(1, 2))
    want = gap @ w["dense"]["kernel"] + w["dense"]["bias"]
    assert np.max(np.abs(model.forward(x) - want)) < 1e-9
    assert [(layer.name, layer.inputs) for layer in model.layers] == [
        ("conv1", ("input",)), ("bn1", ("conv1",)), ("relu1", ("bn1",)),
        ("conv2", ("relu1",)), ("skip", ("conv2", "input")), ("relu2", ("skip",)),
        ("gap", ("relu2",)), ("dense", ("gap",))]
    quantized = load_model(path).model
    assert [(layer.kind, layer.inputs) for layer in quantized.layers] == [
        ("conv2d", ("input",)), ("activation", ("conv1",)), ("conv2d", ("relu1",)),
        ("add", ("conv2", "input")), ("activation", ("skip",)), ("global_pool", ("relu2",)),
        ("dense", ("gap",))]


def test_skip_mlp_float_model_is_the_keras_graph(tmp_path):
    path, w = skip_mlp(tmp_path)
    model = load(path, kind="keras-json")
    x = np.random.default_rng(2).normal(size=(9, 16))
    d1 = np.maximum(x @ w["d1"]["kernel"] + w["d1"]["bias"], 0)
    skip = d1 @ w["d2"]["kernel"] + w["d2"]["bias"] + x
    want = np.concatenate([skip, d1], axis=-1) @ w["out"]["kernel"] + w["out"]["bias"]
    assert np.max(np.abs(model.forward(x) - want)) < 1e-9
    quantized = load_model(path).model
    assert [(layer.kind, layer.inputs) for layer in quantized.layers] == [
        ("dense", ("input",)), ("activation", ("d1",)), ("dense", ("d1_relu",)),
        ("add", ("d2", "input")), ("concatenate", ("skip", "d1_relu")), ("dense", ("cat",))]


def test_concatenate_on_another_axis_is_refused(tmp_path):
    path = write_functional(tmp_path, "m", (4, 4, 2), [
        ("Conv2D", "c", {"filters": 2, "kernel_size": [1, 1]}, ["input_1"]),
        ("Concatenate", "cat", {"axis": 1}, ["c", "input_1"]),
    ], {"c": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)}})
    with pytest.raises(UnsupportedLayerError) as info:
        load(path, kind="keras-json")
    assert str(info.value) == ("Layer 'cat': concatenation along axis 1 is not supported; only "
                               "the last (channel) axis, -1")


@pytest.mark.slow
@pytest.mark.parametrize("make", [residual_cnn, skip_mlp])
def test_keras_graph_models_verify_on_verilator(tmp_path, make):
    """What a user runs: ``nnfab verify model.json`` at the defaults, 200 random vectors, with
    random idle and back-pressure; then the build folder names the skip FIFOs."""
    path, _ = make(tmp_path)
    result = CliRunner().invoke(main, ["verify", str(path), "--random", "200", "--stall",
                                       "0.3"])
    assert result.exit_code == 0, result.output
    assert "0 mismatches" in result.output or "PASS" in result.output
    built = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "b")])
    assert built.exit_code == 0, built.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    joins = [row for row in manifest["layers"] if "skip_fifo_depths" in row]
    assert joins and any(max(row["skip_fifo_depths"]) > 0 for row in joins)
