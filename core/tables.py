"""Look-up tables of activation functions, which the hardware (:mod:`nnfab.hdl.activations`) and
the golden model (:mod:`nnfab.sim.golden.activations`) share; the activation parameters that name
them are checked in :mod:`nnfab.activation_params`.

A table is data: its entries are raw codes of a :class:`~nnfab.fixed.FixedFormat`, computed once
here (double-precision function values, then rounded exactly with the table format's rounding and
overflow modes, as ``ap_fixed``'s conversion from ``double``). The hardware elaborates the codes
into a ROM, the golden model indexes the same tuple; neither recomputes them.

Every table covers a power-of-two input range ``R`` with a power-of-two number of entries ``N``,
so that its index is a shift of the input code (see :meth:`LookupTable.index_exponent`):

=============== ================================ ========================== =====================
kind            input of the table               index ``j`` from code ``c`` entry ``j``
=============== ================================ ========================== =====================
``sigmoid``,    ``x = c * 2**-F`` in ``[-R, R)`` ``clamp(floor(c * 2**e)    ``f(-R + j * 2R/N)``
``tanh``                                         + N/2, 0, N-1)``           (left edge of bin)
``exp``         ``t = -d >= 0``, ``d = x - max`` ``min(floor(c * 2**e),     ``exp(-j * R/N)``
                in ``[0, R)``                    N-1)``, ``c`` the code of  (left edge; entry 0
                                                 ``t``                      is ``exp(0) = 1``)
``reciprocal``  ``s >= 0`` in ``[0, R)``         ``min(floor(c * 2**e),     ``1 / ((j + 1/2) *
                                                 N-1)``                     R/N)`` (bin centre)
``elu``         ``x < 0`` in ``[-R, 0)``         ``max(floor(c * 2**e)      ``s * a * (exp(x_j)
                                                 + N, 0)``                  - 1)``, ``x_j = -R +
                                                                            j * R/N`` (left edge)
``elu``,        ``x < 0``, ``|x|`` in ``[0, R)`` ``min(floor(-c * 2**e),    ``s * a * (exp(x_j)
``"magnitude"``                                  N-1)``                     - 1)``, ``x_j = -j *
                                                                            R/N`` (edge nearest 0)
=============== ================================ ========================== =====================

with ``e = log2(N) - log2(2R) - F`` for ``sigmoid``/``tanh`` and ``e = log2(N) - log2(R) -
F`` for ``exp``/``reciprocal``/``elu``, ``F`` the fraction width of the input format, and
``floor(c * 2**e)`` an arithmetic shift (left when ``e >= 0``, right with rounding toward minus
infinity otherwise).
A sigmoid or tanh table with ``index_rounding="zero"`` truncates toward zero instead
(``trunc(c * 2**e)``): hls4ml's index, ``int(data * N / 16) + N/2`` for sigmoid and
``int(data * N / 8) + N/2`` for tanh (``nnet_activation.h`` ``sigmoid``/``tanh``; the ``int``
conversion of an ``ap_fixed`` drops the fraction toward zero, as C does).
A sigmoid or tanh table with ``index_rounding="magnitude"`` is hls4ml's Quartus (and oneAPI)
table, :func:`quartus_sigmoid_table`/:func:`quartus_tanh_table` (``nnet_activation.h``
``sigmoid``/``dense_tanh``, entries from ``quartus_writer.py`` ``__write_sigmoid_table``/
``__write_tanh_table``): ``N`` entries over ``|x|`` in ``[0, R)`` (R = 8 and 4), entry ``j`` at
the bin centre ``(j + 1/2) R/N``, index ``j = min(floor(|c| * 2**e), N-1)`` with ``e = log2(N)
- log2(R) - F``; the entry is cast to the output format, then a negative ``x`` gives
``cast(-y)`` (tanh) or ``cast(1 - y)`` (sigmoid). hls4ml clamps only ``|x| > R``: ``|x| = R``
reads one entry past its table, and the most negative code of a wrapping input type negates to
itself, a negative index; both are undefined in C++ and read the last entry here.
An ``elu`` table with ``index_rounding="magnitude"`` is hls4ml's SELU table
(:func:`hls4ml_selu_table`; ``nnet_activation.h`` ``init_selu_table``/``selu``): entry ``j`` at
``x_j = -j * 8/N``, index ``int(x * N / -8)`` clamped to ``N - 1``, which for ``x < 0`` is
``floor(-c * 2**e)`` (an exact ``ap_fixed`` quotient, truncated toward zero, of a positive
value).
Sigmoid and tanh entries sit at the left edge of their bin, as hls4ml's
``init_sigmoid_table``/``init_tanh_table`` place them, so a table of the same size and format
built with ``single_precision=True`` (hls4ml computes the entries in float32) holds the same
codes as hls4ml's; in double precision the two differ only in the last bits of formats with
more than about 20 fraction bits. The reciprocal table samples bin centres, so that entry 0 is
finite.
"""

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .fixed import FixedFormat, Overflow, Rounding

__all__ = [
    "LookupTable", "sigmoid_table", "tanh_table", "quartus_sigmoid_table", "quartus_tanh_table",
    "exp_table", "reciprocal_table", "elu_table", "hls4ml_selu_table",
    "SELU_ALPHA", "SELU_SCALE", "quantize_exact", "INDEX_ROUNDINGS",
    "DEFAULT_TABLE_SIZE", "DEFAULT_TABLE_FORMAT", "DEFAULT_SOFTMAX_TABLE_FORMAT",
]

_TABLE_KINDS = ("sigmoid", "tanh", "exp", "reciprocal", "elu")
#: How a table index drops fraction bits: nnfab's floor, hls4ml's truncation toward zero, hls4ml
#: Quartus' index of ``|x|`` into a half table with the sign mirrored (module docstring).
INDEX_ROUNDINGS = ("floor", "zero", "magnitude")

#: SELU's constants (Klambauer et al., "Self-Normalizing Neural Networks", 2017; the values
#: ONNX's Selu and Keras use).
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

#: hls4ml's table defaults: ``table_size`` 1024, ``table_t`` ``ap_fixed<18,8>``.
DEFAULT_TABLE_SIZE = 1024
DEFAULT_TABLE_FORMAT = FixedFormat(18, 8)
#: hls4ml's softmax ``exp_table_t`` and ``inv_table_t`` default: ``ap_fixed<18,8,AP_RND,AP_SAT>``.
DEFAULT_SOFTMAX_TABLE_FORMAT = FixedFormat(18, 8, rounding="RND", overflow="SAT")


def _check_int(value, what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")


def _check_format(fmt, what="Format"):
    if not isinstance(fmt, FixedFormat):
        raise TypeError(f"{what} must be a FixedFormat, not {fmt!r}")


def _exact(value, what):
    """``value`` (int, float or Fraction) as an exact Fraction."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise TypeError(f"{what} must be an int, float or Fraction, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} must be finite, not {value!r}")
    return Fraction(value)


def _power_of_two_log2(value):
    """log2 of a positive Fraction that is a power of two, else None."""
    if value <= 0:
        return None
    num, den = value.numerator, value.denominator
    if den == 1 and num & (num - 1) == 0:
        return num.bit_length() - 1
    if num == 1 and den & (den - 1) == 0:
        return -(den.bit_length() - 1)
    return None


def quantize_exact(value, fmt):
    """Round the exact number ``value`` (a Fraction) to a raw code of ``fmt`` with ``fmt``'s
    rounding, then overflow mode (``ap_fixed`` conversion semantics)."""
    scaled = Fraction(value) / fmt.lsb
    floor = math.floor(scaled)
    rem = scaled - floor
    half = Fraction(1, 2)
    rounding = fmt.rounding
    if rem == 0 or rounding is Rounding.TRN:
        inc = 0
    elif rounding is Rounding.TRN_ZERO:
        inc = int(scaled < 0)
    elif rounding is Rounding.RND:
        inc = int(rem >= half)
    elif rounding is Rounding.RND_ZERO:
        inc = int(rem > half or (rem == half and scaled < 0))
    elif rounding is Rounding.RND_MIN_INF:
        inc = int(rem > half)
    elif rounding is Rounding.RND_INF:
        inc = int(rem > half or (rem == half and scaled > 0))
    else:  # RND_CONV
        inc = int(rem > half or (rem == half and floor % 2 == 1))
    code = floor + inc
    lo, hi = fmt.min_code, fmt.max_code
    overflow = fmt.overflow
    if overflow is Overflow.WRAP:
        code %= 1 << fmt.width
        return code - (1 << fmt.width) if code > hi else code
    if overflow is Overflow.SAT_ZERO:
        return 0 if not lo <= code <= hi else code
    if overflow is Overflow.SAT_SYM and fmt.signed:
        lo = -hi
    return min(max(code, lo), hi)


@dataclass(frozen=True)
class LookupTable:
    """A function sampled at ``table_size`` points and stored as raw codes of ``table_format``.

    Build one with :func:`sigmoid_table`, :func:`tanh_table`, :func:`exp_table` or
    :func:`reciprocal_table`; the module docstring gives each kind's index rule and sample points.

    Attributes
    ----------
    kind : str
        ``"sigmoid"``, ``"tanh"``, ``"exp"`` or ``"reciprocal"``.
    table_size : int
        N, a power of two, in entries.
    table_format : FixedFormat
        Format of the entries.
    input_range : Fraction
        R, a power of two.
    codes : tuple of int
        The N entries, raw codes of ``table_format``.
    index_rounding : str
        How the index drops the bits of ``c * 2**e`` below 1: ``"floor"`` (nnfab's) or
        ``"zero"`` (hls4ml's, sigmoid and tanh only) or ``"magnitude"`` (hls4ml Quartus' half
        table over ``|x|`` in ``[0, R)``, and hls4ml's selu table of an ``elu`` kind); see the
        module docstring.
    """

    kind: str
    table_size: int
    table_format: FixedFormat
    input_range: Fraction
    codes: tuple
    index_rounding: str = "floor"

    def __post_init__(self):
        if self.index_rounding not in INDEX_ROUNDINGS:
            raise ValueError(f"Index rounding must be one of "
                             f"{', '.join(map(repr, INDEX_ROUNDINGS))}, not "
                             f"{self.index_rounding!r}")
        if self.index_rounding != "floor" and self.kind not in ("sigmoid", "tanh") and \
                (self.kind, self.index_rounding) != ("elu", "magnitude"):
            raise ValueError(f"Index rounding {self.index_rounding!r} is hls4ml's sigmoid and "
                             f"tanh index (and 'magnitude' its selu index), not a {self.kind} "
                             f"table's")

    @property
    def size_log2(self):
        """log2(N)."""
        return self.table_size.bit_length() - 1

    @property
    def range_log2(self):
        """log2(R), possibly negative."""
        return _power_of_two_log2(self.input_range)

    @property
    def index_width(self):
        """Bits of an index, log2(N) (at least 1)."""
        return max(1, self.size_log2)

    def index_exponent(self, fraction_width):
        """``e`` of the index rule for input codes with ``fraction_width`` bits below the
        binary point: ``log2(N) - log2(2R) - F`` for sigmoid and tanh (whose inputs span
        ``[-R, R)``), ``log2(N) - log2(R) - F`` for exp, reciprocal and the ``"magnitude"``
        tables (``[0, R)``)."""
        two_sided = self.kind in ("sigmoid", "tanh") and self.index_rounding != "magnitude"
        span_log2 = self.range_log2 + (1 if two_sided else 0)
        return self.size_log2 - span_log2 - fraction_width


def _make_table(kind, function, *, table_size, table_format, input_range,
                index_rounding="floor"):
    _check_int(table_size, "Table size")
    if table_size < 2 or table_size & (table_size - 1):
        raise ValueError(f"Table size must be a power of two, not {table_size!r}")
    _check_format(table_format, "Table format")
    r = _exact(input_range, "Input range")
    if _power_of_two_log2(r) is None:
        raise ValueError(f"Input range must be a power of two, not {input_range!r}")
    codes = tuple(quantize_exact(function(j, table_size, r), table_format)
                  for j in range(table_size))
    return LookupTable(kind, table_size, table_format, r, codes, index_rounding)


def _float_exact(x):
    return Fraction(float(x))


@functools.lru_cache(maxsize=None)
def _float32_function(name):
    """The C library's single-precision ``name`` (``expf``, ``tanhf``) as a function of a
    float32: the one hls4ml's C simulation calls (through ``ctypes``; glibc's ``expf`` and
    ``tanhf`` are not always correctly rounded, so rounding the double result differs in a few
    entries of fine tables). Without a C library, the double result rounded to float32."""
    import ctypes
    import ctypes.util

    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        function = getattr(libm, name)
    except (OSError, AttributeError):
        fallback = {"expf": math.exp, "tanhf": math.tanh}[name]
        return lambda x: np.float32(fallback(float(x)))
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda x: np.float32(function(float(x)))


def _sigmoid_float32(x):
    """hls4ml's ``sigmoid_fcn_float``: ``1.0 / (1 + std::exp(-input))`` with ``input`` and the
    exponential in float32, the division in double, the result returned as float32."""
    e = _float32_function("expf")(-np.float32(x))
    return np.float32(1.0 / float(np.float32(1) + e))


@functools.lru_cache(maxsize=64, typed=True)  # typed: 16.0 must not hit the entry of 16
def sigmoid_table(*, table_size=DEFAULT_TABLE_SIZE, table_format=DEFAULT_TABLE_FORMAT,
                  input_range=8, index_rounding="floor", single_precision=False):
    """Table of ``1 / (1 + exp(-x))`` at ``x_j = -R + j * 2R/N`` (hls4ml's sigmoid table).

    Defaults are hls4ml's: N = 1024, ``fixed<18,8>`` (TRN, WRAP), R = 8; ``index_rounding``
    ``"zero"`` indexes it as hls4ml does (see the module docstring). ``single_precision``
    computes the entries as hls4ml's ``init_sigmoid_table`` does (``nnet_activation.h``:
    ``x_j`` and ``expf`` in float32, :func:`_sigmoid_float32`) rather than in double; the two
    differ in the last bits of a table format with more than about 20 fraction bits.

    Raises
    ------
    TypeError
        If ``table_size`` is not an integer, ``table_format`` not a FixedFormat or
        ``input_range`` not a number.
    ValueError
        If ``table_size`` (at least 2) or ``input_range`` is not a power of two.
    """
    def entry(j, n, r):
        x = float(-r + j * 2 * r / n)
        if single_precision:
            return _float_exact(_sigmoid_float32(x))
        return _float_exact(1.0 / (1.0 + math.exp(-x)))
    return _make_table("sigmoid", entry, table_size=table_size, table_format=table_format,
                       input_range=input_range, index_rounding=index_rounding)


@functools.lru_cache(maxsize=64, typed=True)  # typed: 16.0 must not hit the entry of 16
def tanh_table(*, table_size=DEFAULT_TABLE_SIZE, table_format=DEFAULT_TABLE_FORMAT,
               input_range=4, index_rounding="floor", single_precision=False):
    """Table of ``tanh(x)`` at ``x_j = -R + j * 2R/N`` (hls4ml's tanh table).

    Defaults are hls4ml's: N = 1024, ``fixed<18,8>`` (TRN, WRAP), R = 4; ``index_rounding``
    as :func:`sigmoid_table`; ``single_precision``: ``tanhf`` of the float32 ``x_j``, as
    hls4ml's ``init_tanh_table``. Raises as :func:`sigmoid_table`.
    """
    def entry(j, n, r):
        x = float(-r + j * 2 * r / n)
        if single_precision:
            return _float_exact(_float32_function("tanhf")(np.float32(x)))
        return _float_exact(math.tanh(x))
    return _make_table("tanh", entry, table_size=table_size, table_format=table_format,
                       input_range=input_range, index_rounding=index_rounding)


def _quartus_table(kind, function, input_range, table_size, table_format):
    """hls4ml's Quartus writer: ``function`` in float64 (NumPy) at the bin centres of
    ``[0, R)``, written as Python's shortest repr (read back as the same double), converted by
    ``table_t``'s rounding and overflow."""
    def entry(j, n, r):
        return _float_exact(function(np.float64(j * float(r) / n + float(r) / (n * 2))))
    return _make_table(kind, entry, table_size=table_size, table_format=table_format,
                       input_range=input_range, index_rounding="magnitude")


@functools.lru_cache(maxsize=64)
def quartus_sigmoid_table(*, table_size=DEFAULT_TABLE_SIZE, table_format=DEFAULT_TABLE_FORMAT):
    """hls4ml Quartus' sigmoid table: ``1 / (1 + exp(-x))`` at the centres of ``N`` bins of
    ``[0, 8)``, indexed by ``|x|`` (``index_rounding="magnitude"``, module docstring).
    Raises as :func:`sigmoid_table`; also ValueError for fewer than 8 entries (hls4ml's index
    multiplies by ``table_size / 8`` in integers)."""
    if isinstance(table_size, int) and table_size < 8:
        raise ValueError(f"Table size must be at least 8, not {table_size!r}")
    return _quartus_table("sigmoid", lambda x: 1.0 / (1 + np.exp(-x)), 8, table_size,
                          table_format)


@functools.lru_cache(maxsize=64)
def quartus_tanh_table(*, table_size=DEFAULT_TABLE_SIZE, table_format=DEFAULT_TABLE_FORMAT):
    """hls4ml Quartus' tanh table: ``tanh(x)`` at the centres of ``N`` bins of ``[0, 4)``,
    indexed by ``|x|`` (``index_rounding="magnitude"``); raises as
    :func:`quartus_sigmoid_table` (at least 4 entries)."""
    if isinstance(table_size, int) and table_size < 4:
        raise ValueError(f"Table size must be at least 4, not {table_size!r}")
    return _quartus_table("tanh", np.tanh, 4, table_size, table_format)


@functools.lru_cache(maxsize=64, typed=True)  # typed: 16.0 must not hit the entry of 16
def exp_table(*, table_size=DEFAULT_TABLE_SIZE, table_format=DEFAULT_SOFTMAX_TABLE_FORMAT,
              input_range=8):
    """Table of ``exp(-t)`` at ``t_j = j * R/N``, for softmax's ``t = max(x) - x >= 0``.

    Defaults: N = 1024, ``fixed<18,8,RND,SAT>`` (hls4ml's ``exp_table_t``), R = 8. Raises as
    :func:`sigmoid_table`.
    """
    def entry(j, n, r):
        return _float_exact(math.exp(-float(j * r / n)))
    return _make_table("exp", entry, table_size=table_size, table_format=table_format,
                       input_range=input_range)


@functools.lru_cache(maxsize=64, typed=True)  # typed: 16.0 must not hit the entry of 16
def reciprocal_table(*, table_size=DEFAULT_TABLE_SIZE,
                     table_format=DEFAULT_SOFTMAX_TABLE_FORMAT, input_range=8):
    """Table of ``1 / s`` at the bin centres ``s_j = (j + 1/2) * R/N``, computed exactly (no
    floating point), for softmax's sum of exponentials.

    Defaults: N = 1024, ``fixed<18,8,RND,SAT>`` (hls4ml's ``inv_table_t``), R = 8; a softmax
    over ``n`` elements wants R at least ``n`` (the sum lies in ``[1, n]``). Raises as
    :func:`sigmoid_table`.
    """
    def entry(j, n, r):
        return 1 / ((j + Fraction(1, 2)) * r / n)
    return _make_table("reciprocal", entry, table_size=table_size, table_format=table_format,
                       input_range=input_range)


@functools.lru_cache(maxsize=64, typed=True)  # typed: 16.0 must not hit the entry of 16
def elu_table(*, alpha=1.0, scale=1.0, table_size=DEFAULT_TABLE_SIZE,
              table_format=DEFAULT_TABLE_FORMAT, input_range=8):
    """Table of the negative branch ``scale * alpha * (exp(x) - 1)`` of ELU and SELU at
    ``x_j = -R + j * R/N``, ``j = 0 .. N-1``; inputs below ``-R`` use entry 0.

    Defaults: ELU with ``alpha = 1``, N = 1024, ``fixed<18,8>`` (TRN, WRAP), R = 8 (where
    ``exp(-8) - 1`` is within 3.4e-4 of the limit -1). SELU is ``alpha =`` :data:`SELU_ALPHA`,
    ``scale =`` :data:`SELU_SCALE`. Raises as :func:`sigmoid_table`.
    """
    def entry(j, n, r):
        x = float(-r + j * r / n)
        return _float_exact(scale * alpha * math.expm1(x))
    return _make_table("elu", entry, table_size=table_size, table_format=table_format,
                       input_range=input_range)


def _selu_float32(x):
    """hls4ml's ``selu_fcn_float``: ``1.0507... * (1.6732... * (std::exp(input) - 1.))`` with
    ``input`` and the exponential in float32 (``expf``), the rest in double, the result
    returned as float32."""
    e = _float32_function("expf")(np.float32(x))
    return np.float32(SELU_SCALE * (SELU_ALPHA * (float(e) - 1.0)))


@functools.lru_cache(maxsize=64)
def hls4ml_selu_table(*, table_size=DEFAULT_TABLE_SIZE, table_format=DEFAULT_TABLE_FORMAT):
    """hls4ml's SELU table of the negative branch (``nnet_activation.h`` ``init_selu_table``):
    entry ``j`` is ``table_t(selu_fcn_float(float(-8.0 * j / N)))`` (:func:`_selu_float32`),
    ``j = 0 .. N-1``, R = 8; an ``elu`` table indexed by ``index_rounding="magnitude"``:
    ``j = min(floor(-x * N/8), N-1)`` for ``x < 0`` (hls4ml's ``int index = data * N / -8``,
    the ``ap_fixed`` quotient truncated toward zero). The positive branch multiplies by
    :data:`nnfab.activation_params.HLS4ML_SELU_LAMBDA`.

    Defaults are hls4ml's: N = 1024, ``table_t`` ``ap_fixed<18,8>`` (TRN, WRAP).

    Raises
    ------
    TypeError
        If ``table_size`` is not an integer or ``table_format`` not a FixedFormat.
    ValueError
        If ``table_size`` (at least 2) is not a power of two.
    """
    def entry(j, n, r):
        return _float_exact(_selu_float32(np.float32(-8.0 * j / float(n))))
    return _make_table("elu", entry, table_size=table_size, table_format=table_format,
                       input_range=8, index_rounding="magnitude")
