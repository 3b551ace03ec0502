"""The ``flatten`` and ``zero_pad`` layer kinds: frames to vectors, and zero padding of frames."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.fixed import FixedFormat

from .model import Layer

__all__ = ['FlattenLayer', 'ZeroPadLayer']


@dataclass(frozen=True)
class FlattenLayer(Layer):
    """``(H, W, C)`` frames to ``H * W * C`` vectors (row, column, channel order)."""

    kind: ClassVar[str] = "flatten"
    shape: tuple = ()
    fmt: FixedFormat = None

    input_shape = property(lambda self: tuple(self.shape))
    output_shape = property(lambda self: (int(np.prod(self.shape)),))
    input_format = property(lambda self: self.fmt)
    output_format = property(lambda self: self.fmt)

@dataclass(frozen=True)
class ZeroPadLayer(Layer):
    kind: ClassVar[str] = "zero_pad"
    shape: tuple = ()
    padding: tuple = ((0, 0), (0, 0))
    fmt: FixedFormat = None

    input_shape = property(lambda self: tuple(self.shape))
    output_shape = property(lambda self: (self.shape[0] + sum(self.padding[0]),
                                          self.shape[1] + sum(self.padding[1]), self.shape[2]))
    input_format = property(lambda self: self.fmt)
    output_format = property(lambda self: self.fmt)
