"""Golden models of pooling (see :class:`nnfab.conv_layers.PoolSpec` and
:class:`~nnfab.conv_layers.GlobalPoolSpec`); averages are :func:`nnfab.casts.divide_cast`."""

from nnfab.casts import as_codes, cast, divide_cast
from nnfab.conv_layers import GlobalPoolSpec, PoolSpec

from .conv import windows

__all__ = ["pool", "global_pool"]


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
