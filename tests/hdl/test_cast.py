import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from nnfab.casts import cast
from nnfab.fixed import FixedFormat, Overflow, Rounding
from nnfab.hdl.cast import Requantizer, fixed_shape, requantize

from ..streams import run_stream
from .cast_bank import CastBank, ap_fixed_stimulus


def test_every_ap_fixed_row():
    """All 168,000 casts of the real ap_fixed library, through the hardware cast."""
    stimulus = ap_fixed_stimulus()
    bank = CastBank(stimulus.pairs)
    mismatches = []

    async def testbench(ctx):
        for step, word in enumerate(stimulus.words_in()):
            ctx.set(bank.codes_in, word)
            got = stimulus.decode(ctx.get(bank.codes_out))
            for lane, (g, e) in enumerate(zip(got, stimulus.expected[step])):
                if g != e:
                    mismatches.append((step, lane, stimulus.inputs[step, lane], e, g))

    sim = Simulator(bank)
    sim.add_testbench(testbench)
    sim.run()
    assert stimulus.inputs.size == 168_000
    assert not mismatches, f"{len(mismatches)} mismatches, first (step, lane, input, expected, " \
                           f"got): {mismatches[:3]}"


def hardware_cast(codes, src, dst):
    """Run ``codes`` through a combinational :func:`requantize` in the Amaranth simulator."""
    x = Signal(fixed_shape(src))
    y = Signal(fixed_shape(dst))
    m = Module()
    m.d.comb += y.eq(requantize(x, src=src, dst=dst))
    results = []

    async def testbench(ctx):
        for code in codes:
            ctx.set(x, int(code))
            results.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return results


@st.composite
def formats(draw, max_width=72):
    width = draw(st.integers(1, max_width))
    return FixedFormat(width, draw(st.integers(-width - 3, 2 * width + 3)),
                       signed=draw(st.booleans()),
                       rounding=draw(st.sampled_from(Rounding)),
                       overflow=draw(st.sampled_from(Overflow)))


@settings(max_examples=150, deadline=None)
@given(src=formats(), dst=formats(), data=st.data())
def test_hardware_matches_golden(src, dst, data):
    edges = [src.min_code, src.min_code + 1, -1, 0, 1, src.max_code - 1, src.max_code]
    edges = [code for code in edges if src.min_code <= code <= src.max_code]
    codes = edges + data.draw(st.lists(st.integers(src.min_code, src.max_code), max_size=24))
    golden = cast(np.array(codes, dtype=object), src, dst)
    assert hardware_cast(codes, src, dst) == [int(c) for c in golden]


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
@pytest.mark.parametrize("rounding", [Rounding.RND_CONV, Rounding.TRN_ZERO], ids=lambda r: r.name)
def test_requantizer_stream(rounding, overflow):
    seed = 2024 + list(Overflow).index(overflow)
    rng = random.Random(seed)
    src = FixedFormat(16, 6)
    dst = FixedFormat(8, 3, rounding=rounding, overflow=overflow)
    # Every code near the saturation boundaries and the rounding ties, then random ones.
    edges = [src.min_code, src.max_code, -1, 0, 1]
    ties = [(k << 7) + (1 << 6) for k in range(-130, 130, 7)]
    codes = edges + [c for c in ties if src.min_code <= c <= src.max_code] + \
        [rng.randint(src.min_code, src.max_code) for _ in range(300)]
    dut = Requantizer(src=src, dst=dst)
    run = run_stream(dut, codes, rng=rng, p_idle=0.3, p_stall=0.3)
    expected = [int(c) for c in cast(np.array(codes), src, dst)]
    assert run.outputs == expected, f"seed {seed}"


def test_requantizer_latency_and_ii():
    src, dst = FixedFormat(12, 4), FixedFormat(6, 2, rounding="RND", overflow="SAT")
    dut = Requantizer(src=src, dst=dst)
    codes = list(range(-50, 50))
    run = run_stream(dut, codes)
    assert run.outputs == [int(c) for c in cast(np.array(codes), src, dst)]
    assert run.first_latency == dut.latency == 2
    gaps = np.diff(run.accepted_at)
    assert set(gaps) == {dut.initiation_interval} == {1}
    assert set(np.diff(run.produced_at)) == {1}


def test_requantizer_interface():
    dut = Requantizer(src=FixedFormat(16, 6), dst=FixedFormat(8, 3, signed=False))
    assert dut.i.payload.shape() == signed(16)
    assert dut.o.payload.shape() == unsigned(8)
    assert repr(dut) == ("Requantizer(src=FixedFormat.parse('fixed<16,6>'), "
                         "dst=FixedFormat.parse('ufixed<8,3>'))")


def test_requantize_checks_shape():
    with pytest.raises(ValueError) as info:
        requantize(Signal(8), src=FixedFormat(8, 3), dst=FixedFormat(4, 2))
    assert str(info.value) == ("Value of shape unsigned(8) does not hold codes of fixed<8,3> "
                               "(expected signed(8))")


def test_requantizer_checks_formats():
    with pytest.raises(TypeError) as info:
        Requantizer(src="fixed<8,3>", dst=FixedFormat(4, 2))
    assert str(info.value) == "Format must be a FixedFormat, not 'fixed<8,3>'"
