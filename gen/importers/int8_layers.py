"""Exact integer layers of int8 models, shared by the TFLite and the onnxruntime importers.

An int8 operator (TFLite's ``FULLY_CONNECTED``/``CONV_2D``, ONNX's ``QGemm``/``QLinearConv``)
sums ``(x - zp_in) * (w - zp_w)`` plus an int32 bias. nnfab builds it as a layer whose output is
the **exact** integer accumulator, followed by a requantizer:

- the weights' zero point is subtracted from the weight codes (exact, still small integers);
- the input zero point is folded into the bias, ``sum((x - zp_in) * w) + b = sum(x * w) + (b -
  zp_in * sum(w))``, exact; a convolution pads with the code ``zp_in`` (the real zero), which
  the folded bias takes away again at the borders;
- the formats are the narrowest that hold the weights, the folded bias and every reachable sum.
"""

import re

import numpy as np

from nnfab.conv_layers import Conv2DSpec, DepthwiseConv2DSpec
from nnfab.errors import UnsupportedLayerError
from nnfab.layers import DenseSpec

from nnfab.ir import integer_format

__all__ = ["INT8", "bits_for", "exact_dense", "exact_conv", "MAX_ACCUMULATOR_BITS",
           "model_name"]

#: Format of int8 tensors (their zero points are carried by the layers that read them).
INT8 = integer_format(8)
#: Widest exact accumulator built: TFLite and onnxruntime accumulate in int32, and the
#: ``"gemmlowp"`` output stage reads at most 32 bits.
MAX_ACCUMULATOR_BITS = 32


def bits_for(values):
    """Bits of the signed integer format that holds every value of ``values`` (at least 2)."""
    values = np.asarray(values, dtype=np.int64)
    top = int(max(values.max(initial=0), -values.min(initial=0) - 1))
    return max(2, top.bit_length() + 1)


def exact_dense(weights, bias, zero_point):
    """The :class:`~nnfab.layers.DenseSpec` of ``sum((x - zero_point) * w) + bias`` on int8 codes,
    whose output format is its exact accumulator.

    Parameters
    ----------
    weights : ndarray of int, shape (n_out, n_in)
        Weight codes less their zero point.
    bias : ndarray of int, shape (n_out,)
    zero_point : int
        The input tensor's zero point.
    """
    weights = np.asarray(weights, dtype=np.int64)
    folded = np.asarray(bias, dtype=np.int64) - zero_point * weights.sum(axis=1)
    w_fmt, b_fmt = integer_format(bits_for(weights)), integer_format(bits_for(folded))
    exact = DenseSpec(weights, folded, INT8, w_fmt, INT8, bias_format=b_fmt).accumulator
    return DenseSpec(weights, folded, INT8, w_fmt, exact, bias_format=b_fmt)


def exact_conv(where, weights, bias, zero_point, shape, *, strides, padding, depthwise=False):
    """The :class:`~nnfab.conv_layers.Conv2DSpec` (``depthwise``:
    :class:`~nnfab.conv_layers.DepthwiseConv2DSpec`) of ``sum((x - zero_point) * w) + bias`` over
    each window of int8 frames of ``shape`` ``(H, W, C)``, padded with ``zero_point``, whose
    output format is its exact accumulator.

    Parameters
    ----------
    where : str
        Names the operator in messages (``"Operator 3 (CONV_2D)"``).
    weights : ndarray of int
        ``(C_out, KH, KW, C_in)``, or ``(KH, KW, C)`` when ``depthwise``, less their zero point.
    bias : ndarray of int, shape (C_out,)

    Raises
    ------
    UnsupportedLayerError
        If the geometry is inconsistent or the exact accumulator is wider than
        :data:`MAX_ACCUMULATOR_BITS`.
    """
    weights = np.asarray(weights, dtype=np.int64)
    axes = (0, 1) if depthwise else (1, 2, 3)
    folded = np.asarray(bias, dtype=np.int64) - zero_point * weights.sum(axis=axes)
    w_fmt, b_fmt = integer_format(bits_for(weights)), integer_format(bits_for(folded))
    make = DepthwiseConv2DSpec if depthwise else Conv2DSpec

    def spec(output_format):
        return make(weights, folded, tuple(shape), INT8, w_fmt, output_format, strides=strides,
                    padding=padding, bias_format=b_fmt, pad_code=int(zero_point))

    try:
        exact = spec(INT8).accumulator
        conv = spec(exact)
    except ValueError as exc:
        raise UnsupportedLayerError(f"{where}: {exc}") from None
    if exact.width > MAX_ACCUMULATOR_BITS:
        raise UnsupportedLayerError(f"{where}: exact accumulator of {exact.width} bits; nnfab "
                                    f"builds at most {MAX_ACCUMULATOR_BITS} (int32)")
    return conv


def model_name(path, default):
    """A model name from the file ``path``'s stem: other characters than letters, digits and
    ``_`` become ``_``, ``default`` for an empty stem, ``m_`` before one that does not start
    with a letter."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or default
    return stem if stem[0].isalpha() else f"m_{stem}"
