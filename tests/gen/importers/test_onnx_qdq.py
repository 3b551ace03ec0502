"""ONNX models quantized by onnxruntime (issue 18): an MLP and a small CNN, float models made
here and quantized by ``onnxruntime.quantization.quantize_static`` with seeded calibration data
(per-channel int8 weights, int8 activations), in both of its forms (QDQ and QOperator).

- nnfab's golden model equals onnxruntime's CPU kernels code for code on 1,000 seeded inputs
  plus edge inputs (saturating both ways, zeros, exact ties of the input quantizer);
- the RTL through ``nnfab verify`` at its defaults (random idle and back-pressure) has 0
  mismatches, from the model file with NCHW float inputs and from a build folder;
- onnxruntime's float32 requantization of accumulators beyond 2**24 becomes exact thresholds;
- what is not built is refused by name."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)

from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.gen.load import load_model
from nnfab.sim.golden.network import run_network
from tests.cli_results import assert_verify_passed

#: The ONNX input without the batch axis: an MLP of Gemm layers, one of MatMul layers (no
#: bias: onnxruntime's QLinearMatMul), a CNN.
SHAPES = {"mlp": (16,), "matmul": (12,), "cnn": (1, 8, 8)}
OUTPUT_STAGES = {"mlp": 2, "matmul": 2, "cnn": 3}
N_RANDOM = 1000


def _float_model(kind, rng):
    def const(name, *shape, std=0.3):
        return numpy_helper.from_array(rng.normal(0, std, shape).astype(np.float32), name)

    if kind == "mlp":
        inits = [const("w1", 32, 16), const("b1", 32, std=0.1), const("w2", 5, 32),
                 const("b2", 5, std=0.1)]
        nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
                 helper.make_node("Relu", ["h"], ["r"]),
                 helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
        n_out = 5
    elif kind == "matmul":
        inits = [const("w1", 12, 24), const("w2", 24, 6)]
        nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
                 helper.make_node("Relu", ["h"], ["r"]),
                 helper.make_node("MatMul", ["r", "w2"], ["y"])]
        n_out = 6
    else:
        inits = [const("w1", 4, 1, 3, 3, std=0.4), const("b1", 4, std=0.1),
                 const("w2", 8, 4, 3, 3), const("b2", 8, std=0.1), const("w3", 10, 32),
                 const("b3", 10, std=0.1)]
        nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c1"], ["r1"]),
                 helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2],
                                  strides=[2, 2]),
                 helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3]),
                 helper.make_node("Relu", ["c2"], ["r2"]),
                 helper.make_node("Flatten", ["r2"], ["f"]),
                 helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
        n_out = 10
    graph = helper.make_graph(
        nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPES[kind]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


class _Calibration(CalibrationDataReader):
    def __init__(self, shape, rng, n=64):
        self._rows = iter({"x": rng.normal(0, 1, (1, *shape)).astype(np.float32)}
                          for _ in range(n))

    def get_next(self):
        return next(self._rows, None)


def _quantized(folder, kind, form, activation_type=QuantType.QInt8):
    rng = np.random.default_rng(18 + len(kind))
    float_path = folder / f"{kind}_float.onnx"
    onnx.save(_float_model(kind, rng), str(float_path))
    path = folder / f"{kind}_{form}.onnx"
    quantize_static(str(float_path), str(path), _Calibration(SHAPES[kind], rng),
                    quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
                    per_channel=True, activation_type=activation_type,
                    weight_type=QuantType.QInt8)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ort_quantized")
    return {(kind, form): _quantized(folder, kind, form)
            for kind in SHAPES for form in ("qdq", "qoperator")}


def _inputs(kind, scale, n=N_RANDOM):
    """Seeded N(0, 1.5) inputs in the model's own layout, then edge rows: zeros, values that
    saturate the input quantizer both ways, and exact ties of ``x / scale`` (k + 1/2)."""
    shape = SHAPES[kind]
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1.5, (n, *shape)).astype(np.float32)
    ties = (rng.integers(-20, 20, (4, *shape)) + 0.5) * np.float32(scale)
    edges = np.stack([np.zeros(shape), np.full(shape, 1e3), np.full(shape, -1e3),
                      np.where(rng.random(shape) < 0.5, 1e3, -1e3)])
    return np.concatenate([x, edges.astype(np.float32), ties.astype(np.float32)])


def _onnxruntime_codes(path, x):
    """onnxruntime's int8 output codes (the last DequantizeLinear undone, checked exact).

    The session keeps the QDQ graph's int8 activations (``session.qdqisint8allowed``). By
    default on x86-64 onnxruntime turns them into uint8 for its u8s8 kernels, which on CPUs
    without VNNI (AVX2 here) saturate pairs of products at 16 bits (onnxruntime #12088): its
    QGemm then differs from the graph's own arithmetic (and from its unoptimized run) by tens of
    codes on ``mlp``: the CPU the test ran on would decide the reference."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    y = np.concatenate([session.run(None, {name: row[None]})[0] for row in x])
    model = onnx.load(str(path))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    last = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][-1]
    scale, zero_point = consts[last.input[1]], int(consts[last.input[2]])
    codes = np.rint(y / scale).astype(np.int64) + zero_point
    assert np.array_equal(((codes - zero_point) * scale).astype(np.float32), y)
    return codes


def _channels_last(x):
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("form", ["qdq", "qoperator"])
def test_golden_equals_onnxruntime(models, kind, form):
    loaded = load_model(models[kind, form])
    quantization = loaded.input_quantization
    assert (quantization.rounding, quantization.zero_point) == ("onnx", quantization.zero_point)
    kinds = [layer.kind for layer in loaded.model.layers]
    assert kinds.count("output_stage") == OUTPUT_STAGES[kind]
    assert "multithreshold" not in kinds
    roundings = {layer.stage.rounding for layer in loaded.model.layers
                 if layer.kind == "output_stage"}
    assert roundings <= {"half_even", "float32"}
    x = _inputs(kind, quantization.scale)
    codes = quantization.codes(_channels_last(x))
    assert {-128, 127} <= set(np.unique(codes).tolist())
    want = _onnxruntime_codes(models[kind, form], x)
    got = np.asarray(run_network(loaded.model, codes)).reshape(want.shape)
    assert np.array_equal(got, want)


def test_input_quantizer_equals_quantize_linear(models):
    """The host's quantization of float inputs is onnxruntime's QuantizeLinear, ties to even."""
    from nnfab.gen.importers.onnx_qdq import onnx_input_quantization

    quantization = onnx_input_quantization(models["mlp", "qdq"])
    x = _inputs("mlp", quantization.scale)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])
    graph = helper.make_graph(
        [node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("q", TensorProto.INT8, list(x.shape))],
        [numpy_helper.from_array(np.float32(quantization.scale), "s"),
         numpy_helper.from_array(np.int8(quantization.zero_point), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0].astype(np.int64)
    assert np.array_equal(quantization.codes(x), want)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.slow
def test_rtl_through_the_cli(models, tmp_path):
    """The CNN in QDQ form from its file with NCHW float inputs (quantized as onnxruntime
    quantizes them), then built and verified from its build folder; the others on random int8
    codes (every code, -128 included)."""
    path = models["cnn", "qdq"]
    scale = load_model(path).input_quantization.scale
    np.save(tmp_path / "x.npy", _inputs("cnn", scale, n=200))
    assert_verify_passed(run("verify", path, "--inputs", tmp_path / "x.npy"), 208)
    folder = tmp_path / "build"
    assert run("build", path, "-o", folder).exit_code == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["input"]["quantization"]["rounding"] == "onnx"
    assert manifest["input"]["layout"] == {"model": "NCHW", "hardware": "NHWC"}
    assert_verify_passed(run("verify", folder, "--inputs", tmp_path / "x.npy", "--count", 100),
                         100)
    for key in [("cnn", "qoperator"), ("mlp", "qdq"), ("mlp", "qoperator"),
                ("matmul", "qdq")]:
        assert_verify_passed(run("verify", models[key], "--random", 300), 300)


def _qgemm_beyond_2_24(tmp_path):
    """QuantizeLinear -> QGemm (com.microsoft) -> DequantizeLinear whose accumulators lie
    beyond 2**24 (a large int32 bias) with an output scale of about 7e-6: onnxruntime rounds
    them to float32 before the multiplication."""
    rng = np.random.default_rng(24)
    n_in, n_out = 64, 6
    arrays = {
        "xs": np.float32(0.05), "xz": np.int8(0),
        "w": rng.integers(-127, 128, (n_out, n_in)).astype(np.int8),
        "ws": np.full(n_out, 0.01, np.float32), "wz": np.zeros(n_out, np.int8),
        "c": rng.integers(30_000_000, 31_000_000, n_out).astype(np.int32),
        "ys": np.float32(0.05 * 0.01 / 7e-6), "yz": np.int8(-128)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QGemm", ["xq", "xs", "xz", "w", "ws", "wz", "c", "ys", "yz"],
                              ["yq"], domain="com.microsoft", transB=1),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "qgemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path = tmp_path / "qgemm.onnx"
    onnx.save(model, str(path))
    return path


def test_float32_rounding_of_large_accumulators_becomes_thresholds(tmp_path):
    path = _qgemm_beyond_2_24(tmp_path)
    loaded = load_model(path)
    layer = loaded.model.layers[-1]
    assert layer.kind == "multithreshold" and "bisection" in layer.proof
    rng = np.random.default_rng(25)
    x = rng.uniform(-6.4, 6.35, (N_RANDOM, 64)).astype(np.float32)
    x[0], x[1] = 6.35, -6.4
    want = _onnxruntime_codes(path, x)
    assert len(np.unique(want)) > 5
    got = np.asarray(run_network(loaded.model, loaded.input_quantization.codes(x)))
    assert np.array_equal(got, want)


def test_refusals_name_the_node(tmp_path):
    with pytest.raises(UnsupportedLayerError, match=r"uint8 codes; nnfab builds int8 "
                                                    r"activations and weights \(quantize_static "
                                                    r"with activation_type=QuantType.QInt8"):
        load_model(_quantized(tmp_path, "mlp", "qdq", activation_type=QuantType.QUInt8))
    # A float operator nnfab does not build between quantizers (Sigmoid).
    rng = np.random.default_rng(3)
    arrays = {"s": np.float32(0.02), "z": np.int8(0), "w": rng.integers(-9, 9, (3, 4)).astype(
        np.int8), "ws": np.float32(0.1)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"]),
             helper.make_node("Sigmoid", ["xf"], ["h"], name="sig"),
             helper.make_node("QuantizeLinear", ["h", "s", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4])],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in arrays.items()])
    path = tmp_path / "sigmoid.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    result = run("build", path, "-o", tmp_path / "out")
    assert result.exit_code != 0
    assert "Node 'sig' (Sigmoid): not built; nnfab builds QuantizeLinear, DequantizeLinear, " \
        "QLinearConv" in result.output
    assert not (tmp_path / "out").exists()
