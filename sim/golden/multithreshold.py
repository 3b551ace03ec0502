"""Golden model of the ``multithreshold`` layer (FINN's ``MultiThreshold`` on integers)."""

import numpy as np

__all__ = ["multithreshold"]


def multithreshold(x, thresholds, base):
    """``base + #{k : x[..., c] >= thresholds[c, k]}`` for every channel ``c`` (last axis).

    Parameters
    ----------
    x : array_like of int, shape (..., channels)
        Integer accumulators.
    thresholds : array_like of int, shape (channels, K)
    base : int

    Returns
    -------
    numpy.ndarray of int64, the shape of ``x``
    """
    x = np.asarray(x, dtype=np.int64)
    t = np.asarray(thresholds, dtype=np.int64)
    return base + (x[..., None] >= t).sum(axis=-1, dtype=np.int64)
