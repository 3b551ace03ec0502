"""Hardware fixed-point casts (requantize): a combinational function and a pipelined stream
component, with the ``ap_fixed`` semantics of :class:`nnfab.fixed.FixedFormat`.

A fixed-point value travels as its raw code: a ``signed(W)`` or ``unsigned(W)`` Amaranth value
(see :func:`fixed_shape`).
"""

from amaranth.hdl import C, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat, Overflow, rounding_increment

from .pipeline import pipeline_advance
from .unused import discard

__all__ = ["fixed_shape", "fit_shape", "floor_shift", "round_increment", "round_to_lsb", "saturate",
           "requantize", "Requantizer"]


def fixed_shape(fmt):
    """The Amaranth shape of raw codes of ``fmt``: ``signed(W)`` or ``unsigned(W)``."""
    _check_format(fmt)
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def fit_shape(value, shape):
    """``value``, whose integer value fits ``shape``, re-typed to exactly ``shape``: sign- or
    zero-extended (by its own shape) or truncated to ``shape.width`` bits, then read with
    ``shape``'s signedness. Free in hardware: wiring only."""
    value = Value.cast(value)
    shape = Shape.cast(shape)
    # Amaranth writes an expression out once per reference to it (a product of n bits sign-
    # extended by n bits would be n + 1 multipliers in the Verilog): extend by only the bits
    # missing, and not at all when narrowing.
    if shape.width <= len(value):
        bits = value[:shape.width]
    else:
        fill = value[-1] if value.shape().signed else C(0, 1)
        bits = Cat(value, fill.replicate(shape.width - len(value)))
    return bits.as_signed() if shape.signed else bits


def _check_format(fmt):
    if not isinstance(fmt, FixedFormat):
        raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")


def round_increment(rounding, *, qb, rest, neg, odd):
    """The one-bit rounding increment of ``rounding`` from the dropped bits:
    :func:`nnfab.fixed.rounding_increment`, the golden model's truth table, on Amaranth values.

    Parameters
    ----------
    rounding : Rounding
    qb : Value
        The half bit: the first bit below the kept LSB (for a division, remainder >= half).
    rest : Value
        Whether any lower bit is set (for a division, remainder neither 0 nor exactly half).
    neg : Value
        Whether the value is negative.
    odd : Value
        Whether the kept LSB is 1.

    Returns
    -------
    Value, 1 bit
    """
    return rounding_increment(rounding, qb=qb, rest=rest, neg=neg, odd=odd, zero=C(0, 1))


def _extend(value, width):
    """``value`` sign- or zero-extended (by its shape) to ``width`` bits, as raw bits."""
    value = Value.cast(value)
    shape = value.shape()
    if width <= shape.width:
        return value.as_unsigned()
    fill = value[-1] if shape.signed else C(0, 1)
    return Cat(value, fill.replicate(width - shape.width))


def round_to_lsb(value, *, src, dst):
    """Drop the bits of ``value`` (raw codes of ``src``) below ``dst``'s LSB with ``dst``'s
    rounding mode; no overflow handling.

    Returns an Amaranth value in units of ``dst``'s LSB, wide enough to hold every result
    exactly (one bit wider than the kept bits, for the rounding carry).
    """
    _check_format(src)
    _check_format(dst)
    value = Value.cast(value)
    if value.shape() != fixed_shape(src):
        raise ValueError(
            f"Value of shape {value.shape()!r} does not hold codes of {src} "
            f"(expected {fixed_shape(src)!r})")
    dropped = src.fraction_width - dst.fraction_width
    if dropped <= 0:
        return value << -dropped
    sign = value[-1] if src.signed else C(0, 1)
    # Extend so that the half bit and everything above it exist even when all bits are dropped.
    ext = _extend(value, max(src.width, dropped + 1))
    floor = ext[dropped:]
    floor = floor.as_signed() if src.signed else floor.as_unsigned()
    qb = ext[dropped - 1]
    rest = ext[:dropped - 1].any() if dropped > 1 else C(0, 1)
    inc = round_increment(dst.rounding, qb=qb, rest=rest, neg=sign, odd=ext[dropped])
    return floor + inc


def _value_range(shape):
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def saturate(value, *, dst):
    """Bring an integer ``value`` (in units of ``dst``'s LSB) into ``dst``'s code range with
    ``dst``'s overflow mode. Returns a value of :func:`fixed_shape` ``(dst)``."""
    _check_format(dst)
    value = Value.cast(value)
    lo, hi = dst.min_code, dst.max_code
    shape = fixed_shape(dst)
    in_lo, in_hi = _value_range(value.shape())
    low_bits = _extend(value, max(dst.width, value.shape().width))[:dst.width]
    wrapped = low_bits.as_signed() if dst.signed else low_bits.as_unsigned()
    mode = dst.overflow
    if mode is Overflow.WRAP:
        return wrapped
    sym = mode is Overflow.SAT_SYM and dst.signed
    floor_code = -hi if sym else lo
    over = value > hi if in_hi > hi else C(0, 1)
    under = value < floor_code if in_lo < floor_code else C(0, 1)
    if mode is Overflow.SAT_ZERO:
        return Mux(over | under, Const(0, shape), wrapped)
    return Mux(over, Const(hi, shape), Mux(under, Const(floor_code, shape), wrapped))


def requantize(value, *, src, dst, wire=None):
    """Combinational cast of raw codes of ``src`` to raw codes of ``dst``.

    Rounding (``dst.rounding``) when bits below ``dst``'s LSB are dropped, then overflow
    (``dst.overflow``), exactly as ``ap_fixed``'s conversion and
    :func:`nnfab.casts.cast`.

    Parameters
    ----------
    value : Value of shape ``fixed_shape(src)``
    src, dst : FixedFormat
    wire : callable ``(value, name) -> Value`` or None
        With :func:`nnfab.hdl.wires.comb_wire`, the rounded value (read three times by the
        overflow handling) is a signal of its own (``rounded``), so its incrementer is built
        once; None: one expression (its rounding logic written out per read).

    Returns
    -------
    Value of shape ``fixed_shape(dst)``

    Raises
    ------
    TypeError
        If a format is not a :class:`FixedFormat`.
    ValueError
        If ``value``'s shape is not ``fixed_shape(src)``.
    """
    rounded = round_to_lsb(value, src=src, dst=dst)
    if wire is not None and src.fraction_width > dst.fraction_width and \
            dst.overflow is not Overflow.WRAP:
        rounded = wire(rounded, "rounded")
    return saturate(rounded, dst=dst)


class Requantizer(wiring.Component):
    """Pipelined stream cast of raw codes of ``src`` to raw codes of ``dst``.

    Stage 1 rounds (``dst.rounding``), stage 2 applies the overflow mode (``dst.overflow``); the
    arithmetic is :func:`requantize`'s. The pipeline stalls as a whole under back-pressure and
    never drops or duplicates a transfer.

    Parameters
    ----------
    src : FixedFormat
        Format of the input codes.
    dst : FixedFormat
        Format of the output codes; its rounding and overflow modes apply.

    Members
    -------
    i : ``In(stream.Signature(fixed_shape(src)))``
    o : ``Out(stream.Signature(fixed_shape(dst)))``

    Attributes
    ----------
    latency : int
        2 cycles from an accepted input to its output being valid.
    initiation_interval : int
        1 cycle between accepted inputs at full rate.

    Raises
    ------
    TypeError
        If ``src`` or ``dst`` is not a :class:`~nnfab.fixed.FixedFormat`.
    """

    def __init__(self, *, src, dst):
        self._src = src
        self._dst = dst
        for fmt in (src, dst):
            if not isinstance(fmt, FixedFormat):
                discard(self)  # a rejected design is not an unused one
                raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")
        super().__init__({
            "i": In(stream.Signature(fixed_shape(src))),
            "o": Out(stream.Signature(fixed_shape(dst))),
        })

    def __repr__(self):
        return f"Requantizer(src={self._src!r}, dst={self._dst!r})"

    @property
    def src(self):
        return self._src

    @property
    def dst(self):
        return self._dst

    @property
    def latency(self):
        return 2

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_advance(m, self.o, self.i)
        rounded_expr = round_to_lsb(self.i.payload, src=self._src, dst=self._dst)
        rounded = Signal(rounded_expr.shape())
        rounded_valid = Signal()
        with m.If(advance):
            m.d.sync += [
                rounded_valid.eq(self.i.valid),
                rounded.eq(rounded_expr),
                self.o.valid.eq(rounded_valid),
                self.o.payload.eq(saturate(rounded, dst=self._dst)),
            ]
        return m


def floor_shift(value, e):
    """``floor(value * 2**e)``: left shift, or arithmetic right shift for ``e < 0``."""
    return value << e if e >= 0 else value >> -e
