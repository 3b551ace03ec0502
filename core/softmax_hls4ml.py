"""hls4ml's "stable" softmax, bit for bit: its parameters, table-size rules and tables.

The algorithm is ``nnet::softmax_stable`` of hls4ml 1.3 (Vivado/Vitis backends,
``templates/vivado/nnet_utils/nnet_activation.h``; ``reduce`` from ``nnet_common.h``). With
``x`` the ``n`` input codes of one vector and the formats of :class:`Hls4mlSoftmaxSpec`
(hls4ml's type names in brackets):

1. ``x_max = max(x)``, exact (``reduce<data_T, n, Op_max>``);
2. ``d_i = cast(x_max - x_i, norm_format)`` [``inp_norm_t``]: the exact difference cast to an
   unsigned TRN/WRAP format, i.e. ``(x_max - x_i) mod 2**W'``; differences of ``2**I'`` or more
   wrap around (they do in real models);
3. ``idx_i`` = the top ``exp_index_width`` bits of ``d_i``'s W'-bit code
   (``softmax_idx_from_real_val``);
4. ``exp_res_i = cast(exp_table[idx_i], accum_format)`` [``exp_table_t`` → ``accum_t``];
5. ``exp_sum = reduce<accum_t, n, Op_add<accum_t>>(exp_res)``: a balanced tree whose every
   addition is exact, then cast to ``accum_format`` (so with a saturating accumulator the tree
   order matters; see :func:`reduce_order`), then ``cast(exp_sum, inv_input_format)``
   [``inv_inp_t``];
6. ``inv`` = ``inv_table`` at the top ``inv_index_width`` bits of that code's W-bit two's
   complement pattern, sign bit included;
7. ``res_i = cast(exp_res_i * inv, output_format)`` [``result_t``], from the exact product.

The tables (``init_exp_table<inp_norm_t>(table, negative=true)``, ``init_invert_table<inv_inp_t>``)
sample the value whose top index bits are ``i`` and whose other bits are 0, in float32:
``exp_table[i] = exp_table_t(expf(-(float(sample_i) * float(exp_scale))))`` and
``inv_table[i] = inv_table_t(1.0f / float(sample_i))``. ``expf`` is computed as
``np.float32(math.exp(x))``; a prior comparison against glibc's ``expf`` found no differing
entry in hls4ml's default tables (``fixed<16,6>`` input, 1024 entries, ``fixed<18,8,RND,SAT>``).
Each float converts to the table format as ``ap_fixed_base(double)`` does: its exact value,
rounded and overflowed by the table format's modes (:func:`nnfab.tables.quantize_exact`).
``1.0f / 0`` is ``+inf``, which ``ap_fixed_base(double)`` reads from its bit pattern as the value
``2**1024``: the maximum code under SAT and SAT_SYM, 0 under SAT_ZERO and WRAP. The entry is
never used when ``accum_format`` holds 1 (then ``exp_sum >= 1``).
"""

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .fixed import FixedFormat
from .tables import quantize_exact

__all__ = ["Hls4mlSoftmaxSpec", "hls4ml_table_sizes", "reduce_order", "check_hls4ml_softmax"]

#: Largest table: its samples (at most this many significant bits) are exact in float32.
_MAX_TABLE_LOG2 = 24
#: ``ap_fixed_base(double)`` reads +-inf's bit pattern as +-2**1024.
_INF_VALUE = Fraction(2) ** 1024

_FORMAT_FIELDS = ("input_format", "output_format", "accum_format", "exp_table_format",
                  "inv_table_format", "inv_input_format")


def _check_int(value, name):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Softmax {name} must be an integer, not {value!r}")


def _check_table_size(size, name, fmt, what):
    """A power of two from 2 to ``2**min(fmt.width, 24)``: a table indexed by the top bits of
    ``fmt``'s codes, whose samples are exact in float32."""
    _check_int(size, name)
    limit = 1 << min(fmt.width, _MAX_TABLE_LOG2)
    if not 2 <= size <= limit or size & (size - 1):
        raise ValueError(
            f"Softmax {name} must be a power of two from 2 to {limit} (2**W of {what} {fmt}, "
            f"at most 2**{_MAX_TABLE_LOG2}), not {size!r}")
    # Samples run from 2**(I - N) up to 2**(I - 1) (signed) or below 2**I: float32 normals.
    n_bits = size.bit_length() - 1
    if not (n_bits - 126 <= fmt.integer_width <= 128):
        raise ValueError(
            f"Softmax {name} {size!r} samples {what} {fmt} outside float32's normal range: "
            f"its integer width must be from {n_bits - 126} to 128")


def hls4ml_table_sizes(table_size, input_format, inv_table_format):
    """The exp and inverse table sizes that hls4ml 1.3 gives a stable softmax whose config says
    ``table_size`` (Vivado/Vitis backends).

    ``FixSoftmaxTableSize`` (``backends/fpga/passes/fix_softmax_table_size.py``) lowers
    ``table_size`` to ``2**min(W_in, W_inv_table)`` when that is smaller; then
    ``SoftmaxConfigTemplate.format`` (``backends/vivado/passes/core_templates.py``) sets
    ``inv_table_size = table_size`` and, for a signed input, ``exp_table_size =
    min(table_size, 2**(W_in - 1))``. (The pass skips a layer that sets ``inv_table_size``
    itself; then use that size.)

    Parameters
    ----------
    table_size : int, >= 1
        The layer's ``table_size`` (hls4ml's default is 1024).
    input_format : FixedFormat
        The softmax input (the previous layer's ``result_t``).
    inv_table_format : FixedFormat
        ``inv_table_t``.

    Returns
    -------
    (int, int)
        ``(exp_table_size, inv_table_size)``. hls4ml does not check that they are powers of
        two; :class:`Hls4mlSoftmaxSpec` does.

    Raises
    ------
    TypeError
        If ``table_size`` is not an integer or a format not a FixedFormat.
    ValueError
        If ``table_size`` is not positive.
    """
    _check_int(table_size, "table_size")
    if table_size < 1:
        raise ValueError(f"Softmax table_size must be a positive integer, not {table_size!r}")
    for name, fmt in (("input_format", input_format), ("inv_table_format", inv_table_format)):
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Softmax {name} must be a FixedFormat, not {fmt!r}")
    table_size = min(table_size, 1 << min(input_format.width, inv_table_format.width))
    exp_table_size = table_size
    if input_format.signed:
        exp_table_size = min(table_size, 1 << (input_format.width - 1))
    return exp_table_size, table_size


def reduce_order(n):
    """hls4ml's balanced reduction tree over ``n`` items (``nnet::reduce``, ``nnet_common.h``),
    as nested pairs of item indices: ``reduce_order(3) == ((0, 1), 2)``.

    ``reduce(x, 1) = x[0]``; ``reduce(x, 2) = op(x[0], x[1])``; otherwise, with ``left`` the
    largest power of two below ``n``, ``op(reduce(x, left), reduce(x + left, n - left))``.
    """
    def tree(start, count):
        if count == 1:
            return start
        if count == 2:
            return (start, start + 1)
        left = 1 << ((count - 1).bit_length() - 1)
        return (tree(start, left), tree(start + left, count - left))
    return tree(0, n)


def _float32_to_code(value, fmt):
    """``fmt``'s code of a float32, as ``ap_fixed_base(double)`` converts it (inf as 2**1024)."""
    value = float(value)
    if math.isinf(value):
        exact = _INF_VALUE if value > 0 else -_INF_VALUE
    else:
        exact = Fraction(value)
    return quantize_exact(exact, fmt)


def _samples(fmt, size):
    """float32 values of ``fmt`` whose top ``log2(size)`` bits are ``i`` and the rest 0
    (``softmax_real_val_from_idx``), signed when ``fmt`` is."""
    n_bits = size.bit_length() - 1
    values = []
    for i in range(size):
        bits = i << (fmt.width - n_bits)
        values.append(np.float32(fmt.bits_to_code(bits) * fmt.lsb))
    return values


@functools.lru_cache(maxsize=64)
def _exp_table(norm_format, size, table_format, exp_scale):
    scale = np.float32(exp_scale)
    codes = []
    with np.errstate(over="ignore"):
        for sample in _samples(norm_format, size):
            x = -(sample * scale)
            e = np.float32(math.exp(x) if x < 709 else math.inf)  # expf
            codes.append(_float32_to_code(e, table_format))
    return tuple(codes)


@functools.lru_cache(maxsize=64)
def _inv_table(inv_input_format, size, table_format):
    with np.errstate(divide="ignore"):
        return tuple(_float32_to_code(np.float32(1) / sample, table_format)
                     for sample in _samples(inv_input_format, size))


@dataclass(frozen=True, kw_only=True)
class Hls4mlSoftmaxSpec:
    """Parameters of hls4ml's stable softmax over vectors of ``n`` elements.

    The arithmetic is in the module docstring. Rounding and overflow modes of every format
    apply where hls4ml casts to it.

    Parameters
    ----------
    n : int, >= 1
        Elements per vector (hls4ml's ``n_slice``).
    input_format : FixedFormat
        ``data_T``, the input; a signed one needs at least 2 bits.
    output_format : FixedFormat
        ``result_t``.
    accum_format : FixedFormat
        ``accum_t``: exponentials and every partial sum.
    exp_table_format, inv_table_format : FixedFormat
        ``exp_table_t``, ``inv_table_t``: table entries.
    inv_input_format : FixedFormat
        ``inv_inp_t``: the sum of exponentials, whose top bits index the inverse table.
    exp_table_size, inv_table_size : int
        Entries, powers of two from 2 to ``2**W`` of the format they index (``norm_format``,
        ``inv_input_format``) and at most ``2**24``; :func:`hls4ml_table_sizes` derives them
        from a config's ``table_size``.
    exp_scale : float, default 1.0
        Scale of the exponent (hls4ml's ``exp_scale``, rounded to float32).

    Raises
    ------
    TypeError
        If a field has the wrong type (``n``, table sizes: int; formats: FixedFormat;
        ``exp_scale``: int or float).
    ValueError
        If ``n`` is not positive, a signed input has 1 bit, ``exp_scale`` is not finite, a table
        size is not a power of two, exceeds its limit, or gives samples outside float32's
        normal range.

    Examples
    --------
    hls4ml's defaults for a ``fixed<16,6>`` model, 1024-entry tables::

        t, x = FixedFormat.parse("fixed<18,8,RND,SAT>"), FixedFormat.parse("fixed<16,6>")
        spec = Hls4mlSoftmaxSpec.from_hls4ml(
            n=5, input_format=x, output_format=x, accum_format=x, exp_table_format=t,
            inv_table_format=t, inv_input_format=t, table_size=1024)
    """

    n: int
    input_format: FixedFormat
    output_format: FixedFormat
    accum_format: FixedFormat
    exp_table_format: FixedFormat
    inv_table_format: FixedFormat
    inv_input_format: FixedFormat
    exp_table_size: int
    inv_table_size: int
    exp_scale: float = 1.0

    def __post_init__(self):
        _check_int(self.n, "n")
        if self.n < 1:
            raise ValueError(f"Softmax n must be a positive integer, not {self.n!r}")
        for name in _FORMAT_FIELDS:
            fmt = getattr(self, name)
            if not isinstance(fmt, FixedFormat):
                raise TypeError(f"Softmax {name} must be a FixedFormat, not {fmt!r}")
        if self.input_format.signed and self.input_format.width < 2:
            raise ValueError(f"Softmax input_format must have at least 2 bits when signed "
                             f"(inp_norm_t has one bit less), not {self.input_format}")
        scale = self.exp_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"Softmax exp_scale must be a float, not {scale!r}")
        if not math.isfinite(scale):
            raise ValueError(f"Softmax exp_scale must be finite, not {scale!r}")
        object.__setattr__(self, "exp_scale", float(scale))
        _check_table_size(self.exp_table_size, "exp_table_size", self.norm_format,
                          "inp_norm_t")
        _check_table_size(self.inv_table_size, "inv_table_size", self.inv_input_format,
                          "inv_inp_t")

    @classmethod
    def from_hls4ml(cls, *, n, input_format, output_format, accum_format, exp_table_format,
                    inv_table_format, inv_input_format, table_size=1024, exp_scale=1.0):
        """The spec of an hls4ml layer configured with ``table_size``: table sizes from
        :func:`hls4ml_table_sizes`. Raises as it and the constructor."""
        exp_size, inv_size = hls4ml_table_sizes(table_size, input_format, inv_table_format)
        return cls(n=n, input_format=input_format, output_format=output_format,
                   accum_format=accum_format, exp_table_format=exp_table_format,
                   inv_table_format=inv_table_format, inv_input_format=inv_input_format,
                   exp_table_size=exp_size, inv_table_size=inv_size, exp_scale=exp_scale)

    @property
    def norm_format(self):
        """``inp_norm_t``: ``ufixed<W - s, I - s>`` (TRN, WRAP) of the input's W, I; s = 1 when
        the input is signed, else 0."""
        s = int(self.input_format.signed)
        return FixedFormat(self.input_format.width - s, self.input_format.integer_width - s,
                           signed=False)

    @property
    def exp_index_width(self):
        """N_e = log2(``exp_table_size``), bits of an exp table index."""
        return self.exp_table_size.bit_length() - 1

    @property
    def inv_index_width(self):
        """N_i = log2(``inv_table_size``), bits of an inverse table index."""
        return self.inv_table_size.bit_length() - 1

    @property
    def exp_index_shift(self):
        """W' - N_e: the exp index is ``norm_code >> exp_index_shift``."""
        return self.norm_format.width - self.exp_index_width

    @property
    def inv_index_shift(self):
        """W_i - N_i: the inverse index is ``bits >> inv_index_shift``, ``bits`` the unsigned
        W_i-bit pattern of an ``inv_input_format`` code."""
        return self.inv_input_format.width - self.inv_index_width

    def exp_index(self, norm_codes):
        """Exp table index of ``norm_format`` codes (int, or NumPy integer array)."""
        return (norm_codes >> self.exp_index_shift) & (self.exp_table_size - 1)

    def inv_index(self, inv_input_codes):
        """Inverse table index of ``inv_input_format`` codes (int, or NumPy integer array),
        from their two's complement bit pattern."""
        bits = inv_input_codes & ((1 << self.inv_input_format.width) - 1)
        return (bits >> self.inv_index_shift) & (self.inv_table_size - 1)

    @property
    def exp_table_codes(self):
        """``exp_table_size`` codes of ``exp_table_format`` (computed once, cached)."""
        return _exp_table(self.norm_format, self.exp_table_size, self.exp_table_format,
                          self.exp_scale)

    @property
    def inv_table_codes(self):
        """``inv_table_size`` codes of ``inv_table_format`` (computed once, cached)."""
        return _inv_table(self.inv_input_format, self.inv_table_size, self.inv_table_format)


def check_hls4ml_softmax(spec):
    """``spec`` if it is an :class:`Hls4mlSoftmaxSpec`; TypeError else (the hardware's and the
    golden model's message)."""
    if not isinstance(spec, Hls4mlSoftmaxSpec):
        raise TypeError(f"Softmax spec must be an Hls4mlSoftmaxSpec, not {spec!r}")
    return spec
