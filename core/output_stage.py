"""The output stage of a TFLite integer operator: int32 accumulators to int8 codes.

gemmlowp calls it the output stage (``OutputStageQuantizeDownInt32ByFixedPoint`` followed by a
clamp): every accumulator ``acc`` of output channel ``c`` becomes ::

    y = clamp(MultiplyByQuantizedMultiplier(acc, m[c], e[c]) + zero_point, low, high)

with the multiplier and shift of :mod:`nnfab.requantize`, the output tensor's zero point, and
``[low, high]`` the output type's range narrowed by the fused activation (RELU: ``low =
zero_point``; RELU6: ``high = zero_point + round(6 / scale)``...).

TFLite's reference FULLY_CONNECTED kernel rescales differently: ``round(double(acc) * M)`` with
the real factor ``M`` as a double, ties away from zero (:func:`nnfab.requantize.multiply_by_real`).
Hardware has no double multiplier, so :meth:`OutputStage.fit_real` finds an integer form, ``y =
round_half_away(acc * m / 2**(31 - e))`` (``rounding="half_away"``), with the fewest multiplier
bits that gives the double path's code for **every** accumulator: both forms are monotone in
``acc``, so checking every accumulator between the two clamp points, each one step beyond,
proves it for all int32 accumulators.

onnxruntime's CPU kernels (``QLinearConv``, ``QLinearMatMul``, ``QGemm``) rescale in single
precision, ``nearbyint(float(acc) * scale)`` with ties to even
(:func:`nnfab.requantize.multiply_by_float32`). :meth:`OutputStage.fit_float32` finds its integer
form, proven the same way: ``y = round_half_even(acc * m / 2**(31 - e))``
(``rounding="half_even"``) where one exists, else ``"float32"``, which first rounds the product
``acc * m`` to 24 significant bits as the float multiplication does (the float rounding lands
some products just beside a tie exactly on it, which no single multiplier reproduces; most
layers of onnxruntime-quantized models need this form). One :class:`OutputStage` describes it
for the golden model (:func:`nnfab.sim.golden.output_stage.output_stage`) and the
hardware (:class:`nnfab.hdl.output_stage.OutputStageEngine`) alike.
"""

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .requantize import (INT32_MAX, INT32_MIN, multiply_by_float32, multiply_by_real,
                        quantize_multipliers)

__all__ = ["OutputStage", "ROUNDINGS", "half_away_rescale", "half_even_rescale", "exact_rescale",
           "float32_rescale", "floor_rescale", "round_significant", "bit_length",
           "FLOAT32_SIGNIFICANT"]

#: Rescalings of an output stage: TFLite's double-rounded fixed-point multiplier, one exact
#: multiplication by ``m * 2**(e - 31)`` rounded to nearest (ties away from zero or to even;
#: ``float32`` after rounding the product to 24 significant bits), or ``floor``: ``(acc * m +
#: b) >> (31 - e)`` with a per-channel offset ``b``.
ROUNDINGS = ("gemmlowp", "half_away", "half_even", "float32", "floor")

#: Significant bits of an IEEE single-precision number (``rounding="float32"``).
FLOAT32_SIGNIFICANT = 24

#: Most accumulators a fit compares (its proof by exhaustion; a factor below about 256 / 2**25
#: leaves more unclamped).
MAX_PROOF = 1 << 25

#: Multiplier bits :meth:`OutputStage.fit_real` tries, fewest first (53: the whole double).
_FIT_BITS = range(8, 54)


def exact_rescale(acc, multiplier, shift, *, ties="away", significant=None, offset=0):
    """``round(acc * multiplier * 2**(shift - 31))``, exactly, on integer arrays; ties away from
    zero (``ties="away"``) or to even (``"even"``). With ``significant=b``, the product is first
    rounded to ``b`` significant bits, ties to even (IEEE single precision's rounding of a
    product for ``b = 24``). ``ties="floor"``: ``floor((acc * multiplier + offset) * 2**(shift -
    31))``.

    Parameters
    ----------
    acc : array_like of int
        Accumulators (int32).
    multiplier, shift : int or array_like of int
        Broadcast against ``acc``; ``0 <= multiplier < 2**53``.

    Returns
    -------
    numpy.ndarray of int64
    """
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    offset = np.asarray(offset, dtype=np.int64)
    right = 31 - np.asarray(shift, dtype=np.int64)
    right_shift = np.maximum(right, 0)
    left_shift = np.maximum(-right, 0)
    bound = int(np.abs(acc).max(initial=0)) * int(multiplier.max(initial=0)) + \
        int(np.abs(offset).max(initial=0))
    if bound >= 1 << 62 or right_shift.max(initial=0) > 62:
        # Python integers: the product or the rounding constant does not fit int64.
        acc, multiplier = acc.astype(object), multiplier.astype(object)
        right_shift, left_shift = right_shift.astype(object), left_shift.astype(object)
        offset = offset.astype(object)
    product = acc * multiplier + offset
    if ties == "floor":
        return np.asarray((product >> right_shift) << left_shift, dtype=np.int64)
    if significant is not None:
        product = round_significant(product, significant)
    one = np.ones_like(right_shift)
    half = np.where(right_shift > 0, one << np.maximum(right_shift - 1, 0), 0 * one)
    rounds = np.where(right_shift > 0, one, 0 * one)
    if ties == "away":
        # floor(p / 2**k + 1/2), less one LSB for a negative product.
        correction = np.where(product < 0, rounds, 0 * rounds)
    else:
        # floor(p / 2**k + 1/2) less one LSB, plus one when floor(p / 2**k) is odd.
        correction = rounds - ((product >> right_shift) & 1) * rounds
    rounded = (product + half - correction) >> right_shift
    return np.asarray(rounded << left_shift, dtype=np.int64)


def bit_length(values):
    """``int.bit_length`` of every element of an integer array (int64 or object)."""
    values = np.abs(np.asarray(values))
    if values.dtype == object:
        return np.vectorize(lambda v: int(v).bit_length(), otypes=[np.int64])(values)
    values = values.astype(np.int64)
    length = np.zeros(values.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = values >= (np.int64(1) << step)
        length += np.where(big, step, 0)
        values = np.where(big, values >> step, values)
    return length + (values > 0)


def round_significant(values, bits):
    """``values`` (integers) rounded to ``bits`` significant bits, ties to even, sign and
    magnitude as IEEE rounds: ``sign * rne(|v| / 2**d) * 2**d`` with ``d = max(bit_length(v) -
    bits, 0)``."""
    values = np.asarray(values)
    magnitude = np.abs(values)
    drop = np.maximum(bit_length(magnitude) - bits, 0)
    if values.dtype == object:
        drop = drop.astype(object)
    kept = magnitude >> drop
    rest = magnitude - (kept << drop)
    half = (np.ones_like(drop) << drop) >> 1
    up = (rest > half) | ((rest == half) & (drop > 0) & ((kept & 1) == 1))
    rounded = (kept + up.astype(kept.dtype)) << drop
    return np.where(values < 0, -rounded, rounded)


def float32_rescale(acc, multiplier, shift):
    """``round_half_even(fl32(acc * multiplier) * 2**(shift - 31))``: the product rounded to 24
    significant bits as IEEE single precision rounds it, then to an integer
    (:func:`exact_rescale`)."""
    return exact_rescale(acc, multiplier, shift, ties="even", significant=FLOAT32_SIGNIFICANT)


def floor_rescale(acc, multiplier, shift, offset=0):
    """``floor((acc * multiplier + offset) * 2**(shift - 31))`` (:func:`exact_rescale`)."""
    return exact_rescale(acc, multiplier, shift, ties="floor", offset=offset)


def half_away_rescale(acc, multiplier, shift):
    """``round_half_away(acc * multiplier * 2**(shift - 31))`` (:func:`exact_rescale`)."""
    return exact_rescale(acc, multiplier, shift, ties="away")


def half_even_rescale(acc, multiplier, shift):
    """``round_half_even(acc * multiplier * 2**(shift - 31))`` (:func:`exact_rescale`)."""
    return exact_rescale(acc, multiplier, shift, ties="even")


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
    rounding : str
        ``"gemmlowp"`` (``MultiplyByQuantizedMultiplier``: 31-bit multiplier, shift from -31 to
        30), ``"half_away"`` or ``"half_even"`` (``round(acc * m * 2**(e - 31))`` exactly, ties
        away from zero or to even; multiplier below ``2**53``, shift from -96 to 62), or
        ``"float32"`` (as ``"half_even"`` after rounding the product ``acc * m`` to 24
        significant bits, ties to even: :func:`float32_rescale`), or ``"floor"``
        (``floor((acc * m + offsets[c]) * 2**(e - 31))``: :func:`floor_rescale`).
    offsets : tuple of int
        With ``rounding="floor"``, one per multiplier (empty: zeros).

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
    rounding: str = "gemmlowp"
    offsets: tuple = ()

    def __post_init__(self):
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"Output stage rounding must be one of {', '.join(ROUNDINGS)}, "
                             f"not {self.rounding!r}")
        gemmlowp = self.rounding == "gemmlowp"
        max_multiplier = INT32_MAX if gemmlowp else (1 << 53) - 1
        min_shift, max_shift = (-31, 30) if gemmlowp else (-96, 62)
        object.__setattr__(self, "multipliers", tuple(int(v) for v in self.multipliers))
        object.__setattr__(self, "shifts", tuple(int(v) for v in self.shifts))
        if not isinstance(self.width, int) or not 2 <= self.width <= 32:
            raise ValueError(f"Output stage width must be an integer from 2 to 32, "
                             f"not {self.width!r}")
        if not self.multipliers or len(self.multipliers) != len(self.shifts):
            raise ValueError(f"Output stage needs one shift per multiplier, not "
                             f"{len(self.multipliers)} multipliers and {len(self.shifts)} shifts")
        for c, (m, e) in enumerate(zip(self.multipliers, self.shifts)):
            if not 0 <= m <= max_multiplier:
                raise ValueError(f"Output stage multiplier {c} must be from 0 to "
                                 f"{max_multiplier}, not {m!r}")
            if not min_shift <= e <= max_shift:
                raise ValueError(f"Output stage shift {c} must be from {min_shift} to "
                                 f"{max_shift}, not {e!r}")
        lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        for name in ("zero_point", "low", "high"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ValueError(f"Output stage {name.replace('_', ' ')} must be an integer from "
                                 f"{lo} to {hi}, not {value!r}")
        if self.low > self.high:
            raise ValueError(f"Output stage clamp must have low <= high, not "
                             f"[{self.low}, {self.high}]")
        object.__setattr__(self, "offsets", tuple(int(v) for v in self.offsets))
        if self.offsets and (self.rounding != "floor" or
                             len(self.offsets) != len(self.multipliers)):
            raise ValueError(f"Output stage offsets are one per multiplier with rounding "
                             f"'floor', not {len(self.offsets)} with {len(self.multipliers)} "
                             f"multipliers and rounding {self.rounding!r}")
        for c, b in enumerate(self.offsets):
            if not -(1 << 62) < b < 1 << 62:
                raise ValueError(f"Output stage offset {c} must be within +-2**62, not {b!r}")

    @property
    def offset_values(self):
        """The offset of each channel (zeros unless ``rounding="floor"`` gives them)."""
        return self.offsets or (0,) * len(self.multipliers)

    @classmethod
    def from_scales(cls, real_multipliers, **kwargs):
        """The stage for real factors ``s_in * s_w[c] / s_out`` (computed by the caller in
        TFLite's order of double operations), quantized by TFLite's ``QuantizeMultiplier``."""
        m, e = quantize_multipliers(np.atleast_1d(real_multipliers))
        return cls(tuple(m.tolist()), tuple(e.tolist()), **kwargs)

    @classmethod
    def fit_real(cls, real_multipliers, *, zero_point=0, low=-128, high=127, width=8):
        """The ``half_away`` stage equal to ``clamp(round(double(acc) * M[c]) + zero_point, low,
        high)`` (TFLite's reference FULLY_CONNECTED) for every int32 accumulator, with the fewest
        multiplier bits per channel (8 to 53).

        Proof by exhaustion: both forms are monotone in ``acc``; every accumulator from one
        below the lower clamp point to one above the upper one is compared, and at both ends
        both forms are checked to be clamped already.

        Raises
        ------
        ValueError
            If a factor is not finite and positive, or no multiplier of up to 53 bits matches
            (the message names the channel, the factor and the first accumulator that differs).
        """
        return cls._fit(np.asarray(real_multipliers, dtype=np.float64), multiply_by_real,
                        half_away_rescale, "half_away", "the double rescale",
                        zero_point=zero_point, low=low, high=high, width=width)

    @classmethod
    def fit_float32(cls, scales, *, zero_point=0, low=-128, high=127, width=8):
        """The stage equal to ``clamp(nearbyint(float(acc) * scale[c]) + zero_point, low,
        high)`` in single precision (onnxruntime's ``MlasRequantizeOutput``,
        :func:`nnfab.requantize.multiply_by_float32`) for every int32 accumulator, proven as
        :meth:`fit_real` proves its form.

        The ``half_even`` form with the fewest multiplier bits per channel (8 to 53) where one
        exists for every channel; else the ``float32`` form (the float32 scale's 24-bit
        significand as multiplier, the product rounded to 24 significant bits as the float
        multiplication rounds it), which is the reference itself wherever the accumulator
        converts to float32 exactly (``|acc| <= 2**24``).

        Raises
        ------
        ValueError
            As :meth:`fit_real`, when neither form is equal (an unclamped accumulator beyond
            ``2**24``, rounded by its conversion to float32).
        """
        factors = np.asarray(scales, dtype=np.float32)
        kwargs = dict(zero_point=zero_point, low=low, high=high, width=width)
        try:
            return cls._fit(factors, multiply_by_float32, half_even_rescale, "half_even",
                            "the float32 rescale", **kwargs)
        except ValueError:
            return cls._fit(factors, multiply_by_float32, float32_rescale, "float32",
                            "the float32 rescale", bits=(FLOAT32_SIGNIFICANT,), **kwargs)

    @classmethod
    def fit_thresholds(cls, thresholds, low, high, *, base, max_shift_bits=62):
        """The ``floor`` stage ``clamp((acc * m[c] + b[c]) >> s[c], base, base + K)`` equal to
        ``base + #{k : acc >= thresholds[c, k]}`` for every accumulator ``low[c] <= acc <=
        high[c]`` (the fixed-point form of FINN-style thresholds, for codes too many to compare
        with: more than 8 bits).

        Both forms are monotone in ``acc``, so they are equal on the range when the stage
        gives code ``v`` at each threshold inside it and ``v - 1`` one below, ``v`` at ``low``
        for thresholds at or below ``low`` and ``v - 1`` at ``high`` for those above ``high``.
        For each shift ``s`` (fewest bits first, from the one the range needs) and multiplier
        ``m`` near the thresholds' slope times ``2**s``, these are bounds on ``b``; the first
        non-empty interval gives ``b``.

        Parameters
        ----------
        thresholds : ndarray of int, shape (channels, K)
            Sorted along each row.
        low, high : array_like of int, shape (channels,)
            The reachable accumulators of each channel.
        base : int

        Raises
        ------
        ValueError
            If no shift up to ``max_shift_bits`` gives a multiplier and offset for some channel
            (the message names it): its codes are not a rounded affine map of the accumulator.
        """
        thresholds = np.asarray(thresholds, dtype=np.int64)
        n_levels = thresholds.shape[1]
        top = base + n_levels
        width = max(2, max(abs(base), abs(top) + 1).bit_length() + 1)
        multipliers, shifts, offsets = [], [], []
        for c, row in enumerate(thresholds):
            lo, hi = int(low[c]), int(high[c])
            found = _fit_floor(row.tolist(), lo, hi, base, max_shift_bits)
            if found is None:
                raise ValueError(f"Output stage channel {c}: no multiplier and offset with a "
                                 f"shift of up to {max_shift_bits} bits give its "
                                 f"{n_levels} thresholds on accumulators {lo} to {hi}")
            multipliers.append(found[0])
            shifts.append(31 - found[1])
            offsets.append(found[2])
        return cls(tuple(multipliers), tuple(shifts), zero_point=0, low=base, high=top,
                   width=width, rounding="floor", offsets=tuple(offsets))

    @classmethod
    def _fit(cls, factors, reference, rescale, rounding, what, *, zero_point, low, high, width,
             bits=_FIT_BITS):
        """The ``rounding`` stage whose ``rescale`` equals ``reference`` on every accumulator of
        the clamp range, each factor's multiplier of the fewest of ``bits`` bits."""
        multipliers, shifts, fitted = [], [], {}
        for c, factor in enumerate(np.atleast_1d(factors)):
            real = float(factor)
            if real in fitted:                 # per-tensor scales repeat on every channel
                multipliers.append(fitted[real][0])
                shifts.append(fitted[real][1])
                continue
            if not np.isfinite(real) or real <= 0:
                raise ValueError(f"Output stage factor {c} must be a finite number > 0, "
                                 f"not {real!r}")
            # Every accumulator whose output is not clamped, and one beyond on each side.
            top = min(INT32_MAX, int(np.ceil((high - zero_point + 1) / real)) + 1)
            bottom = max(INT32_MIN, int(np.floor((low - zero_point - 1) / real)) - 1)
            if top - bottom + 1 > MAX_PROOF:
                raise ValueError(f"Output stage factor {c} ({real!r}) leaves {top - bottom + 1:,} "
                                 f"accumulators unclamped, more than the {MAX_PROOF:,} nnfab "
                                 f"compares one by one")
            acc = np.arange(bottom, top + 1, dtype=np.int64)
            want = np.clip(reference(acc, factor) + zero_point, low, high)
            fraction, exponent = np.frexp(real)
            suspects = np.zeros(0, dtype=np.int64)   # where earlier candidates differed
            for n_bits in bits:
                m = int(np.rint(fraction * 2.0 ** n_bits))
                e = int(exponent) - n_bits + 31
                if m >= 1 << n_bits or not np.array_equal(
                        np.clip(rescale(acc[suspects], m, e) + zero_point, low, high),
                        want[suspects]):
                    continue
                got = np.clip(rescale(acc, m, e) + zero_point, low, high)
                if np.array_equal(got, want) and got[0] == want[0] == low and \
                        got[-1] == want[-1] == high:
                    multipliers.append(m)
                    shifts.append(e)
                    fitted[real] = (m, e)
                    break
                suspects = np.union1d(suspects, np.flatnonzero(got != want)[:64])
            else:
                got = np.clip(rescale(acc, m, e) + zero_point, low, high)
                first = int(acc[np.argmax(got != want)])
                raise ValueError(f"Output stage factor {c} ({real!r}) has no integer form of up "
                                 f"to {max(bits)} bits equal to {what}; accumulator {first} "
                                 f"differs")
        return cls(tuple(multipliers), tuple(shifts), zero_point=zero_point, low=low,
                   high=high, width=width, rounding=rounding)

    @property
    def channels(self):
        """Number of output channels (1 for a per-tensor stage)."""
        return len(self.multipliers)

    @property
    def accumulator_range(self):
        """Accepted accumulator values: int32."""
        return INT32_MIN, INT32_MAX


def _fit_floor(thresholds, low, high, base, max_shift_bits):
    """``(m, s, b)`` with ``floor((acc * m + b) / 2**s)`` giving ``base + #{k : acc >=
    thresholds[k]}`` on ``low..high`` (see :meth:`OutputStage.fit_thresholds`), or None."""
    at_least, below = [], []            # (acc, code): f(acc) >= code; f(acc) <= code - 1
    for k, t in enumerate(thresholds, start=1):
        code = base + k
        if t <= low:
            at_least.append((low, code))
        elif t > high:
            below.append((high, code))
        else:
            at_least.append((t, code))
            below.append((t - 1, code))
    slope_low, slope_high = _slope_bounds(at_least, below)
    for s in range(0, max_shift_bits + 1):
        scale = float(1 << s)
        first, last = np.ceil(slope_low * scale), np.floor(slope_high * scale)
        middle = np.rint((slope_low + slope_high) / 2 * scale)
        for m in sorted({int(v) for v in (first, middle, last) if np.isfinite(v)}):
            if not 0 <= m < 1 << 53:
                continue
            lower = max((code << s) - acc * m for acc, code in at_least) if at_least \
                else -(1 << 61)
            upper = min((code << s) - 1 - acc * m for acc, code in below) if below \
                else 1 << 61
            if lower <= upper and abs(lower) < 1 << 61:
                return m, s, lower
    return None


def _slope_bounds(at_least, below, chunk=512):
    """Approximate (float64) bounds of the real slope ``mu`` of ``floor(mu * acc + beta)``
    meeting every pair of constraints: ``mu * (a - a') >= v - v'`` for ``f(a) >= v`` and
    ``f(a') <= v' - 1``; the caller checks its integer candidates exactly."""
    if not at_least or not below:
        return 0.0, 0.0
    a1, v1 = (np.array(x, dtype=np.float64) for x in zip(*at_least))
    a2, v2 = (np.array(x, dtype=np.float64) for x in zip(*below))
    low, high = 0.0, np.inf
    for i in range(0, len(a1), chunk):
        da = a1[i:i + chunk, None] - a2[None, :]
        dv = v1[i:i + chunk, None] - v2[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = dv / da
        if np.any(da > 0):
            low = max(low, float(ratio[da > 0].max()))
        if np.any(da < 0):
            high = min(high, float(ratio[da < 0].min()))
    return low, (high if np.isfinite(high) else max(low, 1.0) * 2)
