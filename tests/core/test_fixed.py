import itertools
from fractions import Fraction

import pytest

from nnfab.fixed import FixedFormat, Overflow, Rounding, common_format


class TestConstruction:
    def test_defaults(self):
        fmt = FixedFormat(16, 6)
        assert (fmt.width, fmt.integer_width, fmt.signed) == (16, 6, True)
        assert fmt.rounding is Rounding.TRN
        assert fmt.overflow is Overflow.WRAP

    def test_mode_strings(self):
        fmt = FixedFormat(8, 3, rounding="AP_RND_CONV", overflow="sat_sym")
        assert fmt.rounding is Rounding.RND_CONV
        assert fmt.overflow is Overflow.SAT_SYM

    def test_frozen_and_hashable(self):
        fmt = FixedFormat(8, 3)
        with pytest.raises(AttributeError):
            fmt.width = 4
        assert {fmt, FixedFormat(8, 3)} == {fmt}

    @pytest.mark.parametrize("args,kwargs,error,message", [
        ((0, 0), {}, ValueError, "Width must be a positive integer, not 0"),
        ((-3, 0), {}, ValueError, "Width must be a positive integer, not -3"),
        ((8.0, 3), {}, TypeError, "Width must be an integer, not 8.0"),
        ((True, 3), {}, TypeError, "Width must be an integer, not True"),
        ((8, "3"), {}, TypeError, "Integer width must be an integer, not '3'"),
        ((8, 3), {"signed": 1}, TypeError, "Signedness must be a bool, not 1"),
        ((8, 3), {"rounding": "ROUND"}, ValueError,
         "Rounding mode must be one of TRN, TRN_ZERO, RND, RND_ZERO, RND_MIN_INF, RND_INF, "
         "RND_CONV, not 'ROUND'"),
        ((8, 3), {"overflow": "CLAMP"}, ValueError,
         "Overflow mode must be one of WRAP, SAT, SAT_ZERO, SAT_SYM, not 'CLAMP'"),
        ((8, 3), {"overflow": 3}, TypeError,
         "Overflow mode must be a Overflow or a string, not 3"),
    ])
    def test_bad_parameters(self, args, kwargs, error, message):
        with pytest.raises(error) as info:
            FixedFormat(*args, **kwargs)
        assert str(info.value) == message


class TestParsing:
    @pytest.mark.parametrize("text,expected", [
        ("fixed<16,6>", FixedFormat(16, 6)),
        ("ufixed<8,0>", FixedFormat(8, 0, signed=False)),
        ("fixed<16,6,RND,SAT>", FixedFormat(16, 6, rounding="RND", overflow="SAT")),
        ("fixed<16,6,RND_CONV>", FixedFormat(16, 6, rounding="RND_CONV")),
        ("ap_fixed<18,8,AP_RND_CONV,AP_SAT>",
         FixedFormat(18, 8, rounding="RND_CONV", overflow="SAT")),
        ("ap_fixed<8,3,AP_RND,AP_SAT,0>", FixedFormat(8, 3, rounding="RND", overflow="SAT")),
        ("ap_ufixed<6,-2>", FixedFormat(6, -2, signed=False)),
        (" fixed< 6 , 9 > ", FixedFormat(6, 9)),
        ("ap_int<8>", FixedFormat(8, 8)),
        ("uint<4>", FixedFormat(4, 4, signed=False)),
    ])
    def test_parse(self, text, expected):
        assert FixedFormat.parse(text) == expected

    @pytest.mark.parametrize("fmt", [
        FixedFormat(16, 6), FixedFormat(8, 0, signed=False),
        FixedFormat(16, 6, rounding="RND"), FixedFormat(16, 6, overflow="SAT"),
        FixedFormat(4, -3, rounding="RND_ZERO", overflow="SAT_SYM"),
    ])
    def test_round_trip(self, fmt):
        assert FixedFormat.parse(str(fmt)) == fmt
        assert FixedFormat.parse(fmt.to_ap_type()) == fmt
        assert eval(repr(fmt)) == fmt

    def test_printing(self):
        assert str(FixedFormat(16, 6)) == "fixed<16,6>"
        assert str(FixedFormat(8, 0, signed=False)) == "ufixed<8,0>"
        assert str(FixedFormat(16, 6, rounding="RND")) == "fixed<16,6,RND>"
        assert str(FixedFormat(16, 6, overflow="SAT")) == "fixed<16,6,TRN,SAT>"
        assert repr(FixedFormat(16, 6, rounding="RND", overflow="SAT")) == \
            "FixedFormat.parse('fixed<16,6,RND,SAT>')"
        assert FixedFormat(16, 6).to_ap_type() == "ap_fixed<16,6,AP_TRN,AP_WRAP>"

    @pytest.mark.parametrize("text,error,message", [
        (16, TypeError, "Fixed-point format must be a string, not 16"),
        ("fixed<16>", ValueError, "Fixed-point format 'fixed<16>' must have 2 to 5 parameters, not 1"),
        ("fixed(16,6)", ValueError,
         "Fixed-point format must look like 'fixed<W,I>', 'ufixed<W,I>' or 'fixed<W,I,Q,O>', "
         "not 'fixed(16,6)'"),
        ("float<16,6>", ValueError,
         "Fixed-point format must look like 'fixed<W,I>', 'ufixed<W,I>' or 'fixed<W,I,Q,O>', "
         "not 'float<16,6>'"),
        ("fixed<a,6>", ValueError,
         "Fixed-point format 'fixed<a,6>' must have integer width parameters"),
        ("fixed<16,6,ROUND>", ValueError,
         "Rounding mode must be one of TRN, TRN_ZERO, RND, RND_ZERO, RND_MIN_INF, RND_INF, "
         "RND_CONV, not 'ROUND'"),
        ("fixed<0,0>", ValueError, "Width must be a positive integer, not 0"),
        ("ap_fixed<8,3,AP_RND,AP_SAT,2>", ValueError,
         "Fixed-point format 'ap_fixed<8,3,AP_RND,AP_SAT,2>' has 2 saturation bits; only 0 is "
         "supported"),
        ("ap_int<8,3>", ValueError,
         "Fixed-point format 'ap_int<8,3>' must have 1 to 1 parameters, not 2"),
    ])
    def test_malformed(self, text, error, message):
        with pytest.raises(error) as info:
            FixedFormat.parse(text)
        assert str(info.value) == message


class TestRange:
    @pytest.mark.parametrize("text,lsb,lo,hi", [
        ("fixed<8,3>", Fraction(1, 32), Fraction(-4), Fraction(127, 32)),
        ("ufixed<8,0>", Fraction(1, 256), Fraction(0), Fraction(255, 256)),
        ("fixed<4,-2>", Fraction(1, 64), Fraction(-8, 64), Fraction(7, 64)),
        ("fixed<4,6>", Fraction(4), Fraction(-32), Fraction(28)),
        ("ufixed<1,1>", Fraction(1), Fraction(0), Fraction(1)),
    ])
    def test_lsb_and_range(self, text, lsb, lo, hi):
        fmt = FixedFormat.parse(text)
        assert (fmt.lsb, fmt.min_value, fmt.max_value) == (lsb, lo, hi)

    def test_codes_and_bits(self):
        fmt = FixedFormat(8, 3)
        assert (fmt.min_code, fmt.max_code) == (-128, 127)
        assert fmt.code_to_bits(-1) == 255
        assert fmt.bits_to_code(128) == -128
        assert fmt.value(-128) == -4
        with pytest.raises(ValueError) as info:
            fmt.check_code(128)
        assert str(info.value) == "Code 128 does not fit fixed<8,3> (codes -128 to 127)"
        with pytest.raises(ValueError) as info:
            fmt.bits_to_code(256)
        assert str(info.value) == "Bit pattern 256 does not fit 8 bits"


SMALL_FORMATS = [FixedFormat(w, i, signed=s)
                 for w, i, s in itertools.product([1, 2, 3], [-1, 0, 2, 4], [True, False])]


class TestResultFormats:
    """The exact result formats hold every sum and product of every pair of codes."""

    @pytest.mark.parametrize("a", SMALL_FORMATS, ids=str)
    def test_add_and_mul_are_exact(self, a):
        for b in SMALL_FORMATS:
            total, difference, product = a.add_format(b), a.sub_format(b), a.mul_format(b)
            for x in range(a.min_code, a.max_code + 1):
                for y in range(b.min_code, b.max_code + 1):
                    for fmt, value in ((total, a.value(x) + b.value(y)),
                                       (difference, a.value(x) - b.value(y)),
                                       (product, a.value(x) * b.value(y))):
                        code = value / fmt.lsb
                        assert code.denominator == 1 and \
                            fmt.min_code <= code <= fmt.max_code, (a, b, x, y, fmt)

    def test_ap_fixed_result_types(self):
        a, b = FixedFormat(16, 6), FixedFormat(8, 3, signed=False)
        assert a.mul_format(b) == FixedFormat(24, 9)
        assert a.add_format(b) == FixedFormat(17, 7)
        assert FixedFormat(8, 3).add_format(FixedFormat(8, 3)) == FixedFormat(9, 4)
        unsigned = FixedFormat(8, 3, signed=False)
        assert unsigned.sub_format(unsigned) == FixedFormat(9, 4)

    def test_sum_format(self):
        fmt = FixedFormat(16, 6)
        assert fmt.sum_format(1) == fmt
        assert fmt.sum_format(64) == FixedFormat(22, 12)
        assert fmt.sum_format(65) == FixedFormat(23, 13)
        with pytest.raises(ValueError) as info:
            fmt.sum_format(0)
        assert str(info.value) == "Number of terms must be a positive integer, not 0"

    def test_operand_type(self):
        with pytest.raises(TypeError) as info:
            FixedFormat(8, 3).mul_format("fixed<8,3>")
        assert str(info.value) == "Operand format must be a FixedFormat, not 'fixed<8,3>'"


class TestLimits:
    """Issue 14 item 9: formats beyond the limits hung (fixed<10000,2>) or failed deep inside
    Amaranth (fixed<8,100000>); now parse rejects them at once."""

    @pytest.mark.parametrize("text,message", [
        ("fixed<10000,2>", "Fixed-point format 'fixed<10000,2>' is 10000 bits wide; nnfab builds "
                           "formats of at most 64 bits"),
        ("fixed<65,8>", "Fixed-point format 'fixed<65,8>' is 65 bits wide; nnfab builds formats "
                        "of at most 64 bits"),
        ("fixed<8,100000>", "Fixed-point format 'fixed<8,100000>' has 100000 integer bits; nnfab "
                            "builds formats with -256 to 256 integer bits"),
        ("ufixed<8,-257>", "Fixed-point format 'ufixed<8,-257>' has -257 integer bits; nnfab "
                           "builds formats with -256 to 256 integer bits"),
        ("fixed<99999999999999999999,1>", "Fixed-point format 'fixed<99999999999999999999,1>' "
                                          "must have integer width parameters"),
    ])
    def test_parse_rejects(self, text, message):
        with pytest.raises(ValueError) as info:
            FixedFormat.parse(text)
        assert str(info.value) == message

    @pytest.mark.parametrize("text", ["fixed<64,256>", "ufixed<64,-256>", "int<64>",
                                      "fixed<1,0>"])
    def test_parse_accepts_the_limits(self, text):
        FixedFormat.parse(text).check_limits()

    def test_accumulators_may_be_wider(self):
        assert FixedFormat.parse("fixed<128,64>", max_width=128).width == 128
        with pytest.raises(ValueError):
            FixedFormat.parse("fixed<129,64>", max_width=128)

    def test_the_type_holds_any_width(self):
        # The golden model computes at any width; the limits are the generator's.
        fmt = FixedFormat(130, 100)
        with pytest.raises(ValueError) as info:
            fmt.check_limits()
        assert str(info.value) == ("Fixed-point format 'fixed<130,100>' is 130 bits wide; nnfab "
                                   "builds formats of at most 64 bits")


def test_dense_accumulator_limit():
    import numpy as np

    from nnfab.layers import DenseSpec

    weights = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(ValueError) as info:
        DenseSpec(weights, np.zeros(2, dtype=np.int64), FixedFormat(64, 0), FixedFormat(64, 0),
                  FixedFormat(8, 3), bias_format=FixedFormat(8, 100))
    assert str(info.value) == ("Accumulator fixed<229,101> is 229 bits wide; nnfab builds "
                               "accumulators of at most 128 bits (narrow the operand formats or "
                               "bring their binary points closer)")
    # 64 x 64 bits over 4 terms is 130 bits: one more than the limit allows
    with pytest.raises(ValueError):
        DenseSpec(weights, None, FixedFormat(64, 0), FixedFormat(64, 0), FixedFormat(8, 3))
    assert DenseSpec(weights, None, FixedFormat(62, 0), FixedFormat(64, 0),
                     FixedFormat(8, 3)).accumulator.width == 128


class TestCommonFormat:
    """``common_format`` holds every value of its inputs exactly, and no narrower format does."""

    @staticmethod
    def _holds(fmt, values):
        return all((v / fmt.lsb).denominator == 1 and fmt.min_value <= v <= fmt.max_value
                   for v in values)

    @pytest.mark.parametrize("a", SMALL_FORMATS, ids=str)
    def test_smallest_exact_format(self, a):
        for b in SMALL_FORMATS:
            common = common_format([a, b])
            values = {f.value(c) for f in (a, b) for c in range(f.min_code, f.max_code + 1)}
            assert self._holds(common, values), (a, b, common)
            assert (common.rounding, common.overflow) == (Rounding.TRN, Overflow.WRAP)
            for w, i, s in itertools.product(range(1, common.width), range(-4, 8),
                                             (True, False)):
                assert not self._holds(FixedFormat(w, i, signed=s), values), (a, b, w, i, s)

    def test_examples(self):
        u = FixedFormat(8, 3, signed=False, rounding="RND", overflow="SAT")
        assert common_format([u]) == FixedFormat(8, 3, signed=False)
        assert common_format([FixedFormat(16, 6), u]) == FixedFormat(16, 6)
        assert common_format([FixedFormat(8, 1), u, FixedFormat(4, 4)]) == FixedFormat(11, 4)
        assert common_format(iter([FixedFormat(4, -2), FixedFormat(4, 6)])) == \
            FixedFormat(12, 6)

    def test_errors(self):
        with pytest.raises(ValueError) as info:
            common_format([])
        assert str(info.value) == "Formats must hold at least one FixedFormat, not []"
        with pytest.raises(TypeError) as info:
            common_format([FixedFormat(8, 3), "fixed<8,3>"])
        assert str(info.value) == "Format must be a FixedFormat, not 'fixed<8,3>'"
