"""TFLite's int8 ``SOFTMAX``, exactly as its reference kernel computes it.

The reference kernel (``reference_ops::Softmax`` of ``tensorflow/lite/kernels/internal/
reference/softmax.h``, the one TFLite's ``BUILTIN_REF`` resolver and TFLite Micro run for int8)
works in gemmlowp fixed point; the fixed-point functions, the constants and the parameter
computation live in :mod:`nnfab.gemmlowp` (shared with the hardware's exp table) and are
re-exported here. :func:`softmax_int8` runs them on whole rows, in the kernel's order.
"""

import numpy as np

from nnfab.gemmlowp import (ACCUMULATION_INTEGER_BITS, OUTPUT_BITS, SCALED_DIFF_INTEGER_BITS,
                            exp_on_interval_between_negative_one_quarter_and_0_excl,
                            exp_on_negative_values, get_reciprocal,
                            one_over_one_plus_x_for_x_in_0_1, scaled_exp, softmax_params)
from nnfab.requantize import (rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
                              wrap_int32)

__all__ = ["softmax_params", "softmax_int8", "exp_on_negative_values",
           "exp_on_interval_between_negative_one_quarter_and_0_excl",
           "one_over_one_plus_x_for_x_in_0_1", "get_reciprocal", "SCALED_DIFF_INTEGER_BITS",
           "ACCUMULATION_INTEGER_BITS"]


def softmax_int8(x, input_scale, beta):
    """TFLite int8 ``SOFTMAX`` over the last axis (output scale 1/256, zero point -128).

    Parameters
    ----------
    x : array_like of int
        int8 codes, shape ``(..., depth)``.
    input_scale, beta : float
        The input tensor's float32 scale and the operator's float32 ``beta``.

    Returns
    -------
    numpy.ndarray of int64
        int8 codes, the shape of ``x``.
    """
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    x = np.asarray(x, dtype=np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    inside = diff >= diff_min
    exps = scaled_exp(diff, multiplier, left_shift)
    rescaled = rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS)   # Rescale<12>
    sum_of_exps = wrap_int32(np.where(inside, rescaled, 0).sum(axis=-1, keepdims=True))
    shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exps),
                                   num_bits_over_unit + 31 - OUTPUT_BITS)
    out = np.clip(unsat - 128, -128, 127)
    return np.where(inside, out, -128)
