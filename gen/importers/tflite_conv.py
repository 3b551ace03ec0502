"""TFLite's ``CONV_2D``, ``DEPTHWISE_CONV_2D`` and ``RESHAPE`` as layers of nnfab's model graph.

Each convolution becomes two layers, as ``FULLY_CONNECTED`` does (:mod:`.tflite`):

- a ``conv2d`` layer (:class:`~nnfab.ir.Conv2DLayer`) whose output is its whole exact integer
  accumulator, ``sum(x * w) + (b - zp_in * sum(w))`` over each window;
- an ``output_stage`` layer (:class:`~nnfab.ir.OutputStageLayer`) with TFLite's per-channel
  requantization of ``reference_integer_ops::ConvPerChannel`` and
  ``DepthwiseConvPerChannel``: the multiplier and shift of ``double(s_in) * double(s_w[c]) /
  double(s_out)`` (:func:`nnfab.sim.golden.tflite.conv_multipliers`, TFLite's
  ``QuantizeMultiplier``), applied by ``MultiplyByQuantizedMultiplier`` (the ``"gemmlowp"``
  rounding of :class:`~nnfab.output_stage.OutputStage`, the kernels' own arithmetic, so equal
  by construction), plus the output zero point, clamped to the fused activation's range.

Zero points. TFLite sums ``(x - zp_in) * w`` and skips padded positions, which is padding with
``zp_in``, the real zero of the int8 codes. nnfab folds ``zp_in`` into the bias, ``sum((x -
zp_in) * w) + b = sum(x * w) + (b - zp_in * sum(w))`` over the whole window, and pads with the
code ``zp_in`` (:attr:`nnfab.conv_layers.Conv2DSpec.pad_code`): a padded position then adds
``zp_in * w``, which the folded bias takes away again, so the sum is exact at the borders too.
This costs no hardware: the products stay 8 x 8 bits, and the line buffer inserts a constant
pad code either way. The alternatives cost more: an elementwise offset layer ``x - zp_in``
before each convolution makes 9-bit operands (wider multipliers, one subtracter per lane) and
an IR tensor the interpreter does not have; an output stage that emits codes minus the next
layer's zero point would change the int8 tensors, which are then no longer the interpreter's.
Every IR tensor here is either TFLite's tensor (the output stage, code for code) or the exact
accumulator of one.

``RESHAPE`` keeps the codes and their row-major order: to the same shape it is nothing (the
TFLite tensor is the IR tensor it reads), from ``(H, W, C)`` frames to one vector it is a
``flatten`` layer (row, column, channel order, TFLite's NHWC order). Others are refused.
"""

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.output_stage import OutputStage
from nnfab.sim.golden.tflite import activation_range, conv_multipliers

from nnfab.ir import Conv2DLayer, FlattenLayer, OutputStageLayer

from .int8_layers import INT8, exact_conv
from .tflite import handler

__all__ = []

_PADDINGS = {"SAME": "same", "VALID": "valid"}


def _geometry(op):
    """``(strides, padding)`` of a convolution, refusing dilation."""
    dilation = tuple(op.options.get("dilation", (1, 1)))
    if dilation != (1, 1):
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): dilation {dilation!r}; "
                                    f"nnfab builds convolutions of dilation (1, 1)")
    return tuple(op.options["stride"]), _PADDINGS[op.options["padding"]]


def _convolution(b, op, weights, bias, *, depthwise=False):
    """Add the exact ``conv2d`` accumulator and its output stage for operator ``op``."""
    source, shape = b.source(op)
    t_in, t_out = b.tensor(op.inputs[0]), b.tensor(op.outputs[0])
    strides, padding = _geometry(op)
    name = b.name(op)
    conv = exact_conv(f"Operator {op.index} ({op.opcode})", weights, bias, t_in.zero_point,
                      shape, strides=strides, padding=padding, depthwise=depthwise)
    exact = conv.output_format
    if conv.output_shape != tuple(t_out.shape[1:]):
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): output "
                                    f"{tuple(t_out.shape)!r} does not match the "
                                    f"{conv.output_shape!r} its input and options give")
    n_out = conv.n_filters
    multipliers, shifts = conv_multipliers(t_in, b.tensor(op.inputs[1]), t_out, n_out)
    low, high = activation_range(t_out, op.options["fused_activation"])
    stage = OutputStage(tuple(multipliers.tolist()), tuple(shifts.tolist()),
                        zero_point=t_out.zero_point, low=int(low), high=int(high))
    layer = b.add(Conv2DLayer(name, spec=conv), [source])
    b.add(OutputStageLayer(f"{name}_requantize", shape=conv.output_shape, fin=exact,
                           stage=stage), [layer.name], op.outputs[0])


def _bias(b, op, n_out):
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return b.tensor(op.inputs[2]).data.astype(np.int64)
    return np.zeros(n_out, dtype=np.int64)


def _frames(b, op):
    _, shape = b.source(op)
    if len(shape) != 3:
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): input of shape "
                                    f"{shape!r}; nnfab convolves (H, W, C) frames")
    return shape


@handler("CONV_2D")
def _conv_2d(b, op):
    _frames(b, op)
    weights = b.tensor(op.inputs[1]).data.astype(np.int64)          # (C_out, KH, KW, C_in)
    _convolution(b, op, weights, _bias(b, op, weights.shape[0]))


@handler("DEPTHWISE_CONV_2D")
def _depthwise_conv_2d(b, op):
    shape = _frames(b, op)
    weights = b.tensor(op.inputs[1]).data.astype(np.int64)          # (1, KH, KW, C * M)
    n_out = weights.shape[-1]
    if n_out != shape[2]:
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): depth multiplier "
                                    f"{op.options.get('depth_multiplier')!r} ({shape[2]} input "
                                    f"channels, {n_out} output channels); nnfab builds depth "
                                    f"multiplier 1")
    _convolution(b, op, weights[0], _bias(b, op, n_out), depthwise=True)   # (KH, KW, C)


@handler("RESHAPE")
def _reshape(b, op):
    source, shape = b.source(op)
    t_out = b.tensor(op.outputs[0])
    out_shape = tuple(t_out.shape[1:]) if len(t_out.shape) > 1 else tuple(t_out.shape)
    if out_shape == tuple(shape):
        b.alias(op.outputs[0], source, shape)
    elif len(out_shape) == 1 and len(shape) == 3 and out_shape[0] == int(np.prod(shape)):
        b.add(FlattenLayer(b.name(op), shape=shape, fmt=INT8), [source], op.outputs[0])
    else:
        raise UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): from {tuple(shape)!r} "
                                    f"to {out_shape!r}; nnfab builds reshapes of (H, W, C) "
                                    f"frames to one vector, or to the same shape")
