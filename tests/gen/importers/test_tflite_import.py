"""Int8 TFLite models as nnfab model graphs: every layer of the graph equals TFLite's reference
kernels (ai-edge-litert's BUILTIN_REF resolver) code for code on the model's real inputs and
seeded ones; operators nnfab does not build yet give one clear error at the CLI."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.gen.importers.tflite import MAX_MULTIPLIERS, load_tflite
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.gen.load import detect_kind
from nnfab.sim.golden.network import trace_network
from nnfab.sim.tflite_reference import reference_tensors

from .test_tflite import KWS, MODELS, _require, seeded_inputs

AD01 = MODELS / "ad01_int8.tflite"


def _interpreter_outputs(path, inputs, tensors):
    """The reference kernels' value of each tensor index in ``tensors``, one flat row per
    input."""
    return {t: v.reshape(len(v), -1) for t, v in reference_tensors(path, inputs, tensors).items()}


def test_ad01_graph_equals_the_reference_kernels_at_every_layer():
    path = _require(AD01)
    assert detect_kind(path) == "tflite"
    model = load_tflite(path)
    description = read_tflite(path)
    windows = np.load(_require(MODELS / "ad01_sample_windows.npy"))
    inputs = np.concatenate([windows, seeded_inputs(description, 1000, seed=17)])
    assert inputs.dtype == np.int8 and len(inputs) == 1196
    trace = trace_network(model, inputs.astype(np.int64))
    ops = description.operators
    reference = _interpreter_outputs(path, inputs, [op.outputs[0] for op in ops])
    for op in ops:
        got = np.asarray(trace[f"fully_connected_{op.index}_requantize"])
        assert np.array_equal(got, reference[op.outputs[0]]), op
    assert model.output_shape == (640,) and str(model.input_format) == "fixed<8,8>"
    # Every layer's reuse factor keeps it within the default multiplier budget, or at one
    # multiplier per output when even R = n_in does not.
    assert all(layer.n_multipliers <= max(MAX_MULTIPLIERS, layer.spec.n_out)
               for layer in model.layers if layer.kind == "dense")


def _pad_model(tmp_path):
    """A model of one PAD operator (read, not built yet)."""
    from .test_tflite_synthetic import ModelWriter

    w = ModelWriter()
    x = w.tensor((1, 2, 2, 3), scales=np.float32(0.1))
    paddings = w.tensor((4, 2), "int32", data=[[0, 0], [1, 1], [1, 1], [0, 0]])
    y = w.tensor((1, 4, 4, 3), scales=np.float32(0.1))
    w.op("PAD", [x, paddings], [y])
    return w.write(tmp_path / "pad.tflite", [x], [y])


NOT_BUILT = ("Operator 0 (PAD): not built yet; nnfab builds TFLite models of FULLY_CONNECTED, "
             "CONV_2D, DEPTHWISE_CONV_2D, RESHAPE, AVERAGE_POOL_2D, MAX_POOL_2D, ADD, SOFTMAX")


def test_operator_not_built_yet(tmp_path):
    with pytest.raises(UnsupportedLayerError, match=f"^{re.escape(NOT_BUILT)}$"):
        load_tflite(_pad_model(tmp_path))


def test_cli_refuses_an_operator_not_built_yet(tmp_path):
    path = _pad_model(tmp_path)
    result = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].endswith(NOT_BUILT)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["kws", "resnet"])
def test_conv_models_graph_equals_the_reference_kernels_at_every_operator(name):
    """KWS (DS-CNN: CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED,
    SOFTMAX) and ResNet-8 (residual ADDs) as whole graphs, on 200 seeded inputs (and KWS's own
    sample input): every operator's output equals the reference kernels'."""
    from .test_tflite import RESNET
    from .test_tflite_ops import ir_tensors

    path = _require({"kws": KWS, "resnet": RESNET}[name])
    model = load_tflite(path)
    description = read_tflite(path)
    inputs = seeded_inputs(description, 200, seed=29)
    if name == "kws":
        inputs = np.concatenate([np.load(_require(MODELS / "kws_sample_input.npy")), inputs])
    trace = trace_network(model, inputs.astype(np.int64))
    reference = _interpreter_outputs(path, inputs, [op.outputs[0] for op in description.operators])
    names = ir_tensors(description, model)
    for op in description.operators:
        got = np.asarray(trace[names[op.outputs[0]]]).reshape(len(inputs), -1)
        assert np.array_equal(got, reference[op.outputs[0]]), (op.index, op.opcode)
    if name == "kws":
        assert int(np.argmax(reference[description.outputs[0]][0])) == 5
