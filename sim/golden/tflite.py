"""Int8 TFLite models, code for code as TFLite's reference kernels compute them.

The golden functions take the description :func:`nnfab.gen.importers.tflite_file.read_tflite`
returns (read here only through its attributes: ``tensors``, ``operators``, ``inputs``,
``outputs``) and whole batches of inputs. Each operator follows the kernel that TFLite's
``BUILTIN_REF`` op resolver runs for int8 (``tensorflow/lite/kernels/internal/reference/``,
which TFLite Micro runs too):

- ``FULLY_CONNECTED``, ``CONV_2D``, ``DEPTHWISE_CONV_2D`` (``reference_integer_ops::
  FullyConnected``, ``ConvPerChannel``, ``DepthwiseConvPerChannel``): int32 sums of
  ``weight * (input - input_zero_point)``, padded positions skipped, plus the bias, then
  :func:`nnfab.requantize.multiply_by_quantized_multiplier` by the multiplier of
  ``input_scale * weight_scale / output_scale`` (double, in that order, per output channel),
  plus the output zero point, clamped to the fused activation's range; except that
  ``FULLY_CONNECTED`` rescales in double, ``round(double(acc) * effective scale)``
  (:func:`nnfab.requantize.multiply_by_real`), as TFLite's reference kernel with float scales
  does (the fixed-point multiplier's double rounding differs from it on 29,601 of the 1,672,000
  fully connected results of 1,000 seeded ad01 inputs, before the activation clamp).
- ``AVERAGE_POOL_2D``: the sum of the raw codes over the window clipped to the image, divided by
  the number of positions, rounded half away from zero (C's truncating division of the sum
  plus or minus half the count; :func:`average_int8`); ``MAX_POOL_2D``: the maximum over the
  clipped window.
- ``ADD``: each input minus its zero point, shifted left by 20, multiplied by its multiplier of
  ``scale / (2 * max(scale_1, scale_2))``, summed, multiplied by that of
  ``2 * max(scale_1, scale_2) / (2**20 * output_scale)``, plus the output zero point, clamped
  (:func:`add_int8` with :class:`nnfab.tflite_ops.AddParams`).

The per-element functions :func:`add_int8` and :func:`average_int8` are the arithmetic of these
operators in one place; the hardware tests compare the engines with them.
- ``SOFTMAX``: :func:`nnfab.sim.golden.tflite_softmax.softmax_int8` (gemmlowp fixed point).
- ``RESHAPE``; ``PAD`` with the output zero point; ``QUANTIZE`` (float32 to int8, or int8 to
  int8 by a multiplier) and ``DEQUANTIZE``.

Fused activation ranges are TFLite's ``CalculateActivationRangeQuantized``: ``zero_point +
round(f / scale)`` in float32, rounded half away from zero, within -128 to 127.

Every tensor is batched: TFLite's shape ``(1, ...)`` is ``(N, ...)`` here; arithmetic is exact
``int64`` (sums of products go through float64 matrix products, exact below 2**53).
"""

import math

import numpy as np

from nnfab.errors import FormatError, ModelError, ShapeError, UnsupportedLayerError
from nnfab.requantize import (multiply_by_quantized_multiplier, multiply_by_real,
                              quantize_multiplier, quantize_multipliers)
from nnfab.tflite_ops import AddParams

from .tflite_softmax import softmax_int8

__all__ = ["run_tflite", "affine_quantize", "activation_range", "fc_effective_scales",
           "conv_multipliers", "add_params", "add_int8", "average_int8", "window_padding", "check_softmax_output",
           "KERNELS"]

INT8_MIN, INT8_MAX = -128, 127


def _round_half_away(value):
    """``TfLiteRound`` (``std::round``): to nearest, ties away from zero."""
    value = float(value)
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def activation_range(tensor, activation):
    """``(min, max)`` codes of a fused activation on int8 ``tensor`` (TFLite's
    ``CalculateActivationRangeQuantized``)."""
    scale = np.float32(tensor.scale)
    zero_point = tensor.zero_point

    def quantize(f):
        return zero_point + _round_half_away(np.float32(f) / scale)

    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    raise UnsupportedLayerError(f"Fused activation {activation!r} is not supported; nnfab takes "
                                f"'NONE', 'RELU', 'RELU6' and 'RELU_N1_TO_1'")


def conv_multipliers(input_tensor, weight_tensor, output_tensor, n_channels):
    """Per-channel ``(multipliers, shifts)`` of a convolution or fully connected layer, as
    TFLite's ``PopulateConvolutionQuantizationParams``: ``double(input_scale) *
    double(weight_scale) / double(output_scale)`` quantized by ``QuantizeMultiplier``."""
    scales = weight_tensor.scales
    if len(scales) not in (1, n_channels):
        raise ModelError(f"Weights {weight_tensor.name!r} have {len(scales)} scales; expected 1 "
                         f"or {n_channels} (one per output channel)")
    if len(scales) == 1:
        scales = scales * n_channels
    reals = [input_tensor.scale * float(s) / output_tensor.scale for s in scales]
    return quantize_multipliers(reals)


def add_params(input1, input2, output, activation="NONE"):
    """TFLite's int8 ``ADD`` parameters (``add.cc`` Prepare) of three tensors and a fused
    activation: :meth:`nnfab.tflite_ops.AddParams.from_scales` (left shift 20)."""
    tensors = (input1, input2, output)
    low, high = activation_range(output, activation)
    return AddParams.from_scales([t.scale for t in tensors], [t.zero_point for t in tensors],
                                 low, high)


def add_int8(a, b, params):
    """``reference_integer_ops::AddElementwise`` on int8 codes ``a`` and ``b`` (any integer
    arrays, broadcasting as NumPy does) with :class:`~nnfab.tflite_ops.AddParams`: each input
    minus its zero point, shifted left, multiplied by its multiplier, the two summed, multiplied
    by the output multiplier, plus the output zero point, clamped. Returns ``int64`` codes."""
    (m1, e1), (m2, e2), (m, e) = params.pairs()
    z1, z2, z_out = params.zero_points
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    scaled_1 = multiply_by_quantized_multiplier((a - z1) << params.left_shift, m1, e1)
    scaled_2 = multiply_by_quantized_multiplier((b - z2) << params.left_shift, m2, e2)
    out = multiply_by_quantized_multiplier(scaled_1 + scaled_2, m, e) + z_out
    return np.clip(out, params.low, params.high)


def average_int8(total, count, low=INT8_MIN, high=INT8_MAX):
    """The average of ``reference_integer_ops::AveragePool``: sums ``total`` of int8 codes over
    ``count`` positions (arrays that broadcast), ``(total + count / 2) / count`` for a positive
    sum and ``(total - count / 2) / count`` otherwise, dividing as C does (truncating), so half
    away from zero; clamped to ``[low, high]``. Returns ``int64`` codes."""
    total = np.asarray(total, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    half = count // 2
    average = np.where(total > 0, (total + half) // count, -((half - total) // count))
    return np.clip(average, low, high)


def window_padding(in_size, filter_size, stride, dilation, padding):
    """``(out_size, pad_before)`` of one spatial axis (TFLite's ``ComputeOutSize`` and
    ``ComputePaddingHeightWidth``): SAME pads ``max((out - 1) * stride + effective filter - in,
    0) // 2`` before."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - effective + stride) // stride
    total = max((out - 1) * stride + effective - in_size, 0)
    return out, total // 2


def _windows(x, op, kernel, fill, output_shape):
    """Yield ``(ky, kx, slice)`` of the input under each filter tap: ``x`` (N, H, W, C) padded
    with ``fill``; checks the output size against the file's."""
    stride_h, stride_w = op.options["stride"]
    dilation_h, dilation_w = op.options.get("dilation", (1, 1))
    _, in_h, in_w, _ = x.shape
    out_h, pad_top = window_padding(in_h, kernel[0], stride_h, dilation_h, op.options["padding"])
    out_w, pad_left = window_padding(in_w, kernel[1], stride_w, dilation_w,
                                     op.options["padding"])
    if (out_h, out_w) != tuple(output_shape[1:3]):
        raise ShapeError(f"Operator {op.index} ({op.opcode}): output {tuple(output_shape)!r} "
                         f"does not match the {out_h}x{out_w} its input and options give")
    need_h = max((out_h - 1) * stride_h + (kernel[0] - 1) * dilation_h + 1, pad_top + in_h)
    need_w = max((out_w - 1) * stride_w + (kernel[1] - 1) * dilation_w + 1, pad_left + in_w)
    padded = np.full((x.shape[0], need_h, need_w, x.shape[3]), fill, dtype=x.dtype)
    padded[:, pad_top:pad_top + in_h, pad_left:pad_left + in_w] = x
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            y0, x0 = ky * dilation_h, kx * dilation_w
            yield ky, kx, padded[:, y0:y0 + (out_h - 1) * stride_h + 1:stride_h,
                                 x0:x0 + (out_w - 1) * stride_w + 1:stride_w]


def _requantize(acc, op, input_tensor, weight_tensor, output_tensor):
    n_channels = acc.shape[-1]
    multipliers, shifts = conv_multipliers(input_tensor, weight_tensor, output_tensor, n_channels)
    out = multiply_by_quantized_multiplier(acc, multipliers, shifts) + output_tensor.zero_point
    low, high = activation_range(output_tensor, op.options["fused_activation"])
    return np.clip(out, low, high)


def _bias(model, op, n_channels):
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return np.zeros(n_channels, dtype=np.int64)
    return model.tensors[op.inputs[2]].data.astype(np.int64)


def _exact_int(total):
    return np.rint(total).astype(np.int64)


def fc_effective_scales(t_in, t_w, t_out, n_out):
    """The ``n_out`` factors ``double(s_in) * double(s_w) / double(s_out)`` of a fully
    connected layer, in TFLite's order of double operations (per-tensor weights repeat theirs).

    Raises
    ------
    ModelError
        If the weights have neither 1 nor ``n_out`` scales.
    """
    scales = t_w.scales * n_out if len(t_w.scales) == 1 else t_w.scales
    if len(scales) != n_out:
        raise ModelError(f"Weights {t_w.name!r} have {len(t_w.scales)} scales; expected 1 or "
                         f"{n_out} (one per output channel)")
    return [t_in.scale * float(s) / t_out.scale for s in scales]


def fully_connected(model, op, x):
    """``FULLY_CONNECTED``: ``x`` (N, ...) flattened to rows of ``n_in``, as TFLite's
    reference kernels with float scales (``reference_integer_ops::FullyConnected`` and
    ``FullyConnectedPerChannel``, the ones ``fully_connected.cc`` calls for ``kReference``):
    ``round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))``, ties away from zero
    (:func:`nnfab.requantize.multiply_by_real`), not the fixed-point multiplier of the
    convolutions. The weights' zero point is subtracted (per-tensor weights may have one)."""
    t_in, t_w, t_out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    weights = t_w.data.astype(np.int64)
    n_out, n_in = weights.shape
    rows = x.reshape(-1, n_in) - t_in.zero_point
    weight_zero_points = np.broadcast_to(np.asarray(t_w.zero_points, dtype=np.int64), (n_out,))
    weights = weights - weight_zero_points[:, None]
    acc = _exact_int(rows.astype(np.float64) @ weights.T.astype(np.float64))
    acc = acc + _bias(model, op, n_out)
    effective = np.array(fc_effective_scales(t_in, t_w, t_out, n_out))
    out = multiply_by_real(acc, effective) + t_out.zero_point
    low, high = activation_range(t_out, op.options["fused_activation"])
    return np.clip(out, low, high)


def conv_2d(model, op, x):
    """``reference_integer_ops::ConvPerChannel`` on ``x`` (N, H, W, C_in)."""
    t_in, t_w, t_out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    weights = t_w.data.astype(np.float64)                     # (C_out, KH, KW, C_in)
    n_out, kh, kw, _ = weights.shape
    acc = 0.0
    for ky, kx, window in _windows(x - t_in.zero_point, op, (kh, kw), 0, t_out.shape):
        acc = acc + window.astype(np.float64) @ weights[:, ky, kx, :].T
    acc = _exact_int(acc) + _bias(model, op, n_out)
    return _requantize(acc, op, t_in, t_w, t_out)


def depthwise_conv_2d(model, op, x):
    """``reference_integer_ops::DepthwiseConvPerChannel`` on ``x`` (N, H, W, C_in); output
    channel ``c * depth_multiplier + m`` reads input channel ``c``."""
    t_in, t_w, t_out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    weights = t_w.data.astype(np.int64)                       # (1, KH, KW, C_in * M)
    _, kh, kw, n_out = weights.shape
    multiplier = op.options["depth_multiplier"]
    if x.shape[-1] * multiplier != n_out:
        raise ShapeError(f"Operator {op.index} ({op.opcode}): {x.shape[-1]} input channels "
                         f"times depth multiplier {multiplier} is not the {n_out} of the "
                         f"weights")
    shifted = np.repeat(x - t_in.zero_point, multiplier, axis=-1)
    acc = np.zeros(shifted.shape[:1] + tuple(t_out.shape[1:3]) + (n_out,), dtype=np.int64)
    for ky, kx, window in _windows(shifted, op, (kh, kw), 0, t_out.shape):
        acc += window * weights[0, ky, kx]
    acc = acc + _bias(model, op, n_out)
    return _requantize(acc, op, t_in, t_w, t_out)


def average_pool_2d(model, op, x):
    """``reference_integer_ops::AveragePool``: raw codes summed over the clipped window, divided
    by its size rounding half away from zero."""
    t_out = model.tensors[op.outputs[0]]
    kernel = op.options["filter_size"]
    total = 0
    count = 0
    ones = np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64)
    for (_, _, window), (_, _, inside) in zip(_windows(x, op, kernel, 0, t_out.shape),
                                              _windows(ones, op, kernel, 0, t_out.shape)):
        total = total + window
        count = count + inside
    low, high = activation_range(t_out, op.options["fused_activation"])
    return average_int8(total, count, low, high)


def max_pool_2d(model, op, x):
    """``reference_integer_ops::MaxPool``: the maximum over the clipped window."""
    t_out = model.tensors[op.outputs[0]]
    result = None
    for _, _, window in _windows(x, op, op.options["filter_size"], -(1 << 40), t_out.shape):
        result = window if result is None else np.maximum(result, window)
    low, high = activation_range(t_out, op.options["fused_activation"])
    return np.clip(result, low, high)


def add(model, op, a, b):
    """``reference_integer_ops::Add`` (int8, left shift 20), broadcasting as NumPy does:
    :func:`add_int8` with :func:`add_params`."""
    t_1, t_2, t_out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    return add_int8(a, b, add_params(t_1, t_2, t_out, op.options["fused_activation"]))


def check_softmax_output(op, t_out):
    """Raise ModelError unless ``t_out``, the output of int8 ``SOFTMAX`` ``op``, has TFLite's
    required quantization: scale 1/256 and zero point -128."""
    if t_out.zero_point != -128 or abs(t_out.scale - 1 / 256) > 0.001 / 256:
        raise ModelError(f"Operator {op.index} ({op.opcode}): output scale {t_out.scale!r} and "
                         f"zero point {t_out.zero_point!r}; TFLite's int8 softmax needs 1/256 "
                         f"and -128")


def softmax(model, op, x):
    """int8 ``SOFTMAX`` over the last axis (:func:`.tflite_softmax.softmax_int8`)."""
    t_in, t_out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    check_softmax_output(op, t_out)
    return softmax_int8(x, t_in.scale, op.options["beta"])


def pad(model, op, x):
    """``PAD`` of int8 codes with the output zero point."""
    paddings = model.tensors[op.inputs[1]].data.astype(np.int64).reshape(-1, 2)
    if paddings[0].any():
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): padding of the batch "
                                    f"axis {tuple(paddings[0])!r}; nnfab pads (0, 0) there")
    return np.pad(x, [tuple(p) for p in paddings], constant_values=
                  model.tensors[op.outputs[0]].zero_point)


def affine_quantize(x, scale, zero_point):
    """Real values ``x`` to int8 codes as TFLite's ``QUANTIZE`` of float32 does it
    (``AffineQuantize``): ``round(x / scale)`` with ``x`` and ``scale`` in float32, ties away
    from zero, plus ``zero_point``, clamped to -128..127.

    Returns
    -------
    ndarray of int64, the shape of ``x``
    """
    quotient = np.asarray(x, dtype=np.float32) / np.float32(scale)
    rounded = np.sign(quotient) * np.floor(np.abs(quotient).astype(np.float64) + 0.5)
    return np.clip(rounded.astype(np.int64) + zero_point, INT8_MIN, INT8_MAX)


def quantize(model, op, x):
    """``QUANTIZE``: float32 to int8 (``AffineQuantize``: ``round(x / scale)`` in float32, ties
    away from zero, plus the zero point), or int8 to int8 by ``input_scale / output_scale``."""
    t_in, t_out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if t_in.dtype == "float32":
        return affine_quantize(x, t_out.scale, t_out.zero_point)
    m, e = quantize_multiplier(t_in.scale / t_out.scale)
    out = multiply_by_quantized_multiplier(x - t_in.zero_point, m, e) + t_out.zero_point
    return np.clip(out, INT8_MIN, INT8_MAX)


def dequantize(model, op, x):
    """``DEQUANTIZE``: ``float(double(scale) * (x - zero_point))``."""
    t_in = model.tensors[op.inputs[0]]
    return (t_in.scale * (np.asarray(x, dtype=np.float64) - t_in.zero_point)).astype(np.float32)


def reshape(model, op, x):
    """``RESHAPE``: the same codes in the output's shape."""
    return x


#: Golden function of each operator, by TFLite opcode name: ``f(model, op, *data_inputs)``.
KERNELS = {"FULLY_CONNECTED": fully_connected, "CONV_2D": conv_2d,
           "DEPTHWISE_CONV_2D": depthwise_conv_2d, "AVERAGE_POOL_2D": average_pool_2d,
           "MAX_POOL_2D": max_pool_2d, "ADD": add, "SOFTMAX": softmax, "PAD": pad,
           "QUANTIZE": quantize, "DEQUANTIZE": dequantize, "RESHAPE": reshape}
_DATA_INPUTS = {"ADD": 2}


def run_tflite(model, inputs, trace=False):
    """Run a whole int8 TFLite model on a batch.

    Parameters
    ----------
    model : TfliteModel
        From :func:`nnfab.gen.importers.tflite_file.read_tflite`.
    inputs : array_like or sequence of array_like
        One array per graph input (a bare array for a single input), shape ``(N,) +
        shape[1:]`` of the input tensor: int8 codes (any integer type, -128 to 127), or floats
        for a float32 input (into a ``QUANTIZE``).
    trace : bool
        Also return every tensor computed.

    Returns
    -------
    numpy.ndarray or tuple
        The output codes (``int64``, shape ``(N,) + shape[1:]``), a tuple of them for several
        outputs; with ``trace``, ``(outputs, {tensor index: array})`` holding the inputs and
        every operator's output.

    Raises
    ------
    ShapeError
        If an input's shape does not match its tensor.
    FormatError
        If an int8 input holds a value outside -128 to 127.
    """
    if len(model.inputs) == 1 and not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    if len(inputs) != len(model.inputs):
        raise ShapeError(f"Model has {len(model.inputs)} inputs, not {len(inputs)!r}")
    values = {}
    n = None
    for index, array in zip(model.inputs, inputs):
        tensor = model.tensors[index]
        array = np.asarray(array)
        if array.ndim != len(tensor.shape) or array.shape[1:] != tuple(tensor.shape[1:]) or \
                (n is not None and array.shape[0] != n):
            raise ShapeError(f"Input {tensor.name!r}: shape {array.shape!r} does not match "
                             f"(N,) + {tuple(tensor.shape[1:])!r}")
        n = array.shape[0]
        if tensor.dtype == "int8":
            if not np.issubdtype(array.dtype, np.integer):
                raise FormatError(f"Input {tensor.name!r}: type {array.dtype.name!r}; int8 "
                                  f"codes are integers")
            if array.size and (array.min() < INT8_MIN or array.max() > INT8_MAX):
                bad = array[(array < INT8_MIN) | (array > INT8_MAX)].flat[0]
                raise FormatError(f"Input {tensor.name!r}: code {int(bad)!r} is outside the "
                                  f"int8 range -128 to 127")
            array = array.astype(np.int64)
        values[index] = array
    for op in model.operators:
        arguments = [values[i] if i in values else model.tensors[i].data.astype(np.int64)
                     for i in op.inputs[:_DATA_INPUTS.get(op.opcode, 1)]]
        out = KERNELS[op.opcode](model, op, *arguments)
        out_shape = model.tensors[op.outputs[0]].shape
        values[op.outputs[0]] = out.reshape((n,) + tuple(out_shape[1:]))
    outputs = tuple(values[i] for i in model.outputs)
    outputs = outputs[0] if len(outputs) == 1 else outputs
    return (outputs, values) if trace else outputs
