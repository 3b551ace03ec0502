"""hls4ml mode imports an ONNX graph that is one chain of nodes: a graph that branches is refused
by node, through ``nnfab build --hls4ml-config`` and :func:`~nnfab.gen.hls4ml.load_hls4ml`,
which it calls; a node that reads a second tensor where its operator takes a constant is
refused by its operator's message."""

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.gen.hls4ml import load_hls4ml
from tests.cli_results import without_progress


def _config(tmp_path, name, nodes, outputs):
    """An hls4ml config of the float ONNX model ``nodes`` with input ``x`` of 8 features,
    constants ``w1`` (8 x 8) and ``w2`` (8 x 4), and ``outputs`` as ``(name, features)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    constants = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
                 for name, shape in (("w1", (8, 8)), ("w2", (8, 4)))]

    def vector(tensor, n):
        return helper.make_tensor_value_info(tensor, TensorProto.FLOAT, [1, n])

    graph = helper.make_graph(nodes, name, [vector("x", 8)],
                              [vector(tensor, n) for tensor, n in outputs], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / f"{name}.onnx")
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"OnnxModel": str(tmp_path / f"{name}.onnx"),
                                    "IOType": "io_parallel",
                                    "HLSConfig": {"Model": {"Precision": "ap_fixed<16,6>",
                                                            "ReuseFactor": 1}}}))
    return path


def test_branched_graph_is_refused_as_not_one_chain(tmp_path):
    """Two heads on the input: ``fc2`` reads ``x``, not the ReLU's output before it (without the
    check, fc2 would have been built on the ReLU's output, a different model)."""
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("MatMul", ["x", "w2"], ["y"], name="fc2")]
    path = _config(tmp_path, "two_heads", nodes, [("r", 8), ("y", 4)])
    message = ("Node 'fc2': takes ['x'], not the output of the node before it ('r'); nnfab "
               "imports single-chain graphs only")
    with pytest.raises(UnsupportedLayerError) as info:
        load_hls4ml(path)
    assert str(info.value) == message
    result = CliRunner().invoke(main, ["build", "--hls4ml-config", str(path), "-o",
                                       str(tmp_path / "build")])
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == f"Error: {message}\n"
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("operands", [["r", "h"], ["h", "r"]], ids=["main-first", "skip-first"])
def test_add_of_two_tensors_is_refused_by_its_own_message(operands, tmp_path):
    """A residual Add reads the ReLU's output and the MatMul's: the Add's refusal (it takes a
    constant bias), not the chain's, whichever operand comes first."""
    from onnx import helper

    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Add", operands, ["s"], name="skip")]
    path = _config(tmp_path, "residual", nodes, [("s", 8)])
    with pytest.raises(UnsupportedLayerError) as info:
        load_hls4ml(path)
    assert str(info.value) == "Node 'Add_0': Add of two tensors is not supported; only of a " \
                              "constant"
