"""QONNX models (``Quant``, ``BipolarQuant``, ``Trunc``) with power-of-two scales, into the
quantized IR; graphs with other scales, ``BatchNormalization`` or float arithmetic between the
quantizers go to :mod:`nnfab.gen.importers.qonnx_thresholds` (:func:`load_qonnx` decides).

QONNX ``Quant(x, scale, zero_point, bit_width; signed, narrow, rounding_mode)`` is
``y = (clip(round(x / scale + z), lo, hi) - z) * scale`` with ``lo = -2**(b-1) + narrow``,
``hi = 2**(b-1) - 1`` (signed) or ``lo = 0``, ``hi = 2**b - 1`` (unsigned). With
``scale = 2**-F`` and ``z = 0`` that is the cast to ``fixed<b, b-F>`` (``ufixed`` unsigned) with
rounding ``ROUND`` -> ``RND_CONV`` (half to even, as NumPy's ``round``), ``FLOOR`` -> ``TRN``,
``ROUND_TO_ZERO`` -> ``TRN_ZERO``, and overflow ``SAT`` (``SAT_SYM`` when ``narrow``).
``Trunc(x, scale, z, in_bits, out_bits)`` drops ``in_bits - out_bits`` low bits: the cast to
a format of ``out_bits`` bits whose LSB is ``scale * 2**(in_bits - out_bits)``, ``TRN``.
``BipolarQuant`` is supported on weights (values ``+-scale``). Quantizers of constants
(weights, biases) are evaluated here; quantizers of data become activation layers (``linear``,
or ``relu`` when fused with a preceding Relu).
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnfab.casts import quantize, to_float
from nnfab.conv_layers import DepthwiseConv2DSpec, PoolSpec
from nnfab.errors import FormatError, ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat, common_format

from nnfab.ir import ActivationLayer, Model, SoftmaxLayer
from nnfab.ir import Conv2DLayer, PoolLayer
from nnfab.ir import ConcatenateLayer, UpsampleLayer
from ._common import (DEFAULT_INPUT_FORMAT, SOFTMAX_FORMAT, conv_layer, dense_layer, exact,
                      relu_format)
from .qonnx_thresholds import import_qonnx_thresholds, needs_thresholds
from .onnx import (CHANNELS_LAST_DOMAIN, OnnxChain, check_channel_axis, dense_weights,
                   is_vector_reshape, nearest_resize, read_onnx, window)

__all__ = ["load_qonnx", "quant_format"]

_ROUNDING = {"ROUND": "RND_CONV", "FLOOR": "TRN", "ROUND_TO_ZERO": "TRN_ZERO"}


def _scalar(value, name, what):
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size != 1 and not np.all(array == array[0]):
        raise UnsupportedLayerError(f"Node {name!r}: per-channel {what} is not supported; use one "
                                    f"{what} per tensor")
    return float(array[0])


def _show(value):
    """A float32 value as its shortest float32 repr (0.1, not 0.10000000149011612)."""
    return str(np.float32(value)) if float(np.float32(value)) == value else repr(value)


def _fraction_bits(scale, name):
    if not scale > 0:
        raise FormatError(f"Node {name!r}: scale {scale!r} must be positive")
    mantissa, exponent = np.frexp(scale)
    if mantissa != 0.5:
        raise UnsupportedLayerError(f"Node {name!r}: scale {_show(scale)} is not a power of two; nnfab "
                                    f"imports QONNX with power-of-two scales only")
    return 1 - int(exponent)


def quant_format(node, name, attrs, consts):
    """The fixed-point format of a ``Quant`` or ``Trunc`` node (with its rounding and overflow).

    Raises
    ------
    UnsupportedLayerError
        For a non-power-of-two or per-channel scale, a non-zero zero point, a non-constant bit
        width, an unsupported rounding mode or an unsigned narrow range.
    """
    op = node.op_type
    for k, what in ((1, "scale"), (2, "zero point"), (3, "bit width")):
        if k not in consts:
            raise UnsupportedLayerError(f"Node {name!r}: {op} {what} must be a constant")
    scale = _scalar(consts[1], name, "scale")
    zero = _scalar(consts[2], name, "zero point")
    if zero != 0:
        raise UnsupportedLayerError(f"Node {name!r}: zero point {zero!r} is not supported; nnfab "
                                    f"imports QONNX with zero point 0 only")
    fraction = _fraction_bits(scale, name)
    mode = attrs.get("rounding_mode", b"ROUND" if op == "Quant" else b"FLOOR")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode.upper() not in _ROUNDING:
        raise UnsupportedLayerError(f"Node {name!r}: rounding mode {mode!r} is not supported; "
                                    f"use {', '.join(_ROUNDING)}")
    rounding = _ROUNDING[mode.upper()]
    if op == "Trunc":
        if 4 not in consts:
            raise UnsupportedLayerError(f"Node {name!r}: Trunc output bit width must be a "
                                        f"constant")
        in_bits = int(_scalar(consts[3], name, "bit width"))
        bits = int(_scalar(consts[4], name, "bit width"))
        fraction -= in_bits - bits
        signed = bool(attrs.get("signed", 1))
        return FixedFormat(bits, bits - fraction, signed=signed, rounding=rounding)
    bits = _scalar(consts[3], name, "bit width")
    if bits != int(bits) or bits < 1:
        raise UnsupportedLayerError(f"Node {name!r}: bit width {bits!r} must be a positive "
                                    f"integer")
    bits, signed, narrow = int(bits), bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    if narrow and not signed:
        raise UnsupportedLayerError(f"Node {name!r}: narrow range of an unsigned Quant is not "
                                    f"supported; use narrow=0")
    return FixedFormat(bits, bits - fraction + (0 if signed else 0), signed=signed,
                       rounding=rounding, overflow="SAT_SYM" if narrow else "SAT")


def _constant_quant(node, name, attrs, consts):
    """Evaluate a quantizer of constants to its float values (exactly)."""
    inputs = [consts.get(i) for i in node.input]
    local = {k: v for k, v in enumerate(inputs) if v is not None}
    if node.op_type == "BipolarQuant":
        scale = _scalar(local[1], name, "scale")
        _fraction_bits(scale, name)
        return np.where(local[0] >= 0, scale, -scale)
    if node.op_type in ("Quant", "Trunc"):
        fmt = quant_format(node, name, attrs, local)
        return to_float(quantize(local[0], fmt), fmt)
    if node.op_type in ("Identity", "Transpose", "Reshape"):
        if node.op_type == "Transpose":
            return np.transpose(local[0], attrs.get("perm"))
        if node.op_type == "Reshape":
            return local[0].reshape(local[1].astype(np.int64))
        return local[0]
    raise UnsupportedLayerError(f"Node {name!r}: {node.op_type} of constants is not supported; "
                                f"nnfab evaluates Quant, BipolarQuant, Trunc, Identity, "
                                f"Transpose and Reshape of constants (qonnx's cleanup_model "
                                f"folds the rest)")


_CHANNELS_LAST = CHANNELS_LAST_DOMAIN


@dataclass(frozen=True)
class _Data:
    """An ONNX data tensor as the importer knows it: the nnfab tensor holding it, its shape
    (channels-last for images) and format."""

    name: str
    shape: tuple
    fmt: FixedFormat


def _conv(name, attrs, consts, data):
    """A channels-last QONNX ``Conv``: ``group`` 1 (dense windows) or ``group`` = channels
    (depthwise, one kernel per channel), exact accumulator out."""
    weights = consts.get(1)
    if weights is None or weights.ndim != 4:
        raise UnsupportedLayerError(f"Node {name!r}: Conv needs constant 4-D weights")
    # Channels-last convolutions keep their weights as (F, kh, kw, C / group).
    shape, group = data.shape, int(attrs.get("group", 1))
    attrs = dict(attrs, kernel_shape=attrs.get("kernel_shape", weights.shape[1:3]))
    _, strides, padding = window(name, attrs, shape)
    w_fmt, w_codes = exact(weights, name, "weights")
    b_fmt, b_codes = exact(consts[2], name, "biases") if 2 in consts else (None, None)
    if group == 1:
        if weights.shape[3] != shape[2]:
            raise ShapeError(f"Node {name!r}: weights of shape {weights.shape} do not take "
                             f"{shape[2]} input channels")
        return conv_layer(name, weights=w_codes,
                          weight_format=w_fmt, biases=b_codes, bias_format=b_fmt,
                          input_shape=shape, input_format=data.fmt, strides=strides,
                          padding=padding)
    if group != shape[2] or weights.shape[0] != shape[2] or weights.shape[3] != 1:
        raise UnsupportedLayerError(f"Node {name!r}: Conv with group={group} of {shape[2]} "
                                    f"channels and weights {weights.shape} is not supported; "
                                    f"only group=1 or depthwise (group = channels, one kernel "
                                    f"each)")
    try:
        spec = DepthwiseConv2DSpec(np.transpose(w_codes[..., 0], (1, 2, 0)), b_codes, shape,
                                   data.fmt, w_fmt, data.fmt, strides=strides,
                                   padding=padding, bias_format=b_fmt)
        spec = DepthwiseConv2DSpec(spec.weights, b_codes, shape, data.fmt, w_fmt,
                                   spec.accumulator, strides=strides, padding=padding,
                                   bias_format=b_fmt)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None
    return Conv2DLayer(name, spec=spec)


def _leaky_relu(name, attrs, data):
    """``LeakyRelu`` with a dyadic ``alpha``, exact: the output keeps every bit of
    ``alpha * x``."""
    alpha_format, alpha_code = exact(np.array(float(attrs.get("alpha", 0.01))), name, "alpha")
    fout = common_format([data.fmt, data.fmt.mul_format(alpha_format)])
    return ActivationLayer(name, function="leaky_relu", shape=data.shape, fin=data.fmt,
                           fout=fout, params=dict(alpha_format=alpha_format,
                                                  alpha_code=int(alpha_code)))


def _is_channels_last(model):
    return any(node.domain == _CHANNELS_LAST for node in model.graph.node)


def load_qonnx(path, *, input_format=None):
    """A QONNX model as a quantized :class:`~nnfab.ir.Model` (a graph: branches join in
    ``Concat``; channels-last models of qonnx's ``ConvertToChannelsLastAndClean`` with
    ``Conv`` (dense or depthwise), ``MaxPool``, ``LeakyRelu`` and nearest ``Resize``).
    A graph with other scales, ``BatchNormalization`` or float arithmetic between quantizers
    (:func:`~nnfab.gen.importers.qonnx_thresholds.needs_thresholds`) is imported by
    :mod:`nnfab.gen.importers.qonnx_thresholds` instead (integer layers and thresholds).

    Parameters
    ----------
    input_format : FixedFormat, optional
        Format of the inputs when the graph does not quantize them first (default
        ``fixed<16,6>``); a leading ``Quant`` sets it instead.

    Raises
    ------
    ModelError, UnsupportedLayerError
        As :func:`nnfab.gen.importers.onnx.load_onnx`, and for the QONNX settings listed in
        :func:`quant_format`.
    """
    from nnfab.ir import INPUT

    onnx_model = read_onnx(path)
    if needs_thresholds(onnx_model):
        return import_qonnx_thresholds(path, input_format=input_format).model
    channels_last = _is_channels_last(onnx_model)
    chain = OnnxChain(onnx_model, constant_op=_constant_quant)
    input_shape = chain.input_shape
    if channels_last and len(input_shape) == 3:
        # OnnxChain reads a 4-D input as NCHW; a channels-last graph's input is NHWC.
        input_shape = tuple(int(d) for d in
                            (d.dim_value for d in onnx_model.graph.input[0].type.tensor_type
                             .shape.dim[1:]))
    in_fmt = input_format or DEFAULT_INPUT_FORMAT
    tensors = {chain.input_name: _Data(INPUT, input_shape, in_fmt)}
    layers = []
    for index, (node, name, attrs, consts) in enumerate(chain.nodes):
        op = node.op_type
        sources = [tensors[i] for i in node.input if i and i not in chain.consts]
        data = sources[0]
        shape, fmt = data.shape, data.fmt
        if len(sources) > 1 and op != "Concat":
            raise UnsupportedLayerError(f"Node {name!r}: {op} of {len(sources)} computed "
                                        f"tensors is not supported in QONNX")
        if len(shape) == 3 and op in ("Conv", "MaxPool") and node.domain != _CHANNELS_LAST:
            raise UnsupportedLayerError(f"Node {name!r}: {op} of an NCHW tensor; nnfab imports "
                                        f"QONNX images in channels-last form (qonnx's "
                                        f"ConvertToChannelsLastAndClean)")
        new = None
        if op in ("Gemm", "MatMul"):
            w, b = dense_weights(node, name, attrs, consts, shape[0]) if len(shape) == 1 else \
                (None, None)
            if w is None:
                raise UnsupportedLayerError(f"Node {name!r}: {op} on shape {shape}")
            w_fmt, w_codes = exact(w, name, "weights")
            b_fmt, b_codes = exact(b, name, "biases") if b is not None else (None, None)
            new = dense_layer(name, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                              bias_format=b_fmt, input_format=fmt)
        elif op == "Add":
            bias = consts.get(1, consts.get(0))
            producer = next((k for k, layer in enumerate(layers) if layer.name == data.name),
                            None)
            last = None if producer is None else layers[producer]
            if last is None or last.kind != "dense" or last.spec.biases is not None or \
                    bias is None:
                raise UnsupportedLayerError(f"Node {name!r}: Add is supported as the bias of a "
                                            f"MatMul only")
            s = last.spec
            b_fmt, b_codes = exact(np.broadcast_to(bias.reshape(-1), shape), name, "biases")
            layers[producer] = dataclasses.replace(dense_layer(
                last.name, weights=s.weights, weight_format=s.weight_format, biases=b_codes,
                bias_format=b_fmt, input_format=s.input_format), inputs=last.inputs)
            tensors[node.output[0]] = _Data(last.name, shape, layers[producer].output_format)
            continue
        elif op == "Conv":
            new = _conv(name, attrs, consts, data)
        elif op == "MaxPool":
            if attrs.get("ceil_mode", 0):
                raise UnsupportedLayerError(f"Node {name!r}: MaxPool with ceil_mode=1 is not "
                                            f"supported")
            kernel, strides, padding = window(name, attrs, shape)
            new = PoolLayer(name, spec=PoolSpec("max", shape, kernel, fmt, fmt,
                                                strides=strides, padding=padding))
        elif op == "LeakyRelu":
            new = _leaky_relu(name, attrs, data)
        elif op == "Resize":
            size = nearest_resize(name, attrs, consts, dataclasses.replace(
                data, layout="nhwc") if hasattr(data, "layout") else _Layout(shape)).size
            new = UpsampleLayer(name, shape=shape, size=size, fmt=fmt)
        elif op == "Concat":
            for source in sources:
                check_channel_axis(name, op, int(attrs.get("axis", -1)), _Layout(source.shape))
            formats = [source.fmt for source in sources]
            new = ConcatenateLayer(name, shapes=[source.shape for source in sources],
                                   fins=formats, fout=common_format(formats))
        elif op == "Relu":
            new = ActivationLayer(name, function="relu", shape=shape, fin=fmt,
                                  fout=relu_format(fmt))
        elif op in ("Quant", "Trunc"):
            qfmt = quant_format(node, name, attrs, consts)
            if not layers and data.name == INPUT and index == 0:
                in_fmt = qfmt
                tensors[chain.input_name] = tensors[node.output[0]] = _Data(INPUT, shape, qfmt)
                continue
            new = ActivationLayer(name, function="linear", shape=shape, fin=fmt, fout=qfmt)
        elif op == "BipolarQuant":
            raise UnsupportedLayerError(f"Node {name!r}: BipolarQuant of activations is not "
                                        f"supported; only of weights")
        elif op == "Softmax":
            new = SoftmaxLayer(name, n=shape[-1], fin=fmt, fout=SOFTMAX_FORMAT)
        elif op in ("Identity", "Dropout") or (op in ("Flatten", "Reshape")
                                               and is_vector_reshape(node, consts, shape)):
            tensors[node.output[0]] = data
            continue
        else:
            raise UnsupportedLayerError(f"Node {name!r}: ONNX operator {op!r} is not supported in "
                                        f"QONNX (supported: Quant, Trunc, MatMul, Gemm, Add, "
                                        f"Relu, Softmax, Flatten, Reshape, and in channels-last "
                                        f"graphs Conv, MaxPool, LeakyRelu, Resize, Concat)")
        new = dataclasses.replace(new, inputs=tuple(source.name for source in sources))
        layers.append(new)
        tensors[node.output[0]] = _Data(new.name, tuple(new.output_shape), new.output_format)
    if not layers:
        raise ModelError(f"Model file {str(path)!r}: the QONNX graph has no layers nnfab builds")
    return Model(Path(path).stem, input_shape, in_fmt, tuple(layers))


@dataclass(frozen=True)
class _Layout:
    """A channels-last tensor as the ONNX helpers see it."""

    shape: tuple
    layout: str | None = None

    def __post_init__(self):
        if self.layout is None:
            object.__setattr__(self, "layout", "nhwc" if len(self.shape) == 3 else None)
