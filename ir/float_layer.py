"""Base and helpers of the float layers: each layer kind that float models have defines its
float class (its forward pass, its native form without formats and its PTQ rule) in its own
module of :mod:`nnfab.ir`, beside its IR class."""

from dataclasses import dataclass, field

import numpy as np

from nnfab.errors import ModelError, ShapeError

__all__ = ["FloatLayer", "float_array", "check_float_bias", "pads", "windows"]


def float_array(values, name, what, ndim):
    """``values`` as a non-empty ``ndim``-dimensional float64 array of finite values."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim or array.size == 0:
        raise ShapeError(f"Layer {name!r}: {what} must be a non-empty {ndim}-dimensional "
                         f"array, not of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = float(array[~np.isfinite(array)].flat[0])
        raise ModelError(f"Layer {name!r}: {what} contain {bad!r}; every value must be finite")
    return array


def check_float_bias(layer):
    """Set ``layer.biases`` (if any) to a float64 array of one value per output."""
    if layer.biases is not None:
        biases = float_array(layer.biases, layer.name, "biases", 1)
        if biases.shape != (layer.weights.shape[0],):
            raise ShapeError(f"Layer {layer.name!r}: biases must have shape "
                             f"({layer.weights.shape[0]},), not {biases.shape}")
        object.__setattr__(layer, "biases", biases)


def _same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pads(shape, kernel, strides, padding):
    """``((top, bottom), (left, right))`` of ``"valid"`` or ``"same"`` padding (Keras)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return _same_pads(shape[0], kernel[0], strides[0]), _same_pads(shape[1], kernel[1],
                                                                   strides[1])


def windows(x, kernel, strides, pads, pad_value=0.0):
    """(batch, Ho, Wo, kh, kw, C) windows of channels-last frames."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
    win = win[:, ::strides[0], ::strides[1]]  # (batch, Ho, Wo, C, kh, kw)
    return np.moveaxis(win, 3, -1)


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """Base of the float layers: the tensors they read (``inputs``, see
    :mod:`nnfab.ir.graph`). A layer's ``output_shape`` and ``forward`` take one argument per
    input."""

    inputs: tuple = field(default=(), kw_only=True)
