"""Layer specifications: the numbers and formats of a layer, shared by hardware and golden model.

A specification is plain data (NumPy arrays of raw codes and :class:`~nnfab.fixed.FixedFormat`
objects), validated once. The hardware engines (``nnfab.hdl``) and the golden models
(``nnfab.sim.golden``) both take it, so neither repeats the other's format arithmetic.
"""

from dataclasses import dataclass

import numpy as np

from .fixed import MAX_ACCUMULATOR_WIDTH, FixedFormat

__all__ = ["mac_accumulator_format", "check_accumulator", "code_array", "DenseSpec",
           "reuse_factors", "rom_reuse_factors", "rom_folding", "rom_requantizer_keeps_pace",
           "rom_requantizer_shortfall"]


def reuse_factors(n_in, n_out=None):
    """The reuse factors a fully connected product of ``n_in`` inputs and ``n_out`` outputs
    can take, ascending: the divisors of ``n_in`` (each multiplier serves one output, R of its
    inputs), and with ``n_out`` given also ``n_in * g`` for every divisor ``g > 1`` of ``n_out``
    (each multiplier serves ``g`` outputs, all their inputs). This is hls4ml's rule
    (``_validate_reuse_factor`` of its Vivado backend): ``R`` divides ``n_in`` or is a
    multiple of it, and divides ``n_in * n_out``."""
    divisors = [r for r in range(1, n_in + 1) if n_in % r == 0]
    if n_out is None:
        return divisors
    return divisors + [n_in * g for g in range(2, n_out + 1) if n_out % g == 0]


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def rom_reuse_factors(n_in, n_out):
    """Reuse factors of a fully connected layer with its weights in a ROM
    (:class:`nnfab.hdl.dense_rom.DenseRomEngine`) of ``n_in`` inputs and ``n_out`` outputs:
    every product of a divisor of ``n_in`` and a divisor of ``n_out``, ascending."""
    return sorted({a * b for a in _divisors(n_in) for b in _divisors(n_out)})


def rom_folding(n_in, n_out, reuse_factor):
    """``(n_chunks, outputs_per_pe)`` of a ROM layer's reuse factor, the most input folding
    first: ``n_chunks`` is the largest divisor of ``n_in`` such that ``reuse_factor /
    n_chunks`` divides ``n_out``. None if ``reuse_factor`` is not one of
    :func:`rom_reuse_factors`."""
    for n_chunks in reversed(_divisors(n_in)):
        if reuse_factor % n_chunks == 0 and n_out % (reuse_factor // n_chunks) == 0:
            return n_chunks, reuse_factor // n_chunks
    return None


#: Cycles a ROM layer's requantizer lane adds after the last accumulator it takes: two register
#: stages and the write of the result (:class:`nnfab.hdl.dense_rom.DenseRomEngine`).
ROM_REQUANTIZER_CYCLES = 3


def rom_requantizer_keeps_pace(n_in, n_out, reuse_factor):
    """Whether one time-shared requantizer lane inside a ROM layer keeps its pace: its
    ``n_pe = n_out / outputs_per_pe`` processing elements finish their accumulators together
    every ``n_chunks`` beats (:func:`rom_folding`), and the lane takes them one per cycle and
    writes the last result :data:`ROM_REQUANTIZER_CYCLES` cycles later, so it keeps the layer's
    initiation interval when ``n_pe + 3 <= n_chunks``."""
    folding = rom_folding(n_in, n_out, reuse_factor)
    return folding is not None and rom_requantizer_shortfall(n_in, n_out, reuse_factor) is None


def rom_requantizer_shortfall(n_in, n_out, reuse_factor):
    """Why the requantizer lane of :func:`rom_requantizer_keeps_pace` would not keep a ROM
    layer's pace at ``reuse_factor`` (one of :func:`rom_reuse_factors`), as message text
    (``"n_pe + 3 <= n_chunks, not 4 + 3 > 6"``), or None if it does."""
    n_chunks, outputs_per_pe = rom_folding(n_in, n_out, reuse_factor)
    n_pe = n_out // outputs_per_pe
    if n_pe + ROM_REQUANTIZER_CYCLES <= n_chunks:
        return None
    return (f"n_pe + {ROM_REQUANTIZER_CYCLES} <= n_chunks, not {n_pe} + "
            f"{ROM_REQUANTIZER_CYCLES} > {n_chunks}")


def mac_accumulator_format(a_format, b_format, max_terms, accumulator_format=None):
    """The format a multiply-accumulate sums in: ``accumulator_format`` when given (every
    product is cast to it, with its rounding and overflow modes, and the sum wraps modulo
    ``2**W``, as hls4ml's ``accum_t``), else the exact format of a sum of ``max_terms``
    products of ``a_format`` and ``b_format``, which cannot overflow."""
    if accumulator_format is not None:
        return accumulator_format
    return a_format.mul_format(b_format).sum_format(max_terms)


def check_accumulator(fmt, what="Accumulator"):
    """Raise ``ValueError`` if accumulator format ``fmt`` is wider than
    :data:`~nnfab.fixed.MAX_ACCUMULATOR_WIDTH` bits (the generator's limit, see
    :mod:`nnfab.fixed`)."""
    if fmt.width > MAX_ACCUMULATOR_WIDTH:
        raise ValueError(f"{what} {fmt} is {fmt.width} bits wide; nnfab builds accumulators of "
                         f"at most {MAX_ACCUMULATOR_WIDTH} bits (narrow the operand formats or "
                         f"bring their binary points closer)")


def code_array(values, fmt, what, shape):
    """``values`` checked as raw codes of ``fmt`` in an array of ``shape``: a read-only object
    array of Python integers, as the layer specifications store their constants.

    Parameters
    ----------
    values : array_like of int
    fmt : FixedFormat
    what : str
        What the codes are, capitalized (``"Weight"``, ``"Bias"``), for the error messages.
    shape : tuple of int
        The shape ``values`` must have.

    Raises
    ------
    TypeError
        If ``values`` holds non-integers.
    ValueError
        If the shape differs or a code is outside ``fmt.min_code .. fmt.max_code``.
    """
    array = np.asarray(values)
    if array.dtype == object:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in array.flat):
            raise TypeError(f"{what} must be integer codes")
    elif not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must be integer codes, not {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, not {array.shape}")
    bad = (array < fmt.min_code) | (array > fmt.max_code)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        code = int(array[index])
        raise ValueError(
            f"{what} code {code} at {index} does not fit {fmt} "
            f"(codes {fmt.min_code} to {fmt.max_code})")
    result = np.array([int(v) for v in array.flat], dtype=object).reshape(shape)
    result.flags.writeable = False
    return result


@dataclass(frozen=True, eq=False)
class DenseSpec:
    """A fully connected layer ``y = cast(W @ x + b, output_format)``.

    Parameters
    ----------
    weights : array_like of int, shape (n_out, n_in)
        Raw weight codes in ``weight_format``.
    biases : array_like of int, shape (n_out,), or None
        Raw bias codes in ``bias_format``; None for no bias.
    input_format, weight_format, output_format : FixedFormat
        ``output_format``'s rounding and overflow modes apply to the final cast.
    bias_format : FixedFormat or None
        Required when ``biases`` is given.
    accumulator_format : FixedFormat or None
        None (the default) sums exactly: :attr:`accumulator` is then sized from the operand
        formats and ``n_in`` so that no sum can overflow. An explicit format works as
        hls4ml's ``accum_t``: every product and the bias are cast to it (with its rounding
        and overflow modes) and the sum wraps modulo ``2**W`` in it.

    Raises
    ------
    TypeError
        If a format is not a FixedFormat or codes are not integers.
    ValueError
        If shapes are inconsistent, a code does not fit its format or the accumulator is wider
        than :data:`~nnfab.fixed.MAX_ACCUMULATOR_WIDTH` bits.
    """

    weights: np.ndarray
    biases: np.ndarray | None
    input_format: FixedFormat
    weight_format: FixedFormat
    output_format: FixedFormat
    bias_format: FixedFormat | None = None
    accumulator_format: FixedFormat | None = None

    def __post_init__(self):
        for name in ("input_format", "weight_format", "output_format"):
            if not isinstance(getattr(self, name), FixedFormat):
                raise TypeError(f"{name.replace('_', ' ').capitalize()} must be a "
                                f"FixedFormat, not {getattr(self, name)!r}")
        for name in ("bias_format", "accumulator_format"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, FixedFormat):
                raise TypeError(f"{name.replace('_', ' ').capitalize()} must be a "
                                f"FixedFormat or None, not {value!r}")
        weights = np.asarray(self.weights)
        if weights.ndim != 2 or 0 in weights.shape:
            raise ValueError(f"Weights must be a non-empty (n_out, n_in) matrix, not of shape "
                             f"{weights.shape}")
        object.__setattr__(self, "weights",
                           code_array(weights, self.weight_format, "Weight", weights.shape))
        if self.biases is not None:
            if self.bias_format is None:
                raise ValueError("Bias format must be given with biases")
            object.__setattr__(self, "biases", code_array(
                self.biases, self.bias_format, "Bias", (weights.shape[0],)))
        check_accumulator(self.accumulator)

    @property
    def n_in(self):
        return self.weights.shape[1]

    @property
    def n_out(self):
        return self.weights.shape[0]

    @property
    def product_format(self):
        """Exact format of one ``x * w`` product."""
        return self.input_format.mul_format(self.weight_format)

    @property
    def accumulator(self):
        """The format the sum is formed in: ``accumulator_format``, or the exact format
        holding ``n_in`` products plus the bias without overflow (TRN/WRAP)."""
        if self.accumulator_format is not None:
            return self.accumulator_format
        total = mac_accumulator_format(self.input_format, self.weight_format, self.n_in)
        if self.biases is not None:
            total = total.add_format(self.bias_format)
        return total

    @property
    def exact_accumulation(self):
        return self.accumulator_format is None

    @property
    def n_nonzero_weights(self):
        return int(np.count_nonzero(self.weights != 0))
