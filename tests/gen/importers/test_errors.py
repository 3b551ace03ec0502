"""Truncated or corrupt files, unknown layers and unsupported settings: one clear message naming
the layer, also through the CLI."""

import json
import shutil

import pytest
from click.testing import CliRunner

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.gen.cli import main
from nnfab.gen.load import load_model

from .conftest import KERAS, ONNX, QONNX, need


def _copy_keras(tmp_path, stem, edit=None):
    config = json.loads(need(KERAS / f"{stem}.json").read_text())
    if edit:
        edit(config["config"]["layers"] if isinstance(config["config"], dict)
             else config["config"])
    (tmp_path / f"{stem}.json").write_text(json.dumps(config))
    shutil.copy(KERAS / f"{stem}_weights.h5", tmp_path / f"{stem}_weights.h5")
    return tmp_path / f"{stem}.json"


def _set_alpha(layers):
    layers[1]["config"]["kernel_quantizer"]["config"]["alpha"] = "auto"


def _unknown_layer(layers):
    layers[2]["class_name"] = "QConv1DTranspose"


CASES = {
    "alpha-auto": (lambda tmp: _copy_keras(tmp, "qkeras_3layer", _set_alpha),
                   UnsupportedLayerError,
                   "Layer 'fc1': quantized_bits alpha 'auto' is not supported; "
                   "use alpha=1 or None"),
    "unknown-layer": (lambda tmp: _copy_keras(tmp, "qkeras_3layer", _unknown_layer),
                      UnsupportedLayerError,
                      "Layer 'relu1': layer 'QConv1DTranspose' is not supported in a quantized "
                      "model (supported: QDense, QConv1D, QConv2D, QActivation, Dense, Conv1D, "
                      "Conv2D, Activation, MaxPooling1D/2D, AveragePooling1D/2D, "
                      "GlobalMaxPooling1D/2D, GlobalAveragePooling1D/2D, ZeroPadding1D/2D, "
                      "Flatten, Dropout)"),
    "conv-dilation": (lambda tmp: _copy_keras(tmp, "qkeras_mnist_cnn", _dilate),
                      UnsupportedLayerError,
                      "Layer 'q_conv2d_1': dilation_rate [2, 2] is not supported; only 1"),
    "conv-channels-first": (lambda tmp: _copy_keras(tmp, "qkeras_mnist_cnn", _channels_first),
                            UnsupportedLayerError,
                            "Layer 'q_conv2d': data_format 'channels_first' is not supported; "
                            "nnfab imports channels_last models"),
    "average-pool-of-3": (lambda tmp: _copy_keras(tmp, "qkeras_mnist_cnn", _average_pool_3),
                          UnsupportedLayerError,
                          "Layer 'max_pooling2d': an average over 9 values is not exact in "
                          "fixed point; nnfab imports averages over a power of two values in "
                          "quantized models"),
}


def _layer(layers, name):
    return next(entry["config"] for entry in layers if entry["config"]["name"] == name)


def _dilate(layers):
    _layer(layers, "q_conv2d_1")["dilation_rate"] = [2, 2]


def _channels_first(layers):
    _layer(layers, "q_conv2d")["data_format"] = "channels_first"


def _average_pool_3(layers):
    entry = next(e for e in layers if e["config"]["name"] == "max_pooling2d")
    entry["class_name"] = "AveragePooling2D"
    entry["config"].update(pool_size=[3, 3], strides=[3, 3])


def _truncated_h5(tmp):
    path = _copy_keras(tmp, "qkeras_3layer")
    weights = tmp / "qkeras_3layer_weights.h5"
    weights.write_bytes(weights.read_bytes()[:3000])
    return path


def _truncated_onnx(tmp):
    path = tmp / "three_layer_keras.onnx"
    path.write_bytes(need(ONNX / "three_layer_keras.onnx").read_bytes()[:5000])
    return path


def _non_po2_qonnx(tmp):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(need(QONNX / "qkeras_jettagging.onnx")))
    for init in model.graph.initializer:
        if init.name == "Quant_8_param0":
            init.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init) * 0 + 0.1, init.name))
    path = tmp / "qonnx_scale.onnx"
    onnx.save(model, str(path))
    return path


def _zero_point_qonnx(tmp):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(need(QONNX / "qkeras_jettagging.onnx")))
    for init in model.graph.initializer:
        if init.name == "Quant_8_param1":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 3, init.name))
    path = tmp / "qonnx_zero.onnx"
    onnx.save(model, str(path))
    return path


def _onnx_pads(tmp):
    import onnx

    model = onnx.load(str(need(ONNX / "conv2d_small_keras.onnx")))
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    for attr in conv.attribute:
        if attr.name == "pads":
            attr.ints[:] = [0, 1, 0, 1]
    path = tmp / "conv_pads.onnx"
    onnx.save(model, str(path))
    return path


CASES.update({
    "onnx-conv-pads": (_onnx_pads, UnsupportedLayerError,
                       "Node 'Conv2D__': pads [0, 1, 0, 1] are neither none nor the 'same' "
                       "padding [1, 1, 1, 1] of this input; nnfab imports those two"),
    "truncated-h5": (_truncated_h5, ModelError, "is not a readable HDF5 file (truncated or "
                                                "corrupt?)"),
    "truncated-onnx": (_truncated_onnx, ModelError, "is not a valid ONNX model (truncated or "
                                                    "corrupt?)"),
    "qonnx-scale": (_non_po2_qonnx, UnsupportedLayerError,
                    "Node 'Quant_8': scale 0.1 is not a power of two; nnfab imports QONNX with "
                    "power-of-two scales only"),
    "qonnx-zero-point": (_zero_point_qonnx, UnsupportedLayerError,
                         "Node 'Quant_8': zero point 3.0 is not supported; nnfab imports QONNX "
                         "with zero point 0 only"),
})


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_error(case, tmp_path):
    make, error, message = CASES[case]
    path = make(tmp_path)
    with pytest.raises(error) as info:
        load_model(path)
    assert message in str(info.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_error(case, tmp_path):
    make, _, message = CASES[case]
    path = make(tmp_path)
    result = CliRunner().invoke(main, ["verify", str(path), "--random", "10"])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split())
