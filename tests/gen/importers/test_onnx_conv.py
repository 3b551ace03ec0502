"""ONNX convolution networks: the importer's float model against ``onnx.reference`` (float32
inside ONNX, float64 in nnfab: compared to 1e-5 relative), for Keras' NHWC exports and for
PyTorch-style NCHW graphs whose flatten order differs from nnfab's channels-last one."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from nnfab.gen.float_model import FloatConv2D, FloatFlatten, FloatPool
from nnfab.gen.importers import load

from .conftest import ONNX, need


def _close(got, want):
    scale = np.max(np.abs(want))
    assert np.max(np.abs(got - want)) <= 1e-5 * scale


def test_keras_export_with_transposes_matches_onnx_reference():
    path = need(ONNX / "conv2d_small_keras.onnx")
    model = load(path, kind="onnx")
    assert model.input_shape == (8, 8, 1)
    conv = model.layers[0]
    assert isinstance(conv, FloatConv2D) and conv.padding == "same"
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 1)).astype(np.float32)
    reference = ReferenceEvaluator(str(path))  # its Flatten has axis 0: one image at a time
    want = np.concatenate([reference.run(None, {"conv2d_1_input_0": x[i:i + 1]})[0]
                           for i in range(len(x))])
    _close(model.forward(x.astype(np.float64)), want)


def _pytorch_style_model(tmp_path):
    """NCHW input (2, 6, 6) → Conv 3x3 stride 1 pad 1 → Relu → MaxPool 2 → Flatten → Gemm."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    fc = rng.normal(size=(5, 36)).astype(np.float32)
    fb = rng.normal(size=5).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "torchlike", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fc, "fc"),
                                                     (fb, "fb"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "torchlike.onnx"
    onnx.save(model, str(path))
    return path


def test_nchw_graph_flattens_in_onnx_order(tmp_path):
    path = _pytorch_style_model(tmp_path)
    model = load(path, kind="onnx")
    assert model.input_shape == (6, 6, 2)  # channels-last
    assert [type(layer) for layer in model.layers[2:4]] == [FloatPool, FloatFlatten]
    x = np.random.default_rng(1).normal(size=(32, 2, 6, 6)).astype(np.float32)
    want = ReferenceEvaluator(str(path)).run(None, {"x": x})[0]
    _close(model.forward(np.transpose(x, (0, 2, 3, 1)).astype(np.float64)), want)


@pytest.mark.parametrize("perm", [[0, 2, 1, 3]])
def test_other_transposes_are_rejected(tmp_path, perm):
    from nnfab.errors import UnsupportedLayerError

    path = _pytorch_style_model(tmp_path)
    model = onnx.load(str(path))
    model.graph.node.insert(0, helper.make_node("Transpose", ["x"], ["xt"], name="odd",
                                                perm=perm))
    model.graph.node[1].input[0] = "xt"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedLayerError, match=r"^Node 'odd': Transpose \[0, 2, 1, 3\] "
                                                    r"of a nchw tensor is not supported"):
        load(path, kind="onnx")


def _inference_batchnorm(model):
    """``model`` with each BatchNormalization as the Mul and Add of its inference formula
    (onnx.reference runs a BatchNormalization-9 that has a momentum in training mode)."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            nodes.append(node)
            continue
        eps = next(a.f for a in node.attribute if a.name == "epsilon")
        scale, bias, mean, var = (consts[name].astype(np.float64) for name in node.input[1:5])
        factor = scale / np.sqrt(var + eps)
        shift = bias - mean * factor
        for name, value in ((f"{node.name}_factor", factor), (f"{node.name}_shift", shift)):
            model.graph.initializer.append(numpy_helper.from_array(
                value.astype(np.float32).reshape(-1, 1, 1), name))
        nodes += [helper.make_node("Mul", [node.input[0], f"{node.name}_factor"],
                                   [f"{node.name}_scaled"]),
                  helper.make_node("Add", [f"{node.name}_scaled", f"{node.name}_shift"],
                                   [node.output[0]])]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def test_selu_batchnorm_maxpool_export_matches_onnx_reference():
    path = need(ONNX / "conv2d_small_mp_keras.onnx")
    model = load(path, kind="onnx")
    assert [layer.kind for layer in model.layers] == [
        "conv2d", "activation", "batchnorm", "conv2d", "activation", "pool", "flatten",
        "dense", "activation", "dense", "softmax"]
    x = np.random.default_rng(2).normal(size=(16, 25, 25, 1)).astype(np.float32)
    reference = ReferenceEvaluator(_inference_batchnorm(onnx.load(str(path))))
    want = np.concatenate([reference.run(None, {"input_19_0": x[i:i + 1]})[0]
                           for i in range(len(x))])
    _close(model.forward(x.astype(np.float64)), want)
