"""QONNX models (``Quant``, ``BipolarQuant``, ``Trunc``) with power-of-two scales, into the
quantized IR.

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

from pathlib import Path

import numpy as np

from nnfab.casts import quantize, to_float
from nnfab.errors import FormatError, ModelError, UnsupportedLayerError
from nnfab.fixed import FixedFormat

from ..ir import ActivationLayer, Model, SoftmaxLayer
from ._common import DEFAULT_INPUT_FORMAT, SOFTMAX_FORMAT, dense_layer, exact, relu_format
from .onnx import OnnxChain, dense_weights, is_vector_reshape, read_onnx

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
    raise UnsupportedLayerError(f"Node {name!r}: {node.op_type} of constants is not supported")


def load_qonnx(path, *, input_format=None):
    """A QONNX model as a quantized :class:`~nnfab.gen.ir.Model`.

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
    chain = OnnxChain(read_onnx(path), constant_op=_constant_quant)
    shape, layers = chain.input_shape, []
    fmt = in_fmt = input_format or DEFAULT_INPUT_FORMAT
    nodes = chain.nodes
    for index, (node, name, attrs, consts) in enumerate(nodes):
        op = node.op_type
        new = []
        if op in ("Gemm", "MatMul"):
            w, b = dense_weights(node, name, attrs, consts, shape[0]) if len(shape) == 1 else \
                (None, None)
            if w is None:
                raise UnsupportedLayerError(f"Node {name!r}: {op} on shape {shape}")
            w_fmt, w_codes = exact(w, name, "weights")
            b_fmt, b_codes = exact(b, name, "biases") if b is not None else (None, None)
            new = [dense_layer(name, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                               bias_format=b_fmt, input_format=fmt)]
        elif op == "Add":
            bias = consts.get(1, consts.get(0))
            last = layers[-1] if layers else None
            if last is None or last.kind != "dense" or last.spec.biases is not None or \
                    bias is None:
                raise UnsupportedLayerError(f"Node {name!r}: Add is supported as the bias of a "
                                            f"MatMul only")
            layers.pop()
            s = last.spec
            b_fmt, b_codes = exact(np.broadcast_to(bias.reshape(-1), shape), name, "biases")
            new = [dense_layer(last.name, weights=s.weights, weight_format=s.weight_format,
                               biases=b_codes, bias_format=b_fmt, input_format=s.input_format)]
        elif op == "Relu":
            new = [ActivationLayer(name, function="relu", shape=shape, fin=fmt,
                                   fout=relu_format(fmt))]
        elif op in ("Quant", "Trunc"):
            qfmt = quant_format(node, name, attrs, consts)
            if not layers and index == 0:
                in_fmt = fmt = qfmt
                continue
            new = [ActivationLayer(name, function="linear", shape=shape, fin=fmt, fout=qfmt)]
        elif op == "BipolarQuant":
            raise UnsupportedLayerError(f"Node {name!r}: BipolarQuant of activations is not "
                                        f"supported; only of weights")
        elif op == "Softmax":
            new = [SoftmaxLayer(name, n=shape[-1], fin=fmt, fout=SOFTMAX_FORMAT)]
        elif op in ("Identity", "Dropout") or (op in ("Flatten", "Reshape")
                                               and is_vector_reshape(node, consts, shape)):
            continue
        else:
            raise UnsupportedLayerError(f"Node {name!r}: ONNX operator {op!r} is not supported in "
                                        f"QONNX (supported: Quant, Trunc, MatMul, Gemm, Add, "
                                        f"Relu, Softmax, Flatten, Reshape)")
        for layer in new:
            layers.append(layer)
            fmt, shape = layer.output_format, tuple(layer.output_shape)
    if not layers:
        raise ModelError(f"Model file {str(path)!r}: the QONNX graph has no layers nnfab builds")
    return Model(Path(path).stem, chain.input_shape, in_fmt, tuple(layers))
