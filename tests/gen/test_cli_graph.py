"""What a user runs with branching and image models (issue 15's bugs 1-3 as CLI regression
tests): ``nnfab build`` of Keras models with GlobalAveragePooling2D, ZeroPadding2D and a
residual Add writes a build folder whose ``model.json`` reloads into the same network, with the
fused convolution activations kept; ``nnfab verify BUILD_DIR`` proves that folder."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.gen.native import load_native

from .importers.test_keras_functional import residual_cnn, write_functional


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def padded_cnn(tmp_path, seed=3):
    rng = np.random.default_rng(seed)
    w = {"conv": {"kernel": rng.normal(0, 0.4, (3, 3, 2, 4)), "bias": rng.normal(0, 0.1, 4)},
         "dense": {"kernel": rng.normal(0, 0.5, (4, 3)), "bias": rng.normal(0, 0.1, 3)}}
    return write_functional(tmp_path, "padded_cnn", (6, 6, 2), [
        ("ZeroPadding2D", "pad", {"padding": [[1, 1], [1, 1]]}, ["input_1"]),
        ("Conv2D", "conv", {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
                            "padding": "valid", "activation": "relu"}, ["pad"]),
        ("GlobalAveragePooling2D", "gap", {}, ["conv"]),
        ("Dense", "dense", {"units": 3, "activation": "linear"}, ["gap"]),
    ], w)


@pytest.mark.parametrize("make", [padded_cnn, lambda tmp: residual_cnn(tmp)[0]])
def test_build_folder_of_image_and_graph_models_reloads(make, tmp_path):
    path = make(tmp_path)
    result = run("build", path, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    model = load_native(tmp_path / "b" / "model.json")
    assert [layer.name for layer in model.layers] == \
        [part for row in manifest["layers"] for part in row.get("fused_layers", [row["name"]])]
    again = run("build", tmp_path / "b" / "model.json", "-o", tmp_path / "c")
    assert again.exit_code == 0, again.output
    verilog = manifest["verilog"]
    assert (tmp_path / "b" / verilog).read_bytes() == (tmp_path / "c" / verilog).read_bytes()


def test_fused_convolution_activation_survives_the_build_folder(tmp_path):
    result = run("build", padded_cnn(tmp_path), "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "b" / "model.json").read_text())
    kinds = [(entry["type"], entry.get("activation")) for entry in doc["layers"]]
    assert ("zero_pad", None) in kinds and ("global_pool", None) in kinds
    model = load_native(tmp_path / "b" / "model.json")
    conv = next(layer for layer in model.layers if layer.kind == "conv2d")
    relu = [layer for layer in model.layers if layer.kind == "activation"]
    assert conv.spec.activation == "relu" or relu


@pytest.mark.slow
def test_verify_build_folder_of_a_padded_pooled_cnn(tmp_path):
    assert run("build", padded_cnn(tmp_path), "-o", tmp_path / "b").exit_code == 0
    result = run("verify", tmp_path / "b", "--random", "200")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
