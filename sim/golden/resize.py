"""Golden nearest-neighbour resize (upsampling by integer factors) of channels-last frames."""

import numpy as np

__all__ = ["upsample_nearest"]


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_size(size):
    """``size`` as a tuple ``(sh, sw)`` of positive integers.

    Raises
    ------
    TypeError
        If ``size`` is not a pair of integers.
    ValueError
        If a factor is below 1.
    """
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(map(_is_int, size)):
        raise TypeError(f"Size must be a pair of integers (sh, sw), not {size!r}")
    if min(size) < 1:
        raise ValueError(f"Size must hold positive integers, not {size!r}")
    return tuple(int(s) for s in size)


def upsample_nearest(x, size):
    """Nearest-neighbour upsampling: ``out[b, r, c] = x[b, r // sh, c // sw]``.

    ONNX ``Resize`` with ``mode="nearest"`` and integer scales ``(1, sh, sw, 1)`` (channels
    last), Keras ``UpSampling2D(size, interpolation="nearest")``. Codes pass unchanged, so no
    format is involved.

    Parameters
    ----------
    x : array_like of int, shape (batch, H, W, C)
    size : (int, int), each >= 1
        ``(sh, sw)``.

    Returns
    -------
    ndarray, shape (batch, H * sh, W * sw, C)
        The codes of ``x``, same dtype.

    Raises
    ------
    TypeError
        If ``size`` is not a pair of integers.
    ValueError
        If a factor is below 1 or ``x`` is not four-dimensional.
    """
    sh, sw = check_size(size)
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"Input must have shape (batch, H, W, C), not {x.shape!r}")
    return np.repeat(np.repeat(x, sh, axis=1), sw, axis=2)
