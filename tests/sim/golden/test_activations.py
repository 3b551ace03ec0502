"""Golden activations against a scalar reference written from the definitions with Fractions."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from nnfab.activation_params import ELU_SCALE, HARD_SIGMOID_OFFSET, HARD_SIGMOID_SLOPE
from nnfab.casts import quantize
from nnfab.fixed import FixedFormat, Overflow, Rounding
from nnfab.sim.golden import activations as golden
from nnfab.tables import (SELU_ALPHA, SELU_SCALE, elu_table, exp_table, quantize_exact,
                          reciprocal_table, sigmoid_table, tanh_table)


# -- scalar reference ------------------------------------------------------------------------------

def ref_cast(value, fmt):
    """Round the exact Fraction ``value`` to ``fmt`` by the definition of each mode."""
    scaled = value / fmt.lsb
    low = math.floor(scaled)
    high = low + 1
    if scaled == low:
        code = low
    elif fmt.rounding is Rounding.TRN:
        code = low
    elif fmt.rounding is Rounding.TRN_ZERO:
        code = low if scaled > 0 else high
    else:
        d_low, d_high = scaled - low, high - scaled
        if d_low != d_high:
            code = low if d_low < d_high else high
        else:
            code = {Rounding.RND: high,
                    Rounding.RND_ZERO: low if scaled > 0 else high,
                    Rounding.RND_MIN_INF: low,
                    Rounding.RND_INF: high if scaled > 0 else low,
                    Rounding.RND_CONV: low if low % 2 == 0 else high}[fmt.rounding]
    if fmt.min_code <= code <= fmt.max_code and not (
            fmt.overflow is Overflow.SAT_SYM and fmt.signed and code == fmt.min_code):
        return code
    if fmt.overflow is Overflow.WRAP:
        return fmt.bits_to_code(code % (1 << fmt.width))
    if fmt.overflow is Overflow.SAT_ZERO:
        return 0
    if fmt.overflow is Overflow.SAT_SYM and fmt.signed:
        return fmt.max_code if code > 0 else -fmt.max_code
    return fmt.max_code if code > fmt.max_code else fmt.min_code


def ref_table_entry(table, x):
    """The entry of ``table`` for input value ``x``, indexed by value (not by shifts)."""
    n, r = table.table_size, table.input_range
    if table.kind in ("sigmoid", "tanh"):
        j = math.floor((x + r) * n / (2 * r))
        j = min(max(j, 0), n - 1)
    elif table.kind == "elu":  # x < 0
        j = max(math.floor((x + r) * n / r), 0)
    else:
        j = min(math.floor(x * n / r), n - 1)
    return table.codes[j]


def ref_activation(kind, code, fin, fout, **params):
    x = fin.value(code)
    if kind == "linear":
        y = x
    elif kind == "relu":
        y = max(x, 0)
    elif kind == "bounded_relu":
        y = min(max(x, 0), Fraction(params["relu_max"]))
    elif kind == "leaky_relu":
        y = x if x >= 0 else x * params["alpha_format"].value(params["alpha_code"])
    elif kind == "hard_sigmoid":
        slope = params.get("slope", HARD_SIGMOID_SLOPE)
        offset = params.get("offset", HARD_SIGMOID_OFFSET)
        y = min(max(slope[0].value(slope[1]) * x + offset[0].value(offset[1]), 0), 1)
    elif kind == "hard_tanh":
        y = min(max(x, -1), 1)
    elif kind == "elu" and x >= 0:
        scale = params.get("scale", ELU_SCALE)
        y = x * scale[0].value(scale[1])
    else:
        table = params["table"]
        y = table.table_format.value(ref_table_entry(table, x))
    return ref_cast(y, fout)


def ref_softmax(codes, fin, fout, exp_t, inv_t):
    xs = [fin.value(c) for c in codes]
    peak = max(xs)
    exps = [ref_table_entry(exp_t, peak - x) for x in xs]
    total = sum(exps) * exp_t.table_format.lsb
    inv = ref_table_entry(inv_t, total)
    return [ref_cast(e * exp_t.table_format.lsb * inv_t.table_format.value(inv), fout)
            for e in exps]


# -- random cases ----------------------------------------------------------------------------------

def random_format(rng, max_width=20, **fixed):
    width = fixed.pop("width", rng.randint(1, max_width))
    params = dict(integer_width=rng.randint(-3, width + 3), signed=rng.random() < 0.7,
                  rounding=rng.choice(list(Rounding)), overflow=rng.choice(list(Overflow)))
    params.update(fixed)
    return FixedFormat(width, params.pop("integer_width"), **params)


def edge_codes(fmt, rng, n_random=40):
    codes = {fmt.min_code, fmt.max_code, 0, fmt.min_code + 1 if fmt.max_code > fmt.min_code
             else fmt.min_code, max(fmt.max_code - 1, fmt.min_code)}
    codes |= {c for c in (-1, 1, 2, -2) if fmt.min_code <= c <= fmt.max_code}
    return sorted(codes) + [rng.randint(fmt.min_code, fmt.max_code) for _ in range(n_random)]


def random_params(kind, rng, fin):
    if kind == "bounded_relu":
        return dict(relu_max=Fraction(rng.randint(0, 64), 2 ** rng.randint(0, 6)))
    if kind == "leaky_relu":
        alpha_format = random_format(rng, 10)
        return dict(alpha_format=alpha_format,
                    alpha_code=rng.randint(alpha_format.min_code, alpha_format.max_code))
    if kind == "hard_sigmoid":
        if rng.random() < 0.5:
            return {}
        sf, of = random_format(rng, 12), random_format(rng, 12)
        return dict(slope=(sf, rng.randint(sf.min_code, sf.max_code)),
                    offset=(of, rng.randint(of.min_code, of.max_code)))
    if kind == "elu":
        sf = random_format(rng, 10)
        return dict(table=elu_table(alpha=rng.choice([1.0, SELU_ALPHA, 0.5]),
                                    scale=rng.choice([1.0, SELU_SCALE]),
                                    table_size=2 ** rng.randint(1, 8),
                                    table_format=random_format(rng, 18),
                                    input_range=Fraction(2) ** rng.randint(-2, 4)),
                    scale=(sf, rng.randint(sf.min_code, sf.max_code)))
    if kind in ("sigmoid", "tanh"):
        make = sigmoid_table if kind == "sigmoid" else tanh_table
        return dict(table=make(table_size=2 ** rng.randint(1, 8),
                               table_format=random_format(rng, 18),
                               input_range=Fraction(2) ** rng.randint(-2, 4)))
    return {}


KINDS = ["linear", "relu", "bounded_relu", "leaky_relu", "hard_sigmoid", "hard_tanh",
         "sigmoid", "tanh", "elu"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(12))
def test_elementwise_matches_reference(kind, seed):
    rng = random.Random(seed * 101 + KINDS.index(kind))
    fin = random_format(rng, 24)
    fout = random_format(rng, 24)
    params = random_params(kind, rng, fin)
    codes = edge_codes(fin, rng)
    got = golden.activation(kind, np.array(codes).reshape(1, -1), fin=fin, fout=fout, **params)
    expected = [ref_activation(kind, c, fin, fout, **params) for c in codes]
    assert got.shape == (1, len(codes))
    assert [int(v) for v in got[0]] == expected, \
        f"seed {seed}: {kind} {fin} -> {fout} {params}, codes {codes}"


def test_wide_formats_use_python_integers():
    fin = FixedFormat(70, 30)
    fout = FixedFormat(66, 20, rounding="RND_CONV", overflow="SAT_SYM")
    codes = [fin.min_code, fin.max_code, 0, -(1 << 45) - (1 << 39), (1 << 60) + 12345]
    alpha = dict(alpha_format=FixedFormat(8, 0), alpha_code=-77)
    for kind, params in [("linear", {}), ("relu", {}), ("hard_tanh", {}), ("leaky_relu", alpha),
                         ("hard_sigmoid", {}), ("bounded_relu", dict(relu_max=3.75))]:
        got = golden.activation(kind, np.array(codes, dtype=object), fin=fin, fout=fout, **params)
        assert [int(v) for v in got] == [ref_activation(kind, c, fin, fout, **params)
                                         for c in codes], kind


@pytest.mark.parametrize("seed", range(10))
def test_softmax_matches_reference(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    fin = random_format(rng, 16)
    fout = random_format(rng, 16)
    exp_t = exp_table(table_size=2 ** rng.randint(1, 10),
                      table_format=random_format(rng, 18, signed=False),
                      input_range=2 ** rng.randint(0, 4))
    inv_t = reciprocal_table(table_size=2 ** rng.randint(1, 10),
                             table_format=random_format(rng, 18, signed=False),
                             input_range=2 ** rng.randint(0, 5))
    batch = [[rng.randint(fin.min_code, fin.max_code) for _ in range(n)] for _ in range(20)]
    batch += [[fin.max_code] * n, [fin.min_code] * n,
              [fin.min_code] * (n - 1) + [fin.max_code]]
    got = golden.softmax(np.array(batch), fin=fin, fout=fout, exp_table=exp_t,
                         inv_table=inv_t)
    expected = [ref_softmax(row, fin, fout, exp_t, inv_t) for row in batch]
    assert got.tolist() == expected, f"seed {seed}: {fin} -> {fout}"


def test_softmax_defaults():
    fin = FixedFormat(8, 3)
    fout = FixedFormat(10, 0, signed=False, rounding="RND", overflow="SAT")
    rng = random.Random(7)
    batch = [[rng.randint(-128, 127) for _ in range(5)] for _ in range(50)] + [[5] * 5]
    got = golden.softmax(np.array(batch), fin=fin, fout=fout)
    inv_t = reciprocal_table(input_range=8)
    assert got.tolist() == [ref_softmax(row, fin, fout, exp_table(), inv_t) for row in batch]
    # Five equal inputs: exp 1 each, sum 5, 1/5.00390625 (bin centre) in fixed<18,8,RND>.
    assert got[-1].tolist() == [ref_cast(Fraction(1) * Fraction(205, 1024), fout)] * 5
    # One vector without a batch axis.
    assert golden.softmax(np.array(batch[0]), fin=fin, fout=fout).tolist() == got[0].tolist()


@pytest.mark.parametrize("seed", range(5))
def test_argmax_first_index_on_ties(seed):
    rng = random.Random(seed)
    fin = random_format(rng, 12)
    n = rng.randint(1, 12)
    batch = [[rng.choice([fin.min_code, fin.max_code, 0, rng.randint(fin.min_code, fin.max_code)])
              for _ in range(n)] for _ in range(30)]
    got = golden.argmax(np.array(batch), fin=fin)
    assert got.tolist() == [row.index(max(row)) for row in batch], f"seed {seed}"


# -- tables ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,function,signed_range", [
    (sigmoid_table, lambda x: 1 / (1 + math.exp(-x)), True),
    (tanh_table, math.tanh, True),
    (exp_table, lambda t: math.exp(-t), False),
    (elu_table, math.expm1, "negative"),
])
@pytest.mark.parametrize("seed", range(4))
def test_table_entries(make, function, signed_range, seed):
    rng = random.Random(seed)
    fmt = random_format(rng, 20)
    size, r = 2 ** rng.randint(1, 10), 2 ** rng.randint(0, 4)
    table = make(table_size=size, table_format=fmt, input_range=r)
    if signed_range == "negative":
        points = [-r + j * r / size for j in range(size)]
    elif signed_range:
        points = [-r + j * 2 * r / size for j in range(size)]
    else:
        points = [j * r / size for j in range(size)]
    expected = quantize(np.array([function(x) for x in points]), fmt)
    assert list(table.codes) == expected.tolist(), f"seed {seed}"
    assert table.table_size == size and table.table_format == fmt


def test_reciprocal_entries_are_exact():
    fmt = FixedFormat(18, 8, rounding="RND_CONV", overflow="SAT")
    table = reciprocal_table(table_size=64, table_format=fmt, input_range=4)
    expected = [ref_cast(1 / ((j + Fraction(1, 2)) * Fraction(4, 64)), fmt) for j in range(64)]
    assert list(table.codes) == expected


def test_default_tables_match_hls4ml():
    table = sigmoid_table()
    assert (table.table_size, str(table.table_format), table.input_range) == \
        (1024, "fixed<18,8>", 8)
    # hls4ml: in_val = 2*8.0*(ii - 512)/1024; real_val = 1/(1+exp(-in_val)); table = real_val.
    assert table.codes[512] == 512 and table.codes[0] == 0 and table.codes[1023] == 1023
    assert tanh_table().input_range == 4


def test_quantize_exact_matches_golden_quantize():
    rng = random.Random(11)
    for _ in range(300):
        fmt = random_format(rng, 30)
        value = rng.uniform(-3, 3) * 2.0 ** rng.randint(-8, 8)
        assert quantize_exact(Fraction(value), fmt) == int(quantize(np.array([value]), fmt)[0]), \
            (fmt, value)


# -- errors ----------------------------------------------------------------------------------------

F8 = FixedFormat(8, 3)


@pytest.mark.parametrize("call,error,message", [
    (lambda: golden.activation("gelu", [0], fin=F8, fout=F8), ValueError,
     "Activation kind must be one of 'linear', 'relu', 'bounded_relu', 'leaky_relu', "
     "'hard_sigmoid', 'hard_tanh', 'sigmoid', 'tanh', 'elu', not 'gelu'"),
    (lambda: golden.activation(3, [0], fin=F8, fout=F8), TypeError,
     "Activation kind must be a string, not 3"),
    (lambda: golden.relu([0], fin="fixed<8,3>", fout=F8), TypeError,
     "Input format must be a FixedFormat, not 'fixed<8,3>'"),
    (lambda: golden.relu([0], fin=F8, fout=None), TypeError,
     "Output format must be a FixedFormat, not None"),
    (lambda: golden.activation("relu", [0], fin=F8, fout=F8, alpha_code=1), TypeError,
     "Activation 'relu' does not take parameter 'alpha_code'"),
    (lambda: golden.activation("bounded_relu", [0], fin=F8, fout=F8), TypeError,
     "Activation 'bounded_relu' needs parameter 'relu_max'"),
    (lambda: golden.bounded_relu([0], fin=F8, fout=F8, relu_max=-0.5), ValueError,
     "ReLU maximum must be non-negative, not -0.5"),
    (lambda: golden.bounded_relu([0], fin=F8, fout=F8, relu_max="6"), TypeError,
     "ReLU maximum must be an int, float or Fraction, not '6'"),
    (lambda: golden.bounded_relu([0], fin=F8, fout=F8, relu_max=float("inf")), ValueError,
     "ReLU maximum must be finite, not inf"),
    (lambda: golden.activation("leaky_relu", [0], fin=F8, fout=F8, alpha_code=3), TypeError,
     "Activation 'leaky_relu' needs parameter 'alpha_format'"),
    (lambda: golden.leaky_relu([0], fin=F8, fout=F8, alpha_format=F8, alpha_code=0.3),
     TypeError, "Alpha code must be an integer, not 0.3"),
    (lambda: golden.leaky_relu([0], fin=F8, fout=F8, alpha_format=F8, alpha_code=300),
     ValueError, "Code 300 does not fit fixed<8,3> (codes -128 to 127)"),
    (lambda: golden.hard_sigmoid([0], fin=F8, fout=F8, slope=0.2), TypeError,
     "Slope must be a (FixedFormat, code) pair, not 0.2"),
    (lambda: golden.hard_sigmoid([0], fin=F8, fout=F8, offset=(F8, 1000)), ValueError,
     "Code 1000 does not fit fixed<8,3> (codes -128 to 127)"),
    (lambda: golden.sigmoid([0], fin=F8, fout=F8, table=[1, 2]), TypeError,
     "Table must be a LookupTable, not [1, 2]"),
    (lambda: golden.sigmoid([0], fin=F8, fout=F8, table=tanh_table()), ValueError,
     "Table kind must be 'sigmoid', not 'tanh'"),
    (lambda: sigmoid_table(table_size=12), ValueError,
     "Table size must be a power of two, not 12"),
    (lambda: sigmoid_table(table_size=1), ValueError,
     "Table size must be a power of two, not 1"),
    (lambda: tanh_table(table_size=16.0), TypeError,
     "Table size must be an integer, not 16.0"),
    (lambda: exp_table(input_range=3), ValueError,
     "Input range must be a power of two, not 3"),
    (lambda: exp_table(table_format="fixed<8,3>"), TypeError,
     "Table format must be a FixedFormat, not 'fixed<8,3>'"),
    (lambda: golden.softmax([[0, 1]], fin=F8, fout=F8, exp_table=sigmoid_table()), ValueError,
     "Table kind must be 'exp', not 'sigmoid'"),
    (lambda: golden.softmax([[0, 1]], fin=F8, fout=F8,
                            exp_table=exp_table(table_format=FixedFormat(8, 1))), ValueError,
     "Exp table entries must be non-negative, not -128 (format fixed<8,1>)"),
    (lambda: golden.softmax([[[0, 1]]], fin=F8, fout=F8), ValueError,
     "Codes must have shape (batch, n) or (n,), not (1, 1, 2)"),
    (lambda: golden.argmax([[0, 1]], fin=3), TypeError,
     "Input format must be a FixedFormat, not 3"),
    (lambda: golden.relu([200], fin=F8, fout=F8), ValueError,
     "Code 200 does not fit fixed<8,3> (codes -128 to 127)"),
])
def test_error_messages(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", ["SAT", "SAT_SYM"])
@pytest.mark.parametrize("shift", [-20, -3, -1, 0, 1, 4, 17, 30])
def test_relu_into_saturating_formats(rounding, overflow, shift):
    """relu into a saturating format takes the cast's rounding clipped to [0, max]; every
    rounding, both saturations, left and right shifts, signed and unsigned outputs."""
    rng = random.Random(f"{rounding.name} {overflow} {shift}")
    fin = FixedFormat(16, 6)
    for signed in (True, False):
        fout = FixedFormat(12, 12 - (10 - shift), signed=signed, rounding=rounding,
                           overflow=overflow)
        codes = edge_codes(fin, rng)
        got = golden.relu(np.array(codes)[None, :], fin=fin, fout=fout)
        assert got.dtype == np.int64
        assert [int(v) for v in got.ravel()] == [ref_activation("relu", c, fin, fout)
                                                 for c in codes], fout
