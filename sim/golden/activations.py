"""Golden activation functions: NumPy, exact, vectorized over a batch.

Every function takes raw codes of the input format ``fin`` (any shape for the elementwise
activations; ``(batch, n)`` or ``(n,)`` for :func:`argmax` and :func:`softmax`, which reduce over
the last axis) and returns raw codes. Intermediate results are exact integers; the only rounding
is the final cast to ``fout`` (its rounding, then overflow mode), done by
:func:`nnfab.casts.cast`, plus the look-up tables' own contents
(:mod:`nnfab.tables`). Parameters are validated by
:func:`nnfab.activation_params.check_activation`, so the errors are the hardware's.

This module is the executable specification of :mod:`nnfab.hdl.activations`; it does not import
it.
"""

import functools

import numpy as np

from nnfab.activation_params import check_activation, check_format, check_softmax
from nnfab.casts import as_codes, cast, cast_codes, round_shift
from nnfab.fixed import FixedFormat, Overflow

__all__ = ["activation", "linear", "relu", "bounded_relu", "leaky_relu", "hard_sigmoid",
           "hard_tanh", "sigmoid", "tanh", "elu", "argmax", "softmax"]

_SAFE_BITS = 62


def _wide(codes, bits):
    """``codes`` as object (Python int) arrays when ``bits`` could overflow int64."""
    return codes.astype(object) if bits > _SAFE_BITS else codes.astype(np.int64)


def _shift(codes, e):
    """``floor(codes * 2**e)``: a left shift for ``e >= 0``, an arithmetic right shift else."""
    return codes << e if e >= 0 else codes >> -e


def _memoized(check):
    """``check`` with its results remembered for hashable arguments: validating a layer's
    parameters (and building its default tables) once, not once per batch. Errors are not
    remembered, so each bad call raises again."""
    remembered = functools.lru_cache(maxsize=256)(check)

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        try:
            return remembered(*args, **kwargs)
        except TypeError as exc:
            if "unhashable" not in str(exc):
                raise
            return check(*args, **kwargs)

    return wrapper


_check_activation = _memoized(check_activation)
_check_softmax = _memoized(check_softmax)


def activation(kind, codes, *, fin, fout, **params):
    """Apply the elementwise activation ``kind`` (see
    :data:`nnfab.activation_params.ACTIVATION_KINDS`) to raw codes of ``fin``; returns raw codes
    of ``fout``, same shape.

    Raises as :func:`nnfab.activation_params.check_activation`, and as
    :func:`~nnfab.casts.as_codes` for codes out of ``fin``'s range.
    """
    p = _check_activation(kind, fin=fin, fout=fout, **params)
    x = as_codes(codes, fin)
    return _ELEMENTWISE[kind](x, p)


def _linear(x, p):
    return cast(x, p.fin, p.fout)


def _relu(x, p):
    fin, fout = p.fin, p.fout
    k = fin.fraction_width - fout.fraction_width
    if (x.dtype == np.int64 and x.ndim and fout.overflow in (Overflow.SAT, Overflow.SAT_SYM)
            and fin.width + max(0, -k) + 2 <= _SAFE_BITS and -(fout.width + 1) <= k
            <= fin.width + 1):
        # A saturating cast is monotone and maps 0 to 0, so relu then cast is the cast's
        # rounding (or left shift) clipped to [0, max]: two passes fewer than max(x, 0) first.
        y = round_shift(x, k, fout.rounding) if k > 0 else np.left_shift(x, -k)
        return np.clip(y, 0, fout.max_code, out=y)
    return cast_codes(np.maximum(x, 0), fin, fout, bounds=(0, max(fin.max_code, 0)),
                      fresh=True)


def _bounded_relu(x, p):
    # Align x and M on F = max(F_in, F_M) fraction bits, clip in integers, cast from
    # ufixed<W', W' - F>.
    fm = _fraction_bits(p.relu_max)
    f = max(p.fin.fraction_width, fm)
    limit = int(p.relu_max * 2**f)
    wide = _wide(x, p.fin.width + f - p.fin.fraction_width + 2)
    aligned = _shift(wide, f - p.fin.fraction_width)
    clipped = np.minimum(np.where(aligned < 0, 0, aligned), limit)
    width = max(1, limit.bit_length())
    return cast(clipped, FixedFormat(width, width - f, signed=False), p.fout)


def _fraction_bits(value):
    """The number of fraction bits of the dyadic Fraction ``value`` (0 for integers)."""
    return max(0, value.denominator.bit_length() - 1)


def _leaky_relu(x, p):
    alpha_format, alpha_code = p.alpha
    product_format = p.fin.mul_format(alpha_format)
    wide = _wide(x, product_format.width + 1)
    product = wide * alpha_code
    negative = cast(product, product_format, p.fout)
    positive = cast(x, p.fin, p.fout)
    return np.where(x < 0, negative, positive)


def _hard_sigmoid(x, p):
    (sf, sc), (of, oc) = p.slope, p.offset
    fp = p.fin.fraction_width + sf.fraction_width
    f = max(fp, of.fraction_width, 0)
    bits = p.fin.width + sf.width + max(f - fp, 0) + of.width + f + 4
    wide = _wide(x, bits)
    value = _shift(wide * sc, f - fp) + (oc << (f - of.fraction_width))
    one = 1 << f
    clipped = np.where(value < 0, 0, np.where(value > one, one, value))
    return cast(clipped, FixedFormat(f + 1, 1, signed=False), p.fout)


def _hard_tanh(x, p):
    f = max(p.fin.fraction_width, 0)
    wide = _wide(x, p.fin.width + f - p.fin.fraction_width + 2)
    value = _shift(wide, f - p.fin.fraction_width)
    one = 1 << f
    clipped = np.where(value < -one, -one, np.where(value > one, one, value))
    return cast(clipped, FixedFormat(f + 2, 2), p.fout)


def _table_lookup(x, p):
    table = p.table
    e = table.index_exponent(p.fin.fraction_width)
    n = table.table_size
    x = x.astype(object)
    if table.index_rounding == "magnitude":
        return _magnitude_lookup(x, p, e)
    if table.index_rounding == "zero" and e < 0:  # hls4ml: toward zero
        scaled = np.where(x < 0, -((-x) >> -e), x >> -e)
    else:
        scaled = _shift(x, e)
    index = np.minimum(np.maximum(scaled + n // 2, 0), n - 1)
    entries = np.array(table.codes, dtype=object)[index.astype(np.int64)]
    return cast(entries, table.table_format, p.fout)


def _magnitude_lookup(x, p, e):
    """hls4ml Quartus' half table (:mod:`nnfab.tables` docstring): the entry of ``|x|`` cast
    to ``fout``, then ``cast(-y)`` (tanh) or ``cast(1 - y)`` (sigmoid) for a negative ``x``."""
    table, fout = p.table, p.fout
    index = np.minimum(_shift(np.abs(x), e), table.table_size - 1)
    y = cast(np.array(table.codes, dtype=object)[index.astype(np.int64)], table.table_format,
             fout)
    wide = FixedFormat(fout.width + 2, fout.integer_width + 2)
    mirrored = -y if table.kind == "tanh" else (1 << fout.fraction_width) - y
    return np.where(x < 0, cast(mirrored, wide, fout), y)


def _elu(x, p):
    table = p.table
    e = table.index_exponent(p.fin.fraction_width)
    n = table.table_size
    if table.index_rounding == "magnitude":
        # hls4ml's selu: |x| in [0, R) indexes 0 .. N-1, beyond R entry N-1 (x >= 0 reads
        # entry 0, not used).
        index = np.minimum(np.maximum(_shift(-_wide(x, p.fin.width + max(e, 0) + 2), e), 0),
                           n - 1)
    else:
        # Negative inputs only: x in [-R, 0) indexes 0 .. N-1, below -R entry 0.
        index = np.minimum(np.maximum(_shift(x.astype(object), e) + n, 0), n - 1)
    entries = np.array(table.codes, dtype=object)[index.astype(np.int64)]
    negative = cast(entries, table.table_format, p.fout)
    scale_format, scale_code = p.scale
    product_format = p.fin.mul_format(scale_format)
    positive = cast(_wide(x, product_format.width + 1) * scale_code, product_format, p.fout)
    return np.where(x < 0, negative, positive)


_ELEMENTWISE = {
    "linear": _linear,
    "relu": _relu,
    "bounded_relu": _bounded_relu,
    "leaky_relu": _leaky_relu,
    "hard_sigmoid": _hard_sigmoid,
    "hard_tanh": _hard_tanh,
    "sigmoid": _table_lookup,
    "tanh": _table_lookup,
    "elu": _elu,
}


def linear(codes, *, fin, fout):
    """``y = cast(x, fout)``."""
    return activation("linear", codes, fin=fin, fout=fout)


def relu(codes, *, fin, fout):
    """``y = cast(max(x, 0), fout)``."""
    return activation("relu", codes, fin=fin, fout=fout)


def bounded_relu(codes, *, fin, fout, relu_max):
    """``y = cast(min(max(x, 0), M), fout)`` with ``M = relu_max`` at its exact value.

    QKeras' ``quantized_relu(bits, integer)`` is ``fout = ufixed<bits, integer>`` with
    ``relu_max = fout.max_value`` (and ``fout``'s rounding and overflow modes).
    """
    return activation("bounded_relu", codes, fin=fin, fout=fout, relu_max=relu_max)


def leaky_relu(codes, *, fin, fout, alpha_format, alpha_code):
    """``y = cast(x, fout)`` for ``x >= 0``, ``cast(x * alpha, fout)`` (exact product, one
    cast) for ``x < 0``; ``alpha = alpha_code`` in ``alpha_format``."""
    return activation("leaky_relu", codes, fin=fin, fout=fout, alpha_format=alpha_format,
                      alpha_code=alpha_code)


def hard_sigmoid(codes, *, fin, fout, **params):
    """``y = cast(clip(slope * x + offset, 0, 1), fout)``, exact before the cast; ``slope`` and
    ``offset`` are ``(FixedFormat, code)`` pairs, by default
    :data:`nnfab.activation_params.HARD_SIGMOID_SLOPE` (0.2 in ``ufixed<18,0,RND>``) and
    :data:`~nnfab.activation_params.HARD_SIGMOID_OFFSET` (0.5)."""
    return activation("hard_sigmoid", codes, fin=fin, fout=fout, **params)


def hard_tanh(codes, *, fin, fout):
    """``y = cast(clip(x, -1, 1), fout)``."""
    return activation("hard_tanh", codes, fin=fin, fout=fout)


def sigmoid(codes, *, fin, fout, table=None):
    """``y = cast(table[j], fout)``, ``j = clamp(floor(x_code * 2**e) + N/2, 0, N-1)`` with
    ``e = table.index_exponent(fin.fraction_width)`` (see :mod:`nnfab.tables`); ``table``
    defaults to :func:`nnfab.tables.sigmoid_table` ``()``."""
    return activation("sigmoid", codes, fin=fin, fout=fout, table=table)


def tanh(codes, *, fin, fout, table=None):
    """As :func:`sigmoid`, with a tanh table (default :func:`nnfab.tables.tanh_table` ``()``)."""
    return activation("tanh", codes, fin=fin, fout=fout, table=table)


def elu(codes, *, fin, fout, table=None, scale=None):
    """ELU/SELU: ``cast(x * scale, fout)`` for ``x >= 0``, ``cast(table[j], fout)`` for
    ``x < 0`` (:func:`nnfab.tables.elu_table`; default ELU with alpha 1, scale 1), with
    ``j = max(floor(x * 2**e) + N, 0)``, or ``j = min(floor(-x * 2**e), N-1)`` for a table of
    ``index_rounding="magnitude"`` (hls4ml's selu, :func:`nnfab.tables.hls4ml_selu_table`)."""
    params = {k: v for k, v in (("table", table), ("scale", scale)) if v is not None}
    return activation("elu", codes, fin=fin, fout=fout, **params)


def _vector_codes(codes, fin):
    x = as_codes(codes, fin)
    if x.ndim not in (1, 2):
        raise ValueError(f"Codes must have shape (batch, n) or (n,), not {x.shape!r}")
    return x


def argmax(codes, *, fin):
    """Index of the largest code along the last axis, the first one on ties.

    Returns
    -------
    ndarray of int64, shape ``codes.shape[:-1]``
    """
    check_format(fin, "Input format")
    x = _vector_codes(codes, fin)
    return np.argmax(x, axis=-1).astype(np.int64)


def softmax(codes, *, fin, fout, exp_table=None, inv_table=None):
    """Look-up-table softmax along the last axis (hls4ml's "stable" implementation, exact).

    With ``x`` the ``n`` input codes of a vector (format ``fin``, fraction width ``F``):

    1. ``m = max(x)``, ``t_i = m - x_i >= 0`` (exact, in ``fin``'s LSB);
    2. ``k_i = min(floor(t_i * 2**e1), N1 - 1)``, ``e1 = exp_table.index_exponent(F)``;
       ``E_i = exp_table.codes[k_i]`` (format ``exp_table.table_format``, fraction width Fe);
    3. ``S = sum(E_i)``, exact;
    4. ``j = min(floor(S * 2**e2), N2 - 1)``, ``e2 = inv_table.index_exponent(Fe)``;
       ``r = inv_table.codes[j]`` (format ``inv_table.table_format``);
    5. ``y_i = cast(E_i * r, fout)`` from the exact product format
       ``exp_table.table_format.mul_format(inv_table.table_format)``.

    Defaults: :func:`nnfab.tables.exp_table` ``()`` and :func:`nnfab.tables.reciprocal_table`
    with R the smallest power of two at least ``n``.

    Returns
    -------
    ndarray, same shape as ``codes``
        Raw codes of ``fout``.

    Raises
    ------
    ValueError
        If ``codes`` is not 1- or 2-dimensional, and as
        :func:`nnfab.activation_params.check_softmax`.
    """
    check_format(fin, "Input format")
    x = _vector_codes(codes, fin)
    exp_t, inv_t = _check_softmax(n=x.shape[-1], fin=fin, fout=fout, exp_table=exp_table,
                                 inv_table=inv_table)
    plan = _softmax_plan(x.shape[-1], fin, exp_t, inv_t)
    e1, e2, product_format, int64_ok = plan
    if int64_ok and x.dtype != object and x.ndim == 2:
        return _softmax_by_columns(x, fin, fout, plan, exp_t, inv_t)
    wide = x.astype(np.int64 if int64_ok and x.dtype != object else object)
    t = _last_axis(np.maximum, wide) - wide
    k = np.minimum(_shift(t, e1), exp_t.table_size - 1).astype(np.int64)
    exps = _codes_table(exp_t, wide.dtype)[k]
    total = _last_axis(np.add, exps)
    j = np.minimum(_shift(total, e2), inv_t.table_size - 1).astype(np.int64)
    inv = _codes_table(inv_t, wide.dtype)[j]
    return cast_codes(exps * inv, product_format, fout)


def _softmax_by_columns(x, fin, fout, plan, exp_t, inv_t):
    """:func:`softmax` of an int64 batch, the same steps on its transpose: each of the ``n``
    classes is then one contiguous row of the batch, so the maximum and the sum over classes
    are elementwise operations on whole rows, with no per-vector loop."""
    e1, e2, product_format, _ = plan
    xt = np.ascontiguousarray(x.T, dtype=np.int64)
    t = xt.max(axis=0) - xt
    k = np.minimum(_shift(t, e1), exp_t.table_size - 1)
    exps = _codes_table(exp_t, np.dtype(np.int64)).take(k)
    j = np.minimum(_shift(exps.sum(axis=0), e2), inv_t.table_size - 1)
    inv = _codes_table(inv_t, np.dtype(np.int64)).take(j)
    np.multiply(exps, inv, out=exps)
    return np.ascontiguousarray(cast_codes(exps, product_format, fout, fresh=True).T)


@functools.lru_cache(maxsize=64)
def _softmax_plan(n, fin, exp_t, inv_t):
    """The index exponents, the product format and whether int64 holds every intermediate:
    ``t < 2**(W + 1)`` shifted left by ``e1``, the sum of ``n`` table codes shifted by ``e2``,
    and the product of two table codes."""
    e1 = exp_t.index_exponent(fin.fraction_width)
    e2 = inv_t.index_exponent(exp_t.table_format.fraction_width)
    product_format = exp_t.table_format.mul_format(inv_t.table_format)
    sum_bits = exp_t.table_format.width + n.bit_length()
    bits = max(fin.width + 1 + max(e1, 0), sum_bits + max(e2, 0), product_format.width)
    return e1, e2, product_format, bits <= _SAFE_BITS


def _last_axis(ufunc, x):
    """``ufunc.reduce`` over the last axis, keeping it: column by column when it is short
    (NumPy's reductions along a short contiguous axis pay a loop per row; a softmax over 5
    classes then took 20 times as long)."""
    if x.ndim < 2 or x.shape[-1] > 64 or x.dtype == object:
        return ufunc.reduce(x, axis=-1, keepdims=True)
    out = x[..., :1].copy()
    for j in range(1, x.shape[-1]):
        ufunc(out, x[..., j:j + 1], out=out)
    return out


@functools.lru_cache(maxsize=64)
def _codes_table(table, dtype):
    """A look-up table's codes as an array of ``dtype`` (int64 when the caller's width bound
    allows, else Python integers); read-only, as it is shared."""
    codes = np.array(table.codes, dtype=dtype)
    codes.flags.writeable = False
    return codes
