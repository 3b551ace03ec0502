"""The layouts an ONNX file declares for its frame input and output
(:func:`nnfab.gen.importers.onnx.declared_layouts`), beside the imported channels-last model."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnfab.gen.importers.onnx import declared_layouts
from nnfab.gen.load import load_model
from nnfab.gen.tensor_layout import TensorLayout

from .conftest import ONNX, need
from .test_onnx_conv import _pytorch_style_model

NCHW, NHWC = TensorLayout("NCHW"), TensorLayout("NHWC")


def _conv_only(tmp_path, shape, transposed):
    """A 1x1 Conv of a 4-D input of ``shape`` (without the batch): NCHW, or NHWC transposed to
    NCHW first and back after (a Keras export)."""
    c = shape[0] if not transposed else shape[2]
    w = numpy_helper.from_array(np.ones((c, c, 1, 1), np.float32), "w")
    nodes, first = [], "x"
    if transposed:
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]))
        first = "xt"
    nodes.append(helper.make_node("Conv", [first, "w"], ["c"], kernel_shape=[1, 1]))
    last = "c"
    if transposed:
        nodes.append(helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 3, 1]))
        last = "ct"
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, *shape])], [w])
    path = tmp_path / f"conv_{'nhwc' if transposed else 'nchw'}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_pytorch_export_declares_nchw_input(tmp_path):
    path = _pytorch_style_model(tmp_path)
    loaded = load_model(path)
    assert loaded.model.input_shape == (6, 6, 2)
    assert (loaded.input_layout, loaded.output_layout) == (NCHW, None)


def test_keras_export_declares_nhwc_input():
    loaded = load_model(need(ONNX / "conv2d_small_keras.onnx"))
    assert loaded.model.input_shape == (8, 8, 1)
    assert (loaded.input_layout, loaded.output_layout) == (NHWC, None)


def test_frame_outputs_and_shapes_of_both_layouts(tmp_path):
    # (2, 5, 5) NCHW: frames (5, 5, 2), output NCHW too.
    assert declared_layouts(_conv_only(tmp_path, (2, 5, 5), False), (5, 5, 2), (5, 5, 2)) == \
        (NCHW, NCHW)
    # C == H == W: the first Transpose tells NHWC from NCHW; the output follows the input.
    assert declared_layouts(_conv_only(tmp_path, (3, 3, 3), False), (3, 3, 3), (3, 3, 3)) == \
        (NCHW, NCHW)
    assert declared_layouts(_conv_only(tmp_path, (3, 3, 3), True), (3, 3, 3), (3, 3, 3)) == \
        (NHWC, NHWC)
    # Vector outputs and inputs have no layout.
    assert declared_layouts(_conv_only(tmp_path, (2, 5, 5), False), (5, 5, 2), (50,)) == \
        (NCHW, None)
