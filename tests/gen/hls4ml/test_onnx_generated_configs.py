"""The configs hls4ml 1.3's ``config_from_onnx_model`` writes for the shared ONNX example
models at granularity ``model``, ``type`` and ``name`` (``onnx_configs/``, written once by
``make_onnx_configs.py`` and saved unchanged by ``yaml.safe_dump``): nnfab reads every key,
honoured or listed in the notes, and its models equal hls4ml's C simulation layer by layer;
one is built with ``nnfab build --hls4ml-config`` and its RTL equals hls4ml's outputs on
Verilator, and ``conv2d_small_mp_keras`` (hls4ml's table Selu, BatchNormalization and MaxPool
with ``auto`` types) is verified with ``nnfab verify --hls4ml-config``."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.build_folder import open_build_folder
from nnfab.gen.hls4ml import load_hls4ml
from nnfab.gen.native import load_native
from nnfab.gen.verify import verify
from nnfab.tables import hls4ml_selu_table

from .conftest import onnx_config
from .test_against_hls4ml import N_RANDOM, SEED, compare_layers, edge_case_inputs

GRANULARITIES = ("model", "type", "name")
SUPPORTED = [f"{model}-{granularity}" for model in
             ("three_layer_keras", "three_layer_pytorch", "conv2d_small_keras",
              "conv2d_small_mp_keras")
             for granularity in GRANULARITIES]
#: The config whose comparison with hls4ml runs in the Verilator test below.
ON_VERILATOR = "conv2d_small_mp_keras-model"

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
#: conv2d_small_mp_keras: the Selu layers' ``auto`` result is the model default, the
#: BatchNormalization's is inferred at ``name`` (``x * scale + bias`` exactly: fixed<33,13>)
#: but not at ``type`` (its ``LayerType`` key ``BatchNormOnnx`` is the class of a transient
#: layer, so the model default), which widens the second convolution's; the MaxPool's
#: ``auto`` result is its input type.
MP_NAMES = ["Conv2D_Conv_0", "Selu_0", "BatchNormalization_0", "Conv2D_Conv_1", "Selu_1",
            "MaxPool_0", "Flatten_0", "Dense_MatMul_0", "Selu_2", "Dense_MatMul_1",
            "Softmax_0"]
MP_TYPE = list(zip(MP_NAMES, ["fixed<37,17>", "fixed<16,6>", "fixed<16,6>", "fixed<40,20>",
                              "fixed<16,6>", "fixed<16,6>", "fixed<16,6>", "fixed<38,18>",
                              "fixed<16,6>", "fixed<37,17>", "fixed<16,6>"]))
MP_NAME = [(name, {"BatchNormalization_0": "fixed<33,13>",
                   "Conv2D_Conv_1": "fixed<57,27>"}.get(name, fmt)) for name, fmt in MP_TYPE]
MP_MODEL = [(name, "fixed<16,6>") for name in MP_NAMES[:8] + ["bn_Add_0", "Selu_2",
                                                              "Dense_MatMul_1", "bn_Add_1",
                                                              "Softmax_0"]]
EXPECTED = {"three_layer_keras": {"model": MLP_MODEL, "type": MLP_AUTO, "name": MLP_AUTO},
            "three_layer_pytorch": {"model": MLP_MODEL, "type": MLP_AUTO, "name": MLP_AUTO},
            "conv2d_small_keras": {"model": CONV_MODEL, "type": CONV_AUTO, "name": CONV_AUTO},
            "conv2d_small_mp_keras": {"model": MP_MODEL, "type": MP_TYPE, "name": MP_NAME}}


@pytest.mark.parametrize("name", SUPPORTED)
def test_generated_config_loads_with_hls4mls_types(name, tmp_path):
    config, model = load_hls4ml(onnx_config(tmp_path, name))
    source, granularity = name.rsplit("-", 1)
    assert [(layer.name, str(layer.output_format)) for layer in model.layers] == \
        EXPECTED[source][granularity]
    # Keys read without effect are listed, among them hls4ml's own no-ops.
    assert "HLSConfig.Model.TraceOutput: steers hls4ml's HLS scheduling or tracing; no " \
           "effect on nnfab's numbers" in config.notes
    if granularity == "type":
        assert "HLSConfig.LayerType.InputLayer: as hls4ml's config_from_onnx_model writes it, " \
               "but no hls4ml 1.3 layer has this class (hls4ml's class of InputLayer layers " \
               "is 'Input'); no effect in hls4ml nor in nnfab" in config.notes
    if granularity != "model" and source != "conv2d_small_mp_keras":
        assert "TableSize of layer 'Relu_0': relu reads no table in hls4ml nor in nnfab; no " \
               "effect" in config.notes
    if granularity == "type" and source == "conv2d_small_mp_keras":
        assert "HLSConfig.LayerType.BatchNormOnnx: hls4ml replaces its BatchNormOnnx layers " \
               "by BatchNormalization layers before reading their settings (which " \
               "LayerType.BatchNormalization gives); no effect in hls4ml nor in nnfab" \
               in config.notes


def test_selu_layers_are_hls4mls_table_selu(tmp_path):
    """Each Selu is an ``elu`` activation with hls4ml's table (1,024 entries of the default
    ``table_t`` ``ap_fixed<18,8>``, indexed by ``|x|``) and positive slope (``ap_ufixed<16,1>``
    code 34429); the BatchNormalization's scale and bias are hls4ml's float32 ones written in
    ``fixed<16,6>``."""
    _, model = load_hls4ml(onnx_config(tmp_path, "conv2d_small_mp_keras-name"))
    selus = [layer for layer in model.layers if layer.name.startswith("Selu_")]
    assert [layer.function for layer in selus] == ["elu"] * 3
    for layer in selus:
        assert layer.params["table"] is hls4ml_selu_table(table_size=1024,
                                                          table_format=FixedFormat(18, 8))
        assert layer.params["scale"] == (FixedFormat(16, 1, signed=False), 34429)
    bn = next(layer for layer in model.layers if layer.name == "BatchNormalization_0")
    # hls4ml's weights (float32 gamma / sqrt(var + eps), beta - scale * mean) in fixed<16,6>:
    # [0.17190054 0.03548789 0.02452148 0.31521413 0.21723673] and
    # [-0.01060831 -0.01310769 -0.00857873 0.07273754 -0.00956822].
    assert bn.spec.scale.tolist() == [176, 36, 25, 322, 222]
    assert bn.spec.shift.tolist() == [-11, -14, -9, 74, -10]


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in SUPPORTED if name != ON_VERILATOR])
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


@pytest.mark.slow
def test_selu_config_on_verilator_equals_hls4ml(tmp_path):
    """``conv2d_small_mp_keras`` at granularity ``model`` (table Selu, BatchNormalization,
    MaxPool, every type fixed<16,6>, convolution sums wrapping in it): every layer equals
    hls4ml's C simulation on the 2,000 seeded inputs and the edge rows, and
    ``nnfab verify --hls4ml-config`` at the CLI's default reuse factors (the config's 1) finds
    the RTL equal to the golden model's codes, so to hls4ml's, on Verilator for 100 of them
    and the edge rows (each image
    takes 742 cycles; the Verilator model is built for a short run, ``--optimize build``;
    ``tests/gen/hls4ml/test_selu.py`` checks the Selu hardware on every code)."""
    path = onnx_config(tmp_path, ON_VERILATOR)
    _, model = load_hls4ml(path)
    x = edge_case_inputs(model)
    compare_layers(model, x, tmp_path, path)
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, x[N_RANDOM - 100:])
    result = CliRunner().invoke(main, ["verify", "--hls4ml-config", str(path), "--inputs",
                                       str(inputs), "--seed", str(SEED), "--optimize", "build"])
    print(result.output)
    assert result.exit_code == 0, result.output
    assert f"{len(x) - N_RANDOM + 100} vectors tried" in result.output
    assert "\n0 mismatches\n" in result.output and "PASS" in result.output
    assert "cocotb: 1 passed, 0 failed of 1" in result.output


def _edited_model_config(tmp_path, edit):
    """The ``model`` config of ``conv2d_small_mp_keras`` naming a copy of its ONNX model
    changed by ``edit(graph)``."""
    import onnx
    import yaml

    path = onnx_config(tmp_path, "conv2d_small_mp_keras-model")
    raw = yaml.safe_load(path.read_text())
    model = onnx.load(raw["OnnxModel"])
    edit(model.graph)
    raw["OnnxModel"] = str(tmp_path / "edited.onnx")
    onnx.save(model, raw["OnnxModel"])
    path.write_text(yaml.safe_dump(raw))
    return path


def _node(graph, op):
    return next(node for node in graph.node if node.op_type == op)


def _attribute(name, value):
    import onnx

    return onnx.helper.make_attribute(name, value)


def _set_pads(node, pads):
    attribute = next(a for a in node.attribute if a.name == "pads")
    del attribute.ints[:]
    attribute.ints.extend(pads)


@pytest.mark.parametrize("edit,message", [
    # hls4ml's selu reads no attribute: another alpha would be ignored silently.
    (lambda g: _node(g, "Selu").attribute.append(_attribute("alpha", 2.0)),
     "Node 'Selu': Selu with alpha=2.0 is not supported in hls4ml mode; hls4ml's selu "
     "computes with the default alpha 1.6732632423543772 whatever the node says"),
    # hls4ml pads a max pooling with the most negative code; not compared with hls4ml here.
    (lambda g: _set_pads(_node(g, "MaxPool"), [0, 0, 1, 1]),
     "Node 'MaxPool2D_1': MaxPool with pads [0, 0, 1, 1] is not supported in hls4ml mode; "
     "only without padding"),
    # A tensor where a constant belongs (the edited graph branches at convolution_output): the
    # BatchNormalization's refusal, which names the input, comes before the chain's.
    (lambda g: _node(g, "BatchNormalization").input.__setitem__(4, "convolution_output"),
     "Node 'BatchNormalization_1': BatchNormalization needs constant scale, bias, mean and "
     "variance; 'convolution_output' is not a constant"),
], ids=["selu-alpha", "maxpool-pads", "batchnorm-tensor-variance"])
def test_unsupported_node_attributes_are_refused_by_name(edit, message, tmp_path):
    with pytest.raises(UnsupportedLayerError) as info:
        load_hls4ml(_edited_model_config(tmp_path, edit))
    assert str(info.value) == message
