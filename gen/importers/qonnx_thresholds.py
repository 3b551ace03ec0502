"""QONNX models with any scales (Brevitas exports: float scales, per-channel weight scales,
BatchNormalization and float arithmetic between quantizers) into integer dense layers and
``multithreshold`` layers.

The graph is first cleaned by qonnx (``qonnx.util.cleanup.cleanup_model``: shape inference,
constant folding of PyTorch's dynamic flatten, ...). Then:

- A quantizer of constants (``Quant``, ``BipolarQuant``, per-tensor or per-output-channel
  scale, zero point 0) gives the integer weight codes of the ``MatMul``/``Gemm`` reading it;
  its scale goes into the accumulator's scale.
- ``MatMul``/``Gemm`` (vector input, quantized weights) becomes a ``dense`` layer on integer
  codes whose output is its exact accumulator: integer weight codes times integer input codes.
- The float nodes between that accumulator and the next ``Quant``/``BipolarQuant`` (the
  ``Gemm`` bias, ``Add``/``Sub``/``Mul``/``Div`` by constants, ``BatchNormalization``,
  ``Relu``) and the quantizer become one ``multithreshold`` layer per quantizer: its thresholds
  on the accumulator are found and proven on every reachable accumulator value by
  :func:`~nnfab.gen.importers.qonnx_segments.segment_thresholds` (the proof is in the layer's
  ``proof`` and the manifest). Its output is the quantizer's integer codes
  (``round(x / scale) + zero_point``; ``BipolarQuant`` and 1-bit signed ``Quant``: -1 or +1).
  A quantizer of 9 to 16 bits has too many codes to compare with at once: its thresholds,
  found the same way, become their fixed-point form, an ``output_stage`` ``(acc * m + b) >>
  s`` per channel (:meth:`~nnfab.output_stage.OutputStage.fit_thresholds`), where one equals
  them on every reachable accumulator (its codes are then a signed integer format, one bit
  wider for an unsigned quantizer); where the float32 graph's rounding makes the codes no
  rounded affine map, the ``multithreshold`` layer's engine searches them.
- **The model input.** When the first node on the input path that nnfab builds is a ``Quant``,
  nnfab's input is that quantizer's integer codes (flattened), and the float nodes before it
  are left to the host (apply them and the quantizer, ``round(q / scale) + zero_point``). When
  a ``MatMul``/``Gemm`` reads the graph input through scalar ``Add``/``Sub``/``Mul``/``Div``
  only, nnfab's input is the graph input itself in ``input_format`` (default ``fixed<16,6>``;
  UNSW-NB15's bipolar inputs fit ``fixed<2,2>``), whose raw codes the first layer multiplies,
  and those scalar operations are folded exactly into the first accumulator's scale and
  offset.
- **The model output** is the last quantizer's codes, or, when the graph ends in a matrix
  product, that layer's integer accumulator: the float graph's output is then
  ``scale * acc + offset`` followed by the remaining float nodes, which are left to the host
  (:attr:`QonnxImport.output_scale` and ``output_offset`` say which; a final ``Softmax`` is
  left to the host too).
"""

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.fixed import FixedFormat

from nnfab.ir import INPUT, Model, MultiThresholdLayer, OutputStageLayer
from nnfab.hdl.multithreshold import MAX_COMPARATORS
from nnfab.output_stage import OutputStage
from ._common import DEFAULT_INPUT_FORMAT, dense_layer, exact
from .qonnx_segments import Segment, segment_thresholds

__all__ = ["QonnxImport", "import_qonnx_thresholds", "needs_thresholds"]

#: Widest quantizer after float arithmetic: its thresholds (one per code) are found by bisection
#: before they become a fixed-point requantizer.
MAX_OUTPUT_BITS = 16
_ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
_SEGMENT_OPS = _ELEMENTWISE + ("BatchNormalization", "Relu")


def needs_thresholds(onnx_model):
    """Whether a QONNX graph needs this importer: it has ``BatchNormalization``, float
    arithmetic (``Mul``, ``Div``, ``Sub``, ``Pow``), or a quantizer whose scale is not one power
    of two."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    for node in onnx_model.graph.node:
        if node.op_type in ("BatchNormalization", "Mul", "Div", "Sub", "Pow"):
            return True
        if node.op_type in ("Quant", "BipolarQuant") and len(node.input) > 1 and \
                node.input[1] in inits:
            scale = np.asarray(inits[node.input[1]], dtype=np.float64).reshape(-1)
            if np.any(scale != scale[0]) or np.frexp(scale[0])[0] != 0.5:
                return True
    return False


@dataclass
class QonnxImport:
    """A QONNX graph imported with thresholds.

    Attributes
    ----------
    model : nnfab.ir.Model
    cleaned : qonnx ModelWrapper
        The graph after qonnx's cleanup (the reference the thresholds were proven on).
    quantizers : dict of str to (str, float, float)
        Per nnfab layer producing quantizer codes: the ONNX tensor of that quantizer, its
        scale and zero point (codes are ``round(q / scale) + zero_point``). ``"input"`` is the
        input quantizer when there is one.
    output_scale, output_offset : list of Fraction or None
        When the model ends in an accumulator: per channel, the graph's matrix product is
        ``scale * acc + offset`` (its ONNX tensor in ``output_tensor``).
    proofs : dict of str to str
        The proof of each ``multithreshold`` layer.
    """

    model: Model
    cleaned: object
    quantizers: dict = field(default_factory=dict)
    output_scale: list = None
    output_offset: list = None
    output_tensor: str = None
    proofs: dict = field(default_factory=dict)


@dataclass
class _Codes:
    """Integer codes of an nnfab tensor whose float value is ``a * code + b``."""

    tensor: str
    size: int
    fmt: FixedFormat
    a: Fraction
    b: Fraction


@dataclass
class _Acc:
    """The accumulator of dense layer ``layer`` (index ``index``): float value
    ``scale[c] * acc + offset[c]`` at ONNX tensor ``start``, then the float ``nodes``."""

    layer: str
    index: int
    start: str
    scale: list
    offset: list
    low: np.ndarray
    high: np.ndarray
    nodes: list = field(default_factory=list)


def _frac(value):
    return Fraction(float(np.float32(value)))


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _quant_codes(node, inits):
    """Integer codes, scale and zero point of a quantizer of constants (its per-element scale
    broadcast to the weights' shape)."""
    from qonnx.custom_op.general.bipolar_quant import binary_quant
    from qonnx.custom_op.general.quant import quant

    x = inits[node.input[0]].astype(np.float32)
    scale = np.asarray(inits[node.input[1]], dtype=np.float32)
    if node.op_type == "BipolarQuant":
        q, zero = binary_quant(x, scale), 0.0
    else:
        a = _attrs(node)
        zero = np.asarray(inits[node.input[2]], dtype=np.float32)
        if np.any(zero != 0):
            raise UnsupportedLayerError(f"Node {node.name!r}: weight zero point "
                                        f"{float(zero.reshape(-1)[0])!r} is not supported; "
                                        f"weights need zero point 0")
        mode = a.get("rounding_mode", b"ROUND")
        q = quant(x, scale, zero, np.asarray(inits[node.input[3]]), int(a.get("signed", 1)),
                  int(a.get("narrow", 0)), mode.decode() if isinstance(mode, bytes) else mode)
    scale = np.broadcast_to(scale, x.shape)
    codes = np.round(q.astype(np.float64) / scale.astype(np.float64))
    return codes.astype(np.int64), scale


def _output_codes(node, inits):
    """``(base, n_levels, fout, scale, zero_point)`` of a data quantizer."""
    if node.op_type == "BipolarQuant":
        scale = inits[node.input[1]]
        signed, bits, narrow, zero = True, 1, False, 0.0
    else:
        a = _attrs(node)
        for k, what in ((1, "scale"), (2, "zero point"), (3, "bit width")):
            if node.input[k] not in inits:
                raise UnsupportedLayerError(f"Node {node.name!r}: Quant {what} must be a "
                                            f"constant")
        scale, zero = inits[node.input[1]], _per_tensor(inits[node.input[2]])
        bits = float(np.asarray(inits[node.input[3]]).reshape(-1)[0])
        if bits != int(bits) or bits < 1:
            raise UnsupportedLayerError(f"Node {node.name!r}: bit width {bits!r} must be a "
                                        f"positive integer")
        bits, signed, narrow = int(bits), bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    scale = _per_tensor(np.asarray(scale, dtype=np.float32))
    if signed and bits == 1:  # qonnx: a 1-bit signed Quant is bipolar
        return -1, 2, FixedFormat(2, 2), scale, zero
    if bits > MAX_OUTPUT_BITS:
        raise UnsupportedLayerError(f"Node {node.name!r}: a {bits}-bit quantizer after float "
                                    f"arithmetic is not supported; nnfab builds outputs of 1 "
                                    f"to {MAX_OUTPUT_BITS} bits there")
    if signed:
        low, high = -(1 << (bits - 1)) + narrow, (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1 - narrow
    return low, high - low, FixedFormat(bits, bits, signed=signed), scale, zero


def _per_tensor(value):
    """A quantizer's scale or zero point: a float when it has one value, else its values per
    channel (float64 of the float32 constants)."""
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    return float(value[0]) if value.size == 1 or np.all(value == value[0]) else value


def _codes_of(tensor, size, fout, scale, zero):
    """:class:`_Codes` of a quantizer's output; ``a`` is None for per-channel scales or zero
    points (no matrix product may read those codes)."""
    if isinstance(scale, np.ndarray) or isinstance(zero, np.ndarray):
        return _Codes(tensor, size, fout, None, None)
    return _Codes(tensor, size, fout, _frac(scale), -_frac(scale) * _frac(zero))


def _weights(node, data, weights, inits):
    """``(codes (n_out, n_in), per-output-channel scale)`` of a MatMul or Gemm."""
    a = _attrs(node) if node.op_type == "Gemm" else {}
    if a.get("transA", 0):
        raise UnsupportedLayerError(f"Node {node.name!r}: Gemm with transA=1 is not supported")
    source = node.input[1]
    if source not in weights:
        raise UnsupportedLayerError(f"Node {node.name!r}: {node.op_type} weights must be a "
                                    f"Quant or BipolarQuant of constants (integer codes times "
                                    f"a scale), not {'floats' if source in inits else 'data'}")
    codes, scale = weights[source]
    if node.op_type == "MatMul" or not a.get("transB", 0):
        codes, scale = codes.T, scale.T
    if codes.ndim != 2 or codes.shape[1] != data.size:
        raise UnsupportedLayerError(f"Node {node.name!r}: weights of shape {codes.shape} do not "
                                    f"take {data.size} inputs")
    if np.any(scale != scale[:, :1]):
        raise UnsupportedLayerError(f"Node {node.name!r}: weight scale varies along the inputs; "
                                    f"one scale per output channel (or per tensor) is accepted")
    return codes, [_frac(s) for s in scale[:, 0]]


def import_qonnx_thresholds(path, *, input_format=None, max_exhaustive=1 << 20):
    """Import a QONNX file as described in this module; returns a :class:`QonnxImport`.

    Parameters
    ----------
    input_format : FixedFormat, optional
        Signed format of the graph input when no ``Quant`` reads it first (default
        ``fixed<16,6>``).
    max_exhaustive : int
        Largest accumulator range per channel proven by evaluating every value.

    Raises
    ------
    UnsupportedLayerError
        For a node outside the accepted patterns, naming it and what is accepted.
    ModelError
        If the file is not a valid model or nnfab builds nothing from it.
    """
    from onnx import numpy_helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    try:
        cleaned = cleanup_model(ModelWrapper(str(path)))
    except Exception as exc:  # qonnx raises whatever its passes raise
        raise ModelError(f"Model file {str(path)!r}: qonnx's cleanup failed ({exc})") from None
    graph = cleaned.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    opsets = list(cleaned.model.opset_import)
    in_shape = cleaned.get_tensor_shape(graph.input[0].name)
    in_size = int(np.prod(in_shape[1:]))
    in_fmt = input_format or DEFAULT_INPUT_FORMAT
    state = {graph.input[0].name: _Codes(INPUT, in_size, in_fmt, in_fmt.lsb, Fraction(0))}
    result = QonnxImport(None, cleaned)
    weights, layers = {}, []
    for node in graph.node:
        op, name = node.op_type, node.name or node.output[0]
        data_inputs = [i for i in node.input if i and i not in inits]
        if op in ("Quant", "BipolarQuant") and not data_inputs:
            codes, scale = weights[node.output[0]] = _quant_codes(node, inits)
            inits[node.output[0]] = (codes * scale).astype(np.float32)  # as qonnx computes it
            continue
        if len(data_inputs) != 1 or data_inputs[0] not in state:
            raise UnsupportedLayerError(f"Node {name!r}: {op} of {len(data_inputs)} computed "
                                        f"tensors is not supported; nnfab imports QONNX chains "
                                        f"of MatMul/Gemm, quantizers and float arithmetic by "
                                        f"constants")
        src = state[data_inputs[0]]
        out = node.output[0]
        if op in ("Flatten", "Reshape", "Identity"):
            shape = cleaned.get_tensor_shape(out)
            if int(np.prod(shape[1:])) != (src.size if isinstance(src, _Codes)
                                           else len(src.scale)) or (len(shape) != 2
                                                                    and op != "Identity"):
                raise UnsupportedLayerError(f"Node {name!r}: {op} to shape {shape} is not "
                                            f"supported; only flattening to (batch, n)")
            state[out] = src
        elif isinstance(src, _Codes) and op in _ELEMENTWISE and src.tensor == INPUT and \
                not layers:
            state[out] = _fold_scalar(node, name, src, inits)
        elif isinstance(src, _Codes) and op == "Quant" and src.tensor == INPUT and not layers:
            base, n_levels, fout, scale, zero = _output_codes(node, inits)
            in_fmt = fout
            state[out] = _codes_of(INPUT, src.size, fout, scale, zero)
            result.quantizers[INPUT] = (out, scale, zero)
        elif isinstance(src, _Codes) and op in ("MatMul", "Gemm") and src.a is None:
            raise UnsupportedLayerError(
                f"Node {name!r}: {op} of codes with a scale or zero point per channel (from "
                f"{src.tensor!r}): its sum of codes times weights is not one integer "
                f"accumulator times a scale, so no integer layer gives it exactly; nnfab builds "
                f"matrix products of codes with one scale and zero point per tensor")
        elif isinstance(src, _Codes) and op in ("MatMul", "Gemm"):
            codes, w_scale = _weights(node, src, weights, inits)
            w_codes = codes
            layers.append(_dense(name, w_codes, src.fmt, (src.tensor,)))
            lo, hi = src.fmt.min_code, src.fmt.max_code
            low = np.minimum(codes * lo, codes * hi).sum(axis=1)
            high = np.maximum(codes * lo, codes * hi).sum(axis=1)
            sums = codes.sum(axis=1)
            acc = _Acc(name, len(layers) - 1, out, [src.a * s for s in w_scale],
                       [src.b * s * int(n) for s, n in zip(w_scale, sums)], low, high)
            if op == "Gemm":
                acc = _gemm_extras(node, name, acc, inits, len(w_scale))
            state[out] = acc
        elif isinstance(src, _Acc) and op in _SEGMENT_OPS + ("Softmax",):
            src.nodes.append(node)
            state[out] = src
        elif isinstance(src, _Acc) and op in ("Quant", "BipolarQuant"):
            layer, result.proofs[name] = _threshold_layer(node, name, src, inits, opsets,
                                                          layers, max_exhaustive)
            layers.append(layer)
            _, _, fout, scale, zero = _output_codes(node, inits)
            fout = layer.output_format
            result.quantizers[name] = (out, scale, zero)
            state[out] = _codes_of(name, len(src.scale), fout, scale, zero)
        else:
            raise UnsupportedLayerError(
                f"Node {name!r}: {op} here is not supported; nnfab imports QONNX graphs with "
                f"any scales as MatMul/Gemm on quantized weights, then Add, Sub, Mul, Div by "
                f"constants, BatchNormalization and Relu, then Quant or BipolarQuant (an input "
                f"Quant, or scalar Add/Sub/Mul/Div of the input, may come first)")
    if not layers:
        raise ModelError(f"Model file {str(path)!r}: the QONNX graph has no layers nnfab builds")
    last = state[graph.output[0].name]
    if isinstance(last, _Acc):
        result.output_scale, result.output_offset = last.scale, last.offset
        result.output_tensor = last.start
    result.model = Model(Path(path).stem, (in_size,), in_fmt, tuple(layers))
    return result


def _dense(name, codes, input_format, inputs):
    """A dense layer of integer weight ``codes`` whose output is the exact accumulator."""
    w_fmt, w_codes = exact(np.asarray(codes, dtype=np.float64), name, "weights")
    layer = dense_layer(name, weights=w_codes, weight_format=w_fmt, biases=None,
                        bias_format=None, input_format=input_format)
    return dataclasses.replace(layer, inputs=tuple(inputs))


def _fold_scalar(node, name, src, inits):
    """Scalar ``Add``/``Sub``/``Mul``/``Div`` of the graph input, folded into ``a * x + b``."""
    const = [inits[i] for i in node.input if i in inits]
    if len(const) != 1 or np.asarray(const[0]).size != 1:
        raise UnsupportedLayerError(f"Node {name!r}: {node.op_type} of the input by a "
                                    f"non-scalar is not supported; only scalar constants")
    c = _frac(np.asarray(const[0]).reshape(-1)[0])
    first = node.input[0] in inits
    if node.op_type == "Add":
        return _Codes(src.tensor, src.size, src.fmt, src.a, src.b + c)
    if node.op_type == "Sub":
        return (_Codes(src.tensor, src.size, src.fmt, -src.a, c - src.b) if first else
                _Codes(src.tensor, src.size, src.fmt, src.a, src.b - c))
    if node.op_type == "Mul":
        return _Codes(src.tensor, src.size, src.fmt, src.a * c, src.b * c)
    if first or c == 0:
        raise UnsupportedLayerError(f"Node {name!r}: Div of the input must divide it by a "
                                    f"non-zero constant")
    return _Codes(src.tensor, src.size, src.fmt, src.a / c, src.b / c)


def _gemm_extras(node, name, acc, inits, channels):
    """A Gemm's ``alpha`` into the scale and ``beta * C`` as an ``Add`` node of the segment."""
    from onnx import helper

    a = _attrs(node)
    alpha, beta = _frac(a.get("alpha", 1.0)), a.get("beta", 1.0)
    acc.scale = [s * alpha for s in acc.scale]
    acc.offset = [o * alpha for o in acc.offset]
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in inits:
            raise UnsupportedLayerError(f"Node {name!r}: Gemm bias must be a constant")
        bias = (np.asarray(inits[node.input[2]], dtype=np.float32) * np.float32(beta))
        start = f"{node.output[0]}__product"
        const = f"{node.output[0]}__bias"
        inits[const] = np.broadcast_to(bias.reshape(-1), (channels,)).astype(np.float32)
        acc.nodes.append(helper.make_node("Add", [start, const], [node.output[0]],
                                          name=f"{name}_bias"))
        acc.start = start
    return acc


def _threshold_layer(node, name, acc, inits, opsets, layers, max_exhaustive):
    """``(layer, proof)``: the multithreshold layer of quantizer ``node`` after accumulator
    ``acc`` (beyond :data:`~nnfab.hdl.multithreshold.MAX_COMPARATORS` thresholds, an
    ``output_stage`` with their fixed-point form where one is exact); negates the weights of
    flipped channels in ``layers[acc.index]``."""
    base, n_levels, fout, scale, zero = _output_codes(node, inits)
    for op in acc.nodes:
        if op.op_type not in _SEGMENT_OPS:
            raise UnsupportedLayerError(f"Node {op.name!r}: {op.op_type} between a matrix "
                                        f"product and quantizer {name!r} is not supported; "
                                        f"accepted there: {', '.join(_SEGMENT_OPS)}")
    segment = Segment(name, acc.start, acc.nodes + [node], inits, opsets, acc.scale,
                      acc.offset, scale, zero)
    thresholds, sign, proof = segment_thresholds(segment, acc.low, acc.high, base=base,
                                                 n_levels=n_levels,
                                                 max_exhaustive=max_exhaustive)
    dense = layers[acc.index]
    if np.any(sign < 0):
        dense = layers[acc.index] = _dense(dense.name, dense.spec.weights * sign[:, None],
                                           dense.spec.input_format, dense.inputs)
    fin = dense.output_format
    thresholds = np.clip(thresholds, fin.min_code, fin.max_code + 1)
    if n_levels > MAX_COMPARATORS:
        # Too many codes to compare with at once: the thresholds' fixed-point form, (acc * m +
        # b) >> s, where one equals them on every reachable accumulator (the float graph is
        # then a rounded affine map); else the engine searches the thresholds.
        lo, hi = np.where(sign > 0, acc.low, -acc.high), np.where(sign > 0, acc.high, -acc.low)
        try:
            stage = OutputStage.fit_thresholds(thresholds, lo, hi, base=base)
        except ValueError:
            pass
        else:
            text = (f"{proof}; then (acc * m + b) >> s per channel, equal to the thresholds on "
                    f"every reachable accumulator (checked at each threshold; both monotone)")
            return OutputStageLayer(name, shape=(len(acc.scale),), fin=fin, stage=stage,
                                    inputs=(dense.name,)), text
    return MultiThresholdLayer(name, shape=(len(acc.scale),), fin=fin, thresholds=thresholds,
                               base=base, fout=fout, proof=str(proof),
                               inputs=(dense.name,)), str(proof)
