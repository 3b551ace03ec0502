"""Golden zero padding and flatten of channels-last frames."""

import numpy as np

__all__ = ["zero_pad", "flatten"]


def zero_pad(x, pads):
    """Frames (batch, H, W, C) padded with code 0 by ``((top, bottom), (left, right))``."""
    x = np.asarray(x)
    return np.pad(x, ((0, 0),) + tuple(tuple(p) for p in pads) + ((0, 0),))


def flatten(x):
    """Frames (batch, H, W, C) as vectors (batch, H * W * C) in row, column, channel order
    (Keras ``Flatten`` on channels-last data)."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)
