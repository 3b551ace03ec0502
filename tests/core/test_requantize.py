"""TFLite's requantization arithmetic against a scalar transcription of the C reference."""

import math

import numpy as np
import pytest

from nnfab.requantize import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                              multiply_by_quantized_multiplier_single_round, multiply_by_real,
                              round_half_away,
                              quantize_multiplier, quantize_multipliers,
                              rounding_divide_by_pot, saturating_rounding_doubling_high_mul)


def _c_div(a, b):
    """C integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _srdhm(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_div(ab + nudge, 1 << 31)


def _rdbpot(x, e):
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _mbqm(x, m, e):
    shifted = x * (1 << max(e, 0))
    shifted = (shifted + (1 << 31)) % (1 << 32) - (1 << 31)
    return _rdbpot(_srdhm(shifted, m), max(-e, 0))


EDGES = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, INT32_MAX]


def test_high_mul_edges():
    a, b = np.meshgrid(EDGES, EDGES)
    got = saturating_rounding_doubling_high_mul(a, b)
    want = np.vectorize(_srdhm, otypes=[object])(a, b).astype(np.int64)
    assert np.array_equal(got, want)
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN)) == INT32_MAX


def test_high_mul_ties_round_toward_plus_infinity():
    # The result is a * b / 2**31 rounded: the nudge 2**30 (or 1 - 2**30 for a negative product)
    # and C's truncating division round a tie up, toward +infinity, on both signs.
    assert int(saturating_rounding_doubling_high_mul(1 << 29, 1)) == 0          # 0.25 -> 0
    assert int(saturating_rounding_doubling_high_mul(3 << 28, 2)) == 1          # 0.75 -> 1
    assert int(saturating_rounding_doubling_high_mul(1 << 30, 1)) == 1          # 0.5 -> 1
    assert int(saturating_rounding_doubling_high_mul(-(1 << 30), 1)) == 0       # -0.5 -> 0
    assert int(saturating_rounding_doubling_high_mul(3 << 30, 1)) == 2          # 1.5 -> 2
    assert int(saturating_rounding_doubling_high_mul(-(3 << 29), 2)) == -1      # -1.5 -> -1


@pytest.mark.parametrize("e", [0, 1, 2, 30, 31])
def test_rounding_divide_edges_and_ties(e):
    xs = EDGES + [(1 << e) // 2, -((1 << e) // 2), 3 * (1 << e) // 2, -3 * (1 << e) // 2]
    xs = [x for x in xs if INT32_MIN <= x <= INT32_MAX]
    got = rounding_divide_by_pot(np.array(xs), e)
    assert got.tolist() == [_rdbpot(x, e) for x in xs]
    if e:
        assert int(rounding_divide_by_pot(1 << (e - 1), e)) == 1       # +0.5 -> 1
        assert int(rounding_divide_by_pot(-(1 << (e - 1)), e)) == -1   # -0.5 -> -1


def test_rounding_divide_rejects_shift_out_of_range():
    with pytest.raises(ValueError, match=r"^Rounding shift must be from 0 to 31, not 32$"):
        rounding_divide_by_pot(5, 32)


def test_multiply_by_quantized_multiplier_random_and_per_channel():
    rng = np.random.default_rng(7)
    x = rng.integers(INT32_MIN, INT32_MAX, size=(400, 8), endpoint=True)
    x[:4] = [[INT32_MIN], [INT32_MAX], [0], [-1]]
    m = rng.integers(1 << 30, 1 << 31, size=8)
    e = np.array([-31, -20, -8, -1, 0, 0, 1, 3])
    got = multiply_by_quantized_multiplier(x, m, e)
    want = [[_mbqm(int(v), int(mm), int(ee)) for v, mm, ee in zip(row, m, e)] for row in x]
    assert got.tolist() == want


def test_quantize_multiplier():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    # A fraction that rounds up to 2**31 becomes 2**30 with the next exponent.
    assert quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)               # exponent below -31
    for real in [0.0123, 0.3, 1.7, 3.9e-5]:
        m, e = quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31)
        assert math.isclose(m * 2.0 ** (e - 31), real, rel_tol=2 ** -30)
    ms, es = quantize_multipliers([0.5, 1.0])
    assert ms.tolist() == [1 << 30, 1 << 30] and es.tolist() == [0, 1]


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan")])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError, match=r"^Requantization factor must be a finite number >= 0"):
        quantize_multiplier(bad)


def _single(x, m, e):
    """Scalar single rounding: the exact quotient x * m / 2**(31 - e), to nearest, ties up."""
    return (2 * x * m + (1 << (31 - e))) // (1 << (32 - e))


@pytest.mark.parametrize("e", [-31, -8, -1, 0, 1, 30])
def test_single_round_edges_and_ties(e):
    rng = np.random.default_rng(17)
    values = EDGES[1:-1] + [int(v) for v in rng.integers(-(1 << 20), 1 << 20, 200)]
    m = [1 << 30, (1 << 31) - 1, 1638001719]
    x, mm = np.meshgrid(values, m)
    if e > 0:
        x = x >> e                                          # keep x * 2**e within int32
    got = multiply_by_quantized_multiplier_single_round(x, mm, e)
    want = np.vectorize(lambda a, b: _single(int(a), int(b), e), otypes=[object])(x, mm)
    assert np.array_equal(got, want.astype(np.int64))


def test_single_round_differs_from_double_round():
    # 11243 * 1638001719 / 2**39 = 33.4986...: one rounding gives 33; the high multiply's
    # rounding first (to 8576.04 -> 8576 = 33.5 * 256) then a tie away from zero gives 34.
    assert int(multiply_by_quantized_multiplier_single_round(11243, 1638001719, -8)) == 33
    assert int(multiply_by_quantized_multiplier(11243, 1638001719, -8)) == 34
    # Ties go toward +infinity on both signs.
    assert int(multiply_by_quantized_multiplier_single_round(1, 1 << 30, -1)) == 0   # 0.25
    assert int(multiply_by_quantized_multiplier_single_round(1, 1 << 30, 0)) == 1    # 0.5
    assert int(multiply_by_quantized_multiplier_single_round(-1, 1 << 30, 0)) == 0   # -0.5
    assert int(multiply_by_quantized_multiplier_single_round(-3, 1 << 30, 0)) == -1  # -1.5


def test_single_round_rejects_shift_out_of_range():
    with pytest.raises(ValueError, match=r"^Multiplier shift must be from -31 to 30, not 31$"):
        multiply_by_quantized_multiplier_single_round(1, 1 << 30, 31)


def test_round_half_away():
    values = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994,
              2.0 ** 52 + 1, -(2.0 ** 53), 0.0, -0.0, 3.7, -3.7]
    want = [1, -1, 2, -2, 3, -3, 0, 0, 2 ** 52 + 1, -(2 ** 53), 0, 0, 4, -4]
    assert round_half_away(values).tolist() == want


def test_multiply_by_real():
    # One double multiplication, then std::round: ties away from zero on both signs ...
    assert multiply_by_real([-3, -1, 1, 3], 0.5).tolist() == [-2, -1, 1, 2]
    # ... and no 31-bit multiplier: 0.49999999999 quantizes to m = 2**30, e = 0 (0.5 exactly).
    assert int(multiply_by_real(1, 0.49999999999)) == 0
    m, e = quantize_multiplier(0.49999999999)
    assert (m, e) == (1 << 30, 0)
    assert int(multiply_by_quantized_multiplier_single_round(1, m, e)) == 1
    # Per channel along the last axis.
    assert multiply_by_real([[10, 10]], [0.25, 0.35]).tolist() == [[3, 4]]
