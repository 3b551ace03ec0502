"""Fixed-point casts on arrays of codes: float to fixed and fixed to fixed, vectorized and exact.

The executable specification of ``ap_fixed`` conversion (see :mod:`nnfab.fixed`), shared by the
golden model (``nnfab.sim.golden``), the generator and the board tools. Every value is
a raw integer code (the integer ``r`` standing for ``r * 2**-F``). Arrays of codes are ``int64``
when the format is at most 62 bits wide and ``object`` arrays of Python integers beyond that,
so that no width silently wraps.

The algorithm: the exact source value, scaled to units of the target LSB, is ``m * 2**-k``. When
``k > 0`` the low ``k`` bits are dropped: ``floor = m >> k``; the bit just below the kept LSB (the
half bit ``qb``) and whether any lower bit is set (``rest``) decide the rounding increment. The
rounded integer is then brought into range by the overflow mode.
"""

import numpy as np

from nnfab.fixed import FixedFormat, Overflow, Rounding, rounding_increment

__all__ = ["code_dtype", "as_codes", "cast", "cast_codes", "divide_cast", "quantize",
           "exact_codes", "round_shift", "to_float"]

_INT64_SAFE_BITS = 62


def code_dtype(fmt):
    """The NumPy dtype that holds codes of ``fmt`` exactly: int64 up to 62 bits, else object."""
    return np.dtype(np.int64) if fmt.width <= _INT64_SAFE_BITS else np.dtype(object)


def as_codes(codes, fmt):
    """``codes`` as an array of raw codes of ``fmt``, checked to be in range.

    Raises
    ------
    TypeError
        If ``codes`` holds non-integers.
    ValueError
        If a code is outside ``fmt.min_code .. fmt.max_code``.
    """
    array = np.asarray(codes)
    if array.dtype != object and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"Codes must be integers, not {array.dtype}")
    if array.dtype == object:
        for code in array.flat:
            if not isinstance(code, (int, np.integer)) or isinstance(code, bool):
                raise TypeError(f"Codes must be integers, not {code!r}")
    dtype = code_dtype(fmt)
    if array.dtype != object and array.dtype.itemsize * 8 > 64:
        array = array.astype(object)
    if dtype != object and (array.dtype.kind == "i" or
                            (array.dtype.kind == "u" and array.dtype.itemsize < 8)):
        # Two reductions instead of two comparisons, an or and an any: the common case.
        array = np.asarray(array, dtype=np.int64)
        if array.size == 0 or (array.min() >= fmt.min_code and array.max() <= fmt.max_code):
            return array
    bad = (array < fmt.min_code) | (array > fmt.max_code)
    if np.any(bad):
        code = array[bad].flat[0]
        raise ValueError(
            f"Code {int(code)!r} does not fit {fmt} (codes {fmt.min_code} to {fmt.max_code})")
    if dtype == object:
        return np.vectorize(int, otypes=[object])(array) if array.size else array.astype(object)
    return np.asarray(array, dtype=np.int64)


def _increment(rounding, *, qb, rest, neg, odd):
    """The rounding increment (0 or 1) from the dropped bits
    (:func:`nnfab.fixed.rounding_increment` on boolean arrays)."""
    return rounding_increment(rounding, qb=qb, rest=rest, neg=neg, odd=odd,
                              zero=np.zeros_like(qb))


def _overflow(value, dst):
    """Bring rounded integers ``value`` (int64, object or integral float64) into ``dst``'s range."""
    lo, hi = dst.min_code, dst.max_code
    overflow = dst.overflow
    if overflow is Overflow.WRAP:
        modulus = 1 << dst.width
        if value.dtype == np.float64:
            modulus = float(modulus)
        wrapped = value % modulus
        if dst.signed:
            wrapped = np.where(wrapped > hi, wrapped - modulus, wrapped)
        return wrapped
    if overflow is Overflow.SAT or (overflow is Overflow.SAT_SYM and not dst.signed):
        return np.where(value > hi, hi, np.where(value < lo, lo, value))
    if overflow is Overflow.SAT_ZERO:
        return np.where((value > hi) | (value < lo), 0, value)
    if overflow is Overflow.SAT_SYM:
        return np.where(value > hi, hi, np.where(value < -hi, -hi, value))
    raise AssertionError(overflow)  # pragma: no cover


def _shift_round_int(m, k, rounding, *, magnitude_bits):
    """``round(m * 2**-k)`` for integer arrays ``m`` (int64 or object) and shifts ``k``.

    ``k`` may be a scalar or an array and may be negative (a left shift). Left shifts are clamped
    to ``magnitude_bits`` plus the caller's headroom by the caller; right shifts are clamped to
    ``magnitude_bits + 1``, which keeps the floor, the half bit and the sticky bit unchanged
    because ``|m| < 2**magnitude_bits``.
    """
    k = np.asarray(k)
    right = np.clip(k, 1, magnitude_bits + 1).astype(m.dtype)
    floor = m >> right
    remainder = m - (floor << right)
    half = np.ones_like(m) << (right - 1)
    qb = remainder >= half
    rest = (remainder & (half - 1)) != 0
    inc = _increment(rounding, qb=qb, rest=rest, neg=m < 0, odd=(floor & 1) != 0)
    rounded = floor + inc.astype(m.dtype)
    shifted = m << np.clip(-k, 0, None).astype(m.dtype)
    return np.where(k > 0, rounded, shifted)


def round_shift(m, k, rounding):
    """``round(m * 2**-k)`` for an int64 array and a fixed ``0 < k <= 62``, in closed form:
    adding the right constant below the half bit and shifting once rounds as the mode asks
    (the same results as :func:`_shift_round_int`, in two to four passes instead of twenty)."""
    if rounding is Rounding.TRN:
        return m >> k
    half = m.dtype.type(1 << (k - 1))  # int64, or int32 for the dense kernel's products
    if rounding is Rounding.RND:
        return (m + half) >> k
    if rounding is Rounding.RND_MIN_INF:
        return (m + (half - 1)) >> k
    if rounding is Rounding.RND_CONV:
        return (m + (half - 1) + ((m >> k) & 1)) >> k
    if rounding is Rounding.RND_ZERO:
        return (m + (half - 1) + (m < 0)) >> k
    if rounding is Rounding.RND_INF:
        return (m + (half - 1) + (m >= 0)) >> k
    if rounding is Rounding.TRN_ZERO:
        return (m + np.where(m < 0, (half << 1) - 1, 0)) >> k
    raise AssertionError(rounding)  # pragma: no cover


def _overflow_fast(value, dst):
    """:func:`_overflow` for int64 arrays, with ``clip`` and masks."""
    lo, hi = dst.min_code, dst.max_code
    overflow = dst.overflow
    if overflow is Overflow.WRAP:
        if dst.signed:
            offset = np.int64(1) << np.int64(dst.width - 1)
            return ((value + offset) & np.int64((1 << dst.width) - 1)) - offset
        return value & np.int64((1 << dst.width) - 1)
    # ``value`` is a fresh array (see cast_codes): clipped in place (a 0-d result of a shift
    # is a NumPy scalar, which cannot be).
    out = value if isinstance(value, np.ndarray) else None
    if overflow is Overflow.SAT or (overflow is Overflow.SAT_SYM and not dst.signed):
        return np.clip(value, lo, hi, out=out)
    if overflow is Overflow.SAT_SYM:
        return np.clip(value, -hi, hi, out=out)
    return np.where((value > hi) | (value < lo), 0, value)


def cast(codes, src, dst):
    """Cast raw codes of format ``src`` to format ``dst`` (``ap_fixed`` conversion semantics).

    Parameters
    ----------
    codes : array_like of int, any shape
        Raw codes of ``src``.
    src, dst : FixedFormat
        ``dst``'s rounding and overflow modes apply.

    Returns
    -------
    ndarray, same shape as ``codes``
        Raw codes of ``dst``; dtype from :func:`code_dtype`.

    Raises
    ------
    TypeError
        If a format is not a :class:`FixedFormat` or a code is not an integer.
    ValueError
        If a code is outside ``src``'s range.
    """
    for fmt in (src, dst):
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")
    return cast_codes(as_codes(codes, src), src, dst)


def cast_codes(m, src, dst, *, bounds=None, fresh=False):
    """:func:`cast` of codes already checked (by :func:`as_codes`, or in range by
    construction): the golden kernels' inner step, without the check's passes. ``bounds``,
    ``(lo, hi)``, may narrow ``src``'s code range when the caller knows more (as relu does);
    when no rounded value can leave ``dst``'s range, the overflow pass is skipped. ``fresh``
    says ``m`` is the caller's own temporary array, which a left shift may then overwrite."""
    if m.dtype != object:
        m = m.astype(np.int64, copy=False)
    k = src.fraction_width - dst.fraction_width
    # Left shifts beyond dst.width + 1 do not change the low W bits (all zero) nor whether the
    # value overflows, so they are clamped; the magnitude then stays within these bits:
    needed_bits = src.width + max(0, min(-k, dst.width + 1)) + 2
    if needed_bits > _INT64_SAFE_BITS or dst.width > _INT64_SAFE_BITS:
        m = m.astype(object)
    elif k <= src.width + 1:
        # The common case in int64: closed forms, few passes. Sums stay below 2**62: |m| <
        # 2**src.width, the added constant is below 2**k, a left shift is within needed_bits.
        lo, hi = (src.min_code, src.max_code) if bounds is None else bounds
        if k > 0:
            rounded = round_shift(m, k, dst.rounding)
            lo, hi = lo >> k, (hi >> k) + 1
        else:
            shift = min(-k, dst.width + 1)
            if fresh and isinstance(m, np.ndarray) and m.ndim and m.dtype == np.int64:
                rounded = np.left_shift(m, shift, out=m)
            else:
                rounded = m << np.int64(shift)
            lo, hi = lo << shift, hi << shift
        floor = -dst.max_code if dst.overflow is Overflow.SAT_SYM and dst.signed else \
            dst.min_code
        if floor <= lo and hi <= dst.max_code:
            return rounded  # nothing can overflow
        return _overflow_fast(rounded, dst)
    k_clamped = max(k, -(dst.width + 1))
    rounded = _shift_round_int(m, k_clamped, dst.rounding, magnitude_bits=src.width)
    return _finish(_overflow(rounded, dst), dst)


def _finish(codes, dst):
    dtype = code_dtype(dst)
    if dtype == object:
        return np.vectorize(int, otypes=[object])(codes) if codes.size else codes.astype(object)
    return np.asarray(codes, dtype=np.int64)


def quantize(values, dst):
    """Cast floating-point ``values`` exactly to raw codes of ``dst`` (``ap_fixed``'s conversion
    from ``double``).

    The double is taken at its exact binary value; ``dst``'s rounding and overflow apply.

    Parameters
    ----------
    values : array_like of float, any shape
    dst : FixedFormat

    Returns
    -------
    ndarray, same shape as ``values``
        Raw codes of ``dst``.

    Raises
    ------
    ValueError
        If a value is NaN or infinite.
    """
    if not isinstance(dst, FixedFormat):
        raise TypeError(f"Format must be a FixedFormat, not {dst!r}")
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = x[~np.isfinite(x)].flat[0]
        raise ValueError(f"Value {float(bad)!r} cannot be cast to {dst}: it is not finite")
    if dst.width <= 50:
        return _finish(_overflow(_quantize_float(x, dst), dst), dst)
    mantissa, exponent = np.frexp(x)
    m = (mantissa * 2.0**53).astype(np.int64).astype(object)
    k = np.asarray(53 - exponent - dst.fraction_width, dtype=np.int64)
    k = np.maximum(k, -(dst.width + 1))
    rounded = _shift_round_int(m, k, dst.rounding, magnitude_bits=53)
    return _finish(_overflow(rounded, dst), dst)


def _quantize_float(x, dst):
    """Round ``x * 2**F`` to an integer in float64, exactly, for targets up to 50 bits wide.

    Scaling by a power of two is exact unless it leaves the normal range, so the exponent is
    clamped: far above the target's width every value is a multiple of ``2**(W + 7)`` (its low W
    bits are zero and it overflows, whatever the clamp); far below, a non-zero value behaves
    like ``+-1/4`` (below the half bit, sticky) in every rounding mode.
    """
    mantissa, exponent = np.frexp(x)
    scaled_exponent = np.clip(exponent + dst.fraction_width, -64, dst.width + 60)
    y = np.ldexp(mantissa, scaled_exponent)
    tiny = (x != 0) & (np.abs(y) < 0.25)
    y = np.where(tiny, np.copysign(0.25, x), y)
    floor = np.floor(y)
    remainder = y - floor
    qb = remainder >= 0.5
    rest = (remainder != 0) & (remainder != 0.5)
    odd = np.fmod(floor, 2.0) != 0
    inc = _increment(dst.rounding, qb=qb, rest=rest, neg=y < 0, odd=odd)
    return floor + inc


def to_float(codes, fmt):
    """The values of raw codes of ``fmt`` as float64 (exact up to 53 significant bits)."""
    array = np.asarray(codes)
    if array.dtype == object:
        array = array.astype(np.float64)
    return np.ldexp(array.astype(np.float64), -fmt.fraction_width)


def exact_codes(values, *, signed=True):
    """The narrowest format that holds every float of ``values`` exactly, and their codes in it.

    Lets a fixed-to-fixed cast (for example the hardware's) reproduce a cast from ``double``:
    ``cast(*exact_codes(x)[::-1], dst)`` equals ``quantize(x, dst)``.

    Returns
    -------
    (FixedFormat, ndarray)
        The format (TRN/WRAP) and the raw codes, same shape as ``values``.

    Raises
    ------
    ValueError
        If a value is NaN or infinite, or negative while ``signed`` is false.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = x[~np.isfinite(x)].flat[0]
        raise ValueError(f"Value {float(bad)!r} has no fixed-point code: it is not finite")
    if not signed and np.any(x < 0):
        raise ValueError(f"Value {float(x[x < 0].flat[0])!r} does not fit an unsigned format")
    mantissa, exponent = np.frexp(x)
    m = (mantissa * 2.0**53).astype(np.int64)
    nonzero = m != 0
    if not np.any(nonzero):
        fmt = FixedFormat(2 if signed else 1, 1, signed=signed)
        return fmt, np.zeros(x.shape, dtype=np.int64)
    trailing = np.log2((m & -m)[nonzero]).astype(np.int64)
    fraction_width = int(np.max(53 - exponent[nonzero] - trailing))
    integer_width = int(np.max(exponent[nonzero])) + (1 if signed else 0)
    fmt = FixedFormat(max(integer_width + fraction_width, 1), integer_width, signed=signed)
    return fmt, quantize(x, fmt)


def divide_cast(codes, src, divisor, dst):
    """Codes of ``src`` divided by the positive integer ``divisor`` and cast to ``dst``, as if
    the quotient were exact: ``dst``'s rounding from the exact remainder, then its overflow.

    Returns
    -------
    ndarray of codes of ``dst``, same shape as ``codes``.
    """
    shift = dst.fraction_width - src.fraction_width
    num = np.asarray(codes).astype(object) * (1 << max(shift, 0))
    den = divisor << max(-shift, 0)
    q = num // den
    r = num - q * den
    qb = (2 * r >= den)
    rest = (r != 0) & (2 * r != den)
    inc = _increment(dst.rounding, qb=qb, rest=rest, neg=num < 0, odd=(q & 1) == 1)
    rounded = q + inc.astype(object)
    bits = max([abs(int(v)).bit_length() for v in np.ravel(rounded)] + [dst.width]) + 2
    wide = FixedFormat(bits, bits - dst.fraction_width)
    return cast(rounded, wide, dst)
