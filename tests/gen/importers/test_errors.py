"""Truncated or corrupt files, unknown layers and unsupported settings: one clear message naming
the layer, also through the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.cli import main
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
                      "model (supported: QDense, QConv1D, QConv2D, QActivation, QSimpleRNN, QLSTM, "
                      "QGRU, Dense, Conv1D, "
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
        if init.name in ("Quant_8_param0", "Quant_8_param2"):
            value = 0.1 if init.name.endswith("0") else 20.0
            init.CopyFrom(numpy_helper.from_array(
                np.full_like(numpy_helper.to_array(init), value), init.name))
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
    "qonnx-scale-wide": (_non_po2_qonnx, UnsupportedLayerError,
                         "Node 'Quant_8': a 20-bit quantizer after float arithmetic is not "
                         "supported; nnfab builds outputs of 1 to 16 bits there"),
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


# Issue 14 item 10: damaged model files give one ModelError line naming the file, without the
# parsers' own error texts (before: tracebacks from h5py, zlib and protobuf, or raw texts).


def _damaged(tmp_path, source, name, edit):
    data = bytearray(need(source).read_bytes())
    edit(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _zero(at, n):
    def edit(data):
        data[at:at + n] = bytes(n)
    return edit


def test_hdf5_that_loops_forever(tmp_path, monkeypatch):
    """These 217 zero bytes make the HDF5 library loop forever reading the attributes."""
    from nnfab.gen.importers import _common

    monkeypatch.setattr(_common, "HDF5_SECONDS", 2)
    path = _damaged(tmp_path, KERAS / "hgq_jet_classifier.h5", "hgq.h5", _zero(9239, 217))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"Model file {str(path)!r} is not a readable HDF5 file (reading "
                               f"it took more than 2 s; corrupt?)")


def test_corrupt_hdf5(tmp_path):
    """h5py raised KeyError/OSError for these from inside the importer."""
    def flip(data):
        for at in (2000, 2100, 2200, 2300):
            data[at] ^= 0xFF
    path = _damaged(tmp_path, KERAS / "hgq_jet_classifier.h5", "hgq.h5", flip)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"Model file {str(path)!r} is not a readable HDF5 file "
                               f"(truncated or corrupt?)")


def test_corrupt_onnx_names_no_parser_error(tmp_path):
    path = _damaged(tmp_path, ONNX / "three_layer_keras.onnx", "m.onnx", _zero(200, 40))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"Model file {str(path)!r} is not a valid ONNX model (truncated "
                               f"or corrupt?)")


def test_keras_json_not_utf8(tmp_path):
    path = _copy_keras(tmp_path, "qkeras_3layer")
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" + data[100:])
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == f"Model file {str(path)!r} is not UTF-8 text (byte 100 is 0xff)"


@pytest.mark.parametrize("content,message", [
    (b"", "is empty (a .npz file holds the model's arrays)"),
    (b"\x00" * 64, "is not a readable .npz (not a zip archive; truncated or corrupt?)"),
])
def test_damaged_npz_through_the_cli(tmp_path, content, message):
    from nnfab.gen.examples import EXAMPLES

    source = Path(EXAMPLES["digits-mlp"].path)
    shutil.copy(source, tmp_path / "m.json")
    (tmp_path / "m.npz").write_bytes(content)
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "m.json"), "--random", "10"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        f"Error: Array file {str(tmp_path / 'm.npz')!r} {message}"]
