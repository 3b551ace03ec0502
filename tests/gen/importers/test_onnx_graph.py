"""Float ONNX graphs with branches, built here with ``onnx.helper``: a residual convolution
block (``Add`` of computed tensors), a ``Concat`` of branches, nearest ``Resize`` and an MLP
whose skip is a ``Sum``. The float model must equal onnxruntime's evaluation of the same file
(float64 against float32: a float reference, not codes), and PTQ must build the graph."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnfab.errors import UnsupportedLayerError
from nnfab.gen.importers import load
from nnfab.gen.load import load_model

ort = pytest.importorskip("onnxruntime")


def _save(tmp_path, name, nodes, inputs, output, initializers):
    graph = helper.make_graph(nodes, name, inputs, [output],
                              [numpy_helper.from_array(v.astype(np.float32), k)
                               for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _image(name, c, h, w):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, c, h, w])


def residual_block(tmp_path, rng):
    """PyTorch-style NCHW: conv -> relu -> conv; add(conv2, x) -> relu -> concat(., up(pool))."""
    c, h, w = 3, 6, 8
    init = {"w1": rng.normal(0, 0.4, (c, c, 3, 3)), "b1": rng.normal(0, 0.1, c),
            "w2": rng.normal(0, 0.4, (c, c, 3, 3)), "b2": rng.normal(0, 0.1, c),
            "scales": np.array([1, 1, 2, 2], dtype=np.float64),
            "roi": np.zeros(0)}
    same = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", **same),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", **same),
             helper.make_node("Add", ["c2", "x"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
             helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Resize", ["p", "roi", "scales"], ["u"], name="up",
                              mode="nearest", coordinate_transformation_mode="asymmetric",
                              nearest_mode="floor"),
             helper.make_node("Concat", ["r2", "u"], ["y"], name="cat", axis=1)]
    return _save(tmp_path, "residual_block", nodes, [_image("x", c, h, w)],
                 _image("y", 2 * c, h, w), init), (h, w, c)


def sum_mlp(tmp_path, rng):
    n = 6
    init = {"w1": rng.normal(0, 0.5, (n, n)), "b1": rng.normal(0, 0.1, n),
            "w2": rng.normal(0, 0.5, (n, 4)), "b2": rng.normal(0, 0.1, 4)}
    vec = lambda name, k: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, k])
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], name="fc1_bias"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("Sum", ["r1", "x", "a1"], ["s"], name="sum"),
             helper.make_node("Gemm", ["s", "w2", "b2"], ["y"], name="fc2")]
    return _save(tmp_path, "sum_mlp", nodes, [vec("x", n)], vec("y", 4), init), (n,)


@pytest.mark.parametrize("make", [residual_block, sum_mlp])
def test_float_graph_equals_onnxruntime(tmp_path, make):
    rng = np.random.default_rng(4)
    path, shape = make(tmp_path, rng)
    model = load(path, kind="onnx")
    x = rng.normal(size=(5, *shape))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = x.transpose(0, 3, 1, 2) if len(shape) == 3 else x
    want = np.concatenate([session.run(None, {"x": feed[k:k + 1].astype(np.float32)})[0]
                           for k in range(len(x))])
    if len(shape) == 3:
        want = want.transpose(0, 2, 3, 1)
    assert np.max(np.abs(model.forward(x) - want)) < 1e-4
    quantized = load_model(path).model
    joins = [layer for layer in quantized.layers if len(layer.inputs) > 1]
    assert joins


def test_residual_block_graph_layers(tmp_path):
    path, _ = residual_block(tmp_path, np.random.default_rng(4))
    model = load(path, kind="onnx")
    assert [(layer.kind, layer.inputs) for layer in model.layers] == [
        ("conv2d", ("input",)), ("activation", ("conv1",)), ("conv2d", ("relu1",)),
        ("add", ("conv2", "input")), ("activation", ("skip",)), ("pool", ("input",)),
        ("upsample", ("pool",)), ("concatenate", ("relu2", "up"))]


def test_resize_modes_other_than_nearest_floor_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    path, _ = residual_block(tmp_path, rng)
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.op_type == "Resize")
    for attr in node.attribute:
        if attr.name == "mode":
            attr.s = b"linear"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedLayerError) as info:
        load(path, kind="onnx")
    assert str(info.value) == (
        "Node 'up': Resize with mode 'linear', coordinate_transformation_mode 'asymmetric' "
        "and nearest_mode 'floor' is not supported; nnfab imports nearest-neighbour "
        "upsampling ('nearest', 'asymmetric', 'floor')")
