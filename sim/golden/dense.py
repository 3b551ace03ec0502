"""Golden model of a fully connected layer (see :class:`nnfab.layers.DenseSpec`).

The arithmetic is exact integer arithmetic whichever path computes it; the paths differ only in
speed, and each is taken only where a width bound proves it exact:

- exact accumulation, every partial sum below ``2**52`` (from the formats and ``n_in``): one
  float64 matrix product (BLAS; integers below ``2**53`` are exact in float64), the bias and
  the output cast fused per block of rows so the working arrays stay in the CPU cache;
- an explicit accumulator (hls4ml's ``accum_t``): every product is cast to it, so the sum is no
  matrix product; the products are formed per block of rows in int32 when the bound of
  ``|x| * max|w|`` plus the rounding constant fits 31 bits (int64 else), rounded in place with
  the closed forms of :func:`nnfab.casts.cast_codes`, and summed. A per-product
  ``WRAP`` overflow is left to the final wrap: wrapping modulo ``2**W`` commutes with the sum;
- otherwise int64, or Python integers (``object`` arrays) beyond 62 bits.
"""

import functools

import numpy as np

from nnfab.casts import as_codes, cast, cast_codes, round_shift
from nnfab.fixed import Overflow, Rounding
from nnfab.layers import DenseSpec

from .mac import products_in_accumulator, working_dtype, wrap_to

__all__ = ["dense_accumulate", "dense", "dense_relu"]

_FLOAT64_EXACT_BITS = 52
_INT64_SAFE_BITS = 62
# Elements of the largest working array of one block of rows (4 or 8 bytes each).
_BLOCK_ELEMENTS = 1 << 16
# The float64 path's arrays are (rows, n_out), not (rows, n_out, n_in): larger blocks.
_FLOAT_BLOCK_FACTOR = 4
# Elements of the larger of the planned cast's arrays of one block of rows (256 KB).
_FLOAT_BLOCK_ELEMENTS = 1 << 15


@functools.lru_cache(maxsize=256)
def _weights_as(spec, dtype):
    return np.ascontiguousarray(spec.weights.astype(dtype).T)


def _rows_per_block(n_per_row):
    return max(1, _BLOCK_ELEMENTS // max(1, n_per_row))


@functools.lru_cache(maxsize=256)
def _float_exact(spec):
    """Whether float64 holds every partial sum of ``x @ W.T`` (and, with the bias shifted in,
    of the accumulator) exactly."""
    bits = spec.product_format.width + max(spec.n_in - 1, 1).bit_length()
    return (spec.exact_accumulation and bits <= _FLOAT64_EXACT_BITS
            and spec.accumulator.width <= _FLOAT64_EXACT_BITS - 1)


def _exact_sum_of_products(x, spec, dtype):
    """``x @ W.T`` exactly. When every product and every partial sum is an integer below
    ``2**52`` (from the formats and ``n_in``), float64 matrix multiplication (BLAS) is exact
    and much faster than integer matrix multiplication; otherwise int64 or Python integers."""
    bits = spec.product_format.width + max(spec.n_in - 1, 1).bit_length()
    if bits <= _FLOAT64_EXACT_BITS:
        return (x.astype(np.float64) @ _weights_as(spec, np.float64)).astype(np.int64)
    return x.astype(dtype) @ _weights_as(spec, dtype)


@functools.lru_cache(maxsize=256)
def _weights_rows_as(spec, dtype):
    return np.ascontiguousarray(spec.weights.astype(dtype))


@functools.lru_cache(maxsize=256)
def _float_bias(spec):
    """The bias in units of the accumulator's LSB, as float64 (exact: below ``2**51``)."""
    if spec.biases is None:
        return None
    shift = spec.accumulator.fraction_width - spec.bias_format.fraction_width
    return (spec.biases.astype(np.int64) << shift).astype(np.float64)


def _exact_block(x, spec, cast_to=None):
    """Exact accumulation of a block of rows in float64; with ``cast_to``, also the cast of
    the accumulator to that format. Returns int64 codes."""
    acc = spec.accumulator
    total = x.astype(np.float64) @ _weights_as(spec, np.float64)
    shift = acc.fraction_width - spec.product_format.fraction_width
    if shift:
        total *= 2.0 ** shift
    bias = _float_bias(spec)
    if bias is not None:
        total += bias
    # Every value is an integer below 2**51 in magnitude: the conversion is exact.
    total = total.astype(np.int64)
    return total if cast_to is None else cast_codes(total, acc, cast_to)


def _planned_cast(x, spec, plan, relu=None):
    """The output codes of ``spec`` for ``x`` by ``plan`` (see :func:`_float_cast_plan`), in
    blocks of rows into one int64 array. The blocks keep every temporary array small: a new
    megabyte-sized array per step costs more in fresh pages than the arithmetic on it.

    With ``relu = (scale, top)``, the codes then go through a ReLU to a format with
    ``log2(scale)`` more fraction bits that saturates at ``top``: clipped below at 0,
    multiplied by ``scale`` and clipped above at ``top`` (see :func:`dense_relu`)."""
    weights, rounding, lo, hi = plan
    if relu is not None:
        scale, top = relu
        lo = max(lo, 0.0)
        if scale == 1.0:
            hi, relu = min(hi, top), None
    n_in = spec.n_in
    rows = max(1, _FLOAT_BLOCK_ELEMENTS // max(n_in + 1, spec.n_out))
    out = np.empty((len(x), spec.n_out), dtype=np.int64)
    # The inputs with a last column of ones, which multiplies the bias row of ``weights``.
    augmented = np.ones((min(rows, len(x)), n_in + 1))
    for start in range(0, len(x), rows):
        block = x[start:start + rows]
        inputs = augmented[:len(block)]
        inputs[:, :n_in] = block
        y = inputs @ weights
        if rounding is not None:
            rounding(y, out=y)
        np.clip(y, lo, hi, out=y)
        if relu is not None:
            y *= scale
            np.minimum(y, top, out=y)
        out[start:start + len(block)] = y
    return out


_FLOAT_ROUNDINGS = {Rounding.TRN: np.floor, Rounding.RND_CONV: np.rint, Rounding.RND: np.floor}


@functools.lru_cache(maxsize=256)
def _float_cast_plan(spec, dst):
    """How :func:`_planned_cast` casts the accumulator to ``dst`` inside float64, or None when
    it cannot: for ``dst`` rounding by TRN, RND or RND_CONV and saturating (SAT, SAT_SYM).

    ``y = [x, 1] @ [W * 2**(shift - k); b * 2**-k (+ 1/2 for RND)]``: the accumulator scaled to
    the output's LSB in the matrix product itself, bias included, then rounded and saturated
    in place. Exact: the weights and the bias are scaled by powers of two (exact), so every
    term, and every partial sum of the terms in any order, is an integer multiple of the
    accumulator's LSB ``2**-k``; the plan is made only when the sum of the terms' largest
    magnitudes (over the input format's codes, per output) is below ``2**52`` such LSBs,
    where float64 holds every such multiple exactly. ``floor``, ``rint`` (half to even) and
    the clip are exact. Returns ``(weights, rounding, lo, hi)``, ``weights`` of shape
    ``(n_in + 1, n_out)`` with the bias as its last row.
    """
    acc = spec.accumulator
    if dst.rounding not in _FLOAT_ROUNDINGS or dst.overflow not in (
            Overflow.SAT, Overflow.SAT_SYM) or dst.width > _FLOAT64_EXACT_BITS:
        return None
    k = acc.fraction_width - dst.fraction_width
    shift = acc.fraction_width - spec.product_format.fraction_width
    fin = spec.input_format
    x_bound = max(abs(fin.min_code), abs(fin.max_code))
    bias_codes = [0] * spec.n_out if spec.biases is None else [
        abs(int(b)) << (acc.fraction_width - spec.bias_format.fraction_width)
        for b in spec.biases.tolist()]
    half = 1 << (k - 1) if k > 0 and dst.rounding is Rounding.RND else 0
    for row, b in zip(spec.weights.T.tolist() if spec.n_in else [[]] * spec.n_out,
                      bias_codes):
        if (x_bound * sum(abs(int(w)) for w in row) << shift) + b + half >= 1 << 52:
            return None
    bias = _float_bias(spec)
    bias = np.zeros(spec.n_out) if bias is None else bias * 2.0 ** -k
    rounding = None
    if k > 0:
        rounding = _FLOAT_ROUNDINGS[dst.rounding]
        if dst.rounding is Rounding.RND:
            bias = bias + 0.5
    weights = np.vstack([_weights_as(spec, np.float64) * 2.0 ** (shift - k), bias[None, :]])
    weights.flags.writeable = False
    lo = -dst.max_code if dst.overflow is Overflow.SAT_SYM and dst.signed else dst.min_code
    return weights, rounding, float(lo), float(dst.max_code)


def _accum_t_sum(x, spec):
    """Sum of the products each cast to the explicit accumulator, and the bias cast to it,
    wrapped into the accumulator; int64 codes. Only for products and accumulators below 62
    bits (see :func:`dense_accumulate`)."""
    acc, product = spec.accumulator, spec.product_format
    n_in, n_out = spec.n_in, spec.n_out
    x_bound = max(abs(spec.input_format.min_code), abs(spec.input_format.max_code))
    w_bound = int(np.max(np.abs(spec.weights))) if spec.weights.size else 0
    k = product.fraction_width - acc.fraction_width
    # Bound of a product, and of a product plus a rounding constant below 2**k.
    bound = x_bound * w_bound + (1 << max(k, 0))
    # With WRAP, the per-product overflow can wait for the final wrap (same modulus); a
    # right shift (k > 0) keeps the magnitude below the bound. Other cases take the generic
    # cast, in int64.
    simple = 0 < k <= min(product.width + 1, _INT64_SAFE_BITS - 1) and \
        acc.overflow is Overflow.WRAP
    small = simple and bound < (1 << 31) - 1
    term_bound = (bound >> k) + 1 if simple else None
    dtype = np.int32 if small else np.int64
    # The products of a block of rows, laid out with the longer of n_in and n_out as the
    # last (contiguous) axis: NumPy's inner loops run along it.
    along_in = n_in > n_out
    w = _weights_rows_as(spec, dtype) if along_in else _weights_as(spec, dtype)
    bias = None if spec.biases is None else cast(spec.biases, spec.bias_format, acc)
    out = np.empty((len(x), n_out), dtype=np.int64)
    rows = max(1, min(len(x), _rows_per_block(n_in * n_out)))
    sum_dtype = np.int32 if small and term_bound * n_in < (1 << 31) else np.int64
    buffer = np.empty((rows, *w.shape), dtype=dtype)
    for start in range(0, len(x), rows):
        block = x[start:start + rows].astype(dtype)
        products = buffer[:len(block)]
        np.multiply(block[:, None, :] if along_in else block[:, :, None], w[None, :, :],
                    out=products)
        if simple and acc.rounding is Rounding.TRN:
            terms = np.right_shift(products, k, out=products)
        elif simple:
            # Rounded to the accumulator's LSB in the closed form; no overflow yet.
            terms = round_shift(products, k, acc.rounding)
        else:
            terms = products_in_accumulator(products, product, acc)
        total = terms.sum(axis=2 if along_in else 1, dtype=sum_dtype)
        if bias is not None:
            total = total + bias
        out[start:start + rows] = total
    extra = n_in.bit_length() + 2
    if simple:
        # |total| < n_in * term_bound + 2**(acc.width - 1): wrap from that width.
        extra = max(extra, (n_in * term_bound).bit_length() + 2 - acc.width)
    return _wrap(out, acc, extra)


def _wrap(total, acc, extra):
    if acc.width + extra > _INT64_SAFE_BITS:
        return wrap_to(total.astype(object), acc, extra)
    return wrap_to(total, acc, extra)


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
    x = _checked(x, spec)
    return _accumulate(x, spec)


def _checked(x, spec):
    if not isinstance(spec, DenseSpec):
        raise TypeError(f"Layer must be a DenseSpec, not {spec!r}")
    x = as_codes(x, spec.input_format)
    if x.ndim != 2 or x.shape[1] != spec.n_in:
        raise ValueError(f"Inputs must have shape (batch, {spec.n_in}), not {x.shape}")
    return x


def _accumulate(x, spec):
    acc = spec.accumulator
    product = spec.product_format
    if spec.exact_accumulation:
        if x.dtype != object and _float_exact(spec):
            rows = _rows_per_block(max(spec.n_in, spec.n_out)) * _FLOAT_BLOCK_FACTOR
            return np.concatenate([_exact_block(x[i:i + rows], spec)
                                   for i in range(0, len(x), rows)] or
                                  [np.empty((0, spec.n_out), np.int64)])
        dtype = working_dtype(acc.width)
        total = _exact_sum_of_products(x, spec, dtype).astype(dtype)
        total = total << (acc.fraction_width - product.fraction_width)
        if spec.biases is not None:
            total = total + (spec.biases.astype(dtype)
                             << (acc.fraction_width - spec.bias_format.fraction_width))
        return total
    if x.dtype != object and max(product.width, acc.width) <= _INT64_SAFE_BITS - 2:
        return _accum_t_sum(x, spec)
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
    x = _checked(x, spec)
    if x.dtype != object and _float_exact(spec):
        out = spec.output_format
        plan = _float_cast_plan(spec, out)
        if plan is not None:
            return _planned_cast(x, spec, plan)
        rows = _rows_per_block(max(spec.n_in, spec.n_out)) * _FLOAT_BLOCK_FACTOR
        if len(x) <= rows:
            return _exact_block(x, spec, out)
        return np.concatenate([_exact_block(x[i:i + rows], spec, out)
                               for i in range(0, len(x), rows)])
    return cast_codes(_accumulate(x, spec), spec.accumulator, spec.output_format)


def dense_relu(x, spec, fout):
    """``relu`` of :func:`dense`'s output, cast to ``fout``, in one pass over the block, or None
    where that pass is not proven exact (the caller then runs :func:`dense` and the ReLU).

    Folded when :func:`dense` takes its planned float64 cast and the ReLU's cast only shifts
    left (``fout`` has at least the fraction bits of ``spec.output_format``) and saturates:
    then ``relu(c)`` cast to ``fout`` is ``min(max(c, 0) * 2**s, fout.max_code)``, every step
    exact in float64 (codes below ``2**52``). This is the arithmetic of the ReLU's golden
    model (:func:`nnfab.sim.golden.activations.activation`), fused so the dense output is
    never stored.

    Parameters
    ----------
    x : array_like of int, shape (batch, n_in)
        Raw codes of ``spec.input_format``.
    spec : DenseSpec
    fout : FixedFormat
        The ReLU's output format.

    Returns
    -------
    ndarray of int64, shape (batch, n_out), or None

    Raises
    ------
    TypeError, ValueError
        As :func:`dense`.
    """
    x = _checked(x, spec)
    fd = spec.output_format
    shift = fout.fraction_width - fd.fraction_width
    if (x.dtype == object or not _float_exact(spec) or shift < 0
            or fout.overflow not in (Overflow.SAT, Overflow.SAT_SYM)
            or fout.width + 1 > _FLOAT64_EXACT_BITS or fd.width + shift > _FLOAT64_EXACT_BITS):
        return None
    plan = _float_cast_plan(spec, fd)
    if plan is None:
        return None
    return _planned_cast(x, spec, plan, relu=(2.0 ** shift, float(fout.max_code)))
