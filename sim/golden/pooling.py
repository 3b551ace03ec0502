"""Golden models of pooling (see :class:`nnfab.conv_layers.PoolSpec` and
:class:`~nnfab.conv_layers.GlobalPoolSpec`), and the exact divide-then-cast of averages."""

import numpy as np

from nnfab.casts import _increment, as_codes, cast
from nnfab.conv_layers import GlobalPoolSpec, PoolSpec
from nnfab.fixed import FixedFormat

from .conv import windows

__all__ = ["divide_cast", "pool", "global_pool"]


def divide_cast(codes, src, divisor, dst):
    """Codes of ``src`` divided by the positive integer ``divisor`` and cast to ``dst``, as if
    the quotient were exact: ``dst``'s rounding from the exact remainder, then its overflow.

    Returns
    -------
    ndarray of codes of ``dst``, same shape as ``codes``.
    """
    shift = dst.fraction_width - src.fraction_width
    num = np.asarray(codes).astype(object) * (1 << max(shift, 0))
    den = divisor << max(-shift, 0)
    q = num // den
    r = num - q * den
    qb = (2 * r >= den)
    rest = (r != 0) & (2 * r != den)
    inc = _increment(dst.rounding, qb=qb, rest=rest, neg=num < 0, odd=(q & 1) == 1)
    rounded = q + inc.astype(object)
    bits = max([abs(int(v)).bit_length() for v in np.ravel(rounded)] + [dst.width]) + 2
    wide = FixedFormat(bits, bits - dst.fraction_width)
    return cast(rounded, wide, dst)


def pool(x, spec):
    """Golden max or average pooling.

    Parameters
    ----------
    x : array_like of int, shape (batch, H, W, C)
        Codes of ``spec.input_format``.
    spec : PoolSpec

    Returns
    -------
    ndarray, shape (batch, H_out, W_out, C)
        Codes of ``spec.output_format``.
    """
    if not isinstance(spec, PoolSpec):
        raise TypeError(f"Layer must be a PoolSpec, not {spec!r}")
    x = as_codes(x, spec.input_format)
    if x.ndim != 4 or x.shape[1:] != spec.input_shape:
        raise ValueError(f"Inputs must have shape (batch, {', '.join(map(str, spec.input_shape))}"
                         f"), not {x.shape}")
    win = windows(x, spec, spec.pad_code)
    if spec.kind == "max":
        return cast(win.max(axis=(3, 4)), spec.input_format, spec.output_format)
    total = win.astype(object).sum(axis=(3, 4))
    return divide_cast(total, spec.sum_format, spec.n_window, spec.output_format)


def global_pool(x, spec):
    """Golden global pooling: ``x`` of shape (batch, H, W, C) to (batch, C)."""
    if not isinstance(spec, GlobalPoolSpec):
        raise TypeError(f"Layer must be a GlobalPoolSpec, not {spec!r}")
    x = as_codes(x, spec.input_format)
    if spec.kind == "max":
        return cast(x.max(axis=(1, 2)), spec.input_format, spec.output_format)
    total = x.astype(object).sum(axis=(1, 2))
    return divide_cast(total, spec.sum_format, spec.n_pixels, spec.output_format)
