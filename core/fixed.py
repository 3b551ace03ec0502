"""The fixed-point format type: ``ap_fixed<W, I, Q, O>`` as plain Python data.

One :class:`FixedFormat` object describes a number format for the hardware (``nnfab.hdl``), the
NumPy golden model (``nnfab.sim.golden``), the generator and the testbenches alike. It holds no
Amaranth and no NumPy: it is the contract, not an implementation of it.

Semantics follow the Xilinx arbitrary-precision types (``ap_fixed``/``ap_ufixed``) that Vitis HLS
and hls4ml use (UG1399, "Arbitrary Precision Fixed-Point Data Types"):

- ``width`` (W) is the total number of bits, ``integer_width`` (I) the number of integer bits
  including the sign bit. I may be negative or larger than W. A raw integer code ``r`` stands for
  the value ``r * 2**-(W - I)``.
- ``rounding`` (Q) applies when bits below the target LSB are dropped, ``overflow`` (O) after
  rounding, when the rounded value lies outside the format's range.

Limits of the formats nnfab builds (:meth:`FixedFormat.check_limits`; :meth:`FixedFormat.parse`
applies them to every format read from text, the generator's ``Validate`` pass to every tensor
of a model, and the layer specifications to their accumulators):

- ``W <= 64`` (:data:`MAX_WIDTH`) for a tensor (inputs, weights, biases, layer outputs): wider
  than any FPGA multiplier input or any integer type a user's host code reads, and NumPy's int64
  holds every code without Python integers. Real models use 2 to 32 bits.
- ``-256 <= I <= 256`` (:data:`MAX_INTEGER_WIDTH`): values up to ``2**255`` and LSBs down to
  ``2**-320``, beyond float32's range (``|x| < 2**128``, smallest subnormal ``2**-149``), so
  every float-trained value fits; a larger ``|I|`` only comes from a corrupt file and would
  make every alignment shift in the hardware hundreds of thousands of bits long.
- ``W <= 128`` (:data:`MAX_ACCUMULATOR_WIDTH`) for an accumulator (exact or explicit): two
  64-bit operands multiply into 128 bits; a wider sum comes from operand formats whose binary
  points lie far apart, which costs adders without adding precision.

The :class:`FixedFormat` type itself holds any width (the golden model computes in Python
integers where int64 overflows); the limits say what the generator accepts from a model.
"""

import enum
import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Rounding", "Overflow", "FixedFormat", "common_format", "MAX_WIDTH",
           "MAX_INTEGER_WIDTH", "MAX_ACCUMULATOR_WIDTH", "check_lane_formats", "rounding_increment"]

#: Widest tensor format (inputs, weights, biases, layer outputs) nnfab builds, in bits.
MAX_WIDTH = 64
#: Largest ``|I|`` (integer width) of a format nnfab builds.
MAX_INTEGER_WIDTH = 256
#: Widest accumulator nnfab builds, in bits.
MAX_ACCUMULATOR_WIDTH = 128


class Rounding(enum.Enum):
    """Rounding mode, applied when a cast drops bits below the target LSB.

    ========== ==========================================================
    ``TRN``        truncate toward minus infinity (drop the bits)
    ``TRN_ZERO``   truncate toward zero
    ``RND``        round to nearest, ties toward plus infinity
    ``RND_ZERO``   round to nearest, ties toward zero
    ``RND_MIN_INF`` round to nearest, ties toward minus infinity
    ``RND_INF``    round to nearest, ties away from zero
    ``RND_CONV``   round to nearest, ties to even (convergent rounding)
    ========== ==========================================================
    """

    TRN = "TRN"
    TRN_ZERO = "TRN_ZERO"
    RND = "RND"
    RND_ZERO = "RND_ZERO"
    RND_MIN_INF = "RND_MIN_INF"
    RND_INF = "RND_INF"
    RND_CONV = "RND_CONV"


class Overflow(enum.Enum):
    """Overflow mode, applied after rounding when the value is outside the format's range.

    ============ =============================================================================
    ``WRAP``     keep the low W bits (two's complement modulo ``2**W``)
    ``SAT``      clamp to the most positive or most negative code
    ``SAT_ZERO`` an overflowing value becomes 0
    ``SAT_SYM``  signed formats clamp to plus or minus the most positive code, so the most
                 negative code never appears, even when reached without overflow; unsigned
                 formats behave as ``SAT``
    ============ =============================================================================
    """

    WRAP = "WRAP"
    SAT = "SAT"
    SAT_ZERO = "SAT_ZERO"
    SAT_SYM = "SAT_SYM"


def _coerce_mode(enum_type, value, what):
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        name = value.strip().upper()
        if name.startswith("AP_"):
            name = name[3:]
        try:
            return enum_type[name]
        except KeyError:
            accepted = ", ".join(member.name for member in enum_type)
            raise ValueError(f"{what} mode must be one of {accepted}, not {value!r}") from None
    raise TypeError(f"{what} mode must be a {enum_type.__name__} or a string, not {value!r}")


def _check_int(value, what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")


_FORMAT_RE = re.compile(
    r"^\s*(?P<kind>ap_fixed|ap_ufixed|fixed|ufixed|ap_int|ap_uint|int|uint)\s*"
    r"<(?P<args>[^<>]*)>\s*$"
)


@dataclass(frozen=True, init=False)
class FixedFormat:
    """A fixed-point number format ``fixed<W, I, Q, O>`` (signed) or ``ufixed<W, I, Q, O>``.

    Parameters
    ----------
    width : int, >= 1
        W, the total number of bits.
    integer_width : int
        I, the number of integer bits including the sign bit. Negative values and values above
        ``width`` are allowed (the binary point then lies outside the stored bits).
    signed : bool
        Two's complement (``ap_fixed``) when true, unsigned (``ap_ufixed``) when false.
    rounding : Rounding or str
        Q, applied when bits below the LSB are dropped. Strings such as ``"RND"`` or
        ``"AP_RND"`` are accepted.
    overflow : Overflow or str
        O, applied after rounding when the value is out of range.

    Raises
    ------
    TypeError
        If ``width`` or ``integer_width`` is not an integer, ``signed`` not a bool, or a mode
        neither a member of its enumeration nor a string.
    ValueError
        If ``width`` is not positive or a mode string is unknown.
    """

    width: int
    integer_width: int
    signed: bool
    rounding: Rounding
    overflow: Overflow

    def __init__(self, width, integer_width, *, signed=True, rounding=Rounding.TRN,
                 overflow=Overflow.WRAP):
        _check_int(width, "Width")
        if width < 1:
            raise ValueError(f"Width must be a positive integer, not {width!r}")
        _check_int(integer_width, "Integer width")
        if not isinstance(signed, bool):
            raise TypeError(f"Signedness must be a bool, not {signed!r}")
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "integer_width", integer_width)
        object.__setattr__(self, "signed", signed)
        object.__setattr__(self, "rounding", _coerce_mode(Rounding, rounding, "Rounding"))
        object.__setattr__(self, "overflow", _coerce_mode(Overflow, overflow, "Overflow"))

    # -- parsing and printing ------------------------------------------------------------------

    @classmethod
    def parse(cls, text, *, max_width=MAX_WIDTH):
        """Read an hls4ml / Vitis HLS type string.

        Accepts ``fixed<16,6>``, ``ufixed<8,0>``, ``fixed<16,6,RND,SAT>``,
        ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``, ``ap_ufixed<8,0>``, ``ap_fixed<8,3,AP_RND,AP_SAT,0>``
        (zero saturation bits only) and the integer types ``int<8>``, ``uint<8>``, ``ap_int<8>``,
        ``ap_uint<8>``.

        ``max_width`` is the widest format accepted (default :data:`MAX_WIDTH`; an explicit
        accumulator may pass :data:`MAX_ACCUMULATOR_WIDTH`); see :meth:`check_limits`.

        Raises
        ------
        TypeError
            If ``text`` is not a string.
        ValueError
            If ``text`` is not such a type string, names an unknown mode, or is beyond the
            limits.
        """
        if not isinstance(text, str):
            raise TypeError(f"Fixed-point format must be a string, not {text!r}")
        match = _FORMAT_RE.match(text)
        if match is None:
            raise ValueError(
                f"Fixed-point format must look like 'fixed<W,I>', 'ufixed<W,I>' or "
                f"'fixed<W,I,Q,O>', not {text!r}")
        kind = match["kind"]
        args = [arg.strip() for arg in match["args"].split(",")]
        is_int = kind.endswith("int")
        signed = not kind.removeprefix("ap_").startswith("u")
        n_numeric = 1 if is_int else 2
        max_args = 1 if is_int else 5
        if not (n_numeric <= len(args) <= max_args):
            raise ValueError(
                f"Fixed-point format {text!r} must have {n_numeric} to {max_args} parameters, "
                f"not {len(args)}")
        if not all(re.fullmatch(r"[+-]?[0-9]{1,9}", arg) for arg in args[:n_numeric]):
            raise ValueError(
                f"Fixed-point format {text!r} must have integer width parameters")
        numbers = [int(arg) for arg in args[:n_numeric]]
        width = numbers[0]
        integer_width = width if is_int else numbers[1]
        rounding = args[2] if len(args) > 2 else Rounding.TRN
        overflow = args[3] if len(args) > 3 else Overflow.WRAP
        if len(args) > 4 and args[4] != "0":
            raise ValueError(
                f"Fixed-point format {text!r} has {args[4]} saturation bits; only 0 is "
                f"supported")
        fmt = cls(width, integer_width, signed=signed, rounding=rounding, overflow=overflow)
        fmt.check_limits(max_width=max_width)
        return fmt

    def check_limits(self, *, max_width=MAX_WIDTH):
        """Raise ``ValueError`` unless ``W <= max_width`` and ``|I| <=``
        :data:`MAX_INTEGER_WIDTH` (see the module's description of the limits).

        Raises
        ------
        ValueError
            Naming the format, the limit and the rule.
        """
        if self.width > max_width:
            raise ValueError(f"Fixed-point format {str(self)!r} is {self.width} bits wide; "
                             f"nnfab builds formats of at most {max_width} bits")
        if abs(self.integer_width) > MAX_INTEGER_WIDTH:
            raise ValueError(f"Fixed-point format {str(self)!r} has {self.integer_width} "
                             f"integer bits; nnfab builds formats with -{MAX_INTEGER_WIDTH} to "
                             f"{MAX_INTEGER_WIDTH} integer bits")

    def __str__(self):
        name = "fixed" if self.signed else "ufixed"
        args = [str(self.width), str(self.integer_width)]
        if self.rounding is not Rounding.TRN or self.overflow is not Overflow.WRAP:
            args.append(self.rounding.name)
        if self.overflow is not Overflow.WRAP:
            args.append(self.overflow.name)
        return f"{name}<{','.join(args)}>"

    def __repr__(self):
        return f"FixedFormat.parse({str(self)!r})"

    def to_ap_type(self):
        """The Vitis HLS spelling, e.g. ``ap_fixed<16,6,AP_RND,AP_SAT>``."""
        name = "ap_fixed" if self.signed else "ap_ufixed"
        return (f"{name}<{self.width},{self.integer_width},AP_{self.rounding.name},"
                f"AP_{self.overflow.name}>")

    def replace(self, **changes):
        """A copy with some parameters changed, e.g. ``fmt.replace(overflow="SAT")``."""
        params = dict(width=self.width, integer_width=self.integer_width, signed=self.signed,
                      rounding=self.rounding, overflow=self.overflow)
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(f"Unknown format parameter {sorted(unknown)[0]!r}")
        params.update(changes)
        return FixedFormat(params.pop("width"), params.pop("integer_width"), **params)

    # -- codes and values ----------------------------------------------------------------------

    @property
    def fraction_width(self):
        """F = W - I, the number of bits below the binary point (may be negative)."""
        return self.width - self.integer_width

    @property
    def lsb(self):
        """The value of one LSB, ``2**-F``, as an exact :class:`~fractions.Fraction`."""
        return Fraction(2) ** -self.fraction_width

    @property
    def min_code(self):
        """The most negative raw code: ``-2**(W-1)`` when signed, else 0."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self):
        """The most positive raw code: ``2**(W-1) - 1`` when signed, else ``2**W - 1``."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min_value(self):
        """The most negative value, as a Fraction."""
        return self.min_code * self.lsb

    @property
    def max_value(self):
        """The most positive value, as a Fraction."""
        return self.max_code * self.lsb

    def value(self, code):
        """The exact value of raw code ``code``, as a Fraction.

        Raises
        ------
        ValueError
            If ``code`` is outside ``min_code .. max_code``.
        """
        self.check_code(code)
        return code * self.lsb

    def check_code(self, code):
        """Raise ``ValueError`` unless ``code`` is a raw code of this format."""
        _check_int(code, "Code")
        if not (self.min_code <= code <= self.max_code):
            raise ValueError(
                f"Code {code!r} does not fit {self} (codes {self.min_code} to {self.max_code})")

    def code_to_bits(self, code):
        """The unsigned W-bit pattern of raw code ``code`` (two's complement when signed)."""
        self.check_code(code)
        return code & ((1 << self.width) - 1)

    def bits_to_code(self, bits):
        """The raw code of the unsigned W-bit pattern ``bits``.

        Raises
        ------
        ValueError
            If ``bits`` is negative or has more than W bits.
        """
        _check_int(bits, "Bit pattern")
        if not (0 <= bits < (1 << self.width)):
            raise ValueError(f"Bit pattern {bits!r} does not fit {self.width} bits")
        if self.signed and bits >> (self.width - 1):
            return bits - (1 << self.width)
        return bits

    # -- exact arithmetic result formats -------------------------------------------------------

    def holds(self, other):
        """Whether every value of format ``other`` is exactly a value of this format (its LSB
        no coarser, its range no narrower): then a cast from ``other`` is a plain shift."""
        self._check_other(other)
        return (self.fraction_width >= other.fraction_width
                and self.max_value >= other.max_value and self.min_value <= other.min_value)

    def add_format(self, other):
        """The exact format of ``self + other``: no rounding, no overflow for any pair of
        operands, as ``ap_fixed``'s ``operator+`` result type.

        F = max(F1, F2); I = max(I1 + (S2 and not S1), I2 + (S1 and not S2)) + 1; signed when
        either operand is. Rounding and overflow are TRN/WRAP (no cast happens).
        """
        self._check_other(other)
        signed = self.signed or other.signed
        fraction = max(self.fraction_width, other.fraction_width)
        integer = max(self.integer_width + (signed and not self.signed),
                      other.integer_width + (signed and not other.signed)) + 1
        return FixedFormat(integer + fraction, integer, signed=signed)

    def sub_format(self, other):
        """The exact format of ``self - other``: as :meth:`add_format`, but always signed, as
        ``ap_fixed``'s ``operator-`` result type."""
        total = self.add_format(other)
        return FixedFormat(total.width, total.integer_width, signed=True)

    def mul_format(self, other):
        """The exact format of ``self * other``: W = W1 + W2, I = I1 + I2, signed when either
        operand is, as ``ap_fixed``'s ``operator*`` result type. TRN/WRAP."""
        self._check_other(other)
        return FixedFormat(self.width + other.width, self.integer_width + other.integer_width,
                           signed=self.signed or other.signed)

    def sum_format(self, n_terms):
        """The exact format of a sum of ``n_terms`` values of this format: the accumulator
        width that cannot overflow, ``ceil(log2(n_terms))`` more integer bits.

        Raises
        ------
        ValueError
            If ``n_terms`` is not a positive integer.
        """
        _check_int(n_terms, "Number of terms")
        if n_terms < 1:
            raise ValueError(f"Number of terms must be a positive integer, not {n_terms!r}")
        growth = math.ceil(math.log2(n_terms)) if n_terms > 1 else 0
        return FixedFormat(self.width + growth, self.integer_width + growth, signed=self.signed)

    def _check_other(self, other):
        if not isinstance(other, FixedFormat):
            raise TypeError(f"Operand format must be a FixedFormat, not {other!r}")


def common_format(formats):
    """The smallest format that holds every value of every one of ``formats`` exactly.

    F = max(F_k); signed when any format is; I = max(I_k + (1 if the result is signed and
    format k is not)). Rounding and overflow are TRN/WRAP (no value of an input needs either).
    It is the default result format of a concatenation.

    Parameters
    ----------
    formats : iterable of FixedFormat, not empty

    Returns
    -------
    FixedFormat

    Raises
    ------
    TypeError
        If an element is not a :class:`FixedFormat`.
    ValueError
        If ``formats`` is empty.
    """
    formats = list(formats)
    for fmt in formats:
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")
    if not formats:
        raise ValueError("Formats must hold at least one FixedFormat, not []")
    signed = any(fmt.signed for fmt in formats)
    fraction = max(fmt.fraction_width for fmt in formats)
    integer = max(fmt.integer_width + (signed and not fmt.signed) for fmt in formats)
    return FixedFormat(integer + fraction, integer, signed=signed)


def check_lane_formats(formats, fout):
    """Validate per-lane formats against the common output format.

    Raises
    ------
    TypeError
        If a lane format is neither a FixedFormat nor None, or ``fout`` not a FixedFormat.
    ValueError
        If there are no lanes, or a lane's values do not all fit ``fout`` exactly (its LSB finer
        than ``fout``'s, or its range wider).
    """
    if not isinstance(fout, FixedFormat):
        raise TypeError(f"Output format must be a FixedFormat, not {fout!r}")
    formats = tuple(formats)
    if not formats:
        raise ValueError("Lane formats must name at least one lane")
    for j, fmt in enumerate(formats):
        if fmt is None:
            continue
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Lane {j} format must be a FixedFormat or None, not {fmt!r}")
        if (fmt.fraction_width > fout.fraction_width or fmt.max_value > fout.max_value
                or fmt.min_value < fout.min_value):
            raise ValueError(f"Lane {j} format {fmt} does not fit the output format {fout} "
                             f"exactly")
    return formats


def rounding_increment(rounding, *, qb, rest, neg, odd, zero):
    """The rounding increment of ``rounding`` from the bits a cast drops: the one truth table
    of ap_fixed's quantization modes, shared by the golden casts (NumPy boolean arrays) and the
    hardware casts (1-bit Amaranth values); any operands with ``&``, ``|`` and ``~`` do.

    Parameters
    ----------
    rounding : Rounding
    qb
        The half bit: the first bit below the kept LSB.
    rest
        Whether any lower bit is set.
    neg
        Whether the value is negative.
    odd
        Whether the kept LSB is 1.
    zero
        The increment of ``TRN`` (no rounding), in the operands' kind.
    """
    if rounding is Rounding.TRN:
        return zero
    if rounding is Rounding.TRN_ZERO:
        return neg & (qb | rest)
    if rounding is Rounding.RND:
        return qb
    if rounding is Rounding.RND_ZERO:
        return qb & (neg | rest)
    if rounding is Rounding.RND_MIN_INF:
        return qb & rest
    if rounding is Rounding.RND_INF:
        return qb & (~neg | rest)
    if rounding is Rounding.RND_CONV:
        return qb & (odd | rest)
    raise AssertionError(rounding)  # pragma: no cover
