"""Golden hls4ml softmax against a literal scalar transcription of hls4ml 1.3's C++.

The reference below follows ``nnet::softmax_stable``, ``init_exp_table``,
``init_invert_table``, ``softmax_real_val_from_idx``/``softmax_idx_from_real_val``
(``templates/vivado/nnet_utils/nnet_activation.h``) and ``nnet::reduce`` (``nnet_common.h``) line
by line, with exact Fractions for ``ap_fixed`` values, :func:`ref_cast` for every ``ap_fixed``
assignment and float32 rounding through ``struct``. It shares no code with the golden model.
"""

import functools
import math
import random
import struct
from fractions import Fraction

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.sim.golden.softmax_hls4ml import softmax_hls4ml
from nnfab.softmax_hls4ml import Hls4mlSoftmaxSpec, hls4ml_table_sizes, reduce_order

from .test_activations import ref_cast

P = FixedFormat.parse


# -- scalar reference ------------------------------------------------------------------------------

def f32(value):
    """Round an exact value to float32 (via double: innocuous for one +, *, / of float32s)."""
    try:
        return struct.unpack("f", struct.pack("f", float(value)))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def ap_from_float(value, fmt):
    """``fmt(value)``: ``ap_fixed_base(double)`` reads inf's bit pattern as 2**1024."""
    if math.isinf(value):
        return ref_cast(Fraction(2) ** 1024 * (1 if value > 0 else -1), fmt)
    return ref_cast(Fraction(value), fmt)


def ceillog2(x):
    return 1 if x <= 2 else 1 + ceillog2((x + 1) // 2)


def real_val_from_idx(fmt, table_size, i):
    """``data_T x(0); x(x.width - 1, x.width - N) = i; return (float)x;``"""
    n = ceillog2(table_size)
    bits = (i % 2**n) << (fmt.width - n)
    return f32(fmt.value(fmt.bits_to_code(bits)))


def idx_from_real_val(fmt, table_size, code):
    """``ap_uint<N> y = x(x.width - 1, x.width - N); return y(N - 1, 0);``"""
    n = ceillog2(table_size)
    return (fmt.code_to_bits(code) >> (fmt.width - n)) % 2**n


def reduce(x, op):
    """``nnet::reduce``: N == 1, N == 2, else split at pow2(floorlog2(N - 1))."""
    if len(x) == 1:
        return x[0]
    if len(x) == 2:
        return op(x[0], x[1])
    left = 2 ** math.floor(math.log2(len(x) - 1))
    return op(reduce(x[:left], op), reduce(x[left:], op))


@functools.lru_cache(maxsize=None)
def ref_tables(spec):
    s = spec.input_format.signed
    norm = FixedFormat(spec.input_format.width - s, spec.input_format.integer_width - s,
                       signed=False)
    exp_table = []
    for i in range(spec.exp_table_size):
        x = f32(Fraction(real_val_from_idx(norm, spec.exp_table_size, i))
                * Fraction(f32(spec.exp_scale)))
        x = -x
        exp_table.append(ap_from_float(f32(math.exp(x) if x < 700 else math.inf),
                                       spec.exp_table_format))
    inv_table = []
    for i in range(spec.inv_table_size):
        x = real_val_from_idx(spec.inv_input_format, spec.inv_table_size, i)
        inv_table.append(ap_from_float(f32(1 / Fraction(x)) if x != 0 else math.inf,
                                       spec.inv_table_format))
    return norm, exp_table, inv_table


def ref_exp_res(codes, spec):
    """``exp_res`` of one vector (values), and whether a difference wrapped in inp_norm_t."""
    norm, exp_table, _ = ref_tables(spec)
    data = [spec.input_format.value(c) for c in codes]
    x_max = reduce(data, lambda a, b: a if a >= b else b)
    d_xi_xmax = [ref_cast(x_max - x, norm) for x in data]
    exp_res = [spec.accum_format.value(ref_cast(spec.exp_table_format.value(
        exp_table[idx_from_real_val(norm, spec.exp_table_size, d)]), spec.accum_format))
        for d in d_xi_xmax]
    return exp_res, any(x_max - x > norm.max_value for x in data)


def ref_softmax(codes, spec):
    """One vector; returns the output codes and which overflow paths it took."""
    _, _, inv_table = ref_tables(spec)
    accum = spec.accum_format
    exp_res, wrapped = ref_exp_res(codes, spec)
    overflowed = []

    def op_add(a, b):
        overflowed.append(not accum.min_value <= a + b <= accum.max_value)
        return accum.value(ref_cast(a + b, accum))

    exp_sum = ref_cast(reduce(exp_res, op_add), spec.inv_input_format)
    inv_exp_sum = inv_table[idx_from_real_val(spec.inv_input_format, spec.inv_table_size,
                                              exp_sum)]
    res = [ref_cast(e * spec.inv_table_format.value(inv_exp_sum), spec.output_format)
           for e in exp_res]
    return res, {"wrapped": wrapped, "sum_overflowed": any(overflowed)}


# -- cases -----------------------------------------------------------------------------------------

T18 = P("fixed<18,8,RND,SAT>")


def spec_of(n, fin, fout, accum, exp_t, inv_t, inv_inp, table_size, exp_scale=1.0):
    return Hls4mlSoftmaxSpec.from_hls4ml(
        n=n, input_format=P(fin), output_format=P(fout), accum_format=P(accum),
        exp_table_format=P(exp_t), inv_table_format=P(inv_t), inv_input_format=P(inv_inp),
        table_size=table_size, exp_scale=exp_scale)


#: name -> (spec, overflow paths that the stimulus must reach)
CASES = {
    # hls4ml's defaults for a fixed<16,6> model (the KERAS_3layer example's softmax).
    "default": (spec_of(5, "fixed<16,6>", "fixed<16,6>", "fixed<16,6>", str(T18), str(T18),
                        str(T18), 1024), {"wrapped"}),
    "n1": (spec_of(1, "fixed<8,3>", "ufixed<8,0,RND,SAT>", "fixed<10,3>",
                   "fixed<10,3,RND,SAT>", "fixed<10,4,RND,SAT>", "fixed<10,4,RND,SAT>", 64),
           set()),
    # 1.0 does not fit exp_table_t and wraps to -1: negative terms, a narrow wrapping sum.
    "n2_wrap": (spec_of(2, "fixed<6,2>", "fixed<8,2,RND_CONV,SAT_SYM>", "fixed<6,1>",
                        "fixed<8,1,RND,WRAP>", "fixed<12,5,RND,SAT>", "fixed<8,3,TRN,WRAP>", 32,
                        exp_scale=0.75), {"wrapped", "sum_overflowed"}),
    "n3_unsigned": (spec_of(3, "ufixed<8,4>", "ufixed<10,1,RND,SAT>", "ufixed<12,4,TRN,SAT>",
                            "ufixed<10,1,RND,SAT>", "ufixed<12,6,RND,SAT>",
                            "ufixed<9,4,RND,SAT>", 1024), set()),
    # A saturating accumulator over negative and positive terms: the tree order matters.
    "n5_sat": (spec_of(5, "fixed<10,4>", "fixed<10,3,RND_INF,SAT>", "fixed<7,2,TRN,SAT>",
                       "fixed<8,1,RND,WRAP>", "fixed<12,5,RND,SAT>", "fixed<9,3,RND,SAT>", 128,
                       exp_scale=-0.5), {"wrapped", "sum_overflowed"}),
    "n10_wrap": (spec_of(10, "fixed<12,5>", "fixed<12,1,RND,SAT>", "fixed<8,3>",
                         "fixed<10,2,RND,SAT>", "fixed<12,4,RND,SAT>", "fixed<12,4,RND,SAT>",
                         512), {"wrapped", "sum_overflowed"}),
    "n10_sat_zero": (spec_of(10, "fixed<9,4>", "fixed<9,0,RND_ZERO,SAT_ZERO>",
                             "fixed<6,3,TRN,SAT_ZERO>", "fixed<7,1,RND_MIN_INF,WRAP>",
                             "fixed<9,2,RND,SAT_ZERO>", "fixed<6,3,RND,SAT_SYM>", 64, 1.5),
                     {"wrapped", "sum_overflowed"}),
    # Beyond 62 bits: object arrays.
    "wide": (spec_of(3, "fixed<40,10>", "fixed<64,4,RND_CONV,SAT>", "fixed<50,20>",
                     "fixed<30,2,RND,SAT>", "fixed<36,10,RND,SAT>", "fixed<34,12,RND,SAT>",
                     256), {"wrapped"}),
}


def stimulus(spec, rng, count):
    """Edge vectors (all min, all max, min and max together, ties, differences around the
    2**I' at which inp_norm_t wraps), then random ones of small and full spread."""
    fin, n = spec.input_format, spec.n
    lo, hi = fin.min_code, fin.max_code
    span = 1 << spec.norm_format.width

    def clip(c):
        return min(max(c, lo), hi)

    rows = [[lo] * n, [hi] * n, [lo, hi] * n, [hi, lo] * n, [0] * n, [hi - 1] * n]
    for delta in (span - 2, span - 1, span, span + 1, span + 2):
        rows.append([clip(hi - delta * (k % 2)) for k in range(n)])
        rows.append([clip(lo + delta * ((k + 1) % 2)) for k in range(n)])
    for _ in range(count):
        if rng.random() < 0.5:
            centre, spread = rng.randint(lo, hi), rng.randint(1, span)
            row = [clip(centre + rng.randint(-spread, spread)) for _ in range(n)]
        else:
            row = [rng.randint(lo, hi) for _ in range(n)]
        if rng.random() < 0.2:
            row[rng.randrange(n)] = max(row)  # a tie for the maximum
        rows.append(row)
    return [row[:n] for row in rows]


# -- tests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CASES)
def test_tables_match_reference(name):
    spec, _ = CASES[name]
    _, exp_table, inv_table = ref_tables(spec)
    assert list(spec.exp_table_codes) == exp_table
    assert list(spec.inv_table_codes) == inv_table


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", CASES)
def test_golden_matches_reference(name, seed):
    spec, paths = CASES[name]
    rng = random.Random(seed * 1009 + list(CASES).index(name))
    rows = stimulus(spec, rng, 150)
    got = softmax_hls4ml(np.array(rows, dtype=object), spec)
    seen = set()
    for row, out in zip(rows, got):
        want, taken = ref_softmax(row, spec)
        assert [int(v) for v in out] == want, f"seed {seed}, input {row}"
        seen |= {path for path, hit in taken.items() if hit}
    assert paths <= seen, f"seed {seed}: stimulus never reached {paths - seen}"
    assert got.dtype == (object if spec.output_format.width > 62 else np.int64)


def test_sat_tree_order_matters():
    """The saturating case is sensitive to hls4ml's tree order: a left-to-right sum differs."""
    spec, _ = CASES["n5_sat"]
    accum = spec.accum_format

    def add(a, b):
        return accum.value(ref_cast(a + b, accum))

    differ = 0
    for row in stimulus(spec, random.Random(5), 200):
        terms, _ = ref_exp_res(row, spec)
        differ += functools.reduce(add, terms) != reduce(terms, add)
    assert differ > 0


# Rows of the hls4ml 1.3 C simulation of the KERAS_3layer example (g++, ap_fixed headers):
# softmax input and output codes, fixed<16,6>. The first six have differences that wrap in
# inp_norm_t (ufixed<15,5>), visibly: -19773 gets 61 (0.06) in the fourth row.
CSIM_ROWS = [
    ([-19321, 11095, 3643, -21865, 23768], [0, 0, 0, 0, 1024]),
    ([-17858, 4785, 13972, 31297, 18581], [0, 0, 0, 1024, 0]),
    ([-19645, 11142, -285, -21797, 27739], [0, 0, 0, 0, 1024]),
    ([9881, 15653, 14247, 1696, -19773], [3, 819, 213, 0, 61]),
    ([-9900, 6339, 4412, -18715, 18028], [0, 0, 0, 21, 1024]),
    ([9912, 13455, -2815, 10258, -24123], [33, 1024, 0, 46, 9]),
    ([-7187, 3877, -1972, -9378, 12753], [0, 0, 0, 0, 1024]),
    ([-1514, 3575, -305, 2399, -4057], [5, 819, 18, 265, 0]),
    ([-231, 6555, -313, 631, -4502], [1, 1024, 1, 3, 0]),
    ([-4650, 4709, 1601, -5146, 4066], [0, 683, 32, 0, 365]),
]


def test_matches_hls4ml_csim_rows():
    spec, _ = CASES["default"]
    rows = np.array([x for x, _ in CSIM_ROWS])
    assert softmax_hls4ml(rows, spec).tolist() == [y for _, y in CSIM_ROWS]


def test_one_dimensional_input():
    spec, _ = CASES["n3_unsigned"]
    rows = np.array([[1, 200, 17], [255, 0, 255]])
    batch = softmax_hls4ml(rows, spec)
    assert batch.shape == (2, 3)
    assert [softmax_hls4ml(row, spec).tolist() for row in rows] == batch.tolist()


@pytest.mark.parametrize("table_size,fin,inv_t,sizes", [
    (1024, "fixed<16,6>", "fixed<18,8>", (1024, 1024)),
    (1024, "fixed<8,3>", "fixed<18,8>", (128, 256)),
    (1024, "ufixed<8,3>", "fixed<18,8>", (256, 256)),
    (1024, "fixed<16,6>", "ufixed<9,3>", (512, 512)),
    (4096, "fixed<16,6>", "fixed<18,8>", (4096, 4096)),
    (48, "fixed<16,6>", "fixed<18,8>", (48, 48)),
])
def test_hls4ml_table_sizes(table_size, fin, inv_t, sizes):
    assert hls4ml_table_sizes(table_size, P(fin), P(inv_t)) == sizes


def test_reduce_order():
    assert reduce_order(1) == 0
    assert reduce_order(2) == (0, 1)
    assert reduce_order(3) == ((0, 1), 2)
    assert reduce_order(5) == (((0, 1), (2, 3)), 4)
    assert reduce_order(6) == (((0, 1), (2, 3)), (4, 5))


def test_spec_properties():
    spec, _ = CASES["default"]
    assert spec.norm_format == P("ufixed<15,5>")
    assert (spec.exp_index_width, spec.exp_index_shift) == (10, 5)
    assert (spec.inv_index_width, spec.inv_index_shift) == (10, 8)
    assert spec.exp_index(0b101010101010101) == 0b1010101010
    assert spec.inv_index(-1) == 1023 and spec.inv_index(256) == 1
    assert spec.exp_table_codes is spec.exp_table_codes  # cached
    assert spec.exp_table_codes[:3] == (1024, 992, 962)
    assert spec.inv_table_codes[:2] == (131071, 4096)  # 1/0 saturates
    assert CASES["n3_unsigned"][0].norm_format == P("ufixed<8,4>")
    assert Hls4mlSoftmaxSpec(**{**vars(spec), "exp_scale": 2}).exp_scale == 2.0


F8 = P("fixed<8,3>")
GOOD = dict(n=3, input_format=F8, output_format=F8, accum_format=F8, exp_table_format=F8,
            inv_table_format=F8, inv_input_format=F8, exp_table_size=64, inv_table_size=64)


@pytest.mark.parametrize("changes,error,message", [
    (dict(n=0), ValueError, "Softmax n must be a positive integer, not 0"),
    (dict(n=2.0), TypeError, "Softmax n must be an integer, not 2.0"),
    (dict(accum_format="fixed<8,3>"), TypeError,
     "Softmax accum_format must be a FixedFormat, not 'fixed<8,3>'"),
    (dict(input_format=P("fixed<1,1>")), ValueError,
     "Softmax input_format must have at least 2 bits when signed (inp_norm_t has one bit "
     "less), not fixed<1,1>"),
    (dict(exp_scale="1"), TypeError, "Softmax exp_scale must be a float, not '1'"),
    (dict(exp_scale=math.inf), ValueError, "Softmax exp_scale must be finite, not inf"),
    (dict(exp_table_size=48), ValueError,
     "Softmax exp_table_size must be a power of two from 2 to 128 (2**W of inp_norm_t "
     "ufixed<7,2>, at most 2**24), not 48"),
    (dict(inv_table_size=1), ValueError,
     "Softmax inv_table_size must be a power of two from 2 to 256 (2**W of inv_inp_t "
     "fixed<8,3>, at most 2**24), not 1"),
    (dict(exp_table_size=256), ValueError,
     "Softmax exp_table_size must be a power of two from 2 to 128 (2**W of inp_norm_t "
     "ufixed<7,2>, at most 2**24), not 256"),
    (dict(inv_table_size=True), TypeError, "Softmax inv_table_size must be an integer, not True"),
    (dict(inv_input_format=P("fixed<8,-125>")), ValueError,
     "Softmax inv_table_size 64 samples inv_inp_t fixed<8,-125> outside float32's normal "
     "range: its integer width must be from -120 to 128"),
])
def test_spec_errors(changes, error, message):
    with pytest.raises(error) as info:
        Hls4mlSoftmaxSpec(**{**GOOD, **changes})
    assert str(info.value) == message


@pytest.mark.parametrize("call,error,message", [
    (lambda: softmax_hls4ml([1, 2, 3], "spec"), TypeError,
     "Softmax spec must be an Hls4mlSoftmaxSpec, not 'spec'"),
    (lambda: softmax_hls4ml([[1, 2]], Hls4mlSoftmaxSpec(**GOOD)), ValueError,
     "Codes must have shape (batch, 3) or (3,), not (1, 2)"),
    (lambda: softmax_hls4ml([1, 2, 128], Hls4mlSoftmaxSpec(**GOOD)), ValueError,
     "Code 128 does not fit fixed<8,3> (codes -128 to 127)"),
    (lambda: hls4ml_table_sizes(0, F8, F8), ValueError,
     "Softmax table_size must be a positive integer, not 0"),
    (lambda: hls4ml_table_sizes(1024, F8, None), TypeError,
     "Softmax inv_table_format must be a FixedFormat, not None"),
])
def test_call_errors(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
