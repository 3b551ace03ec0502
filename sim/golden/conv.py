"""Golden models of convolution layers (see :mod:`nnfab.conv_layers`): im2col through
``numpy.lib.stride_tricks`` and integer sums, independent of the hardware's line buffers."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnfab.casts import as_codes, cast
from nnfab.conv_layers import Conv2DSpec, DepthwiseConv2DSpec

from .activations import activation
from .mac import products_in_accumulator, working_dtype, wrap_to

__all__ = ["pad_frames", "windows", "conv2d_accumulate", "conv2d", "conv1d"]

# Elements of the largest working array of one block of output rows (8 bytes each).
_BLOCK_ELEMENTS = 1 << 21


def pad_frames(x, pads, value=0):
    """Frames ``x`` of shape (batch, H, W, C) padded by ``pads = ((top, bottom), (left,
    right))`` with the code ``value``."""
    return np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=value)


def windows(x, spec, pad_value=0):
    """All windows of frames ``x`` (batch, H, W, C): shape (batch, H_out, W_out, kh, kw, C),
    window ``(i, j)`` starting at padded row ``i * sh``, column ``j * sw``."""
    kh, kw = spec.kernel_size
    sh, sw = spec.strides
    padded = pad_frames(x, spec.pads, pad_value)
    view = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    return np.ascontiguousarray(view.transpose(0, 1, 2, 4, 5, 3))


def _frames(x, spec):
    x = as_codes(x, spec.input_format)
    if x.ndim != 4 or x.shape[1:] != spec.input_shape:
        raise ValueError(f"Inputs must have shape (batch, {', '.join(map(str, spec.input_shape))}"
                         f"), not {x.shape}")
    return x


def conv2d_accumulate(x, spec):
    """Accumulator codes (:attr:`Conv2DSpec.accumulator`) of every output, before the cast.

    Computed in blocks of output rows, so no working array exceeds about
    :data:`_BLOCK_ELEMENTS` elements whatever the batch and frame (a 256x256 frame with 32
    filters of 3x3x32 has 600 million products per image): with exact accumulation each
    block is one matrix product of its windows by the kernels (in float64, BLAS, when every
    partial sum is an integer below ``2**52``, else in integers); with an explicit
    accumulator (hls4ml's ``accum_t``, every product cast to it) the products of the block
    are formed and cast.

    Parameters
    ----------
    x : array_like of int, shape (batch, H, W, C_in)
    spec : Conv2DSpec or DepthwiseConv2DSpec

    Returns
    -------
    ndarray, shape (batch, H_out, W_out, n_filters)
    """
    if not isinstance(spec, Conv2DSpec):
        raise TypeError(f"Layer must be a Conv2DSpec, not {spec!r}")
    x = _frames(x, spec)
    acc = spec.accumulator
    product = spec.input_format.mul_format(spec.weight_format)
    extra = spec.n_window.bit_length() + 2
    dtype = working_dtype(max(product.width, acc.width) + extra)
    kh, kw = spec.kernel_size
    sh, sw = spec.strides
    padded = pad_frames(x, spec.pads, spec.pad_code)
    view = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    n, h_out, w_out = view.shape[:3]
    w = spec.weights.astype(dtype)
    depthwise = isinstance(spec, DepthwiseConv2DSpec)
    n_out = w.shape[-1] if depthwise else w.shape[0]
    per_row = w_out * spec.n_window * (1 if depthwise or spec.accumulator_format is None
                                       else n_out)
    rows = max(1, _BLOCK_ELEMENTS // max(1, per_row))
    total = np.empty((n, h_out, w_out, n_out), dtype=dtype)
    exact_in_float = dtype != object and _float_exact(spec)
    for image in range(n):
        for r in range(0, h_out, rows):
            # (1, rows, W_out, kh, kw, C) windows of this block, contiguous.
            win = np.ascontiguousarray(view[image:image + 1, r:r + rows]
                                       .transpose(0, 1, 2, 4, 5, 3)).astype(dtype)
            total[image:image + 1, r:r + rows] = _block_sums(win, w, spec, product, acc,
                                                             depthwise, exact_in_float)
    if spec.biases is not None:
        if spec.accumulator_format is None:
            total += (spec.biases.astype(dtype)
                      << (acc.fraction_width - spec.bias_format.fraction_width))
        else:
            total += cast(spec.biases, spec.bias_format, acc).astype(dtype)
    if spec.accumulator_format is None:
        return total
    return wrap_to(total, acc, extra)


def _float_exact(spec):
    """Whether every partial sum of a window's products stays below ``2**52`` in magnitude
    (the input format's largest code times each kernel's sum of magnitudes), so float64
    holds them exactly."""
    fin = spec.input_format
    x_bound = max(abs(fin.min_code), abs(fin.max_code))
    w = np.abs(np.asarray(spec.weights, dtype=object))
    per_output = w.reshape(w.shape[0], -1).sum(axis=1) if not isinstance(
        spec, DepthwiseConv2DSpec) else w.reshape(-1, w.shape[-1]).sum(axis=0)
    return x_bound * int(max(per_output)) < 1 << 52


def _block_sums(win, w, spec, product, acc, depthwise, exact_in_float):
    """Sums over each window of a block (see :func:`conv2d_accumulate`), without the bias:
    exact sums shifted to the accumulator's LSB, or the products cast to the explicit
    accumulator and summed (wrapped by the caller)."""
    if spec.accumulator_format is None:
        if exact_in_float:
            # Every product and partial sum is an integer below 2**52: float64 (BLAS) is exact.
            win, w = win.astype(np.float64), w.astype(np.float64)
        if depthwise:
            sums = np.einsum("nhwijc,ijc->nhwc", win, w)
        else:
            sums = win.reshape(*win.shape[:3], -1) @ w.reshape(w.shape[0], -1).T
        if sums.dtype == np.float64:
            sums = sums.astype(np.int64)
        return sums << (acc.fraction_width - product.fraction_width)
    if depthwise:
        products, axes = win * w, (3, 4)                 # (N, Ho, Wo, kh, kw, C)
    else:
        products, axes = win[:, :, :, None] * w, (4, 5, 6)  # (N, Ho, Wo, C_out, kh, kw, C_in)
    return products_in_accumulator(products, product, acc).astype(win.dtype).sum(axis=axes)


def conv2d(x, spec):
    """Golden 2-D (or depthwise) convolution on codes: ``act(cast(conv(x) + b))``.

    Parameters
    ----------
    x : array_like of int, shape (batch, H, W, C_in)
        Raw codes of ``spec.input_format``.
    spec : Conv2DSpec or DepthwiseConv2DSpec

    Returns
    -------
    ndarray, shape (batch, H_out, W_out, n_filters)
        Raw codes of ``spec.result_format``.

    Raises
    ------
    TypeError, ValueError
        If ``x`` holds non-integers, has the wrong shape or codes out of range.
    """
    y = cast(conv2d_accumulate(x, spec), spec.accumulator, spec.output_format)
    if spec.activation is not None:
        y = activation(spec.activation, y, fin=spec.output_format, fout=spec.activation_format,
                       **spec.activation_params)
    return y


def conv1d(x, spec):
    """Golden 1-D convolution: ``x`` of shape (batch, length, C_in), ``spec`` from
    :func:`nnfab.conv_layers.Conv1DSpec`; returns (batch, length_out, n_filters)."""
    return conv2d(np.asarray(x)[:, None], spec)[:, 0]
