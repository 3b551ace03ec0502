"""Golden merges of several tensors into one: the element-wise sum (``add``) and the
concatenation along the last axis (``concatenate``), on raw codes.

Semantics of hls4ml's ``Merge`` layers (``nnet_merge.h``): ``add`` is ``res = data1 + data2``
assigned to ``res_T``, that is the exact sum (``ap_fixed``'s ``operator+`` loses nothing) cast
once to the result format; ``concatenate`` assigns every input element to ``res_T``, that is
casts each input to the result format. With more than two inputs (ONNX ``Sum``, Keras ``Add``
of three tensors) the sum of all of them is exact before the one cast.
"""

import numpy as np

from nnfab.casts import as_codes, cast, code_dtype
from nnfab.fixed import FixedFormat, common_format

__all__ = ["sum_format", "add", "concatenate"]


def sum_format(fins):
    """The format of the exact sum of one value of each of ``fins``: :func:`~nnfab.fixed
    .common_format` widened by ``ceil(log2(len(fins)))`` integer bits (TRN/WRAP).

    Raises
    ------
    TypeError, ValueError
        As :func:`~nnfab.fixed.common_format`.
    """
    fins = list(fins)
    return common_format(fins).sum_format(len(fins))


def _check(kind, xs, fins, fout):
    xs, fins = list(xs), list(fins)
    if len(xs) < 2:
        raise ValueError(f"{kind} takes at least 2 inputs, not {len(xs)!r}")
    if len(fins) != len(xs):
        raise ValueError(f"{kind} takes one format per input ({len(xs)}), not {len(fins)!r}")
    for fmt in (*fins, fout):
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")
    codes = [as_codes(x, fmt) for x, fmt in zip(xs, fins)]
    for k, c in enumerate(codes):
        if c.ndim < 1:
            raise ValueError(f"{kind} input {k} must have at least one axis, not shape "
                             f"{c.shape!r}")
    return codes, fins


def add(xs, fins, fout):
    """Element-wise sum of tensors of raw codes: the exact sum of their values, cast once to
    ``fout`` (its rounding and overflow modes).

    Parameters
    ----------
    xs : sequence of array_like of int, all of one shape (batch, ..., lanes)
        Raw codes; ``xs[k]`` in ``fins[k]``. At least two.
    fins : sequence of FixedFormat, one per input
    fout : FixedFormat

    Returns
    -------
    ndarray, the shape of the inputs
        Raw codes of ``fout``.

    Raises
    ------
    TypeError
        If a format is not a FixedFormat or a code not an integer.
    ValueError
        If there are fewer than two inputs, not one format per input, inputs of different
        shapes, or a code outside its format.
    """
    codes, fins = _check("Add", xs, fins, fout)
    for k, c in enumerate(codes[1:], 1):
        if c.shape != codes[0].shape:
            raise ValueError(f"Add input {k} has shape {c.shape!r}, not the shape of input 0, "
                             f"{codes[0].shape!r}")
    exact = sum_format(fins)
    dtype = code_dtype(exact)
    total = np.zeros(codes[0].shape, dtype=dtype)
    for c, fmt in zip(codes, fins):
        total = total + (c.astype(dtype) << (exact.fraction_width - fmt.fraction_width))
    return cast(total, exact, fout)


def concatenate(xs, fins, fout):
    """Concatenation along the last axis, each input cast to ``fout`` first.

    Parameters
    ----------
    xs : sequence of array_like of int, shapes (batch, ..., lanes_k)
        Raw codes; ``xs[k]`` in ``fins[k]``; all axes but the last equal. At least two.
    fins : sequence of FixedFormat, one per input
    fout : FixedFormat

    Returns
    -------
    ndarray, shape (batch, ..., sum of lanes_k)
        Raw codes of ``fout``, input 0's lanes first.

    Raises
    ------
    TypeError
        If a format is not a FixedFormat or a code not an integer.
    ValueError
        If there are fewer than two inputs, not one format per input, inputs whose shapes
        differ before the last axis, or a code outside its format.
    """
    codes, fins = _check("Concatenate", xs, fins, fout)
    for k, c in enumerate(codes[1:], 1):
        if c.shape[:-1] != codes[0].shape[:-1]:
            raise ValueError(f"Concatenate input {k} has shape {c.shape!r}, which differs from "
                             f"the shape of input 0, {codes[0].shape!r}, before the last axis")
    return np.concatenate([cast(c, fmt, fout) for c, fmt in zip(codes, fins)], axis=-1)
