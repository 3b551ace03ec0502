"""What the PTQ rules of the layer kinds share: bit budgets (:class:`PTQConfig`), the format
choice from calibrated ranges and the :class:`PTQStep` a rule quantizes.

Formats are powers of two (no scale factors): every tensor gets ``fixed<B, I>`` with the bit
budget ``B`` and the fewest integer bits ``I`` that hold the tensor's largest magnitude, as
hls4ml's profiling-based precision choice does. :func:`nnfab.gen.ptq.quantize_model` runs the
float model and calls each float layer's ``quantize(step)``.
"""

import math
from dataclasses import dataclass

import numpy as np

from nnfab.casts import quantize
from nnfab.errors import ModelError
from nnfab.fixed import MAX_INTEGER_WIDTH, FixedFormat
from nnfab.layers import reuse_factors

__all__ = ["PTQConfig", "PTQStep", "integer_bits_for", "format_for", "nearest_codes",
           "named_spec", "fit_reuse"]


@dataclass(frozen=True)
class PTQConfig:
    """Bit budgets of post-training quantization.

    Parameters
    ----------
    weight_bits, bias_bits, activation_bits : int
        Total bits of weights, biases and every layer output.
    rounding, overflow : str
        Modes of every output cast (the storage formats of weights and biases are TRN/WRAP;
        their values are rounded to nearest when quantized).
    headroom_bits : int
        Extra integer bits on calibrated activation formats, for inputs beyond the
        calibration set.
    """

    weight_bits: int = 8
    bias_bits: int = 8
    activation_bits: int = 8
    rounding: str = "RND_CONV"
    overflow: str = "SAT"
    headroom_bits: int = 0

    def __post_init__(self):
        for name in ("weight_bits", "bias_bits", "activation_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 2 <= value <= 32:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be an integer "
                                 f"from 2 to 32, not {value!r}")


def integer_bits_for(max_abs, *, signed=True):
    """Fewest integer bits ``I`` (sign included) so that ``fixed<W,I>`` reaches ``max_abs``
    (up to one LSB below the next power of two)."""
    if max_abs <= 0:
        return 1 if signed else 0
    return math.floor(math.log2(max_abs)) + 1 + (1 if signed else 0)


def format_for(values, bits, *, signed=True, headroom=0, where="", **modes):
    """``fixed<bits, I>`` holding every value; ``where`` (``"Layer 'd1': weights"``) names the
    tensor in errors.

    Raises
    ------
    ModelError
        If a value is not finite or the format would be beyond the limits of
        :mod:`nnfab.fixed` (values beyond ``2**255`` or all below ``2**-256`` in magnitude).
    """
    max_abs = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if not math.isfinite(max_abs):
        raise ModelError(f"{where} reach {max_abs!r}; PTQ needs finite values (a float "
                         f"overflow in the model?)")
    integer = integer_bits_for(max_abs, signed=signed) + headroom
    if abs(integer) > MAX_INTEGER_WIDTH:
        raise ModelError(f"{where} need {integer} integer bits (largest magnitude "
                         f"{max_abs!r}); nnfab builds formats with -{MAX_INTEGER_WIDTH} to "
                         f"{MAX_INTEGER_WIDTH} integer bits")
    return FixedFormat(bits, integer, signed=signed, **modes)


def named_spec(name, make, *args, **kwargs):
    """A layer specification, its ValueError (e.g. an accumulator too wide) named by layer."""
    try:
        return make(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None


def nearest_codes(values, fmt):
    """Round ``values`` to nearest into ``fmt``, saturating, as codes of ``fmt``."""
    return quantize(values, fmt.replace(rounding="RND_CONV", overflow="SAT"))


def fit_reuse(reuse_factor, n_in, n_out=None):
    """The largest of :func:`~nnfab.layers.reuse_factors` ``(n_in, n_out)`` up to
    ``reuse_factor`` (without ``n_out``: the largest divisor of ``n_in``)."""
    return max(r for r in reuse_factors(n_in, n_out) if r <= reuse_factor)


@dataclass(frozen=True)
class PTQStep:
    """What a PTQ rule sees of one float layer: the ``(format, shape)`` of its inputs (as
    quantized so far), its float outputs over the calibration set (``out``) and its float
    inputs over it (``in_values``, one array per input)."""

    layer: object
    inputs: list
    out: np.ndarray
    config: PTQConfig
    modes: dict
    reuse_factor: int
    in_values: list = None

    fmt = property(lambda self: self.inputs[0][0])
    shape = property(lambda self: self.inputs[0][1])
    where = property(lambda self: f"Layer {self.layer.name!r}:")

    def output_format(self, **kwargs):
        """``activation_bits`` with the integer bits the calibration outputs need."""
        return format_for(self.out, self.config.activation_bits,
                          headroom=self.config.headroom_bits,
                          where=f"{self.where} outputs", **kwargs, **self.modes)

    def weight_formats(self):
        """``(weight format, bias format or None, bias codes or None)`` of the layer."""
        layer, config = self.layer, self.config
        w_fmt = format_for(layer.weights, config.weight_bits, where=f"{self.where} weights")
        b_fmt = format_for(layer.biases, config.bias_bits, where=f"{self.where} biases") \
            if layer.biases is not None else None
        return w_fmt, b_fmt, (None if b_fmt is None else nearest_codes(layer.biases, b_fmt))
