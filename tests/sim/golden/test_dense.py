"""Golden dense layer against a scalar reference written from the definition with Fractions.

The golden model takes fast paths (float64 matrix products, casts fused into blocks of rows,
int32 products, a per-product WRAP left to the final wrap, skipped overflow passes) only where
a width bound proves them exact; these tests cross every path with every rounding and overflow
mode, with extreme codes, so a wrong bound shows as a mismatch."""

import random

import numpy as np
import pytest

from nnfab.fixed import FixedFormat, Overflow, Rounding
from nnfab.layers import DenseSpec
from nnfab.sim.golden import dense as golden_dense
from nnfab.sim.golden.activations import activation
from nnfab.sim.golden.dense import dense, dense_accumulate

from .test_activations import ref_cast

ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)


def ref_dense(x, spec):
    """``spec`` applied to one vector of codes ``x``, in Python integers and Fractions."""
    acc = spec.accumulator
    fin, fw, fout = spec.input_format, spec.weight_format, spec.output_format
    out = []
    lsb = fin.lsb * fw.lsb
    for j in range(spec.n_out):
        products = [int(a) * int(w) * lsb for a, w in zip(x, spec.weights[j])]
        bias = None if spec.biases is None else spec.bias_format.value(int(spec.biases[j]))
        if spec.exact_accumulation:
            value = sum(products) + (bias or 0)
        else:
            codes = [ref_cast(p, acc) for p in products]
            if bias is not None:
                codes.append(ref_cast(bias, acc))
            total = sum(codes) % (1 << acc.width)
            value = acc.value(acc.bits_to_code(total))
        out.append(ref_cast(value, fout))
    return out


def _format(rng, *, max_width=20, signed=None, rounding=None, overflow=None):
    # (signed=True with max_width 1 cannot happen: widths start at 2 for signed formats.)
    width = rng.randint(1 if signed is False else 2, max_width)
    return FixedFormat(width, rng.randint(-4, width + 4),
                       signed=rng.random() < 0.7 if signed is None else signed,
                       rounding=rounding or rng.choice(ROUNDINGS),
                       overflow=overflow or rng.choice(OVERFLOWS))


def _codes(rng, fmt, shape):
    codes = np.array([rng.randint(fmt.min_code, fmt.max_code) for _ in range(np.prod(shape))])
    codes = codes.reshape(shape)
    # Extremes, where a bound that is one bit short shows.
    codes.flat[0] = fmt.min_code
    codes.flat[-1] = fmt.max_code
    return codes


def _spec(rng, *, explicit_accumulator, max_width=20, accumulator_overflow=None):
    n_in, n_out = rng.randint(1, 70), rng.randint(1, 40)
    fin, fw = _format(rng, max_width=max_width), _format(rng, max_width=max_width)
    weights = _codes(rng, fw, (n_out, n_in))
    bias_format = _format(rng, max_width=max_width) if rng.random() < 0.7 else None
    biases = None if bias_format is None else _codes(rng, bias_format, (n_out,))
    # Signed accumulators (as hls4ml's accum_t): for an unsigned one see
    # test_negative_product_in_unsigned_accumulator below.
    acc = _format(rng, max_width=24, signed=True, overflow=accumulator_overflow) \
        if explicit_accumulator else None
    return DenseSpec(weights, biases, fin, fw, _format(rng, max_width=18), bias_format, acc)


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("explicit_accumulator", [False, True])
def test_dense_matches_reference(seed, explicit_accumulator):
    rng = random.Random(seed)
    spec = _spec(rng, explicit_accumulator=explicit_accumulator,
                 accumulator_overflow=Overflow.WRAP if seed % 2 else None)
    x = _codes(rng, spec.input_format, (12, spec.n_in))
    got = dense(x, spec)
    expected = [ref_dense(row, spec) for row in x.tolist()]
    assert got.dtype == np.int64
    assert got.tolist() == expected, f"seed {seed}: {spec}"


@pytest.mark.parametrize("seed", range(4))
def test_hls4ml_accumulator_wide_blocks(seed, monkeypatch):
    """An hls4ml-like layer (16-bit codes, accum_t, TRN/WRAP) over more rows than one block,
    so the int32 kernel runs block after block; the accumulator before the output cast too."""
    monkeypatch.setattr(golden_dense, "_BLOCK_ELEMENTS", 1 << 9)  # a few rows per block
    rng = random.Random(100 + seed)
    fmt = FixedFormat(16, 6, rounding=rng.choice(ROUNDINGS))
    n_in, n_out = rng.choice([(16, 64), (64, 32), (32, 5)])
    weights = _codes(rng, fmt, (n_out, n_in))
    spec = DenseSpec(weights, _codes(rng, fmt, (n_out,)), fmt, fmt, FixedFormat(16, 6), fmt,
                     FixedFormat(16, 6, rounding=rng.choice(ROUNDINGS)))
    x = np.random.default_rng(seed).integers(fmt.min_code, fmt.max_code + 1, (300, n_in))
    expected = [ref_dense(row, spec) for row in x.tolist()]
    assert dense(x, spec).tolist() == expected
    acc = dense_accumulate(x, spec)
    assert acc.min() >= spec.accumulator.min_code and acc.max() <= spec.accumulator.max_code


def test_exact_accumulation_over_many_blocks():
    """A layer with exact accumulation on more rows than one block of the float64 kernel."""
    rng = random.Random(7)
    fin = FixedFormat(16, 6)
    fw = FixedFormat(16, 3)
    spec = DenseSpec(_codes(rng, fw, (64, 16)), _codes(rng, fw, (64,)), fin, fw,
                     FixedFormat(16, 6, rounding="RND_CONV", overflow="SAT"), fw)
    x = np.random.default_rng(1).integers(fin.min_code, fin.max_code + 1, (9000, 16))
    got = dense(x, spec)
    sample = range(0, 9000, 331)
    assert got[list(sample)].tolist() == [ref_dense(x[i].tolist(), spec) for i in sample]


def test_wide_formats_use_python_integers():
    fmt = FixedFormat(40, 10)
    spec = DenseSpec([[fmt.max_code, fmt.min_code]], None, fmt, fmt, FixedFormat(60, 30))
    x = np.array([[fmt.max_code, fmt.max_code]])
    assert dense(x, spec).tolist() == [ref_dense(x[0].tolist(), spec)]


def test_negative_product_in_unsigned_accumulator():
    """A negative product goes into an unsigned saturating accumulator through its cast (0),
    as hls4ml's ``accum_t`` assignment does; it used to be shifted in unsaturated."""
    fin, fw = FixedFormat(6, 0), FixedFormat(2, -4)
    acc = FixedFormat(16, 4, signed=False, overflow="SAT")
    spec = DenseSpec([[-1]], None, fin, fw, FixedFormat(16, 4), accumulator_format=acc)
    x = np.array([[5]])
    assert dense(x, spec).tolist() == [ref_dense(x[0].tolist(), spec)]


@pytest.mark.parametrize("rounding", ["TRN", "RND", "RND_CONV"])
@pytest.mark.parametrize("overflow", ["SAT", "SAT_SYM"])
@pytest.mark.parametrize("out_fraction", [-3, 0, 9, 30])
def test_output_cast_inside_the_float_product(rounding, overflow, out_fraction):
    """The output casts folded into the float64 product (weights and bias scaled by powers of
    two, RND's half added with the bias), with the output LSB above, at and below the
    accumulator's, on extreme and random codes."""
    rng = random.Random(hash((rounding, overflow, out_fraction)) % 1000)
    fin, fw, fb = FixedFormat(12, 4), FixedFormat(10, 1), FixedFormat(14, 6)
    out = FixedFormat(9, 9 - out_fraction, rounding=rounding, overflow=overflow)
    spec = DenseSpec(_codes(rng, fw, (7, 23)), _codes(rng, fb, (7,)), fin, fw, out, fb)
    x = _codes(rng, fin, (30, 23))
    x[1] = fin.min_code
    x[2] = fin.max_code
    assert dense(x, spec).tolist() == [ref_dense(row, spec) for row in x.tolist()]


@pytest.mark.parametrize("explicit_accumulator", [False, True])
def test_empty_batch(explicit_accumulator):
    rng = random.Random(3)
    spec = _spec(rng, explicit_accumulator=explicit_accumulator,
                 accumulator_overflow=Overflow.WRAP)
    x = np.zeros((0, spec.n_in), dtype=np.int64)
    assert dense(x, spec).shape == (0, spec.n_out)
    assert dense_accumulate(x, spec).shape == (0, spec.n_out)


@pytest.mark.parametrize("seed", range(24))
def test_dense_relu_fold_equals_dense_then_relu(seed):
    """The ReLU folded into the dense layer's planned cast (:func:`dense_relu`) gives the codes
    of the dense golden model followed by the ReLU's, code for code, on extreme and random
    inputs; ReLU formats with 0, 1 and 3 more fraction bits, narrower than the dense output
    (so the saturation bound binds), SAT and SAT_SYM, signed and unsigned; and None where
    the fold is not proven (fewer fraction bits, a wrapping ReLU, a WRAP dense output)."""
    rng = random.Random(500 + seed)
    fin, fw, fb = FixedFormat(12, 4), FixedFormat(10, 1), FixedFormat(14, 6)
    fd = FixedFormat(rng.choice([8, 12, 16]), rng.randint(2, 8),
                     rounding=rng.choice(["TRN", "RND", "RND_CONV"]),
                     overflow=rng.choice(["SAT", "SAT_SYM"]))
    shift = rng.choice([0, 0, 1, 3, -1])
    width = rng.choice([fd.width - 3, fd.width, fd.width + 2])
    fr = FixedFormat(width, width - fd.fraction_width - shift, signed=rng.random() < 0.3,
                     rounding=rng.choice(["TRN", "RND_CONV"]),
                     overflow=rng.choice(["SAT", "SAT_SYM", "WRAP"]))
    spec = DenseSpec(_codes(rng, fw, (9, 17)), _codes(rng, fb, (9,)), fin, fw, fd, fb)
    x = _codes(rng, fin, (64, 17))
    x[1], x[2] = fin.min_code, fin.max_code
    folded = golden_dense.dense_relu(x, spec, fr)
    if shift < 0 or fr.overflow is Overflow.WRAP:
        assert folded is None
        return
    expected = activation("relu", dense(x, spec), fin=fd, fout=fr)
    assert folded is not None and folded.dtype == np.int64
    assert folded.tolist() == expected.tolist(), f"seed {seed}: {fd} -> {fr}"
