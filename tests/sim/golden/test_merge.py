"""Golden add, concatenate and nearest-neighbour upsampling against scalar references written
from the definitions with Fractions (``ref_cast`` rounds by the definition of each mode)."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.sim.golden.merge import add, concatenate, sum_format
from nnfab.sim.golden.resize import upsample_nearest

from .test_activations import ref_cast

F = FixedFormat.parse

# Mixed formats: different binary points, signed and unsigned, a negative integer width.
FINS = [F("fixed<8,3>"), F("ufixed<6,2>"), F("fixed<5,-1>"), F("fixed<12,7>")]
FOUTS = [F("fixed<8,3,RND,SAT>"), F("fixed<6,2,RND_CONV,SAT_SYM>"),
         F("ufixed<5,3,RND_ZERO,SAT>"), F("fixed<7,4,TRN_ZERO,WRAP>"),
         F("fixed<9,1,RND_INF,SAT_ZERO>"), F("fixed<10,6,RND_MIN_INF,SAT>")]


def edge_codes(fmt, rng, n):
    """Most negative, most positive, -1, 0, 1, then random codes."""
    edges = [fmt.min_code, fmt.max_code, 0, 1] + ([-1] if fmt.signed else [])
    return np.array(edges + list(rng.integers(fmt.min_code, fmt.max_code + 1, n - len(edges))))


def ref_add(codes, fins, fout):
    return ref_cast(sum(Fraction(int(c)) * f.lsb for c, f in zip(codes, fins)), fout)


@pytest.mark.parametrize("fout", FOUTS, ids=str)
@pytest.mark.parametrize("fins", [FINS[:2], FINS[1:3], FINS[::-1][:2], FINS[:3], FINS],
                         ids=lambda fins: "+".join(map(str, fins)))
def test_add_matches_definition(fins, fout):
    seed = sum(map(ord, "".join(map(str, fins)) + str(fout)))
    rng = np.random.default_rng(seed)
    # every pair of edge codes, then random codes; shape (batch, 2, lanes)
    cols = [edge_codes(f, rng, 40) for f in fins]
    grid = np.array(list(itertools.product(*[c[:5] for c in cols])) +
                    list(zip(*[c[5:] for c in cols]))).T
    xs = [g[: g.size // 6 * 6].reshape(-1, 2, 3) for g in grid]
    got = add(xs, fins, fout)
    want = np.array([ref_add(cs, fins, fout) for cs in zip(*[x.flat for x in xs])])
    assert got.shape == xs[0].shape
    assert got.flatten().tolist() == want.tolist(), f"seed {seed}"


def test_add_one_cast_of_the_exact_sum():
    """Casting each input first would round twice: 1/8 + 1/8 into fixed<4,2,RND> is 1/4, but
    each 1/8 rounds up to 1/4 and 1/4 + 1/4 = 1/2 when each is cast; most-negative codes sum
    without wrapping before the one overflow step."""
    a = F("fixed<4,1>")          # LSB 1/8
    fout = F("fixed<4,2,RND,SAT>")  # LSB 1/4
    assert add([[1], [1]], [a, a], fout).tolist() == [1]          # 1/8 + 1/8 = 1/4
    assert add([[1], [0]], [a, a], fout).tolist() == [1]          # 1/8 ties up to 1/4
    assert add([[-1], [0]], [a, a], fout).tolist() == [0]         # -1/8 ties up to 0
    assert add([[-8], [-8]], [a, a], fout).tolist() == [-8]       # -1 + -1 = -2 fits
    assert add([[-8], [-8], [-8]], [a, a, a], fout).tolist() == [-8]  # -3 saturates at -2
    assert add([[7], [7]], [a, a], fout).tolist() == [7]          # 1.75 saturates at 1.75
    wrap = fout.replace(overflow="WRAP")
    assert add([[-8], [-8], [-8]], [a, a, a], wrap).tolist() == [4]  # -3 wraps to 1


def test_add_wide_formats_in_python_integers():
    wide = F("fixed<64,40>")
    fins = [wide, F("fixed<60,-10>")]
    fout = F("fixed<64,41,RND_CONV,SAT>")
    assert sum_format(fins).width > 62
    xs = [[wide.min_code, wide.max_code, 12345], [fins[1].max_code, fins[1].min_code, -1]]
    got = add([np.array([x]) for x in xs], fins, fout)
    assert got[0].tolist() == [ref_add(cs, fins, fout) for cs in zip(*xs)]


@pytest.mark.parametrize("fout", FOUTS, ids=str)
def test_concatenate_matches_definition(fout):
    seed = sum(map(ord, str(fout)))
    rng = np.random.default_rng(seed)
    lanes = [2, 1, 3, 4]
    xs = [edge_codes(f, rng, 3 * 5 * n).reshape(3, 5, n) for f, n in zip(FINS, lanes)]
    got = concatenate(xs, FINS, fout)
    assert got.shape == (3, 5, sum(lanes))
    want = [[[ref_cast(Fraction(int(c)) * f.lsb, fout) for x, f in zip(xs, FINS)
              for c in x[b, p]] for p in range(5)] for b in range(3)]
    assert got.tolist() == want, f"seed {seed}"


def test_sum_format():
    assert sum_format([F("fixed<8,3>"), F("ufixed<6,2>")]) == F("fixed<9,4>")
    assert sum_format(FINS) == F("fixed<15,9>")    # common fixed<13,7>, 2 more bits


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 1), (1, 2), (2, 3)])
def test_upsample_nearest(size):
    x = np.random.default_rng(5).integers(-128, 128, (2, 3, 4, 2))
    got = upsample_nearest(x, size)
    sh, sw = size
    assert got.shape == (2, 3 * sh, 4 * sw, 2)
    for b, r, c in itertools.product(range(2), range(3 * sh), range(4 * sw)):
        assert got[b, r, c].tolist() == x[b, r // sh, c // sw].tolist()


@pytest.mark.parametrize("call,error,message", [
    (lambda: add([[1]], [FINS[0]], FOUTS[0]), ValueError, "Add takes at least 2 inputs, not 1"),
    (lambda: add([[1], [1]], [FINS[0]], FOUTS[0]), ValueError,
     "Add takes one format per input (2), not 1"),
    (lambda: add([[1], [1, 2]], FINS[:2], FOUTS[0]), ValueError,
     "Add input 1 has shape (2,), not the shape of input 0, (1,)"),
    (lambda: add([[1], [1]], FINS[:2], "fixed<8,3>"), TypeError,
     "Format must be a FixedFormat, not 'fixed<8,3>'"),
    (lambda: add([[1], [64]], FINS[:2], FOUTS[0]), ValueError,
     "Code 64 does not fit ufixed<6,2> (codes 0 to 63)"),
    (lambda: add([1, 1], FINS[:2], FOUTS[0]), ValueError,
     "Add input 0 must have at least one axis, not shape ()"),
    (lambda: concatenate([[[1]], [[1], [2]]], FINS[:2], FOUTS[0]), ValueError,
     "Concatenate input 1 has shape (2, 1), which differs from the shape of input 0, (1, 1), "
     "before the last axis"),
    (lambda: concatenate([[1]], FINS[:1], FOUTS[0]), ValueError,
     "Concatenate takes at least 2 inputs, not 1"),
    (lambda: upsample_nearest(np.zeros((1, 2, 2)), (2, 2)), ValueError,
     "Input must have shape (batch, H, W, C), not (1, 2, 2)"),
    (lambda: upsample_nearest(np.zeros((1, 2, 2, 1)), (2, 0)), ValueError,
     "Size must hold positive integers, not (2, 0)"),
    (lambda: upsample_nearest(np.zeros((1, 2, 2, 1)), 2), TypeError,
     "Size must be a pair of integers (sh, sw), not 2"),
    (lambda: upsample_nearest(np.zeros((1, 2, 2, 1)), (2.0, 2)), TypeError,
     "Size must be a pair of integers (sh, sw), not (2.0, 2)"),
])
def test_errors(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
