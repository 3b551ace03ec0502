"""Golden model of TFLite's integer output stage (see :mod:`nnfab.output_stage`)."""

import numpy as np

from nnfab.output_stage import (float32_rescale, floor_rescale, half_away_rescale,
                                half_even_rescale)
from nnfab.requantize import multiply_by_quantized_multiplier

__all__ = ["output_stage"]


def output_stage(acc, stage):
    """Requantize int32 accumulators to the stage's output codes.

    Parameters
    ----------
    acc : array_like of int, shape (..., channels) or (...,) for a per-tensor stage
        int32 accumulators; channel ``c`` (last axis) uses ``stage.multipliers[c]``.
    stage : nnfab.output_stage.OutputStage

    Returns
    -------
    numpy.ndarray of int64, the shape of ``acc``
        ``clip(MultiplyByQuantizedMultiplier(acc, m, e) + zero_point, low, high)``, or with
        ``rounding="half_away"`` ``clip(round_half_away(acc * m * 2**(e - 31)) + zero_point,
        low, high)`` (``"half_even"``: ties to even; ``"float32"``: the product first rounded
        to 24 significant bits, :func:`nnfab.output_stage.float32_rescale`; ``"floor"``:
        ``floor((acc * m + offset) * 2**(e - 31))``).
    """
    m = np.array(stage.multipliers, dtype=np.int64)
    e = np.array(stage.shifts, dtype=np.int64)
    b = np.array(stage.offset_values, dtype=np.int64)
    if stage.channels == 1:
        m, e, b = m[0], e[0], b[0]
    acc = np.asarray(acc, dtype=np.int64)
    if stage.rounding == "floor":
        scaled = floor_rescale(acc, m, e, b)
    else:
        rescale = {"gemmlowp": multiply_by_quantized_multiplier, "half_away": half_away_rescale,
                   "half_even": half_even_rescale, "float32": float32_rescale}[stage.rounding]
        scaled = rescale(acc, m, e)
    return np.clip(scaled + stage.zero_point, stage.low, stage.high)
