"""Golden models of multiply-accumulate: the shared accumulation rule and the MAC array."""

import numpy as np

from nnfab.casts import as_codes, cast
from nnfab.fixed import FixedFormat
from nnfab.layers import mac_accumulator_format

__all__ = ["working_dtype", "products_in_accumulator", "wrap_to", "mac_array"]

_INT64_SAFE_BITS = 62


def working_dtype(bits):
    """int64 when every intermediate fits ``bits`` <= 62 bits, else exact Python integers."""
    return np.int64 if bits <= _INT64_SAFE_BITS else object


def products_in_accumulator(products, product_format, accumulator):
    """Products (raw codes of ``product_format``) in units of the accumulator's LSB: an exact
    shift when the accumulator holds every product, else the accumulator's cast (its rounding
    and overflow), as hls4ml's ``accum_t``."""
    if accumulator.holds(product_format):
        return products << (accumulator.fraction_width - product_format.fraction_width)
    return cast(products, product_format, accumulator)


def wrap_to(total, accumulator, extra_bits):
    """Integers in units of the accumulator's LSB (at most ``extra_bits`` wider than it)
    wrapped into its width, as the hardware's accumulator register does."""
    wide = FixedFormat(accumulator.width + extra_bits, accumulator.integer_width + extra_bits,
                       signed=True)
    return cast(total, wide, accumulator.replace(rounding="TRN", overflow="WRAP"))


def mac_array(a, b, *, a_format, b_format, max_terms, accumulator_format=None):
    """Golden :class:`nnfab.hdl.mac.MacArray`: ``C[n] = A[n] @ B[n]`` accumulated beat by beat.

    Parameters
    ----------
    a : array_like of int, shape (n, beats, rows)
        Codes of ``a_format``; beat ``k`` of sum ``n`` carries column ``k`` of ``A[n]``.
    b : array_like of int, shape (n, beats, columns)
        Codes of ``b_format``; row ``k`` of ``B[n]``.

    Returns
    -------
    ndarray, shape (n, rows, columns)
        Codes of the accumulator format (:func:`nnfab.layers.mac_accumulator_format`); a sum
        of more than ``max_terms`` beats wraps in it.
    """
    acc = mac_accumulator_format(a_format, b_format, max_terms, accumulator_format)
    a = as_codes(a, a_format)
    b = as_codes(b, b_format)
    if a.ndim != 3 or b.ndim != 3 or a.shape[:2] != b.shape[:2]:
        raise ValueError(f"Operands must have shapes (n, beats, rows) and (n, beats, columns) "
                         f"with equal n and beats, not {a.shape} and {b.shape}")
    product = a_format.mul_format(b_format)
    beats = a.shape[1]
    dtype = working_dtype(max(product.width, acc.width) + beats.bit_length() + 1)
    products = a.astype(dtype)[:, :, :, None] * b.astype(dtype)[:, :, None, :]
    terms = products_in_accumulator(products, product, acc).astype(dtype)
    return wrap_to(terms.sum(axis=1), acc, beats.bit_length() + 1)
