"""Keras convolution networks written here with h5py (no TensorFlow): the importer's float model
against an independent NumPy evaluation of Keras' layer definitions (kernel (kh, kw, C_in, F),
channels-last, 'same' padding split as TensorFlow splits it)."""

import json

import h5py
import numpy as np
import pytest

from nnfab.gen.importers import load
from nnfab.gen.load import load_model


def _keras_model(tmp_path, layers, weights, input_shape, name="cnn"):
    entries = [{"class_name": "InputLayer",
                "config": {"name": "input_1", "batch_input_shape": [None, *input_shape]}}]
    entries += [{"class_name": cls, "config": {"name": lname, **cfg}} for cls, lname, cfg in layers]
    (tmp_path / f"{name}.json").write_text(json.dumps(
        {"class_name": "Functional", "config": {"name": name, "layers": entries}}))
    write_keras_weights(tmp_path / f"{name}_weights.h5", weights)
    return tmp_path / f"{name}.json"


def write_keras_weights(path, weights):
    """A Keras 2 weights file: one group per layer with ``NAME/KEY:0`` datasets and their
    ``weight_names``; ``weights`` maps layer names to ``{key: array}``."""
    with h5py.File(path, "w") as file:
        for lname, arrays in weights.items():
            group = file.create_group(lname)
            names = []
            for key, value in arrays.items():
                full = f"{lname}/{key}:0"
                group.create_dataset(full, data=value)
                names.append(full.encode())
            group.attrs["weight_names"] = names


def _conv_reference(x, kernel, bias, stride, padding):
    """Keras Conv2D by loops: x (n, H, W, C), kernel (kh, kw, C, F)."""
    kh, kw = kernel.shape[:2]
    if padding == "same":
        def pads(size, k, s):
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            return total // 2, total - total // 2
        x = np.pad(x, ((0, 0), pads(x.shape[1], kh, stride), pads(x.shape[2], kw, stride),
                       (0, 0)))
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, kernel.shape[3]))
    for i in range(ho):
        for j in range(wo):
            window = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            y[:, i, j, :] = np.tensordot(window, kernel, axes=([1, 2, 3], [0, 1, 2])) + bias
    return y


def test_float_conv2d_network_matches_keras_definition(tmp_path):
    rng = np.random.default_rng(5)
    k1, b1 = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4)
    k2, b2 = rng.normal(size=(36, 4)), rng.normal(size=4)
    path = _keras_model(tmp_path, [
        ("Conv2D", "conv", {"filters": 4, "kernel_size": [3, 3], "strides": [2, 2],
                            "padding": "same", "activation": "relu"}),
        ("MaxPooling2D", "pool", {"pool_size": [2, 2], "padding": "valid"}),
        ("Flatten", "flatten", {}),
        ("Dense", "dense", {"units": 4, "activation": "linear"}),
    ], {"conv": {"kernel": k1, "bias": b1}, "dense": {"kernel": k2, "bias": b2}}, (12, 12, 2))
    model = load(path, kind="keras-json")
    x = rng.normal(size=(16, 12, 12, 2))
    conv = np.maximum(_conv_reference(x, k1, b1, 2, "same"), 0)  # (16, 6, 6, 4)
    pooled = conv.reshape(16, 3, 2, 3, 2, 4).max(axis=(2, 4))
    want = pooled.reshape(16, -1) @ k2 + b2
    got = model.forward(x)
    assert np.max(np.abs(got - want)) < 1e-9
    # PTQ builds it into a quantized IR with conv, activation, pool, flatten and dense.
    loaded = load_model(path)
    assert [layer.kind for layer in loaded.model.layers] == [
        "conv2d", "activation", "pool", "flatten", "dense"]


def test_qkeras_conv1d_weights_are_quantized_and_laid_out(tmp_path):
    rng = np.random.default_rng(6)
    kernel = rng.normal(0, 0.5, size=(3, 2, 5))  # (k, C_in, F)
    quantizer = {"class_name": "quantized_bits",
                 "config": {"bits": 6, "integer": 0, "symmetric": 0, "alpha": 1,
                            "keep_negative": True}}
    path = _keras_model(tmp_path, [
        ("QConv1D", "qconv", {"filters": 5, "kernel_size": [3], "strides": [1],
                              "padding": "valid", "use_bias": False, "activation": "linear",
                              "kernel_quantizer": quantizer}),
    ], {"qconv": {"kernel": kernel}}, (10, 2))
    model = load(path, kind="keras-json")
    conv = model.layers[0]
    assert model.input_shape == (1, 10, 2)  # 1-D input as an image of height 1
    assert conv.output_shape == (1, 8, 5)
    codes = np.asarray(conv.spec.weights, dtype=np.int64)
    assert codes.shape == (5, 1, 3, 2)
    # quantized_bits(6, 0): fixed<6,1>, round to nearest, saturate to [-1, 31/32].
    want = np.clip(np.round(kernel * 32), -32, 31).transpose(2, 0, 1)[:, None]
    assert np.array_equal(codes, want)


@pytest.mark.parametrize("layer,message", [
    (("Conv2D", "conv", {"filters": 2, "kernel_size": [3, 3], "padding": "causal"}),
     "Layer 'conv': padding 'causal' is not supported; use 'valid' or 'same'"),
    (("Conv2D", "conv", {"filters": 2, "kernel_size": [3, 3], "groups": 2}),
     "Layer 'conv': groups=2 is not supported; only 1"),
])
def test_float_conv_settings_rejected(tmp_path, layer, message):
    from nnfab.errors import UnsupportedLayerError

    path = _keras_model(tmp_path, [layer], {"conv": {"kernel": np.zeros((3, 3, 2, 2)),
                                                     "bias": np.zeros(2)}}, (8, 8, 2))
    with pytest.raises(UnsupportedLayerError) as info:
        load(path, kind="keras-json")
    assert str(info.value) == message
