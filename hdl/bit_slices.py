"""Exact-width bit operations on Amaranth values, for adder graphs: slices and concatenations
instead of Amaranth's ``>>``/``<<`` (which widen by the shift amount's width, or become a wire
of their own in the Verilog), and an adder written as explicit ripple-carry logic.

Used by :mod:`nnfab.hdl.shift_add`.
"""

from amaranth.hdl import C, Cat, Value

__all__ = ["low_bits", "shift_right", "shift_left", "ripple_carry"]


def low_bits(value, n):
    """Bits ``[0, n)`` of ``value``, sign- or zero-extended when it is narrower."""
    value = Value.cast(value)
    if len(value) >= n:
        return value[:n]
    fill = value[-1] if value.shape().signed else C(0, 1)
    return Cat(value, fill.replicate(n - len(value)))


def shift_right(value, n):
    """``value >> n`` (arithmetic) as a slice, ``n`` bits narrower: written inline in the
    Verilog of its user, where ``>>`` of a signed value becomes a wire of its own."""
    value = Value.cast(value)
    if n == 0:
        return value
    signed_ = value.shape().signed
    if n >= len(value):
        return value[-1:].as_signed() if signed_ else C(0, 1)
    return value[n:].as_signed() if signed_ else value[n:]


def shift_left(value, n):
    """``value << n`` exactly ``n`` bits wider (Amaranth's ``<<`` by a constant adds bits for
    the shift amount's own width: one more even for ``<< 0``)."""
    value = Value.cast(value)
    if n == 0:
        return value
    shifted = Cat(C(0, n), value)
    return shifted.as_signed() if value.shape().signed else shifted


def ripple_carry(p, q, sign, width):
    """``p + sign * q`` modulo ``2**width`` as explicit ripple-carry logic (sum and carry of
    every bit as XOR/AND/OR), which synthesis maps to LUTs instead of a carry chain."""
    p, q = low_bits(p, width), low_bits(q, width)
    if sign < 0:
        q, carry = ~q, C(1, 1)
    else:
        carry = C(0, 1)
    bits = []
    for n in range(width):
        half = p[n] ^ q[n]
        bits.append(half ^ carry)
        carry = (p[n] & q[n]) | (carry & half)
    return Cat(*bits)
