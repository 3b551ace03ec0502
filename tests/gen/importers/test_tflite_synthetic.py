"""Operator settings MLPerf Tiny's models do not use, on small .tflite files written here with
the ``tflite`` package's flatbuffer builders: golden equals TFLite's reference kernels
(``BUILTIN_REF``) at every computed tensor.

Covered: QUANTIZE (float32 in) and DEQUANTIZE (float32 out) at the boundaries, CONV_2D with
VALID padding, dilation and RELU6, DEPTHWISE_CONV_2D with depth multiplier 2 and SAME padding,
AVERAGE_POOL_2D and MAX_POOL_2D with SAME padding (clipped windows, positive and negative
sums), PAD, RESHAPE, FULLY_CONNECTED with RELU_N1_TO_1, SOFTMAX with beta 0.7, ADD of two
graph inputs with broadcasting and of a constant.
"""

import importlib

import flatbuffers
import numpy as np
import pytest

from nnfab.errors import UnsupportedLayerError
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.sim.golden.tflite import run_tflite

_TYPES = {"float32": 0, "int32": 2, "int8": 9}
_OPCODES = {"ADD": (0, 2), "AVERAGE_POOL_2D": (1, 2), "CONV_2D": (3, 3),
            "DEPTHWISE_CONV_2D": (4, 3), "DEQUANTIZE": (6, 2), "FULLY_CONNECTED": (9, 4),
            "MAX_POOL_2D": (17, 2), "RESHAPE": (22, 1), "SOFTMAX": (25, 2), "PAD": (34, 2),
            "QUANTIZE": (114, 2)}
#: Options table of each operator: (table name, BuiltinOptions value).
_OPTIONS = {"CONV_2D": ("Conv2DOptions", 1), "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", 2),
            "AVERAGE_POOL_2D": ("Pool2DOptions", 5), "MAX_POOL_2D": ("Pool2DOptions", 5),
            "FULLY_CONNECTED": ("FullyConnectedOptions", 8), "SOFTMAX": ("SoftmaxOptions", 9),
            "ADD": ("AddOptions", 11), "RESHAPE": ("ReshapeOptions", 17),
            "PAD": ("PadOptions", 22), "QUANTIZE": ("QuantizeOptions", 0),
            "DEQUANTIZE": ("DequantizeOptions", 0)}


def _module(name):
    return importlib.import_module(f"tflite.{name}")


class ModelWriter:
    """A one-subgraph .tflite file, tensor by tensor and operator by operator."""

    def __init__(self):
        self.tensors = []
        self.buffers = [b""]
        self.operators = []

    def tensor(self, shape, dtype="int8", scales=None, zero_points=None, data=None, axis=0):
        """Add a tensor; return its index. ``scales`` float32 (one or per channel)."""
        buffer = 0
        if data is not None:
            data = np.asarray(data, dtype={"int8": "<i1", "int32": "<i4", "float32": "<f4"}[dtype])
            assert data.shape == tuple(shape)
            self.buffers.append(data.tobytes())
            buffer = len(self.buffers) - 1
        if scales is not None:
            scales = np.atleast_1d(np.asarray(scales, dtype=np.float32))
            zero_points = np.zeros(len(scales), np.int64) if zero_points is None else \
                np.atleast_1d(np.asarray(zero_points, dtype=np.int64))
        self.tensors.append((tuple(shape), dtype, scales, zero_points, buffer, axis))
        return len(self.tensors) - 1

    def op(self, opcode, inputs, outputs, **options):
        self.operators.append((opcode, list(inputs), list(outputs), options))

    def write(self, path, inputs, outputs):
        b = flatbuffers.Builder(1024)
        buffer_offsets = []
        for data in self.buffers:
            vector = None
            if data:
                b.StartVector(1, len(data), 16)
                b.head -= len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                b.vectorNumElems = len(data)
                vector = b.EndVector()
            _module("Buffer").BufferStart(b)
            if vector is not None:
                _module("Buffer").BufferAddData(b, vector)
            buffer_offsets.append(_module("Buffer").BufferEnd(b))
        tensor_offsets = []
        for i, (shape, dtype, scales, zero_points, buffer, axis) in enumerate(self.tensors):
            name = b.CreateString(f"t{i}")
            shape_vector = b.CreateNumpyVector(np.asarray(shape, dtype=np.int32))
            quantization = None
            if scales is not None:
                q = _module("QuantizationParameters")
                scale_vector = b.CreateNumpyVector(scales)
                zero_vector = b.CreateNumpyVector(zero_points)
                q.QuantizationParametersStart(b)
                q.QuantizationParametersAddScale(b, scale_vector)
                q.QuantizationParametersAddZeroPoint(b, zero_vector)
                q.QuantizationParametersAddQuantizedDimension(b, axis)
                quantization = q.QuantizationParametersEnd(b)
            t = _module("Tensor")
            t.TensorStart(b)
            t.TensorAddShape(b, shape_vector)
            t.TensorAddType(b, _TYPES[dtype])
            t.TensorAddBuffer(b, buffer)
            t.TensorAddName(b, name)
            if quantization is not None:
                t.TensorAddQuantization(b, quantization)
            tensor_offsets.append(t.TensorEnd(b))
        names = sorted({opcode for opcode, *_ in self.operators})
        operator_offsets = []
        for opcode, op_inputs, op_outputs, options in self.operators:
            table, options_type = _OPTIONS[opcode]
            module = _module(table)
            vectors = {k: b.CreateNumpyVector(np.asarray(v, dtype=np.int32))
                       for k, v in options.items() if isinstance(v, (list, tuple))}
            getattr(module, f"{table}Start")(b)
            for key, value in options.items():
                camel = "".join(part.capitalize() for part in key.split("_"))
                getattr(module, f"{table}Add{camel}")(b, vectors.get(key, value))
            options_offset = getattr(module, f"{table}End")(b)
            in_vector = b.CreateNumpyVector(np.asarray(op_inputs, dtype=np.int32))
            out_vector = b.CreateNumpyVector(np.asarray(op_outputs, dtype=np.int32))
            o = _module("Operator")
            o.OperatorStart(b)
            o.OperatorAddOpcodeIndex(b, names.index(opcode))
            o.OperatorAddInputs(b, in_vector)
            o.OperatorAddOutputs(b, out_vector)
            if options_type:
                o.OperatorAddBuiltinOptionsType(b, options_type)
                o.OperatorAddBuiltinOptions(b, options_offset)
            operator_offsets.append(o.OperatorEnd(b))
        code_offsets = []
        for name in names:
            code, version = _OPCODES[name]
            c = _module("OperatorCode")
            c.OperatorCodeStart(b)
            c.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            c.OperatorCodeAddBuiltinCode(b, code)
            c.OperatorCodeAddVersion(b, version)
            code_offsets.append(c.OperatorCodeEnd(b))

        def offsets(items):
            b.StartVector(4, len(items), 4)
            for item in reversed(items):
                b.PrependUOffsetTRelative(item)
            b.vectorNumElems = len(items)
            return b.EndVector()

        g = _module("SubGraph")
        tensors_vector = offsets(tensor_offsets)
        operators_vector = offsets(operator_offsets)
        inputs_vector = b.CreateNumpyVector(np.asarray(inputs, dtype=np.int32))
        outputs_vector = b.CreateNumpyVector(np.asarray(outputs, dtype=np.int32))
        g.SubGraphStart(b)
        g.SubGraphAddTensors(b, tensors_vector)
        g.SubGraphAddInputs(b, inputs_vector)
        g.SubGraphAddOutputs(b, outputs_vector)
        g.SubGraphAddOperators(b, operators_vector)
        subgraph = g.SubGraphEnd(b)
        subgraphs_vector = offsets([subgraph])
        codes_vector = offsets(code_offsets)
        buffers_vector = offsets(buffer_offsets)
        description = b.CreateString("nnfab test")
        m = _module("Model")
        m.ModelStart(b)
        m.ModelAddVersion(b, 3)
        m.ModelAddOperatorCodes(b, codes_vector)
        m.ModelAddSubgraphs(b, subgraphs_vector)
        m.ModelAddDescription(b, description)
        m.ModelAddBuffers(b, buffers_vector)
        b.Finish(m.ModelEnd(b), file_identifier=b"TFL3")
        path.write_bytes(bytes(b.Output()))
        return path


def compare(path, inputs):
    """Golden against the reference interpreter at every operator output, bit for bit (codes, or
    float32 bit patterns); return ``{tensor index: mismatches}``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = read_tflite(path)
    _, golden = run_tflite(model, inputs if len(inputs) > 1 else inputs[0], trace=True)
    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    mismatches = {op.outputs[0]: 0 for op in model.operators}
    for k in range(len(inputs[0])):
        for index, array in zip(model.inputs, inputs):
            interpreter.set_tensor(index, array[k:k + 1])
        interpreter.invoke()
        for index in mismatches:
            reference = interpreter.get_tensor(index)
            mine = golden[index][k:k + 1].reshape(reference.shape).astype(reference.dtype)
            mismatches[index] += int(np.count_nonzero(reference.view(np.uint8) !=
                                                      mine.view(np.uint8)))
    return model, mismatches


def _weights(rng, shape):
    return rng.integers(-127, 128, size=shape)


def _bias(rng, n, scale):
    return rng.integers(-3000, 3000, size=n), np.float32(scale)


def test_boundaries_convolutions_pooling(tmp_path):
    rng = np.random.default_rng(23)
    w = ModelWriter()
    s_in, s1, s2, s3 = (np.float32(v) for v in (0.05, 0.06, 0.03, 0.03))
    x = w.tensor((1, 9, 11, 3), "float32")
    q = w.tensor((1, 9, 11, 3), scales=s_in, zero_points=7)
    # CONV_2D 3x3, dilation 2, VALID, RELU6 (codes -20 to 80), per-channel weights.
    w1_scales = rng.uniform(0.002, 0.01, 8).astype(np.float32)
    k1 = w.tensor((8, 3, 3, 3), scales=w1_scales, data=_weights(rng, (8, 3, 3, 3)))
    b1 = w.tensor((8,), "int32", scales=(s_in * w1_scales).astype(np.float32),
                  data=rng.integers(-3000, 3000, 8))
    c1 = w.tensor((1, 5, 7, 8), scales=s1, zero_points=-20)
    # DEPTHWISE_CONV_2D 3x3, multiplier 2, stride 2, SAME.
    w2_scales = rng.uniform(0.005, 0.02, 16).astype(np.float32)
    k2 = w.tensor((1, 3, 3, 16), scales=w2_scales, data=_weights(rng, (1, 3, 3, 16)), axis=3)
    b2 = w.tensor((16,), "int32", scales=(s1 * w2_scales).astype(np.float32),
                  data=rng.integers(-2000, 2000, 16))
    c2 = w.tensor((1, 3, 4, 16), scales=s2, zero_points=5)
    # AVERAGE_POOL_2D 2x3 stride 1 SAME, MAX_POOL_2D 3x3 stride 2 SAME.
    p1 = w.tensor((1, 3, 4, 16), scales=s2, zero_points=5)
    p2 = w.tensor((1, 2, 2, 16), scales=s2, zero_points=5)
    paddings = w.tensor((4, 2), "int32", data=[[0, 0], [1, 0], [0, 1], [0, 0]])
    padded = w.tensor((1, 3, 3, 16), scales=s2, zero_points=5)
    shape = w.tensor((2,), "int32", data=[-1, 144])
    flat = w.tensor((1, 144), scales=s2, zero_points=5)
    k3 = w.tensor((10, 144), scales=np.float32(0.004), data=_weights(rng, (10, 144)))
    b3 = w.tensor((10,), "int32", scales=np.float32(s2 * np.float32(0.004)),
                  data=rng.integers(-500, 500, 10))
    fc = w.tensor((1, 10), scales=s3, zero_points=-3)
    sm = w.tensor((1, 10), scales=np.float32(1 / 256), zero_points=-128)
    out = w.tensor((1, 10), "float32")
    w.op("QUANTIZE", [x], [q])
    w.op("CONV_2D", [q, k1, b1], [c1], padding=1, stride_w=1, stride_h=1, dilation_w_factor=2,
         dilation_h_factor=2, fused_activation_function=3)
    w.op("DEPTHWISE_CONV_2D", [c1, k2, b2], [c2], padding=0, stride_w=2, stride_h=2,
         depth_multiplier=2, dilation_w_factor=1, dilation_h_factor=1)
    w.op("AVERAGE_POOL_2D", [c2], [p1], padding=0, stride_w=1, stride_h=1, filter_width=3,
         filter_height=2)
    w.op("MAX_POOL_2D", [p1], [p2], padding=0, stride_w=2, stride_h=2, filter_width=3,
         filter_height=3)
    w.op("PAD", [p2, paddings], [padded])
    w.op("RESHAPE", [padded, shape], [flat], new_shape=[-1, 144])
    w.op("FULLY_CONNECTED", [flat, k3, b3], [fc], fused_activation_function=2)
    w.op("SOFTMAX", [fc], [sm], beta=0.7)
    w.op("DEQUANTIZE", [sm], [out])
    path = w.write(tmp_path / "synthetic.tflite", [x], [out])
    inputs = rng.normal(0, 3, size=(150, 9, 11, 3)).astype(np.float32)
    inputs[0] = 0.025                                    # ties of the input quantization
    inputs[1] = -1e3                                     # saturation at both ends
    inputs[2] = 1e3
    model, mismatches = compare(path, [inputs])
    assert [op.opcode for op in model.operators][:3] == ["QUANTIZE", "CONV_2D",
                                                         "DEPTHWISE_CONV_2D"]
    assert mismatches == dict.fromkeys(mismatches, 0)
    assert len(mismatches) == 10


def test_add_broadcast_and_constant(tmp_path):
    rng = np.random.default_rng(24)
    w = ModelWriter()
    a = w.tensor((1, 4, 5, 6), scales=np.float32(0.07), zero_points=-11)
    b = w.tensor((1, 1, 1, 6), scales=np.float32(0.02), zero_points=40)
    s = w.tensor((1, 4, 5, 6), scales=np.float32(0.05), zero_points=-128)
    c = w.tensor((1, 4, 5, 6), scales=np.float32(0.09), zero_points=3,
                 data=rng.integers(-128, 128, (1, 4, 5, 6)))
    t = w.tensor((1, 4, 5, 6), scales=np.float32(0.11), zero_points=-7)
    w.op("ADD", [a, b], [s], fused_activation_function=1)
    w.op("ADD", [s, c], [t], fused_activation_function=0)
    path = w.write(tmp_path / "add.tflite", [a, b], [t])
    x1 = rng.integers(-128, 128, (300, 4, 5, 6)).astype(np.int8)
    x2 = rng.integers(-128, 128, (300, 1, 1, 6)).astype(np.int8)
    x1[0], x2[0], x1[1], x2[1] = -128, -128, 127, 127
    _, mismatches = compare(path, [x1, x2])
    assert mismatches == {s: 0, t: 0}


def _one_conv(tmp_path, weight_zero_point=0, output_scales=(0.1,)):
    rng = np.random.default_rng(25)
    w = ModelWriter()
    x = w.tensor((1, 4, 4, 2), scales=np.float32(0.1))
    k = w.tensor((3, 1, 1, 2), scales=np.float32(0.01), zero_points=weight_zero_point,
                 data=_weights(rng, (3, 1, 1, 2)))
    y = w.tensor((1, 4, 4, 3), scales=np.asarray(output_scales, dtype=np.float32),
                 zero_points=[0] * len(output_scales), axis=3)
    w.op("CONV_2D", [x, k], [y], padding=1, stride_w=1, stride_h=1)
    return w.write(tmp_path / "conv.tflite", [x], [y])


def test_rejects_asymmetric_conv_weights(tmp_path):
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(CONV_2D\): weights 't1' have zero point 3; TFLite's "
                             r"int8 convolutions take symmetric weights \(zero point 0\)$"):
        read_tflite(_one_conv(tmp_path, weight_zero_point=3))


def test_rejects_per_channel_activations(tmp_path):
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(CONV_2D\): output 't2' has 3 scales; nnfab takes "
                             r"int8 activations with one scale and zero point$"):
        read_tflite(_one_conv(tmp_path, output_scales=(0.1, 0.2, 0.3)))


def test_effective_scales_in_double():
    # TFLite widens the float32 scales to double before multiplying and dividing; the same
    # arithmetic in float32 gives another multiplier (1103681664) for these scales.
    from types import SimpleNamespace

    from nnfab.sim.golden.tflite import conv_multipliers

    s_in, s_w, s_out = (np.float32(v) for v in (0.63732475, 0.27051693, 0.04193255))
    tensor = SimpleNamespace
    multipliers, shifts = conv_multipliers(tensor(scale=float(s_in)),
                                           tensor(scales=(float(s_w),)),
                                           tensor(scale=float(s_out)), 2)
    assert multipliers.tolist() == [1103681721] * 2 and shifts.tolist() == [3] * 2
