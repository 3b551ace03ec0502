import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnfab.casts import (as_codes, cast, code_dtype, divide_cast, exact_codes, quantize,
                         to_float)
from nnfab.fixed import FixedFormat, Overflow, Rounding

from ..vectors import ap_fixed_cases


@pytest.mark.parametrize("case", ap_fixed_cases(), ids=lambda case: case.id)
def test_reproduces_ap_fixed(case):
    if case.src is None:
        got = quantize(case.inputs, case.dst)
    else:
        got = cast(case.inputs, case.src, case.dst)
    mismatches = np.flatnonzero(got != case.expected)
    assert mismatches.size == 0, (
        f"{mismatches.size} mismatches, first: input {case.inputs[mismatches[0]]!r} "
        f"expected {case.expected[mismatches[0]]} got {got[mismatches[0]]}")


def test_all_rows_are_covered():
    cases = ap_fixed_cases()
    assert len(cases) == 560
    assert sum(case.inputs.size for case in cases) == 168_000


# -- an independent oracle, written from the definitions with exact rationals ------------------

def reference_cast(value, dst):
    """``value`` (a Fraction) cast to ``dst``, from the definitions in ``nnfab.fixed``."""
    scaled = value / dst.lsb
    floor = math.floor(scaled)
    frac = scaled - floor
    half = Fraction(1, 2)
    nearest_up = frac > half
    tie = frac == half
    rounded = {
        Rounding.TRN: floor,
        Rounding.TRN_ZERO: floor + (scaled < 0 and frac != 0),
        Rounding.RND: floor + (nearest_up or tie),
        Rounding.RND_ZERO: floor + (nearest_up or (tie and scaled < 0)),
        Rounding.RND_MIN_INF: floor + nearest_up,
        Rounding.RND_INF: floor + (nearest_up or (tie and scaled > 0)),
        Rounding.RND_CONV: floor + (nearest_up or (tie and floor % 2 == 1)),
    }[dst.rounding]
    lo, hi = dst.min_code, dst.max_code
    if dst.overflow is Overflow.SAT_SYM and dst.signed:
        lo = -hi
    if lo <= rounded <= hi:
        return rounded
    if dst.overflow is Overflow.WRAP:
        return dst.bits_to_code(rounded % (1 << dst.width))
    if dst.overflow is Overflow.SAT_ZERO:
        return 0
    return hi if rounded > hi else lo


@st.composite
def formats(draw, max_width=80):
    width = draw(st.integers(1, max_width))
    return FixedFormat(width, draw(st.integers(-width - 4, 2 * width + 4)),
                       signed=draw(st.booleans()),
                       rounding=draw(st.sampled_from(Rounding)),
                       overflow=draw(st.sampled_from(Overflow)))


@st.composite
def codes_of(draw, fmt, n=8):
    edges = [fmt.min_code, fmt.max_code, 0, fmt.min_code + 1, fmt.max_code - 1]
    element = st.one_of(st.integers(fmt.min_code, fmt.max_code),
                        st.sampled_from([e for e in edges if fmt.min_code <= e <= fmt.max_code]))
    return draw(st.lists(element, min_size=1, max_size=n))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), src=formats(), dst=formats())
def test_cast_matches_definition(data, src, dst):
    codes = data.draw(codes_of(src))
    got = cast(np.array(codes, dtype=code_dtype(src)), src, dst)
    assert got.dtype == code_dtype(dst)
    assert [int(c) for c in got] == [reference_cast(c * src.lsb, dst) for c in codes]


@settings(max_examples=300, deadline=None)
@given(dst=formats(max_width=70),
       values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1,
                       max_size=8))
def test_quantize_matches_definition(dst, values):
    got = quantize(np.array(values), dst)
    assert [int(c) for c in got] == [reference_cast(Fraction(v), dst) for v in values]


@settings(max_examples=200, deadline=None)
@given(dst=formats(max_width=40), data=st.data())
def test_quantize_ties_and_boundaries(dst, data):
    # Values at and around half-LSB ties and the saturation boundaries of ``dst``.
    k = data.draw(st.integers(dst.min_code - 3, dst.max_code + 3))
    offsets = [Fraction(0), Fraction(1, 2), Fraction(-1, 2), Fraction(1, 4), Fraction(3, 4)]
    values = [float((k + off) * dst.lsb) for off in offsets]
    got = quantize(np.array(values), dst)
    assert [int(c) for c in got] == [reference_cast(Fraction(v), dst) for v in values]


def test_wide_formats_do_not_wrap():
    src = FixedFormat(100, 60)
    dst = FixedFormat(130, 100, rounding="RND", overflow="SAT")
    codes = np.array([src.min_code, src.max_code, -1, 1, 2**70 + 2**9], dtype=object)
    got = cast(codes, src, dst)
    assert got.dtype == object
    assert list(got) == [reference_cast(c * src.lsb, dst) for c in codes]
    assert got[1] == (src.max_code + 2**9) >> 10
    assert got[4] == 2**60 + 1


def test_exact_codes():
    x = np.array([0.5, -3.25, 1e-5, 1e5, 0.0, -1.0, 5e-324])
    fmt, codes = exact_codes(x)
    assert all(Fraction(float(v)) == int(c) * fmt.lsb for v, c in zip(x, codes))
    for dst in (FixedFormat(8, 3, rounding="RND_CONV", overflow="SAT"), FixedFormat(4, -2)):
        assert list(cast(codes, fmt, dst)) == list(quantize(x, dst))


def test_to_float():
    assert list(to_float(np.array([-128, 1, 127]), FixedFormat(8, 3))) == \
        [-4.0, 1 / 32, 127 / 32]


def test_code_out_of_range():
    with pytest.raises(ValueError) as info:
        cast(np.array([0, 128]), FixedFormat(8, 3), FixedFormat(4, 2))
    assert str(info.value) == "Code 128 does not fit fixed<8,3> (codes -128 to 127)"


def test_codes_must_be_integers():
    with pytest.raises(TypeError) as info:
        as_codes(np.array([0.5]), FixedFormat(8, 3))
    assert str(info.value) == "Codes must be integers, not float64"


def test_nan_is_rejected():
    with pytest.raises(ValueError) as info:
        quantize(np.array([1.0, np.nan]), FixedFormat(8, 3))
    assert str(info.value) == "Value nan cannot be cast to fixed<8,3>: it is not finite"


def test_format_type_is_checked():
    with pytest.raises(TypeError) as info:
        quantize(np.array([1.0]), "fixed<8,3>")
    assert str(info.value) == "Format must be a FixedFormat, not 'fixed<8,3>'"


@pytest.mark.parametrize("rounding", ["TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF",
                                      "RND_INF", "RND_CONV"])
@pytest.mark.parametrize("n", [1, 3, 4, 9, 25])
def test_divide_cast_against_fractions(n, rounding):
    src = FixedFormat(10, 6)
    for dst in (FixedFormat(6, 3, rounding=rounding, overflow="SAT"),
                FixedFormat(9, 2, rounding=rounding), FixedFormat(4, 4, rounding=rounding)):
        codes = np.r_[np.arange(src.min_code, src.max_code + 1, 7), src.max_code, -1, 0, 1]
        got = divide_cast(codes, src, n, dst)
        want = [reference_cast(Fraction(int(c), 2**src.fraction_width) / n, dst) for c in codes]
        assert got.tolist() == want, f"{dst} n={n}"
