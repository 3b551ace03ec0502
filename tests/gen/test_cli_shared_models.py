"""``nnfab build`` of every model in shared/models at the command line's defaults, as a new
user runs it (issue 14, item 8: CNNs verified but did not build). A model nnfab cannot read yet
fails with one line naming the file or the operator, and leaves nothing behind.

The models whose default build is also the design tests/gen/importers/test_verify_models.py
would verify (:data:`VERIFY`) are then proven here, as a user proves them: ``nnfab verify`` of
the build folder (its own Verilog on Verilator, under the default random stalls) on seeded
N(0, 1.5) inputs, 10,000 for the jet taggers, 200 for the image models and 2,000 for the QONNX
TFC (the smallest QONNX zoo model with thresholds: its input codes are fixed<2,2>). One conversion and
one Verilator build per model."""

import json

import pytest
from click.testing import CliRunner

from nnfab.cli import main

from ..vectors import shared_dir

MODELS = shared_dir() / "models"
HLS4ML = MODELS / "hls4ml-example-models"

BUILDS = {
    "KERAS_3layer": [HLS4ML / "keras" / "KERAS_3layer.json"],
    "KERAS_3layer_pruned": [HLS4ML / "keras" / "KERAS_3layer.json", "--weights",
                            HLS4ML / "keras" / "KERAS_3layer_70pruned_retrained_weights.h5"],
    "KERAS_3layer_batch_norm": [HLS4ML / "keras" / "KERAS_3layer_batch_norm.json"],
    "qkeras_3layer": [HLS4ML / "keras" / "qkeras_3layer.json"],
    "qkeras_v3_3layer": [HLS4ML / "keras3" / "qkeras-v3_3layer.keras"],
    "qkeras_mnist_dense": [HLS4ML / "keras" / "qkeras_mnist_dense.json"],
    "qkeras_mnist_cnn": [HLS4ML / "keras" / "qkeras_mnist_cnn.json"],
    "hgq_jet_classifier": [HLS4ML / "keras" / "hgq_jet_classifier.h5"],
    "three_layer_keras": [HLS4ML / "onnx" / "three_layer_keras.onnx"],
    "three_layer_pytorch": [HLS4ML / "onnx" / "three_layer_pytorch.onnx"],
    "conv2d_small_keras": [HLS4ML / "onnx" / "conv2d_small_keras.onnx"],
    "conv2d_small_mp_keras": [HLS4ML / "onnx" / "conv2d_small_mp_keras.onnx"],
    "qkeras_jettagging": [MODELS / "qonnx-model-zoo" / "qkeras_jettagging.onnx"],
    # QONNX with any scales (issue 18): integer layers and multithreshold layers.
    "TFC_2W2A": [MODELS / "qonnx-model-zoo" / "TFC_2W2A.onnx"],
    "unsw_nb15_mlp_w2a2": [MODELS / "qonnx-model-zoo" / "unsw_nb15-mlp-w2a2.onnx"],
    "hls4ml_keras_config": ["--hls4ml-config", HLS4ML / "keras-config.yml"],
    "hls4ml_onnx_config": ["--hls4ml-config", HLS4ML / "onnx-config.yml"],
}

#: Build folders then verified on Verilator: the number of seeded random inputs.
VERIFY = {"KERAS_3layer_pruned": 10_000, "KERAS_3layer_batch_norm": 10_000,
          "qkeras_3layer": 10_000, "qkeras_jettagging": 10_000, "three_layer_keras": 10_000,
          "three_layer_pytorch": 10_000, "conv2d_small_keras": 200,
          "conv2d_small_mp_keras": 200, "TFC_2W2A": 2000}
SEED = 2024


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


#: Builds whose design another test converts too: run on its worker (the Verilog cache).
GROUPS = {"hls4ml_keras_config": "hls4ml_keras_config"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xdist_group(GROUPS[name])) if name in GROUPS
    else name for name in sorted(BUILDS)])
def test_build_at_the_defaults(name, tmp_path):
    args = BUILDS[name]
    for arg in args:
        if not isinstance(arg, str) and not arg.exists():
            pytest.fail(f"{arg} is not available: shared/ must be beside the repository")
    result = run("build", *args, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert isinstance(manifest["initiation_interval"], int)
    assert isinstance(manifest["latency"], int)
    assert (tmp_path / "out" / manifest["verilog"]).stat().st_size > 0
    if name in VERIFY:
        result = run("verify", tmp_path / "out", "--random", VERIFY[name], "--seed", SEED)
        lines = result.output.splitlines()
        assert result.exit_code == 0, result.output
        tried = next(k for k, line in enumerate(lines) if line.endswith(" vectors tried"))
        assert lines[tried].endswith(f": {VERIFY[name]} vectors tried"), result.output
        assert lines[tried + 1] == "0 mismatches", result.output
        assert lines[-1] == "PASS", result.output
