"""Golden per-channel scale and shift (see :class:`nnfab.conv_layers.BatchNormSpec`)."""

from nnfab.casts import as_codes, cast
from nnfab.conv_layers import BatchNormSpec

__all__ = ["batchnorm"]


def batchnorm(x, spec):
    """``cast(x * scale + shift, output_format)`` per channel, exact before the cast.

    Parameters
    ----------
    x : array_like of int, shape (..., C)
        Codes of ``spec.input_format``; the last axis is the channel.
    spec : BatchNormSpec

    Returns
    -------
    ndarray of codes of ``spec.output_format``, same shape.
    """
    if not isinstance(spec, BatchNormSpec):
        raise TypeError(f"Layer must be a BatchNormSpec, not {spec!r}")
    x = as_codes(x, spec.input_format)
    if x.shape[-1:] != (spec.n_channels,):
        raise ValueError(f"Inputs must have {spec.n_channels} channels, not shape {x.shape}")
    fs, fp = spec.sum_format.fraction_width, spec.product_format.fraction_width
    total = (x.astype(object) * spec.scale << (fs - fp)) + \
        (spec.shift << (fs - spec.shift_format.fraction_width))
    return cast(total, spec.sum_format, spec.output_format)
