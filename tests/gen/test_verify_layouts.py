"""``nnfab verify`` of a PyTorch-style (NCHW) conv model with ``--inputs`` in NCHW, as the model
file declares them (issue 18): the model file and its build folder, on Verilator; the shape
errors without a simulation."""

import json
import re

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from nnfab.cli import main
from tests.cli_results import assert_verify_passed, without_progress

#: The ONNX input (C, H, W): no two of C, H, W equal, so each layout has its own shape.
SHAPE = (3, 4, 2)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _torch_conv(tmp_path):
    """NCHW input (3, 4, 2) → Conv 2x2 valid (2 channels) → Relu → Flatten (C, H, W order)
    → Gemm to 3 outputs, as torch.onnx exports a small CNN."""
    rng = np.random.default_rng(18)
    arrays = {"w": rng.normal(0, 0.5, (2, 3, 2, 2)), "b": rng.normal(0, 0.1, 2),
              "fc": rng.normal(0, 0.3, (3, 2 * 3 * 1)), "fb": rng.normal(0, 0.1, 3)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(
        nodes, "torch_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()])
    path = tmp_path / "torch_conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.slow
def test_verify_nchw_model_and_build_folder_with_nchw_inputs(tmp_path):
    model = _torch_conv(tmp_path)
    x = np.random.default_rng(1).normal(0, 1.5, (200, *SHAPE))  # (n, C, H, W)
    np.save(tmp_path / "x.npy", x)
    # The classes the ONNX graph itself gives the NCHW inputs: the float model fed the
    # transposed inputs must agree on every one (a wrong transposition would not).
    y = ReferenceEvaluator(str(model)).run(None, {"x": x.astype(np.float32)})[0]
    np.save(tmp_path / "y.npy", np.argmax(y, axis=1))
    result = run("verify", model, "--inputs", tmp_path / "x.npy", "--labels", tmp_path / "y.npy")
    assert_verify_passed(result, 200)
    accuracy = dict(re.findall(r"(float|golden|rtl) ([\d.]+)%", result.output))
    assert accuracy["float"] == "100.00"
    assert accuracy["rtl"] == accuracy["golden"]

    folder = tmp_path / "build"
    assert run("build", model, "-o", folder).exit_code == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [4, 2, 3]
    assert manifest["input"]["layout"] == {"model": "NCHW", "hardware": "NHWC"}
    assert "layout" not in manifest["output"]  # a vector
    assert "NHWC here, NCHW in the model file" in (folder / "report.md").read_text()
    assert_verify_passed(run("verify", folder, "--inputs", tmp_path / "x.npy", "--count", 100), 100)


@pytest.mark.parametrize("build_folder", [False, True])
def test_inputs_of_neither_layout(tmp_path, build_folder):
    model = _torch_conv(tmp_path)
    if build_folder:
        assert run("build", model, "-o", tmp_path / "build").exit_code == 0
        model = tmp_path / "build"
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((5, 4, 3, 2)))
    result = run("verify", model, "--inputs", path)
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (
        f"Error: Inputs file {str(path)!r} of shape (5, 4, 3, 2) does not fit the model's "
        f"input shape; expected (n, 3, 4, 2) in the model file's NCHW layout or (n, 4, 2, 3) "
        f"in nnfab's NHWC\n")
