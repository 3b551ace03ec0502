"""ONNX RNN, LSTM and GRU nodes (written here with onnx.helper): the importer's float model
against onnxruntime, then PTQ and the quantized network against its golden model, bit for
bit."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnfab.errors import UnsupportedLayerError
from nnfab.gen.importers import load

from .test_keras_recurrent import N_IN, STEPS, UNITS, check_quantized

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def onnx_recurrent(tmp_path, op, read_sequence, rng, *, layout=0, **attrs):
    """``x (N, STEPS, N_IN)`` -> op -> Squeeze of num_directions -> ``y``; with ``layout=0``
    (PyTorch's export) Transposes between batch-first and time-major around the node."""
    g = GATES[op]
    weights = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in (
        ("W", rng.normal(0, 0.5, (1, g * UNITS, N_IN))),
        ("R", rng.normal(0, 0.5, (1, g * UNITS, UNITS))),
        ("B", rng.normal(0, 0.3, (1, 2 * g * UNITS))))]
    squeezed = (2 if layout else 1) if read_sequence else (1 if layout else 0)
    weights.append(numpy_helper.from_array(np.array([squeezed]), "axes"))
    if op == "GRU":
        attrs.setdefault("linear_before_reset", 1)
    outputs = ["Y", ""] if read_sequence else ["", "Y_h"]
    transpose = layout == 0
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="to_time_major",
                              perm=[1, 0, 2])] if transpose else []
    nodes += [helper.make_node(op, ["xt" if transpose else "x", "W", "R", "B"], outputs,
                               name="rnn", hidden_size=UNITS, layout=layout, **attrs),
              helper.make_node("Squeeze", [outputs[0] or outputs[1], "axes"],
                               ["s" if transpose and read_sequence else "y"], name="squeeze")]
    if transpose and read_sequence:
        nodes.append(helper.make_node("Transpose", ["s"], ["y"], name="to_batch_first",
                                      perm=[1, 0, 2]))
    out_shape = ["N", STEPS, UNITS] if read_sequence else ["N", UNITS]
    graph = helper.make_graph(
        nodes, op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          ["N", STEPS, N_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    path = tmp_path / f"{op.lower()}_{layout}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("read_sequence", [True, False])
def test_float_recurrent_matches_onnxruntime(tmp_path, op, read_sequence):
    import onnxruntime

    rng = np.random.default_rng(len(op) + read_sequence)
    path = onnx_recurrent(tmp_path, op, read_sequence, rng)
    x = rng.normal(size=(16, STEPS, N_IN)).astype(np.float32)
    want = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})[0]
    got = load(path, kind="onnx").forward(x.astype(np.float64))
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-5  # onnxruntime computes in float32
    # The same weights with layout=1 (batch-first, which onnxruntime does not run).
    rng = np.random.default_rng(len(op) + read_sequence)
    batch_first = load(onnx_recurrent(tmp_path, op, read_sequence, rng, layout=1), kind="onnx")
    assert np.array_equal(batch_first.forward(x.astype(np.float64)), got)


@pytest.mark.parametrize("read_sequence", [True, False])
def test_float_gru_linear_before_reset_0_matches_onnxruntime(tmp_path, read_sequence):
    """ONNX's default GRU (Keras' ``reset_after=False``): both biases outside the product."""
    import onnxruntime

    rng = np.random.default_rng(70 + read_sequence)
    path = onnx_recurrent(tmp_path, "GRU", read_sequence, rng, linear_before_reset=0)
    x = rng.normal(size=(16, STEPS, N_IN)).astype(np.float32)
    want = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})[0]
    model = load(path, kind="onnx")
    assert not model.layers[0].reset_after
    got = model.forward(x.astype(np.float64))
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-5  # onnxruntime computes in float32


def test_quantized_onnx_gru_linear_before_reset_0_engine_equals_golden(tmp_path):
    rng = np.random.default_rng(73)
    check_quantized(onnx_recurrent(tmp_path, "GRU", True, rng, linear_before_reset=0), rng, 73)


def test_quantized_onnx_lstm_engine_equals_golden(tmp_path):
    rng = np.random.default_rng(61)
    check_quantized(onnx_recurrent(tmp_path, "LSTM", False, rng), rng, 61)


@pytest.mark.parametrize("op,attrs,message", [
    ("LSTM", dict(direction="bidirectional"), "Node 'rnn': direction 'bidirectional' (only "
     "'forward') is not supported"),
    ("RNN", dict(activations=["Relu"]), "Node 'rnn': activations ['Relu'] (only ['Tanh']) is "
     "not supported"),
])
def test_unsupported_settings_are_refused(tmp_path, op, attrs, message):
    path = onnx_recurrent(tmp_path, op, False, np.random.default_rng(1), **attrs)
    with pytest.raises(UnsupportedLayerError) as info:
        load(path, kind="onnx")
    assert str(info.value) == message
