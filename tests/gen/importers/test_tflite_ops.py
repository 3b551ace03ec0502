"""TFLite's AVERAGE_POOL_2D, MAX_POOL_2D, ADD, SOFTMAX and RESHAPE as layers of nnfab's model
graph, on small synthetic .tflite files: every operator's output in the loaded graph
(:func:`~nnfab.sim.golden.network.trace_network`) equals TFLite's reference kernels
(``BUILTIN_REF``, ``experimental_preserve_all_tensors``) code for code on seeded inputs and
extremes; the graphs' networks keep every transfer under idle cycles and back-pressure
(Amaranth's simulator), and one model holding every operator passes ``verify`` on Verilator
with the command line's stall defaults. Refusals give one clear message each."""

import json

import numpy as np
import pytest

from nnfab.errors import UnsupportedLayerError
from nnfab.gen.importers.tflite import load_tflite
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.sim.golden.network import trace_network

from ...hdl.test_stalls import check_model
from .test_tflite_import import _interpreter_outputs
from .test_tflite_synthetic import ModelWriter, _weights

RELU, RELU_N1_TO_1, RELU6 = 1, 2, 3


def _fc(w, rng, source, n_in, n_out, s_in, s_out, zp_out, activation=0):
    """A FULLY_CONNECTED operator of seeded weights from tensor ``source``; its output."""
    s_w = np.float32(0.004)
    k = w.tensor((n_out, n_in), scales=s_w, data=_weights(rng, (n_out, n_in)))
    b = w.tensor((n_out,), "int32", scales=np.float32(s_in * s_w),
                 data=rng.integers(-3000, 3000, n_out))
    y = w.tensor((1, n_out), scales=np.float32(s_out), zero_points=zp_out)
    w.op("FULLY_CONNECTED", [source, k, b], [y], fused_activation_function=activation)
    return y


def _softmax(w, source, n, beta):
    y = w.tensor((1, n), scales=np.float32(1 / 256), zero_points=-128)
    w.op("SOFTMAX", [source], [y], beta=beta)
    return y


def all_ops_model(path):
    """AVERAGE_POOL_2D 2x2/1 VALID (windows), MAX_POOL_2D 3x3/2 SAME with RELU6 (a clamp at
    both ends), MAX_POOL_2D 2x2/1 SAME of that, ADD of the two frames with RELU (a join of
    pixel streams, as ResNet's residuals), AVERAGE_POOL_2D of the whole 3x3 map, RESHAPE, two
    FULLY_CONNECTED from one tensor, ADD of the branches, SOFTMAX: input (1, 6, 7, 3), output
    (1, 5)."""
    rng = np.random.default_rng(31)
    w = ModelWriter()
    s_in = np.float32(0.1)
    x = w.tensor((1, 6, 7, 3), scales=s_in, zero_points=-20)
    windows = w.tensor((1, 5, 6, 3), scales=s_in, zero_points=-20)
    w.op("AVERAGE_POOL_2D", [x], [windows], padding=1, stride_w=1, stride_h=1, filter_width=2,
         filter_height=2, fused_activation_function=0)
    pooled = w.tensor((1, 3, 3, 3), scales=s_in, zero_points=-20)
    w.op("MAX_POOL_2D", [windows], [pooled], padding=0, stride_w=2, stride_h=2, filter_width=3,
         filter_height=3, fused_activation_function=RELU6)
    again = w.tensor((1, 3, 3, 3), scales=s_in, zero_points=-20)
    w.op("MAX_POOL_2D", [pooled], [again], padding=0, stride_w=1, stride_h=1, filter_width=2,
         filter_height=2, fused_activation_function=0)
    s_sum = np.float32(0.15)
    frames = w.tensor((1, 3, 3, 3), scales=s_sum, zero_points=-60)
    w.op("ADD", [pooled, again], [frames], fused_activation_function=RELU)
    average = w.tensor((1, 1, 1, 3), scales=s_sum, zero_points=-60)
    w.op("AVERAGE_POOL_2D", [frames], [average], padding=1, stride_w=1, stride_h=1,
         filter_width=3, filter_height=3, fused_activation_function=0)
    shape = w.tensor((2,), "int32", data=[-1, 3])
    flat = w.tensor((1, 3), scales=s_sum, zero_points=-60)
    w.op("RESHAPE", [average, shape], [flat], new_shape=[-1, 3])
    a = _fc(w, rng, flat, 3, 5, s_sum, 0.05, 4)
    b = _fc(w, rng, flat, 3, 5, s_sum, 0.08, -9)
    total = w.tensor((1, 5), scales=np.float32(0.09), zero_points=2)
    w.op("ADD", [a, b], [total], fused_activation_function=0)
    out = _softmax(w, total, 5, 0.8)
    return w.write(path, [x], [out])


def residual_model(path):
    """A residual block of vectors: two FULLY_CONNECTED from the input, ADD of them, ADD of
    the input and that sum with RELU (a skip around two layers), FULLY_CONNECTED."""
    rng = np.random.default_rng(32)
    w = ModelWriter()
    s_in = np.float32(0.07)
    x = w.tensor((1, 4), scales=s_in, zero_points=-11)
    a = _fc(w, rng, x, 4, 4, s_in, 0.05, 3)
    b = _fc(w, rng, x, 4, 4, s_in, 0.03, -5, activation=RELU)
    ab = w.tensor((1, 4), scales=np.float32(0.08), zero_points=7)
    w.op("ADD", [a, b], [ab], fused_activation_function=0)
    skip = w.tensor((1, 4), scales=np.float32(0.1), zero_points=-3)
    w.op("ADD", [x, ab], [skip], fused_activation_function=RELU)
    out = _fc(w, rng, skip, 4, 3, 0.1, 0.2, 0)
    return w.write(path, [x], [out])


def pools_model(path):
    """AVERAGE_POOL_2D 2x3/1 VALID (a windowed average: sums of both signs, ties), MAX_POOL_2D
    2x2/2 VALID without activation (a plain ``pool`` layer) on an odd map, the global
    AVERAGE_POOL_2D of its 2x2 output with RELU_N1_TO_1 (a clamp at both ends), RESHAPE."""
    w = ModelWriter()
    s = np.float32(0.009)
    x = w.tensor((1, 6, 7, 2), scales=s, zero_points=6)
    windows = w.tensor((1, 5, 5, 2), scales=s, zero_points=6)
    w.op("AVERAGE_POOL_2D", [x], [windows], padding=1, stride_w=1, stride_h=1, filter_width=3,
         filter_height=2, fused_activation_function=0)
    y = w.tensor((1, 2, 2, 2), scales=s, zero_points=6)
    w.op("MAX_POOL_2D", [windows], [y], padding=1, stride_w=2, stride_h=2, filter_width=2,
         filter_height=2, fused_activation_function=0)
    average = w.tensor((1, 1, 1, 2), scales=s, zero_points=6)
    w.op("AVERAGE_POOL_2D", [y], [average], padding=1, stride_w=1, stride_h=1,
         filter_width=2, filter_height=2, fused_activation_function=RELU_N1_TO_1)
    shape = w.tensor((2,), "int32", data=[-1, 2])
    flat = w.tensor((1, 2), scales=s, zero_points=6)
    w.op("RESHAPE", [average, shape], [flat], new_shape=[-1, 2])
    return w.write(path, [x], [flat])


MODELS = {"all_ops": all_ops_model, "residual": residual_model, "pools": pools_model}


def seeded_int8(shape, n, seed):
    """``n`` seeded int8 inputs, the first three all -128, all 127 and alternating."""
    x = np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)
    x[0], x[1] = -128, 127
    x[2].reshape(-1)[::2], x[2].reshape(-1)[1::2] = -128, 127
    return x


def ir_tensors(description, model):
    """The IR tensor (layer name) holding each TFLite operator's output: the last layer the
    handler made for it, or for a RESHAPE that made none, its input's."""
    names = [layer.name for layer in model.layers]
    of = {description.inputs[0]: "input"}
    for op in description.operators:
        prefix = f"{op.opcode.lower()}_{op.index}"
        made = [n for n in names if n == prefix or n.startswith(prefix + "_")]
        of[op.outputs[0]] = made[-1] if made else of[op.inputs[0]]
    return of


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_equals_the_reference_kernels_at_every_operator(name, tmp_path):
    path = MODELS[name](tmp_path / f"{name}.tflite")
    description = read_tflite(path)
    model = load_tflite(path)
    x = seeded_int8(model.input_shape, 300, seed=len(name))
    trace = trace_network(model, x.astype(np.int64))
    tensors = [op.outputs[0] for op in description.operators]
    reference = _interpreter_outputs(path, x, tensors)
    of = ir_tensors(description, model)
    for op in description.operators:
        got = np.asarray(trace[of[op.outputs[0]]]).reshape(len(x), -1)
        mismatches = int(np.count_nonzero(got != reference[op.outputs[0]]))
        assert mismatches == 0, (op.index, op.opcode, mismatches)
    kinds = {layer.kind for layer in model.layers}
    expected = {"all_ops": {"pool", "output_stage", "tflite_average_pool", "dense",
                            "tflite_add", "tflite_softmax"},
                "residual": {"dense", "output_stage", "tflite_add"},
                "pools": {"pool", "output_stage", "tflite_average_pool"}}[name]
    assert kinds == expected


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_network_under_stalls(name, tmp_path):
    model = load_tflite(MODELS[name](tmp_path / f"{name}.tflite"))
    check_model(model, 41)


@pytest.mark.slow
def test_all_ops_rtl_on_verilator(tmp_path):
    """One model holding every operator through ``nnfab verify`` with the model's own int8
    inputs (NHWC .npy): the command line's passes (shift-add fusion) and stall defaults
    (full rate, then idle cycles and back-pressure at both ends), Verilator, 0 mismatches."""
    from click.testing import CliRunner

    from nnfab.cli import main

    path = all_ops_model(tmp_path / "all_ops.tflite")
    np.save(tmp_path / "x.npy", seeded_int8((6, 7, 3), 60, seed=7))
    result = CliRunner().invoke(main, ["verify", str(path), "--inputs", str(tmp_path / "x.npy")])
    assert result.exit_code == 0, result.output
    assert "all_ops: 60 vectors tried\n0 mismatches\n" in result.output
    assert result.output.rstrip().endswith("PASS")
    # Real values (floats) through a build folder: quantized as TFLite's QUANTIZE does, with
    # the scale and zero point the manifest records (the same Verilog: both caches hit).
    floats = float_inputs((6, 7, 3), 40, scale=0.1, zero_point=-20)
    np.save(tmp_path / "f.npy", floats)
    result = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["input"]["quantization"] == {"scale": float(np.float32(0.1)),
                                                 "zero_point": -20}
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "out"), "--inputs",
                                       str(tmp_path / "f.npy")])
    assert result.exit_code == 0, result.output
    assert "holds floats: quantized to the int8 input as TFLite's QUANTIZE does (scale " \
        f"{float(np.float32(0.1))!r}, zero point -20)" in result.output
    assert "all_ops: 40 vectors tried\n0 mismatches\n" in result.output
    # --random: uniform int8 codes for a TFLite model (random_inputs), again 0 mismatches.
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "out"), "--random", "50"])
    assert result.exit_code == 0, result.output
    assert "all_ops: 50 vectors tried\n0 mismatches\n" in result.output


def float_inputs(shape, n, *, scale, zero_point, seed=5):
    """``n`` seeded float32 inputs around int8 ``scale`` and ``zero_point``: the first rows
    exactly on codes, halfway between codes (ties, both signs), beyond both ends, and zeros of
    both signs; the rest N(0, 3)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 3.0, (n, *shape)).astype(np.float32)
    codes = rng.integers(-128, 128, (4, *shape))
    x[0] = np.float32(scale) * (codes[0] - zero_point)
    x[1] = np.float32(scale) * (codes[1] - zero_point + 0.5)
    x[2] = np.float32(scale) * (codes[2] - zero_point - 0.5)
    x[3] = np.where(codes[3] > 0, 1e4, -1e4)
    x[4], x[5] = 0.0, -0.0
    return x


def test_float_inputs_equal_tflites_quantize(tmp_path):
    """``--inputs`` of floats for an int8 TFLite model: the codes equal TFLite's reference
    QUANTIZE (float32 to int8, ``BUILTIN_REF``) of the same values with the model's input scale
    and zero point, ties, clamping and signed zeros included; integer arrays pass unchanged;
    ``--random`` draws all 256 int8 codes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from nnfab.cli.commands import load_inputs, random_inputs
    from nnfab.gen.input_quantization import tflite_input_quantization

    quantization = tflite_input_quantization(read_tflite(all_ops_model(tmp_path / "a.tflite")))
    assert quantization.as_dict() == {"scale": float(np.float32(0.1)), "zero_point": -20}
    w = ModelWriter()
    x = w.tensor((1, 6, 7, 3), "float32")
    y = w.tensor((1, 6, 7, 3), scales=np.float32(0.1), zero_points=-20)
    w.op("QUANTIZE", [x], [y])
    path = w.write(tmp_path / "quantize.tflite", [x], [y])
    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    floats = float_inputs((6, 7, 3), 200, scale=0.1, zero_point=-20)
    expected = []
    for row in floats:
        interpreter.set_tensor(x, row[None])
        interpreter.invoke()
        expected.append(interpreter.get_tensor(y)[0])
    np.save(tmp_path / "f.npy", floats)
    codes = load_inputs(tmp_path / "f.npy", (6, 7, 3), None, quantization)
    assert codes.dtype == np.int64
    assert np.array_equal(codes, np.array(expected, dtype=np.int64))
    assert {-128, 127} <= set(np.unique(codes[3]))
    drawn = random_inputs(np.random.default_rng(0), 100, (6, 7, 3), quantization)
    assert drawn.dtype.kind == "i" and drawn.min() == -128 and drawn.max() == 127
    assert len(np.unique(drawn)) == 256
    np.save(tmp_path / "i.npy", np.array(expected))
    assert np.array_equal(load_inputs(tmp_path / "i.npy", (6, 7, 3), None, quantization),
                          np.array(expected))


def _write_one(tmp_path, opcode, in_shape, out_shape, *, out_scale=0.1, out_zero_point=0,
               **options):
    w = ModelWriter()
    x = w.tensor(in_shape, scales=np.float32(0.1))
    y = w.tensor(out_shape, scales=np.float32(out_scale), zero_points=out_zero_point)
    w.op(opcode, [x], [y], **options)
    return w.write(tmp_path / "one.tflite", [x], [y])


def test_refuses_a_windowed_average_with_same_padding(tmp_path):
    path = _write_one(tmp_path, "AVERAGE_POOL_2D", (1, 4, 4, 2), (1, 2, 2, 2), padding=0,
                      stride_w=2, stride_h=2, filter_width=3, filter_height=3)
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(AVERAGE_POOL_2D\): SAME padding of a 3x3 average "
                             r"over a 4x4 map; nnfab builds the global average \(filter = the "
                             r"whole map\) and VALID windows$"):
        load_tflite(path)


def test_refuses_a_softmax_of_another_output_scale(tmp_path):
    path = _write_one(tmp_path, "SOFTMAX", (1, 4), (1, 4), out_scale=0.1, beta=1.0)
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(SOFTMAX\): output scale 0\.10000000149011612 and "
                             r"zero point 0; TFLite's int8 softmax needs 1/256 and -128$"):
        load_tflite(path)


def test_refuses_a_constant_operand_of_add(tmp_path):
    w = ModelWriter()
    x = w.tensor((1, 4), scales=np.float32(0.1))
    c = w.tensor((1, 4), scales=np.float32(0.1), data=[[1, 2, 3, 4]])
    y = w.tensor((1, 4), scales=np.float32(0.2))
    w.op("ADD", [x, c], [y], fused_activation_function=0)
    path = w.write(tmp_path / "add_constant.tflite", [x], [y])
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(ADD\): input 1 't1' is a constant; nnfab adds two "
                             r"computed tensors$"):
        load_tflite(path)


def test_refuses_an_add_of_a_tensor_to_itself(tmp_path):
    w = ModelWriter()
    x = w.tensor((1, 4), scales=np.float32(0.1))
    y = w.tensor((1, 4), scales=np.float32(0.2))
    w.op("ADD", [x, x], [y], fused_activation_function=0)
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(ADD\): adds tensor 't0' to itself; nnfab adds two "
                             r"different tensors$"):
        load_tflite(w.write(tmp_path / "add_self.tflite", [x], [y]))


def test_refuses_an_add_with_broadcasting(tmp_path):
    w = ModelWriter()
    x = w.tensor((1, 2, 2, 4), scales=np.float32(0.1))
    pooled = w.tensor((1, 1, 1, 4), scales=np.float32(0.1))
    w.op("AVERAGE_POOL_2D", [x], [pooled], padding=1, stride_w=1, stride_h=1, filter_width=2,
         filter_height=2, fused_activation_function=0)
    y = w.tensor((1, 2, 2, 4), scales=np.float32(0.2))
    w.op("ADD", [x, pooled], [y], fused_activation_function=0)
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 1 \(ADD\): adds shapes \(2, 2, 4\) and \(4,\); nnfab "
                             r"adds tensors of one shape \(no broadcasting\)$"):
        load_tflite(w.write(tmp_path / "add_broadcast.tflite", [x], [y]))


def test_refuses_a_reshape_of_a_vector_to_a_frame(tmp_path):
    w = ModelWriter()
    x = w.tensor((1, 8), scales=np.float32(0.1))
    shape = w.tensor((4,), "int32", data=[1, 2, 2, 2])
    y = w.tensor((1, 2, 2, 2), scales=np.float32(0.1))
    w.op("RESHAPE", [x, shape], [y], new_shape=[1, 2, 2, 2])
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(RESHAPE\): from \(8,\) to \(2, 2, 2\); nnfab builds "
                             r"reshapes of \(H, W, C\) frames to one vector, or to the same "
                             r"shape$"):
        load_tflite(w.write(tmp_path / "reshape.tflite", [x], [y]))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 6, 9, 12, 25, 125])
def test_windowed_average_format_rounds_as_tflite(count):
    """The windowed average's output format, ``fixed<8,8,RND_INF,SAT>``, divides every sum of
    ``count`` int8 codes as ``reference_integer_ops::AveragePool`` (half away from zero)."""
    from nnfab.casts import divide_cast
    from nnfab.fixed import FixedFormat
    from nnfab.sim.golden.tflite import average_int8

    sums = np.arange(-128 * count, 127 * count + 1)
    fmt = FixedFormat(8, 8, rounding="RND_INF", overflow="SAT")
    got = divide_cast(sums, FixedFormat(20, 20), count, fmt).astype(np.int64)
    assert np.array_equal(got, average_int8(sums, count))
