"""TFLite's integer requantization, exactly: the 32-bit fixed-point multiplier and shift.

An int8 TFLite operator accumulates in int32 and brings the sum back to int8 by a real factor
``M = s_in * s_w / s_out`` (per output channel when the weights have per-channel scales).
TFLite stores ``M`` as a 32-bit multiplier ``m`` (a Q0.31 fraction in ``[0.5, 1)``) and an
exponent ``e`` with ``M ~= m * 2**(e - 31)``, and applies it as (TFLite
``tensorflow/lite/kernels/internal/common.h``, after gemmlowp ``fixedpoint.h``; the default build,
without ``TFLITE_SINGLE_ROUNDING``, which the reference kernels and TFLite Micro use)::

    MultiplyByQuantizedMultiplier(x, m, e) =
        RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2**max(e, 0), m), max(-e, 0))

- ``SaturatingRoundingDoublingHighMul(a, b)``: the high 32 bits of ``2 * a * b``, that is
  ``a * b / 2**31`` rounded to nearest (the 64-bit product plus ``2**30``, or ``1 - 2**30`` when
  negative, divided by ``2**31`` truncating toward zero, so a tie rounds toward +infinity on
  both signs: 0.5 to 1, -0.5 to 0); ``INT32_MIN * INT32_MIN`` saturates to ``INT32_MAX``.
- ``RoundingDivideByPOT(x, n)``: ``x / 2**n`` rounded to nearest, ties away from zero.

TFLite built with ``TFLITE_SINGLE_ROUNDING`` rounds once instead
(:func:`multiply_by_quantized_multiplier_single_round`). TFLite's reference int8 fully connected
kernels (``reference_integer_ops::FullyConnected`` and ``FullyConnectedPerChannel`` with float
scales, which the ``BUILTIN_REF`` op resolver runs) use no fixed-point multiplier at all:
``round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))``, :func:`multiply_by_real`.
"""

import math

import numpy as np

__all__ = ["INT32_MIN", "INT32_MAX", "quantize_multiplier", "quantize_multipliers",
           "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
           "multiply_by_quantized_multiplier", "multiply_by_quantized_multiplier_single_round",
           "multiply_by_real", "multiply_by_float32", "round_half_away", "wrap_int32"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def quantize_multiplier(real_multiplier):
    """The multiplier and shift TFLite stores for a real factor (``QuantizeMultiplier``).

    Parameters
    ----------
    real_multiplier : float
        The factor ``M >= 0``, as a double (TFLite computes it in double from float scales).

    Returns
    -------
    (int, int)
        ``(m, e)`` with ``m`` in ``[2**30, 2**31)`` (or 0 for ``M == 0``) and ``M ~= m * 2**(e -
        31)``: ``frexp`` gives ``M = q * 2**e`` with ``q`` in ``[0.5, 1)``; ``m = round(q *
        2**31)`` rounding half away from zero (``TfLiteRound``); ``m == 2**31`` becomes ``2**30``
        with ``e + 1``; an exponent below -31 flushes the factor to ``(0, 0)``.

    Raises
    ------
    ValueError
        If ``real_multiplier`` is negative, infinite or NaN.
    """
    real = float(real_multiplier)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"Requantization factor must be a finite number >= 0, not {real!r}")
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = math.floor(fraction * (1 << 31) + 0.5)   # q >= 0.5 > 0: half away from zero
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def quantize_multipliers(real_multipliers):
    """:func:`quantize_multiplier` of each factor: two ``int64`` arrays ``(m, e)``."""
    pairs = [quantize_multiplier(r) for r in np.asarray(real_multipliers, dtype=np.float64).ravel()]
    shape = np.shape(real_multipliers)
    m = np.array([p[0] for p in pairs], dtype=np.int64).reshape(shape)
    e = np.array([p[1] for p in pairs], dtype=np.int64).reshape(shape)
    return m, e


def wrap_int32(x):
    """``x`` wrapped to int32 as two's complement (what C's int32 arithmetic does on overflow)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values (int64 arrays).

    ``a * b / 2**31`` rounded to nearest, ties toward +infinity; ``a == b == INT32_MIN`` gives
    ``INT32_MAX``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    product = a * b                                   # |a * b| <= 2**62: exact in int64
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    # C's int64 division truncates toward zero.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded to nearest, ties away from
    zero, for ``0 <= exponent <= 31``.

    Raises
    ------
    ValueError
        If an exponent is outside 0 to 31.
    """
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if np.any((exponent < 0) | (exponent > 31)):
        bad = exponent[(exponent < 0) | (exponent > 31)].ravel()[0]
        raise ValueError(f"Rounding shift must be from 0 to 31, not {int(bad)!r}")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding): ``x * M`` for ``M ~= m *
    2**(e - 31)``.

    Parameters
    ----------
    x : array_like of int
        int32 values (an accumulator).
    multiplier, shift : array_like of int
        ``m`` in ``[0, 2**31)`` and ``e`` in ``[-31, 30]``, as :func:`quantize_multiplier`
        returns; they broadcast against ``x`` (per-channel: shape ``(channels,)`` against the last
        axis).

    Returns
    -------
    numpy.ndarray of int64
        The int32 results. The left shift ``x * 2**e`` (for ``e > 0``) wraps as C's int32
        multiplication does; TFLite's converter keeps it from overflowing in real models.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_single_round(x, multiplier, shift):
    """``x * M`` rounded once, for ``M ~= m * 2**(e - 31)``: ``(x * m + 2**(30 - e)) >> (31 -
    e)`` in 64 bits, to nearest with ties toward +infinity.

    This is TFLite's ``MultiplyByQuantizedMultiplier`` built with ``TFLITE_SINGLE_ROUNDING`` and
    ruy's ``MultiplyByQuantizedMultiplier`` (``ruy/apply_multiplier.cc``). It differs from
    :func:`multiply_by_quantized_multiplier` whenever the double rounding's first step (the
    high multiply) moves a value across a half: e.g. ``x = 11243``, ``m = 1638001719``, ``e =
    -8`` is 33.4986; single rounding gives 33, double rounding 34.

    Parameters
    ----------
    x : array_like of int
        int32 values.
    multiplier, shift : array_like of int
        ``m`` in ``[0, 2**31)`` and ``e`` in ``[-31, 30]``; they broadcast against ``x``.

    Returns
    -------
    numpy.ndarray of int64
        The results (int32 for the scales TFLite's converter produces).

    Raises
    ------
    ValueError
        If a shift is outside -31 to 30.
    """
    shift = np.asarray(shift, dtype=np.int64)
    if np.any((shift < -31) | (shift > 30)):
        bad = shift[(shift < -31) | (shift > 30)].ravel()[0]
        raise ValueError(f"Multiplier shift must be from -31 to 30, not {int(bad)!r}")
    total_shift = 31 - shift
    product = np.asarray(x, dtype=np.int64) * np.asarray(multiplier, dtype=np.int64)
    return (product + (np.int64(1) << (total_shift - 1))) >> total_shift


def round_half_away(values):
    """C's ``std::round`` of float64 values: to nearest, ties away from zero (exact, unlike
    ``floor(x + 0.5)``, which rounds 0.49999999999999994 up).

    Returns
    -------
    numpy.ndarray of float64
    """
    values = np.asarray(values, dtype=np.float64)
    whole = np.trunc(values)
    fraction = values - whole                        # exact: |values| < 2**52 or integral
    return whole + np.sign(values) * (np.abs(fraction) >= 0.5)


def multiply_by_real(x, real_multiplier):
    """``round(double(x) * real_multiplier)``, ties away from zero: the requantization of TFLite's
    reference int8 fully connected kernels.

    Parameters
    ----------
    x : array_like of int
        int32 accumulators (exact in a double).
    real_multiplier : float or array_like of float
        The effective scale as a double, ``double(s_in) * double(s_w) / double(s_out)``;
        broadcasts against ``x`` (per channel along the last axis).

    Returns
    -------
    numpy.ndarray of int64
        The rounded products. The product is one IEEE double multiplication (rounded to 53
        bits, as C computes it), then rounded to an integer.
    """
    product = np.asarray(x, dtype=np.int64).astype(np.float64) * np.asarray(real_multiplier,
                                                                             dtype=np.float64)
    return round_half_away(product).astype(np.int64)


def multiply_by_float32(x, scale):
    """``nearbyint(float(x) * scale)`` in IEEE single precision, ties to even: the requantization
    of onnxruntime's CPU kernels ``QLinearConv``, ``QLinearMatMul`` and ``QGemm``
    (``MlasRequantizeOutput``: the int32 accumulator converted to float32, multiplied by the
    float32 scale ``float(float(s_x * s_w[c]) / s_y)``, rounded by ``cvtps2dq`` in the default
    rounding mode).

    Parameters
    ----------
    x : array_like of int
        int32 accumulators (converted to float32, rounded to 24 bits beyond ``2**24``).
    scale : float or array_like of float
        float32 scales; broadcasts against ``x`` (per channel along the last axis).

    Returns
    -------
    numpy.ndarray of int64
    """
    product = np.asarray(x, dtype=np.int64).astype(np.float32) * np.asarray(scale,
                                                                            dtype=np.float32)
    return np.rint(product).astype(np.int64)
