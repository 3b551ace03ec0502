"""gemmlowp's fixed-point functions as TFLite's int8 ``SOFTMAX`` uses them, and the softmax
parameters and exp table that the golden model and the hardware share.

The reference kernel (``reference_ops::Softmax`` of ``tensorflow/lite/kernels/internal/
reference/softmax.h``, the one TFLite's ``BUILTIN_REF`` resolver and TFLite Micro run for int8)
works in gemmlowp fixed point (``fixedpoint.h``): per row, the input differences to the row
maximum are scaled to Q5.26 by a multiplier from ``PreprocessSoftmaxScaling``,
``exp_on_negative_values`` gives Q0.31 exponentials, their sum is kept in Q12.19,
``GetReciprocal`` (``one_over_one_plus_x_for_x_in_0_1``, three Newton-Raphson steps) inverts it,
and each output is ``exp * 1/sum`` rounded to 8 bits, offset by -128. Differences below
``diff_min`` (``CalculateInputRadius``) give -128.

Every function works on NumPy ``int64`` arrays holding int32 values, elementwise. The golden
model (:mod:`nnfab.sim.golden.tflite_softmax`) runs them on whole rows; the hardware
(:mod:`nnfab.hdl.softmax_tflite`) reads :func:`softmax_exp_table`, computed by the same
functions, and implements the reciprocal with the constants defined here.
"""

import math

import numpy as np

from .requantize import (INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot,
                         saturating_rounding_doubling_high_mul, wrap_int32)

__all__ = ["SCALED_DIFF_INTEGER_BITS", "ACCUMULATION_INTEGER_BITS", "OUTPUT_BITS", "MAX_DEPTH",
           "CONSTANT_48_OVER_17", "CONSTANT_NEG_32_OVER_17", "NEWTON_RAPHSON_STEPS",
           "shift_left_saturating", "softmax_params", "scaled_exp",
           "exp_on_interval_between_negative_one_quarter_and_0_excl", "exp_on_negative_values",
           "one_over_one_plus_x_for_x_in_0_1", "get_reciprocal", "bit_length",
           "SoftmaxExpTable", "softmax_exp_table"]

#: Integer bits of the scaled input differences (Q5.26) and of the sum of exponentials (Q12.19).
SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12
#: Bits of the int8 output: the final rounding shift is ``num_bits_over_unit + 31 - 8``.
OUTPUT_BITS = 8
#: Largest softmax depth: the sum of ``n`` exponentials must stay below ``2**28`` in Q12.19, so
#: that the final rounding shift ``num_bits_over_unit + 23`` is at most 31 (gemmlowp's limit).
MAX_DEPTH = 511

#: ``one_over_one_plus_x_for_x_in_0_1``: the initial guess ``48/17 - 32/17 * d`` in Q2.29 and
#: the number of Newton-Raphson steps.
CONSTANT_48_OVER_17 = 1515870810
CONSTANT_NEG_32_OVER_17 = -1010580540
NEWTON_RAPHSON_STEPS = 3

_mul = saturating_rounding_doubling_high_mul
_wrap = wrap_int32


def shift_left_saturating(x, exponent):
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` for ``exponent > 0`` on int32:
    ``x * 2**exponent``, saturated to ``[INT32_MIN, INT32_MAX]``."""
    threshold = (1 << (31 - exponent)) - 1
    x = np.asarray(x, dtype=np.int64)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def softmax_params(input_scale, beta):
    """``(input_multiplier, input_left_shift, diff_min)`` as TFLite's ``SoftmaxPrepare`` computes
    them for the reference kernel (``PreprocessSoftmaxScaling``, ``CalculateInputRadius``).

    Parameters
    ----------
    input_scale, beta : float
        The float32 values of the file (widened to double, as TFLite does).
    """
    real = min(float(beta) * float(input_scale) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)    # QuantizeMultiplierGreaterThanOne
    max_input_rescaled = (1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                          * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << left_shift))
    diff_min = -math.floor(max_input_rescaled)
    return multiplier, left_shift, diff_min


def scaled_exp(diff, multiplier, left_shift):
    """``exp`` of input differences ``diff <= 0`` (int8 code minus the row maximum) in Q0.31:
    ``MultiplyByQuantizedMultiplierGreaterThanOne`` to Q5.26 (the left shift wraps as C's int32
    would), then :func:`exp_on_negative_values`."""
    diff = np.asarray(diff, dtype=np.int64)
    scaled = _mul(_wrap(diff << left_shift), multiplier)
    return exp_on_negative_values(scaled)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """gemmlowp: ``exp(a)`` for Q0.31 ``a`` in ``[-1/4, 0)``, Taylor around -1/8."""
    constant_term = 1895147668                          # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883
    x = _wrap(a + (1 << 28))
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    inner = rounding_divide_by_pot(_wrap(_mul(_wrap(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return _wrap(constant_term + _mul(constant_term, _wrap(x + inner)))


#: gemmlowp's barrel shifter of ``exp_on_negative_values``: (exponent, exp(-2**exponent) in Q0.31).
_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
           (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits=SCALED_DIFF_INTEGER_BITS):
    """gemmlowp ``exp_on_negative_values``: ``exp(a)`` in Q0.31 for ``a <= 0`` in
    Q(integer_bits).(31 - integer_bits)."""
    a = np.asarray(a, dtype=np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = _wrap((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        shift_left_saturating(a_mod_quarter_minus_one_quarter, integer_bits))   # Rescale<0>
    remainder = _wrap(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where(remainder & bit, _mul(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: ``1 / (1 + a)`` in Q0.31 for Q0.31 ``a``
    in ``[0, 1)``, by three Newton-Raphson steps in Q2.29."""
    total = np.asarray(a, dtype=np.int64) + INT32_MAX   # RoundingHalfSum(a, One)
    half_denominator = np.where(total >= 0, (total + 1) // 2, -((-total + 1) // 2))
    x = _wrap(CONSTANT_48_OVER_17 + _mul(half_denominator, CONSTANT_NEG_32_OVER_17))
    for _ in range(NEWTON_RAPHSON_STEPS):
        half_denominator_times_x = _mul(half_denominator, x)
        one_minus = _wrap((1 << 29) - half_denominator_times_x)
        x = _wrap(x + shift_left_saturating(_mul(x, one_minus), 2))        # Rescale<2> of Q4
    return shift_left_saturating(x, 1)             # ExactMulByPot<-1> then Rescale<0>


def get_reciprocal(x, x_integer_digits):
    """TFLite ``GetReciprocal``: ``(1/x scaled to Q0.31, num_bits_over_unit)`` for positive
    ``x`` in Q(x_integer_digits)."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = 32 - bit_length(x)              # CountLeadingZeros of the uint32
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = _wrap(((x << headroom_plus_one) & 0xFFFF_FFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def bit_length(x):
    """Bits of each non-negative value (0 for 0)."""
    x = np.asarray(x, dtype=np.int64)
    bits = np.zeros(x.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = (x >> step) > 0
        bits = np.where(big, bits + step, bits)
        x = np.where(big, x >> step, x)
    return bits + (x > 0)


class SoftmaxExpTable:
    """The exponentials of one ``SOFTMAX`` operator for every int8 difference to the row
    maximum, ``d = max - x`` from 0 to 255 (see :func:`softmax_exp_table`).

    Attributes
    ----------
    exps : numpy.ndarray of int64, shape (256,)
        ``exp`` in Q0.31 (:func:`scaled_exp` of ``-d``), 0 where ``-d < diff_min``.
    terms : numpy.ndarray of int64, shape (256,)
        The summands in Q12.19: ``RoundingDivideByPOT(exps, 12)`` (``Rescale<12>``), 0 where
        ``-d < diff_min``.
    """

    def __init__(self, exps, terms):
        self.exps, self.terms = exps, terms


def softmax_exp_table(input_scale, beta):
    """The exp table of a ``SOFTMAX`` with this input scale and ``beta``, computed with
    :func:`softmax_params` and :func:`scaled_exp`. A difference below ``diff_min`` holds 0 in
    both columns: it adds nothing to the sum, and its output ``round(0 * 1/sum) - 128`` is the
    -128 the kernel gives it.

    Returns
    -------
    SoftmaxExpTable
    """
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    diff = -np.arange(256, dtype=np.int64)
    inside = diff >= diff_min
    exps = scaled_exp(diff, multiplier, left_shift)
    terms = rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS)
    return SoftmaxExpTable(np.where(inside, exps, 0), np.where(inside, terms, 0))
