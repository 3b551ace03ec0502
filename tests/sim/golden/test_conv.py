"""Golden convolution, pooling, batch normalization and layout against explicit loops over
Python integers and Fractions."""

import math
from fractions import Fraction

import numpy as np
import pytest

from nnfab.casts import cast, quantize
from nnfab.conv_layers import (BatchNormSpec, Conv2DSpec, DepthwiseConv2DSpec, GlobalPoolSpec,
                               PoolSpec)
from nnfab.fixed import FixedFormat
from nnfab.sim.golden.batchnorm import batchnorm
from nnfab.sim.golden.conv import conv2d
from nnfab.sim.golden.layout import flatten, zero_pad
from nnfab.sim.golden.pooling import global_pool, pool

FX = FixedFormat(8, 3)
W4 = FixedFormat(4, 1)


def loop_conv(x, spec, depthwise=False):
    """Direct convolution: loops over every output and every kernel tap, exact integers."""
    n, h, w, c = x.shape
    (pt, _), (pl, _) = spec.pads
    (kh, kw), (sh, sw) = spec.kernel_size, spec.strides
    ho, wo, co = spec.output_shape
    acc = spec.accumulator
    fp = spec.input_format.fraction_width + spec.weight_format.fraction_width
    out = np.zeros((n, ho, wo, co), dtype=object)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for o in range(co):
                    total = 0
                    for dy in range(kh):
                        for dx in range(kw):
                            y, xx = i * sh + dy - pt, j * sw + dx - pl
                            if not (0 <= y < h and 0 <= xx < w):
                                continue
                            channels = [o] if depthwise else range(c)
                            for ch in channels:
                                wt = spec.weights[dy, dx, ch] if depthwise else \
                                    spec.weights[o, dy, dx, ch]
                                total += int(x[b, y, xx, ch]) * int(wt)
                    total <<= acc.fraction_width - fp
                    if spec.biases is not None:
                        total += int(spec.biases[o]) << (acc.fraction_width
                                                          - spec.bias_format.fraction_width)
                    out[b, i, j, o] = total
    return cast(out, acc, spec.output_format)


CASES = [(k, s, p, c) for k in (1, 3, 5) for s in (1, 2) for p in ("valid", "same")
         for c in (1, 3)]


@pytest.mark.parametrize("k,stride,padding,c", CASES)
def test_conv2d_matches_loops(k, stride, padding, c):
    seed = k * 1000 + stride * 100 + c * 10 + (padding == "same")
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(k, 8)), int(rng.integers(k, 8)), c)
    spec = Conv2DSpec(rng.integers(-8, 8, (2, k, k, c)), rng.integers(-128, 128, 2), shape, FX,
                      W4, FixedFormat(7, 3, rounding="RND_CONV", overflow="SAT"),
                      strides=stride, padding=padding, bias_format=FX)
    x = rng.integers(-128, 128, (2,) + shape)
    assert conv2d(x, spec).tolist() == loop_conv(x, spec).tolist(), f"seed {seed}"
    dw = DepthwiseConv2DSpec(rng.integers(-8, 8, (k, k, c)), None, shape, FX, W4,
                             FixedFormat(7, 3, overflow="SAT"), strides=stride, padding=padding)
    assert conv2d(x, dw).tolist() == loop_conv(x, dw, depthwise=True).tolist(), f"seed {seed}"


def test_wide_formats_use_python_integers():
    fmt = FixedFormat(40, 20)
    spec = Conv2DSpec(np.full((1, 3, 3, 2), fmt.max_code, dtype=object), None, (4, 4, 2), fmt,
                      fmt, FixedFormat(90, 50, overflow="SAT"))
    x = np.full((1, 4, 4, 2), fmt.min_code, dtype=object)
    assert conv2d(x, spec).tolist() == loop_conv(x, spec).tolist()


def _fraction_cast(value, dst):
    """Oracle: round the exact Fraction by hand with ``dst``'s mode, then overflow through
    the golden cast."""
    scaled = value * 2**dst.fraction_width
    floor = math.floor(scaled)
    frac = scaled - floor
    neg, odd = scaled < 0, floor % 2 == 1
    half, above = frac == Fraction(1, 2), frac > Fraction(1, 2)
    up = {"TRN": False, "TRN_ZERO": neg and frac != 0, "RND": frac >= Fraction(1, 2),
          "RND_ZERO": above or (half and neg), "RND_MIN_INF": above,
          "RND_INF": above or (half and not neg), "RND_CONV": above or (half and odd)}
    rounded = floor + int(up[dst.rounding.name])
    wide = FixedFormat(64, 64 - dst.fraction_width)
    return int(cast(np.array([rounded]), wide, dst)[0])


def test_pool_against_loops():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (2, 9, 7, 3))
    for kind, size, stride, padding in (("max", 2, 2, "valid"), ("max", 3, 2, "same"),
                                        ("average", 3, 1, "valid"), ("average", 2, 2, "valid")):
        out = FixedFormat(6, 3, rounding="RND", overflow="SAT")
        spec = PoolSpec(kind, (9, 7, 3), size, FX, out, strides=stride, padding=padding)
        (pt, _), (pl, _) = spec.pads
        ho, wo, _ = spec.output_shape
        want = np.zeros((2, ho, wo, 3), dtype=object)
        for b in range(2):
            for i in range(ho):
                for j in range(wo):
                    for ch in range(3):
                        vals = [int(x[b, i * stride + dy - pt, j * stride + dx - pl, ch])
                                for dy in range(size) for dx in range(size)
                                if 0 <= i * stride + dy - pt < 9
                                and 0 <= j * stride + dx - pl < 7]
                        want[b, i, j, ch] = (
                            int(cast(np.array([max(vals)]), FX, out)[0]) if kind == "max"
                            else _fraction_cast(Fraction(sum(vals), 32) / len(vals), out))
        assert pool(x, spec).tolist() == want.tolist(), (kind, size, stride, padding)


def test_global_pool_batchnorm_layout():
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (2, 5, 3, 4))
    out = FixedFormat(8, 2, rounding="RND_CONV")
    avg = global_pool(x, GlobalPoolSpec("average", (5, 3, 4), FX, out))
    assert avg.tolist() == [[_fraction_cast(Fraction(int(x[b, :, :, c].sum()), 32) / 15, out)
                             for c in range(4)] for b in range(2)]
    mx = global_pool(x, GlobalPoolSpec("max", (5, 3, 4), FX, FX))
    assert mx.tolist() == x.max(axis=(1, 2)).tolist()
    spec = BatchNormSpec([3, -7, 0, 12], [5, -100, 40, 0], FX, FixedFormat(5, 1),
                         FixedFormat(8, 2), FixedFormat(8, 4, rounding="RND", overflow="SAT"))
    want = [[[[_fraction_cast(Fraction(int(x[b, i, j, c]) * int(spec.scale[c]), 32 * 16)
                              + Fraction(int(spec.shift[c]), 64), spec.output_format)
               for c in range(4)] for j in range(3)] for i in range(5)] for b in range(2)]
    assert batchnorm(x, spec).tolist() == want
    padded = zero_pad(x, ((1, 2), (0, 1)))
    assert padded.shape == (2, 8, 4, 4) and padded[:, 1:6, :3].tolist() == x.tolist()
    assert padded.sum() == x.sum()
    assert flatten(x)[1, 4 * 3 + 2].tolist() == x[1, 1, 0, 2].tolist()


@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "valid")])
def test_conv2d_in_blocks_of_rows(stride, padding, monkeypatch):
    """Blocks of output rows (the bound that keeps a 256x256 frame with 200 images in memory)
    give the direct convolution's codes, for standard, depthwise and explicit-accumulator
    (per-product cast) layers; blocks of one row and of a few rows not dividing the height."""
    from nnfab.sim.golden import conv as golden_conv

    rng = np.random.default_rng(31 + stride)
    shape = (7, 6, 3)
    spec = Conv2DSpec(rng.integers(-8, 8, (4, 3, 3, 3)), rng.integers(-128, 128, 4), shape, FX,
                      W4, FixedFormat(7, 3, rounding="RND_CONV", overflow="SAT"),
                      strides=stride, padding=padding, bias_format=FX)
    dw = DepthwiseConv2DSpec(rng.integers(-8, 8, (3, 3, 3)), None, shape, FX, W4,
                             FixedFormat(7, 3, overflow="SAT"), strides=stride, padding=padding)
    accum = Conv2DSpec(spec.weights, spec.biases, shape, FX, W4, spec.output_format,
                       strides=stride, padding=padding, bias_format=FX,
                       accumulator_format=FixedFormat(9, 4, overflow="WRAP"))
    x = rng.integers(-128, 128, (3,) + shape)
    x[0] = FX.min_code
    whole = conv2d(x, accum)
    for elements in (1, 500):  # one row per block; 3 rows (of 7) per block, exact sums
        monkeypatch.setattr(golden_conv, "_BLOCK_ELEMENTS", elements)
        assert conv2d(x, spec).tolist() == loop_conv(x, spec).tolist()
        assert conv2d(x, dw).tolist() == loop_conv(x, dw, depthwise=True).tolist()
        assert conv2d(x, accum).tolist() == whole.tolist()


def test_conv2d_sums_beyond_float64_stay_exact():
    """Products of 26-bit codes: 17 odd products of the largest code make an odd sum near
    2**54, which float64 cannot hold (a float64 dot product of these is 1 off); the bound
    keeps such layers off the float64 path and the sum is exact, against the direct
    convolution."""
    from nnfab.sim.golden.conv import _float_exact, conv2d_accumulate

    fmt = FixedFormat(26, 10)
    spec = Conv2DSpec(np.full((1, 3, 3, 2), fmt.max_code), None, (3, 3, 2), fmt, fmt,
                      FixedFormat(62, 20, overflow="SAT"))
    x = np.full((1, 3, 3, 2), fmt.max_code)
    x[0, 0, 0, 0] = 0
    assert not _float_exact(spec)
    total = int(conv2d_accumulate(x, spec)[0, 0, 0, 0])
    assert total == 17 * fmt.max_code ** 2 and total % 2 == 1 and total > 2**53
    assert conv2d(x, spec).tolist() == loop_conv(x, spec).tolist()
