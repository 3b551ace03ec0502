"""Keras 3 ``.keras`` files: the QKeras jet tagger saved by Keras 3.14 imports without Keras or
TensorFlow to the same model as its Keras 2 files, its golden model equals QKeras's own forward
pass value for value, and damaged or foreign zips give one clear error each."""

import json
import zipfile

import h5py
import numpy as np
import pytest

from nnfab.casts import quantize, to_float
from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.gen.importers import load
from nnfab.gen.importers.keras3 import _snake_case
from nnfab.gen.load import detect_kind, load_model
from nnfab.gen.native import save_native
from nnfab.sim.golden.network import trace_network

from .conftest import FRAMEWORKS, KERAS, SHARED, need

KERAS3 = SHARED / "models" / "hls4ml-example-models" / "keras3" / "qkeras-v3_3layer.keras"


def _native(model, folder, stem):
    save_native(model, folder / f"{stem}.json")
    arrays = np.load(folder / f"{stem}.npz")
    return (folder / f"{stem}.json").read_text(), {k: arrays[k] for k in arrays.files}


def test_keras3_file_is_the_keras2_model(tmp_path):
    assert detect_kind(need(KERAS3)) == "keras3"
    new = load(KERAS3, kind="keras3")
    old = load(need(KERAS / "qkeras_3layer.json"), kind="keras-json")
    new_json, new_arrays = _native(new, tmp_path, "new")
    old_json, old_arrays = _native(old, tmp_path, "old")
    assert new_json == old_json
    assert new_arrays.keys() == old_arrays.keys()
    assert all(np.array_equal(new_arrays[k], old_arrays[k]) for k in old_arrays)


def test_keras3_layers_equal_qkeras_forward_pass():
    model = load_model(KERAS3).model
    ref = np.load(need(FRAMEWORKS / "qkeras_3layer_layers.npz"))
    codes = quantize(ref["inputs"].astype(np.float64), model.input_format)
    trace = trace_network(model, codes)
    compared = 0
    for name in ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output"]:
        got = to_float(np.asarray(trace[name]), model.layer(name).output_format)
        assert np.array_equal(got, ref[name].astype(np.float64)), name
        compared += got.size
    assert compared == 2000 * (64 * 2 + 32 * 4 + 5)


@pytest.mark.parametrize("cls,snake", [("QDense", "q_dense"), ("Conv2D", "conv2d"),
                                       ("BatchNormalization", "batch_normalization"),
                                       ("QActivation", "q_activation"),
                                       ("DepthwiseConv2D", "depthwise_conv2d")])
def test_weight_groups_follow_keras3_naming(cls, snake):
    assert _snake_case(cls) == snake


def _rewrite(source, target, *, config=None, drop=(), weights=None):
    """A copy of the .keras zip with ``config.json`` replaced, members dropped, or the weights
    file edited by ``weights(h5file)``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            if item.filename in drop:
                continue
            data = src.read(item.filename)
            if item.filename == "config.json" and config is not None:
                data = json.dumps(config(json.loads(data))).encode()
            if item.filename == "model.weights.h5" and weights is not None:
                h5_path = target.with_suffix(".h5")
                h5_path.write_bytes(data)
                with h5py.File(h5_path, "a") as file:
                    weights(file)
                data = h5_path.read_bytes()
            dst.writestr(item, data)
    return target


def test_zip_without_model_members(tmp_path):
    bad = _rewrite(need(KERAS3), tmp_path / "m.keras", drop=("config.json",))
    with pytest.raises(ModelError, match=r"^Model file '.*m\.keras' is a zip but not a Keras 3 "
                                         r"\.keras file \(no config\.json and "
                                         r"model\.weights\.h5 in it\)$"):
        detect_kind(bad)


def test_truncated_zip(tmp_path):
    data = need(KERAS3).read_bytes()
    bad = tmp_path / "t.keras"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"^Model file '.*t\.keras' is a zip that cannot be "
                                         r"read \(truncated\?\): "):
        load_model(bad)


def test_missing_weights_group(tmp_path):
    bad = _rewrite(need(KERAS3), tmp_path / "w.keras",
                   weights=lambda file: file.__delitem__("layers/q_dense_1"))
    with pytest.raises(ModelError, match=r"^Layer 'fc2': no weights group "
                                         r"'layers/q_dense_1/vars' in '.*model\.weights\.h5' "
                                         r"\(weights of another model\?\)$"):
        load_model(bad)


def test_post_training_scale_is_refused(tmp_path):
    def scaled(config):
        layer = config["config"]["layers"][1]["config"]
        layer["kernel_quantizer"]["config"]["post_training_scale"] = [0.5]
        return config

    bad = _rewrite(need(KERAS3), tmp_path / "s.keras", config=scaled)
    with pytest.raises(UnsupportedLayerError, match=r"^Layer 'fc1': quantized_bits "
                                                    r"post_training_scale \[0\.5\] is not "
                                                    r"supported; use None$"):
        load_model(bad)
