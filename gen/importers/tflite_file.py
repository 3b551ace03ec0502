"""Int8 TFLite models (``.tflite`` flatbuffers) read into a plain, frozen description.

The file is read with the ``tflite`` package (the flatbuffer classes generated from TFLite's
``schema.fbs``), without TensorFlow. :func:`read_tflite` returns a :class:`TfliteModel`: every
tensor of the one subgraph (shape, type, scales, zero points, quantized dimension, constant
data), the operators in execution order (the order of the file, which is TFLite's) with their
options, and the graph inputs and outputs. It holds numbers exactly as stored: scales are the
file's float32 values (as Python floats, which hold them exactly), so that the effective scales
TFLite computes from them in double can be computed the same way
(:mod:`nnfab.sim.golden.tflite`).

Accepted: one subgraph of ``FULLY_CONNECTED``, ``CONV_2D``, ``DEPTHWISE_CONV_2D``,
``AVERAGE_POOL_2D``, ``MAX_POOL_2D``, ``ADD``, ``RESHAPE``, ``SOFTMAX``, ``PAD``, and
``QUANTIZE``/``DEQUANTIZE`` at the boundaries; int8 activations (float32 only into a
``QUANTIZE`` and out of a ``DEQUANTIZE``), int8 weights, int32 biases; fused activations
``NONE``, ``RELU``, ``RELU6``, ``RELU_N1_TO_1``.
"""

import struct
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from nnfab.errors import ModelError, UnsupportedLayerError

__all__ = ["TfliteTensor", "TfliteOperator", "TfliteModel", "read_tflite", "SUPPORTED_OPERATORS",
           "FUSED_ACTIVATIONS"]

#: Operators nnfab reads, by TFLite's builtin name.
SUPPORTED_OPERATORS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                       "MAX_POOL_2D", "ADD", "RESHAPE", "SOFTMAX", "PAD", "QUANTIZE",
                       "DEQUANTIZE")
#: TFLite's ``ActivationFunctionType`` values nnfab accepts, by value.
FUSED_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}

_PADDINGS = {0: "SAME", 1: "VALID"}
#: TFLite ``TensorType`` value -> (name, NumPy type of its stored data).
_TYPES = {0: ("float32", "<f4"), 1: ("float16", "<f2"), 2: ("int32", "<i4"), 3: ("uint8", "u1"),
          4: ("int64", "<i8"), 6: ("bool", "u1"), 7: ("int16", "<i2"), 9: ("int8", "i1"),
          10: ("float64", "<f8"), 15: ("uint32", "<u4"), 16: ("uint16", "<u2")}


@dataclass(frozen=True)
class TfliteTensor:
    """One tensor of the graph.

    Attributes
    ----------
    index : int
        Its index in the subgraph (operators name tensors by index).
    name : str
    shape : tuple of int
        TFLite's shape: ``(1, H, W, C)`` images, ``(1, n)`` vectors, ``(O, KH, KW, I)`` conv
        filters, ``(1, KH, KW, C * depth_multiplier)`` depthwise filters, ``(n_out, n_in)``
        fully connected weights.
    dtype : str
        ``"int8"``, ``"int32"``, ``"float32"``, ... (the type name in lower case).
    scales : tuple of float
        The float32 scales as stored (one, or one per channel of ``quantized_dimension``);
        empty for a tensor without quantization.
    zero_points : tuple of int
        As many as ``scales``.
    quantized_dimension : int
        The axis of per-channel scales.
    data : numpy.ndarray or None
        The constant value (read-only, of ``shape``, in ``dtype``), or None for a tensor
        computed at run time.
    """

    index: int
    name: str
    shape: tuple
    dtype: str
    scales: tuple
    zero_points: tuple
    quantized_dimension: int
    data: object

    @property
    def is_constant(self):
        """Whether the tensor has constant data in the file."""
        return self.data is not None

    @property
    def scale(self):
        """The scale of a per-tensor quantized tensor (the first of ``scales``)."""
        return self.scales[0]

    @property
    def zero_point(self):
        """The zero point of a per-tensor quantized tensor (the first of ``zero_points``)."""
        return self.zero_points[0]


@dataclass(frozen=True)
class TfliteOperator:
    """One operator, in execution order.

    Attributes
    ----------
    index : int
        Its position in the subgraph's operator list (TFLite's execution order).
    opcode : str
        TFLite's builtin name (``"CONV_2D"``, ...).
    inputs, outputs : tuple of int
        Tensor indices; ``-1`` is an optional input left out (a convolution without bias).
    options : mapping
        Read-only, by operator: ``fused_activation`` (``"NONE"``, ``"RELU"``, ``"RELU6"``,
        ``"RELU_N1_TO_1"``) for the convolutions, pooling, ``FULLY_CONNECTED`` and ``ADD``;
        ``padding`` (``"SAME"`` or ``"VALID"``), ``stride`` and ``dilation`` ``(h, w)`` for
        ``CONV_2D`` and ``DEPTHWISE_CONV_2D`` (which also has ``depth_multiplier``);
        ``padding``, ``stride`` and ``filter_size`` ``(h, w)`` for pooling; ``keep_num_dims``
        for ``FULLY_CONNECTED``; ``beta`` (float32 as stored) for ``SOFTMAX``; ``new_shape``
        (tuple, possibly empty) for ``RESHAPE``.
    """

    index: int
    opcode: str
    inputs: tuple
    outputs: tuple
    options: MappingProxyType

    def __repr__(self):
        return (f"TfliteOperator(index={self.index!r}, opcode={self.opcode!r}, "
                f"inputs={self.inputs!r}, outputs={self.outputs!r}, "
                f"options={dict(self.options)!r})")


@dataclass(frozen=True)
class TfliteModel:
    """A whole int8 TFLite model: :func:`read_tflite`'s result.

    Attributes
    ----------
    tensors : tuple of TfliteTensor
        By index.
    operators : tuple of TfliteOperator
        In execution order.
    inputs, outputs : tuple of int
        Tensor indices of the graph inputs and outputs.
    description : str
        The file's description string (``"MLIR Converted."`` from TFLite's converter).
    """

    tensors: tuple
    operators: tuple
    inputs: tuple
    outputs: tuple
    description: str


def read_tflite(path):
    """Read an int8 ``.tflite`` file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    TfliteModel

    Raises
    ------
    ModelError
        If the file is not a TFLite flatbuffer (too short, schema identifier other than
        ``"TFL3"``), is truncated or corrupt, or holds more than one subgraph.
    UnsupportedLayerError
        For an operator outside :data:`SUPPORTED_OPERATORS`, a fused activation outside
        :data:`FUSED_ACTIVATIONS`, or a tensor of the wrong type (float or int16 activations,
        weights other than int8, biases other than int32), naming the operator and its index.
    """
    import tflite

    path = Path(path)
    buf = path.read_bytes()
    name = path.name
    if len(buf) < 8:
        raise ModelError(f"File {name!r} is not a TFLite flatbuffer: it has {len(buf)} bytes, "
                         f"fewer than the 8 of a flatbuffer header")
    if buf[4:8] != b"TFL3":
        raise ModelError(f"File {name!r} is not a TFLite model: its schema identifier is "
                         f"{bytes(buf[4:8])!r}, not b'TFL3'")
    root = int.from_bytes(buf[:4], "little")
    if root + 4 > len(buf):
        raise ModelError(f"TFLite file {name!r} is truncated: its root table starts at byte "
                         f"{root}, beyond its {len(buf)} bytes")
    where = ["the root table"]
    try:
        model = tflite.Model.GetRootAs(buf, 0)
        n_subgraphs = model.SubgraphsLength()
        if n_subgraphs != 1:
            raise ModelError(f"TFLite file {name!r} has {n_subgraphs} subgraphs; nnfab reads "
                             f"models of exactly one subgraph")
        graph = model.Subgraphs(0)
        tensors = tuple(_tensor(model, graph, i, buf, where)
                        for i in range(graph.TensorsLength()))
        opcodes = []
        for i in range(model.OperatorCodesLength()):
            where[0] = f"operator code {i}"
            opcodes.append(_opcode_name(model.OperatorCodes(i)))
        operators = []
        for i in range(graph.OperatorsLength()):
            where[0] = f"operator {i}"
            operators.append(_operator(graph.Operators(i), i, opcodes, len(tensors)))
        where[0] = "the graph inputs and outputs"
        inputs = tuple(int(graph.Inputs(i)) for i in range(graph.InputsLength()))
        outputs = tuple(int(graph.Outputs(i)) for i in range(graph.OutputsLength()))
        description = (model.Description() or b"").decode("utf-8", "replace")
    except ModelError:
        raise
    except (IndexError, ValueError, struct.error, UnicodeDecodeError, TypeError,
            OverflowError) as error:
        raise ModelError(f"TFLite file {name!r} is truncated or corrupt: reading {where[0]} "
                         f"fails in its {len(buf)} bytes") from error
    for index in inputs + outputs:
        if not 0 <= index < len(tensors):
            raise ModelError(f"TFLite file {name!r} is truncated or corrupt: graph input or "
                             f"output tensor {index!r} does not exist ({len(tensors)} tensors)")
    result = TfliteModel(tensors=tensors, operators=tuple(operators), inputs=inputs,
                         outputs=outputs, description=description)
    _check_types(result)
    return result


def _tensor(model, graph, index, buf, where):
    where[0] = f"tensor {index}"
    t = graph.Tensors(index)
    type_code = t.Type()
    if type_code not in _TYPES:
        dtype, np_type = f"type {type_code}", None
    else:
        dtype, np_type = _TYPES[type_code]
    shape = tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else ()))
    q = t.Quantization()
    scales, zero_points, axis = (), (), 0
    if q is not None and q.ScaleLength():
        scales = tuple(float(s) for s in q.ScaleAsNumpy())
        zero_points = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else ()
        axis = int(q.QuantizedDimension())
    data = None
    where[0] = f"the data of tensor {index}"
    if 0 < t.Buffer() < model.BuffersLength():
        buffer = model.Buffers(t.Buffer())
        raw = None
        if buffer.Offset() > 1:                       # large models: data after the flatbuffer
            raw = buf[buffer.Offset():buffer.Offset() + buffer.Size()]
            if len(raw) != buffer.Size():
                raise ValueError("buffer beyond the end")
        elif buffer.DataLength():
            raw = buffer.DataAsNumpy().tobytes()
        if raw is not None:
            if np_type is None:
                raise ValueError(f"constant of unknown type {type_code}")
            count = int(np.prod(shape, dtype=np.int64))
            if len(raw) != count * np.dtype(np_type).itemsize:
                raise ValueError("constant data of the wrong size")
            native = np.dtype(np_type).newbyteorder("=")
            data = np.frombuffer(raw, dtype=np_type).reshape(shape).astype(native)
            data.setflags(write=False)
    if len(zero_points) not in (0, len(scales)):
        raise ValueError("as many zero points as scales expected")
    return TfliteTensor(index=index, name=(t.Name() or b"").decode("utf-8", "replace"),
                        shape=shape, dtype=dtype, scales=scales,
                        zero_points=zero_points or (0,) * len(scales),
                        quantized_dimension=axis, data=data)


def _opcode_name(code):
    from tflite.utils import BUILTIN_OPCODE2NAME

    # TFLite's GetBuiltinCode: the larger of the deprecated int8 field and the int32 field.
    builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if builtin == 32:
        custom = (code.CustomCode() or b"").decode("utf-8", "replace")
        return f"CUSTOM {custom!r}"
    return BUILTIN_OPCODE2NAME.get(builtin, f"builtin operator {builtin}")


def _operator(op, index, opcodes, n_tensors):
    opcode_index = op.OpcodeIndex()
    if not 0 <= opcode_index < len(opcodes):
        raise ValueError("operator code out of range")
    opcode = opcodes[opcode_index]
    if opcode not in SUPPORTED_OPERATORS:
        raise UnsupportedLayerError(f"Operator {index} ({opcode}) is not supported; nnfab "
                                    f"reads {', '.join(SUPPORTED_OPERATORS)}")
    inputs = tuple(int(i) for i in (op.InputsAsNumpy() if op.InputsLength() else ()))
    outputs = tuple(int(i) for i in (op.OutputsAsNumpy() if op.OutputsLength() else ()))
    if any(not -1 <= i < n_tensors for i in inputs) or any(not 0 <= i < n_tensors
                                                           for i in outputs):
        raise ValueError("tensor index out of range")
    options = _options(op, index, opcode)
    return TfliteOperator(index=index, opcode=opcode, inputs=inputs, outputs=outputs,
                          options=MappingProxyType(options))


def _options(op, index, opcode):
    import tflite

    table = op.BuiltinOptions()

    def parse(cls):
        o = cls()
        if table is None:
            raise UnsupportedLayerError(f"Operator {index} ({opcode}) has no options; nnfab "
                                        f"needs the {cls.__name__} TFLite's converter writes")
        o.Init(table.Bytes, table.Pos)
        return o

    def activation(o):
        code = o.FusedActivationFunction()
        if code not in FUSED_ACTIVATIONS:
            raise UnsupportedLayerError(
                f"Operator {index} ({opcode}): fused activation {code!r} is not supported; "
                f"nnfab takes {', '.join(f'{k} ({v})' for k, v in FUSED_ACTIVATIONS.items())}")
        return FUSED_ACTIVATIONS[code]

    def padding(o):
        code = o.Padding()
        if code not in _PADDINGS:
            raise UnsupportedLayerError(f"Operator {index} ({opcode}): padding {code!r} is not "
                                        f"supported; nnfab takes 0 (SAME) and 1 (VALID)")
        return _PADDINGS[code]

    if opcode == "CONV_2D":
        o = parse(tflite.Conv2DOptions)
        return {"padding": padding(o), "stride": (o.StrideH(), o.StrideW()),
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "fused_activation": activation(o)}
    if opcode == "DEPTHWISE_CONV_2D":
        o = parse(tflite.DepthwiseConv2DOptions)
        return {"padding": padding(o), "stride": (o.StrideH(), o.StrideW()),
                "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                "depth_multiplier": o.DepthMultiplier(), "fused_activation": activation(o)}
    if opcode in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        o = parse(tflite.Pool2DOptions)
        return {"padding": padding(o), "stride": (o.StrideH(), o.StrideW()),
                "filter_size": (o.FilterHeight(), o.FilterWidth()),
                "fused_activation": activation(o)}
    if opcode == "FULLY_CONNECTED":
        o = parse(tflite.FullyConnectedOptions)
        if o.WeightsFormat() != 0:
            raise UnsupportedLayerError(f"Operator {index} ({opcode}): weights format "
                                        f"{o.WeightsFormat()!r} is not supported; nnfab takes "
                                        f"0 (DEFAULT)")
        return {"fused_activation": activation(o), "keep_num_dims": bool(o.KeepNumDims())}
    if opcode == "ADD":
        return {"fused_activation": activation(parse(tflite.AddOptions))}
    if opcode == "SOFTMAX":
        return {"beta": float(parse(tflite.SoftmaxOptions).Beta())}
    if opcode == "RESHAPE":
        if table is None:
            return {"new_shape": ()}
        o = parse(tflite.ReshapeOptions)
        return {"new_shape": tuple(int(d) for d in (o.NewShapeAsNumpy() if o.NewShapeLength()
                                                    else ()))}
    return {}


def _check_types(model):
    """Activations int8 (float32 only into QUANTIZE and out of DEQUANTIZE); weights int8; biases
    int32; quantized tensors where arithmetic needs them."""
    tensors = model.tensors

    def fail(op, tensor, what):
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): {what} {tensor.name!r} "
                                    f"is {tensor.dtype}, not int8; nnfab takes int8 activations "
                                    f"(float32 only into QUANTIZE and out of DEQUANTIZE), int8 "
                                    f"weights and int32 biases")

    for op in model.operators:
        data_inputs = {"FULLY_CONNECTED": 1, "CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "ADD": 2,
                       "RESHAPE": 1, "PAD": 1}.get(op.opcode, len(op.inputs))
        for position, index in enumerate(op.inputs):
            if index < 0:
                continue
            tensor = tensors[index]
            if position < data_inputs:
                if op.opcode == "QUANTIZE" and tensor.dtype == "float32":
                    continue
                if tensor.dtype != "int8":
                    fail(op, tensor, "input")
                _check_per_tensor(op, tensor, "input")
            elif op.opcode in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
                wanted = "int8" if position == 1 else "int32"
                if tensor.dtype != wanted or not tensor.is_constant or not tensor.scales:
                    what = "weights" if position == 1 else "bias"
                    raise UnsupportedLayerError(
                        f"Operator {op.index} ({op.opcode}): {what} {tensor.name!r} is "
                        f"{'constant' if tensor.is_constant else 'computed'} "
                        f"{tensor.dtype}{'' if tensor.scales else ' without scales'}; nnfab "
                        f"takes constant quantized {wanted} {what}")
                if (position == 1 and op.opcode != "FULLY_CONNECTED"
                        and any(tensor.zero_points)):
                    bad = next(z for z in tensor.zero_points if z)
                    raise UnsupportedLayerError(
                        f"Operator {op.index} ({op.opcode}): weights {tensor.name!r} have zero "
                        f"point {bad!r}; TFLite's int8 convolutions take symmetric weights "
                        f"(zero point 0)")
            elif not tensor.is_constant or tensor.dtype not in ("int32", "int64"):
                raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): shape or "
                                            f"padding input {tensor.name!r} is not a constant "
                                            f"int32 tensor")
        for index in op.outputs:
            tensor = tensors[index]
            if op.opcode == "DEQUANTIZE" and tensor.dtype == "float32":
                continue
            if tensor.dtype != "int8":
                fail(op, tensor, "output")
            _check_per_tensor(op, tensor, "output")


def _check_per_tensor(op, tensor, what):
    if len(tensor.scales) != 1:
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): {what} {tensor.name!r} "
                                    f"has {len(tensor.scales)} scales; nnfab takes int8 "
                                    f"activations with one scale and zero point")
