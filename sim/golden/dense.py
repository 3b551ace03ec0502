"""Golden model of a fully connected layer (see :class:`nnfab.layers.DenseSpec`)."""

import functools

import numpy as np

from nnfab.casts import as_codes, cast
from nnfab.layers import DenseSpec

from .mac import products_in_accumulator, working_dtype, wrap_to

__all__ = ["dense_accumulate", "dense"]

_FLOAT64_EXACT_BITS = 52


@functools.lru_cache(maxsize=256)
def _weights_as(spec, dtype):
    return np.ascontiguousarray(spec.weights.astype(dtype).T)


def _exact_sum_of_products(x, spec, dtype):
    """``x @ W.T`` exactly. When every product and every partial sum is an integer below
    ``2**52`` (from the formats and ``n_in``), float64 matrix multiplication (BLAS) is exact
    and much faster than integer matrix multiplication; otherwise int64 or Python integers."""
    bits = spec.product_format.width + max(spec.n_in - 1, 1).bit_length()
    if bits <= _FLOAT64_EXACT_BITS:
        return (x.astype(np.float64) @ _weights_as(spec, np.float64)).astype(np.int64)
    return x.astype(dtype) @ _weights_as(spec, dtype)


def dense_accumulate(x, spec):
    """The accumulator codes of ``spec`` for inputs ``x``, before the output cast.

    Parameters
    ----------
    x : array_like of int, shape (batch, n_in)
        Raw codes of ``spec.input_format``.
    spec : DenseSpec

    Returns
    -------
    ndarray, shape (batch, n_out)
        Raw codes of ``spec.accumulator``. With exact accumulation this is
        ``sum_i x_i * w_ji + b_j`` in units of the accumulator's LSB; with an explicit
        accumulator every product and the bias are first cast to it and the sum wraps.
    """
    if not isinstance(spec, DenseSpec):
        raise TypeError(f"Layer must be a DenseSpec, not {spec!r}")
    x = as_codes(x, spec.input_format)
    if x.ndim != 2 or x.shape[1] != spec.n_in:
        raise ValueError(f"Inputs must have shape (batch, {spec.n_in}), not {x.shape}")
    acc = spec.accumulator
    product = spec.product_format
    if spec.exact_accumulation:
        dtype = working_dtype(acc.width)
        total = _exact_sum_of_products(x, spec, dtype).astype(dtype)
        total = total << (acc.fraction_width - product.fraction_width)
        if spec.biases is not None:
            total = total + (spec.biases.astype(dtype)
                             << (acc.fraction_width - spec.bias_format.fraction_width))
        return total
    extra = spec.n_in.bit_length() + 2
    dtype = working_dtype(max(product.width, acc.width) + extra)
    products = x.astype(dtype)[:, None, :] * spec.weights.astype(dtype)[None, :, :]
    total = products_in_accumulator(products, product, acc).astype(dtype).sum(axis=2)
    if spec.biases is not None:
        total = total + cast(spec.biases, spec.bias_format, acc).astype(dtype)
    return wrap_to(total, acc, extra)


def dense(x, spec):
    """Golden fully connected layer: ``cast(W @ x + b, spec.output_format)`` on codes.

    Parameters
    ----------
    x : array_like of int, shape (batch, n_in)
        Raw codes of ``spec.input_format``.
    spec : DenseSpec

    Returns
    -------
    ndarray, shape (batch, n_out)
        Raw codes of ``spec.output_format``.

    Raises
    ------
    TypeError, ValueError
        If ``x`` holds non-integers, has the wrong shape or codes outside the input format.
    """
    return cast(dense_accumulate(x, spec), spec.accumulator, spec.output_format)
