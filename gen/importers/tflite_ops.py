"""Handlers of TFLite's int8 pooling, ``ADD`` and ``SOFTMAX``, registered in
:data:`nnfab.gen.importers.tflite.HANDLERS`.

- ``AVERAGE_POOL_2D`` whose filter is the whole map (output 1x1, no padding: the global average
  of MLPerf Tiny's KWS and ResNet-8): a ``tflite_average_pool`` layer, ``(H, W, C)`` to ``(C,)``.
  With VALID windows, every window holds ``filter_h * filter_w`` codes: a ``pool`` layer
  (``"average"``, the exact quotient rounded half away from zero by its output format
  ``fixed<8,8,RND_INF,SAT>``, which is TFLite's rounding) and a clamp-only ``output_stage``.
  SAME windows (whose count of codes varies at the edges) are refused.
- ``MAX_POOL_2D``: a ``pool`` layer (``"max"`` of int8 codes, exact; SAME padding pads with
  -128, which never wins over the clipped window TFLite takes), followed, when the fused
  activation narrows the range, by an ``output_stage`` that only clamps (multiplier 1, shift
  31, ``half_away``: the identity).
- ``ADD`` of two computed tensors of one shape: a ``tflite_add`` layer reading both (the graph's
  fork and skip FIFOs join the branches). A constant operand or broadcasting is refused.
- ``SOFTMAX`` of a vector with output scale 1/256 and zero point -128: a ``tflite_softmax``
  layer.

Every refusal is one :class:`~nnfab.errors.UnsupportedLayerError` naming the operator, its
index, the offending value and what is built.
"""

import numpy as np

from nnfab.conv_layers import PoolSpec
from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.output_stage import OutputStage
from nnfab.sim.golden.tflite import activation_range, add_params, check_softmax_output

from nnfab.ir import (FlattenLayer, OutputStageLayer, PoolLayer, TfliteAddLayer,
                      TfliteAveragePoolLayer, TfliteSoftmaxLayer)

from .int8_layers import INT8
from .tflite import handler

__all__ = []


def _refuse(op, text):
    return UnsupportedLayerError(f"Operator {op.index} ({op.opcode}): {text}")


def _frame(b, op):
    """The source and its ``(H, W, C)`` shape of a pooling operator."""
    source, shape = b.source(op)
    if len(shape) != 3:
        raise _refuse(op, f"pools (H, W, C) frames, not shape {shape}")
    return source, shape


def _pool_spec(b, op, kind, shape, output_format):
    spec = PoolSpec(kind, shape, tuple(op.options["filter_size"]), INT8, output_format,
                    strides=tuple(op.options["stride"]),
                    padding=op.options["padding"].lower())
    t_out = b.tensor(op.outputs[0])
    if tuple(spec.output_shape) != tuple(t_out.shape[1:]):
        raise _refuse(op, f"output {tuple(t_out.shape)} does not match the "
                          f"{(1,) + tuple(spec.output_shape)} its input and options give")
    return spec


def _clamped(b, op, layer, fin, low, high):
    """``layer`` (reading ``op``'s input), then an ``output_stage`` that only clamps its int8
    codes to ``[low, high]`` (multiplier 1, shift 31, ``half_away``: the identity)."""
    source, _ = b.source(op)
    layer = b.add(layer, [source])
    clamp = OutputStage((1,), (31,), low=int(low), high=int(high), rounding="half_away")
    b.add(OutputStageLayer(f"{layer.name}_clamp", shape=layer.output_shape, fin=fin,
                           stage=clamp), [layer.name], op.outputs[0])


@handler("AVERAGE_POOL_2D")
def _average_pool(b, op):
    source, (h, w, c) = _frame(b, op)
    t_out = b.tensor(op.outputs[0])
    low, high = activation_range(t_out, op.options["fused_activation"])
    name = b.name(op)
    filter_size = tuple(op.options["filter_size"])
    if filter_size == (h, w) and tuple(t_out.shape[1:3]) == (1, 1):
        b.add(TfliteAveragePoolLayer(name, shape=(h, w, c), low=int(low), high=int(high)),
              [source], op.outputs[0])
        return
    if op.options["padding"] != "VALID":
        raise _refuse(op, f"{op.options['padding']} padding of a {filter_size[0]}x"
                          f"{filter_size[1]} average over a {h}x{w} map; nnfab builds the "
                          f"global average (filter = the whole map) and VALID windows")
    # Every window holds filter_h * filter_w codes: the exact quotient rounded half away
    # from zero (RND_INF) is TFLite's average.
    fmt = INT8.replace(rounding="RND_INF", overflow="SAT")
    spec = _pool_spec(b, op, "average", (h, w, c), fmt)
    _clamped(b, op, PoolLayer(name, spec=spec), fmt, low, high)


@handler("MAX_POOL_2D")
def _max_pool(b, op):
    source, shape = _frame(b, op)
    spec = _pool_spec(b, op, "max", shape, INT8)
    low, high = activation_range(b.tensor(op.outputs[0]), op.options["fused_activation"])
    if (low, high) == (INT8.min_code, INT8.max_code):
        b.add(PoolLayer(b.name(op), spec=spec), [source], op.outputs[0])
    else:
        _clamped(b, op, PoolLayer(b.name(op), spec=spec), INT8, low, high)


@handler("ADD")
def _add(b, op):
    for position in (0, 1):
        index = op.inputs[position]
        if b.tensor(index).data is not None:
            raise _refuse(op, f"input {position} {b.tensor(index).name!r} is a constant; "
                              f"nnfab adds two computed tensors")
    (first, shape_1), (second, shape_2) = b.source(op, 0), b.source(op, 1)
    if shape_1 != shape_2:
        raise _refuse(op, f"adds shapes {shape_1} and {shape_2}; nnfab adds tensors of one "
                          f"shape (no broadcasting)")
    if first == second:
        raise _refuse(op, f"adds tensor {b.tensor(op.inputs[0]).name!r} to itself; nnfab adds "
                          f"two different tensors")
    t_1, t_2, t_out = (b.tensor(i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    params = add_params(t_1, t_2, t_out, op.options["fused_activation"])
    b.add(TfliteAddLayer(b.name(op), shape=shape_1, params=params), [first, second],
          op.outputs[0])


@handler("SOFTMAX")
def _softmax(b, op):
    source, shape = b.source(op)
    try:
        check_softmax_output(op, b.tensor(op.outputs[0]))
    except ModelError as exc:
        raise UnsupportedLayerError(str(exc)) from None
    if len(shape) != 1:
        raise _refuse(op, f"softmax of shape {shape}; nnfab builds the softmax of a vector")
    b.add(TfliteSoftmaxLayer(b.name(op), n=shape[0], input_scale=b.tensor(op.inputs[0]).scale,
                             beta=op.options["beta"]), [source], op.outputs[0])
