"""The configs hls4ml 1.3's ``config_from_onnx_model`` writes for the shared ONNX example
models at granularity ``model``, ``type`` and ``name`` (``onnx_configs/``, written once by
``make_onnx_configs.py`` and saved unchanged by ``yaml.safe_dump``): nnfab reads every key,
honoured or listed in the notes, and its models equal hls4ml's C simulation layer by layer;
one is built with ``nnfab build --hls4ml-config`` and its RTL equals hls4ml's outputs on
Verilator. ``conv2d_small_mp_keras`` (Selu, BatchNormalization, MaxPool) is refused by name."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.gen.build_folder import open_build_folder
from nnfab.gen.hls4ml import load_hls4ml
from nnfab.gen.native import load_native
from nnfab.gen.verify import verify

from .conftest import onnx_config
from .test_against_hls4ml import N_RANDOM, SEED, compare_layers, edge_case_inputs

GRANULARITIES = ("model", "type", "name")
SUPPORTED = [f"{model}-{granularity}" for model in
             ("three_layer_keras", "three_layer_pytorch", "conv2d_small_keras")
             for granularity in GRANULARITIES]

#: hls4ml's layers and result types (as ``hlsinfo`` of hls4ml's converted graph prints them):
#: with granularity ``model`` nothing is ``auto`` (fixed<16,6> everywhere, the bias Adds stay
#: ApplyAlpha layers); with ``type`` and ``name`` the Dense and Conv2D results are inferred and
#: the bias Adds merge into the Dense layers.
MLP_AUTO = [("Dense_MatMul_0", "fixed<37,17>"), ("Relu_0", "fixed<16,6>"),
            ("Dense_MatMul_1", "fixed<39,19>"), ("Relu_1", "fixed<16,6>"),
            ("Dense_MatMul_2", "fixed<38,18>"), ("Relu_2", "fixed<16,6>"),
            ("Dense_MatMul_3", "fixed<38,18>"), ("Softmax_0", "fixed<16,6>")]
MLP_MODEL = [(name, "fixed<16,6>") for name in (
    "Dense_MatMul_0", "bn_Add_0", "Relu_0", "Dense_MatMul_1", "bn_Add_1", "Relu_1",
    "Dense_MatMul_2", "bn_Add_2", "Relu_2", "Dense_MatMul_3", "bn_Add_3", "Softmax_0")]
CONV_AUTO = [("Conv2D_Conv_0", "fixed<37,17>"), ("Relu_0", "fixed<16,6>"),
             ("Flatten_0", "fixed<16,6>"), ("Dense_MatMul_0", "fixed<40,20>"),
             ("Softmax_0", "fixed<16,6>")]
CONV_MODEL = [("Conv2D_Conv_0", "fixed<16,6>"), ("Relu_0", "fixed<16,6>"),
              ("Flatten_0", "fixed<16,6>"), ("Dense_MatMul_0", "fixed<16,6>"),
              ("bn_Add_0", "fixed<16,6>"), ("Softmax_0", "fixed<16,6>")]
EXPECTED = {"three_layer_keras": (MLP_MODEL, MLP_AUTO),
            "three_layer_pytorch": (MLP_MODEL, MLP_AUTO),
            "conv2d_small_keras": (CONV_MODEL, CONV_AUTO)}


@pytest.mark.parametrize("name", SUPPORTED)
def test_generated_config_loads_with_hls4mls_types(name, tmp_path):
    config, model = load_hls4ml(onnx_config(tmp_path, name))
    source, granularity = name.rsplit("-", 1)
    by_model, auto = EXPECTED[source]
    assert [(layer.name, str(layer.output_format)) for layer in model.layers] == \
        (by_model if granularity == "model" else auto)
    # Keys read without effect are listed, among them hls4ml's own no-ops.
    assert "HLSConfig.Model.TraceOutput: steers hls4ml's HLS scheduling or tracing; no " \
           "effect on nnfab's numbers" in config.notes
    if granularity == "type":
        assert "HLSConfig.LayerType.InputLayer: as hls4ml's config_from_onnx_model writes it, " \
               "but no hls4ml 1.3 layer has this class (hls4ml's class of InputLayer layers " \
               "is 'Input'); no effect in hls4ml nor in nnfab" in config.notes
    if granularity != "model":
        assert "TableSize of layer 'Relu_0': relu reads no table in hls4ml nor in nnfab; no " \
               "effect" in config.notes


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_selu_model_is_refused_by_name(granularity, tmp_path):
    with pytest.raises(UnsupportedLayerError, match=re.escape(
            "Node 'Selu': ONNX operator 'Selu' is not supported in hls4ml mode (Gemm, MatMul, "
            "Add, Conv, Relu, Softmax, Flatten, Transpose between NHWC and NCHW)") + "$"):
        load_hls4ml(onnx_config(tmp_path, f"conv2d_small_mp_keras-{granularity}"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SUPPORTED)
def test_generated_config_equals_hls4ml(name, tmp_path):
    """Every traced layer of hls4ml's C simulation equals the golden model code for code on
    2,000 seeded inputs and the edge rows of :func:`edge_case_inputs`."""
    path = onnx_config(tmp_path, name)
    _, model = load_hls4ml(path)
    compare_layers(model, edge_case_inputs(model), tmp_path, path)


@pytest.mark.slow
def test_built_conv_config_rtl_equals_hls4ml(tmp_path):
    """``nnfab build --hls4ml-config`` of the conv model's name-granularity config (at reuse
    factor 8, which changes no number), then its build folder on Verilator: the RTL's output
    codes equal hls4ml's C simulation's, and every layer of the built model equals hls4ml's."""
    path = onnx_config(tmp_path, "conv2d_small_keras-name")
    out = tmp_path / "build"
    result = CliRunner().invoke(main, ["build", "--hls4ml-config", str(path), "-o", str(out),
                                       "--reuse-factor", "8"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input_cast"] == "format"
    assert "TableSize of layer 'Relu_0': relu reads no table in hls4ml nor in nnfab; no " \
           "effect" in manifest["notes"]
    folder = open_build_folder(out)
    model = load_native(folder.model_path)
    x = edge_case_inputs(model)[N_RANDOM - 1_000:]  # 1,000 seeded rows and the edge rows
    want = compare_layers(model, x, tmp_path, path)
    rtl = verify(model, x, seed=SEED, input_cast="format",
                 verilog=folder.verilog_path.read_text(encoding="utf-8"),
                 timing=(manifest["latency"], manifest["initiation_interval"]))
    print(f"conv2d_small_keras-name: RTL {rtl.n_mismatches} mismatches in {rtl.n_vectors} "
          f"vectors, { {k: round(v, 1) for k, v in rtl.seconds.items()} }")
    assert rtl.passed, rtl.first_mismatches
    assert np.array_equal(np.asarray(rtl.rtl_outputs, dtype=np.int64), want)
