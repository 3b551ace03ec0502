"""TFLite's integer output stage in hardware: int32 accumulators to int8 codes, pipelined.

Bit-exact with :func:`nnfab.sim.golden.output_stage.output_stage` (TFLite's
``MultiplyByQuantizedMultiplier``, double rounding, then zero point and clamp; see
:mod:`nnfab.requantize` and :mod:`nnfab.output_stage`).
"""

from amaranth.hdl import C, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.output_stage import OutputStage

from .cast import fit_shape
from .vector_pipeline import VectorPipeline, vector_signature

__all__ = ["OutputStageEngine", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
           "multiply_by_quantized_multiplier", "half_away_rescale"]

_HALF = 1 << 30


def _integer_format(width):
    """Integer codes of ``width`` signed bits as a format: ``fixed<W,W>``."""
    return FixedFormat(width, width)


class OutputStageEngine(VectorPipeline):
    """Requantize every lane of a vector of accumulators; latency 3 cycles, II = 1.

    Lane ``j`` uses channel ``j``'s multiplier ``m`` and shift ``e`` (constants; a per-tensor
    stage uses the same pair on every lane). With ``rounding="half_away"`` (TFLite's fully
    connected layers, :meth:`nnfab.output_stage.OutputStage.fit_real`), stages 1 and 2 are the
    product ``x * m`` and its rounding half away from zero by ``2**(31 - e)``
    (:func:`half_away_rescale`), then stage 3 as below. Otherwise (``"gemmlowp"``):

    1. ``p = wrap32(x << max(e, 0)) * m``, a 63-bit signed product (``m < 2**31``);
    2. ``h = trunc((p + nudge) / 2**31)``: ``nudge`` is ``2**30`` for ``p >= 0`` and
       ``1 - 2**30`` otherwise, and the division truncates toward zero (an arithmetic shift,
       plus one when ``p + nudge`` is negative with a nonzero remainder). gemmlowp's saturation
       of ``INT32_MIN * INT32_MIN`` cannot occur, since ``m >= 0``;
    3. ``q = (h >> r) + (remainder > threshold)`` with ``r = max(-e, 0)``, ``remainder`` the low
       ``r`` bits of ``h`` and ``threshold = 2**(r-1) - 1 + (h < 0)`` (round to nearest, ties
       away from zero), then ``y = clamp(q + zero_point, low, high)``.

    The pipeline stalls as a whole under back-pressure and never drops or repeats a transfer.

    Parameters
    ----------
    stage : OutputStage
        Multipliers, shifts, zero point, clamp and output width.
    lanes : int
        Lanes per transfer; must equal ``stage.channels`` unless the stage is per-tensor.
    in_width : int
        Signed accumulator bits, 2 to 32 (the accumulator is int32 in TFLite; a narrower one
        that holds every reachable sum gives the same results with a smaller multiplier), or
        up to 48 with ``rounding="half_away"`` (no int32 wrap there: an exact accumulator
        bound wider than 32 bits is accepted as it is).

    Members
    -------
    i : ``In(vector_signature(fixed<in_width,in_width>, lanes))``
    o : ``Out(vector_signature(fixed<width,width>, lanes))``

    Raises
    ------
    TypeError
        If ``stage`` is not an :class:`OutputStage`.
    ValueError
        If ``lanes`` or ``in_width`` is out of range or ``lanes`` does not match the stage.
    """

    def __init__(self, stage, *, lanes, in_width=32):
        self._validated(lambda: self._check(stage, lanes, in_width))
        self._stage, self._lanes, self._in_width = stage, lanes, in_width
        super().__init__({
            "i": In(vector_signature(_integer_format(in_width), lanes)),
            "o": Out(vector_signature(_integer_format(stage.width), lanes)),
        })

    @staticmethod
    def _check(stage, lanes, in_width):
        if not isinstance(stage, OutputStage):
            raise TypeError(f"Output stage must be an OutputStage, not {stage!r}")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"Lanes must be a positive integer, not {lanes!r}")
        limit = 32 if stage.rounding == "gemmlowp" else 48
        if not isinstance(in_width, int) or not 2 <= in_width <= limit:
            raise ValueError(f"Accumulator width must be an integer from 2 to {limit}, "
                             f"not {in_width!r}")
        if stage.channels not in (1, lanes):
            raise ValueError(f"Output stage has {stage.channels} channels; a vector of "
                             f"{lanes} lanes needs {lanes} or 1 (per-tensor)")

    def __repr__(self):
        return (f"OutputStageEngine({self._stage!r}, lanes={self._lanes}, "
                f"in_width={self._in_width})")

    @property
    def stage(self):
        return self._stage

    @property
    def latency(self):
        return 3

    def _channel(self, j):
        c = 0 if self._stage.channels == 1 else j
        return self._stage.multipliers[c], self._stage.shifts[c]

    def elaborate(self, platform):
        m = Module()
        stage = self._stage
        advance, register = self._stages(m, self.latency)
        for j in range(self._lanes):
            multiplier, shift = self._channel(j)
            rescale = (multiply_by_quantized_multiplier if stage.rounding == "gemmlowp"
                       else half_away_rescale)
            scaled = rescale(m, self.i.payload[j], multiplier, shift, register, f"{j}")
            value = Signal(signed(max(35, len(scaled) + 2)), name=f"value_{j}")
            m.d.comb += value.eq(scaled + stage.zero_point)
            clamped = Mux(value < stage.low, stage.low, Mux(value > stage.high, stage.high, value))
            with m.If(advance):
                m.d.sync += self.o.payload[j].eq(clamped)
        return m


def saturating_rounding_doubling_high_mul(m, product, name):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` after its product: ``trunc((product +
    nudge) / 2**31)`` with ``nudge`` ``2**30`` for ``product >= 0`` and ``1 - 2**30`` otherwise
    (:func:`nnfab.requantize.saturating_rounding_doubling_high_mul`). Combinational; the caller
    forms the product of two int32 values and handles ``INT32_MIN * INT32_MIN`` (impossible
    when one factor is a multiplier ``>= 0``).

    Returns a ``signed(33)`` value holding the int32 result.
    """
    nudge = Mux(product >= 0, C(_HALF, signed(32)), C(1 - _HALF, signed(32)))
    total = Signal(signed(64), name=f"total_{name}")
    m.d.comb += total.eq(product + nudge)
    truncate = (total < 0) & (total[:31] != 0)
    return fit_shape((total >> 31) + truncate, signed(33))


def rounding_divide_by_pot(value, exponent):
    """gemmlowp ``RoundingDivideByPOT`` by a constant ``exponent`` (0 to 31): ``value / 2**e``
    rounded to nearest, ties away from zero. Combinational."""
    if not exponent:
        return value
    remainder = value[:exponent]
    threshold = C((1 << (exponent - 1)) - 1, exponent) + (value < 0)
    return (value >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(m, x, multiplier, shift, register, name):
    """TFLite ``MultiplyByQuantizedMultiplier`` of ``x`` by constants, in two register stages
    (product; high multiply), the rounding divide left combinational for the caller's third.

    Parameters
    ----------
    m : Module
    x : Value
        A signed value of at most 32 bits (int32).
    multiplier, shift : int
        ``m`` in ``[0, 2**31)`` and ``e`` in ``[-31, 30]``.
    register : callable
        ``register(expr, name)`` of :meth:`VectorPipeline._stages`.
    name : str
        Suffix of the signal names.
    """
    left, right = max(shift, 0), max(-shift, 0)
    if left:
        x = fit_shape(x << left, signed(32))   # C's int32 wrap
    product = register(x * C(multiplier, 31), f"product_{name}")
    high = register(saturating_rounding_doubling_high_mul(m, product, name), f"high_{name}")
    return rounding_divide_by_pot(high, right)


def half_away_rescale(m, x, multiplier, shift, register, name):
    """``round_half_away(x * multiplier * 2**(shift - 31))`` exactly, in two register stages
    (product; rounded), for an output stage with ``rounding="half_away"``
    (:func:`nnfab.output_stage.half_away_rescale`). The rounding adds ``2**(k-1)``, less one
    for a negative product, before the arithmetic shift by ``k = 31 - shift``.

    Parameters as :func:`multiply_by_quantized_multiplier`, with ``multiplier`` below ``2**53``.
    """
    product = register(x * C(multiplier, max(1, multiplier.bit_length())), f"product_{name}")
    right = 31 - shift
    if right <= 0:
        return register(product << -right, f"rounded_{name}")
    half = C(1 << (right - 1), right + 1)
    rounded = (product + half - (product < 0)) >> right
    return register(rounded, f"rounded_{name}")
