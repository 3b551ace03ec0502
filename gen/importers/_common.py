"""Helpers shared by the importers: exact codes of quantized floats and IR layer builders."""

import numpy as np

from nnfab.errors import FormatError, ModelError
from nnfab.fixed import FixedFormat
from nnfab.conv_layers import Conv2DSpec
from nnfab.layers import DenseSpec
from nnfab.sim.golden.cast import exact_codes, quantize

from ..ir import DenseLayer
from ..ir_conv import Conv2DLayer

__all__ = ["exact", "dense_layer", "conv_layer", "relu_format", "open_hdf5", "check_finite"]


def check_finite(values, layer, what):
    """``values`` as float64, rejecting NaN and infinities with a message naming the layer."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)].flat[0]
        raise ModelError(f"Layer {layer!r}: {what} contain {float(bad)!r}; every value must be "
                         f"finite")
    return array


def exact(values, layer, what, fmt=None):
    """Raw codes of already-quantized float ``values``, exact: in ``fmt`` when given (a value
    that is not exactly representable raises), else in the narrowest format holding them all.

    Returns
    -------
    (FixedFormat, ndarray of int)

    Raises
    ------
    FormatError
        If a value is not exactly representable in ``fmt``.
    """
    values = check_finite(values, layer, what)
    if fmt is None:
        fmt, codes = exact_codes(values)
        return fmt, codes
    plain = fmt.replace(rounding="TRN", overflow="WRAP")
    codes = quantize(values, plain)
    back = np.ldexp(np.asarray(codes, dtype=np.float64), -plain.fraction_width)
    if not np.array_equal(back, values):
        index = np.flatnonzero((back != values).reshape(-1))[0]
        raise FormatError(f"Layer {layer!r}: {what} value {values.reshape(-1)[index]!r} is not "
                          f"exact in {fmt} (range {fmt.min_value} to {fmt.max_value})")
    return plain, codes


def dense_layer(name, *, weights, weight_format, biases, bias_format, input_format,
                output_format=None, reuse_factor=1):
    """A :class:`~nnfab.gen.ir.DenseLayer` from codes; ``output_format`` None keeps the exact
    accumulator (no rounding, no overflow)."""
    try:
        spec = DenseSpec(weights, biases, input_format, weight_format,
                         output_format or input_format, bias_format=bias_format)
        if output_format is None:
            spec = DenseSpec(weights, biases, input_format, weight_format, spec.accumulator,
                             bias_format=bias_format)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None
    return DenseLayer(name, spec=spec, reuse_factor=reuse_factor)


def conv_layer(name, *, weights, weight_format, biases, bias_format, input_shape, input_format,
               strides=(1, 1), padding="valid", activation=None, reuse_factor=1):
    """A :class:`~nnfab.gen.ir_conv.Conv2DLayer` from codes (``weights`` of shape
    ``(n_filters, kh, kw, C_in)``) whose output is the exact accumulator; ``activation``
    ``"relu"`` fuses an exact ReLU (output in :func:`relu_format` of the accumulator)."""
    try:
        spec = Conv2DSpec(weights, biases, input_shape, input_format, weight_format,
                          input_format, strides=strides, padding=padding,
                          bias_format=bias_format)
        extra = {}
        if activation == "relu":
            extra = dict(activation="relu", activation_format=relu_format(spec.accumulator))
        spec = Conv2DSpec(weights, biases, input_shape, input_format, weight_format,
                          spec.accumulator, strides=strides, padding=padding,
                          bias_format=bias_format, **extra)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None
    return Conv2DLayer(name, spec=spec, reuse_factor=reuse_factor)


def relu_format(fmt):
    """The unsigned format with ``fmt``'s LSB that holds ``max(x, 0)`` of every ``fmt`` value
    exactly."""
    if not fmt.signed:
        return fmt
    return FixedFormat(max(fmt.width - 1, 1), fmt.integer_width - 1, signed=False)


def open_hdf5(path):
    """An open :class:`h5py.File`, or ModelError for a truncated or corrupt file."""
    try:
        import h5py
    except ImportError:  # pragma: no cover
        raise ModelError("Reading Keras .h5 files needs h5py (pip install h5py)") from None
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"Model file {str(path)!r} is not a readable HDF5 file (truncated or "
                         f"corrupt?): {exc}") from None
