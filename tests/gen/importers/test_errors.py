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
                      "model (supported: QDense, QActivation, Dense, Activation, Flatten, "
                      "Dropout)"),
}


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


CASES.update({
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
