"""The output stage of a TFLite integer operator: int32 accumulators to int8 codes.

gemmlowp calls it the output stage (``OutputStageQuantizeDownInt32ByFixedPoint`` followed by a
clamp): every accumulator ``acc`` of output channel ``c`` becomes ::

    y = clamp(MultiplyByQuantizedMultiplier(acc, m[c], e[c]) + zero_point, low, high)

with the multiplier and shift of :mod:`nnfab.requantize`, the output tensor's zero point, and
``[low, high]`` the output type's range narrowed by the fused activation (RELU: ``low =
zero_point``; RELU6: ``high = zero_point + round(6 / scale)``...). One :class:`OutputStage`
describes it for the golden model (:func:`nnfab.sim.golden.output_stage.output_stage`) and the
hardware (:class:`nnfab.hdl.output_stage.OutputStageEngine`) alike.
"""

from dataclasses import dataclass

import numpy as np

from .requantize import INT32_MAX, INT32_MIN, quantize_multipliers

__all__ = ["OutputStage"]


@dataclass(frozen=True)
class OutputStage:
    """Per-channel requantization of int32 accumulators to ``width``-bit signed codes.

    Parameters
    ----------
    multipliers : tuple of int
        ``m[c]`` in ``[0, 2**31)``, one per output channel (one value: per-tensor).
    shifts : tuple of int
        ``e[c]`` in ``[-31, 30]``, as many as ``multipliers``.
    zero_point : int
        Added after the multiplication; within the output range.
    low, high : int
        The clamp, ``-2**(width-1) <= low <= high <= 2**(width-1) - 1``.
    width : int
        Output bits, 2 to 32 (8 for int8).

    Raises
    ------
    ValueError
        If a value is out of its range or the tuples differ in length; the message names the
        parameter, the value and the accepted range.
    """

    multipliers: tuple
    shifts: tuple
    zero_point: int = 0
    low: int = -128
    high: int = 127
    width: int = 8

    def __post_init__(self):
        object.__setattr__(self, "multipliers", tuple(int(v) for v in self.multipliers))
        object.__setattr__(self, "shifts", tuple(int(v) for v in self.shifts))
        if not isinstance(self.width, int) or not 2 <= self.width <= 32:
            raise ValueError(f"Output stage width must be an integer from 2 to 32, "
                             f"not {self.width!r}")
        if not self.multipliers or len(self.multipliers) != len(self.shifts):
            raise ValueError(f"Output stage needs one shift per multiplier, not "
                             f"{len(self.multipliers)} multipliers and {len(self.shifts)} shifts")
        for c, (m, e) in enumerate(zip(self.multipliers, self.shifts)):
            if not 0 <= m <= INT32_MAX:
                raise ValueError(f"Output stage multiplier {c} must be from 0 to {INT32_MAX}, "
                                 f"not {m!r}")
            if not -31 <= e <= 30:
                raise ValueError(f"Output stage shift {c} must be from -31 to 30, not {e!r}")
        lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        for name in ("zero_point", "low", "high"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ValueError(f"Output stage {name.replace('_', ' ')} must be an integer from "
                                 f"{lo} to {hi}, not {value!r}")
        if self.low > self.high:
            raise ValueError(f"Output stage clamp must have low <= high, not "
                             f"[{self.low}, {self.high}]")

    @classmethod
    def from_scales(cls, real_multipliers, **kwargs):
        """The stage for real factors ``s_in * s_w[c] / s_out`` (computed by the caller in
        TFLite's order of double operations), quantized by TFLite's ``QuantizeMultiplier``."""
        m, e = quantize_multipliers(np.atleast_1d(real_multipliers))
        return cls(tuple(m.tolist()), tuple(e.tolist()), **kwargs)

    @property
    def channels(self):
        """Number of output channels (1 for a per-tensor stage)."""
        return len(self.multipliers)

    @property
    def accumulator_range(self):
        """Accepted accumulator values: int32."""
        return INT32_MIN, INT32_MAX
