"""The ``argmax`` layer kind: the index of the largest value of a vector."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.fixed import FixedFormat

import numpy as np

from .float_layer import FloatLayer
from .model import Layer
from .registry import register

__all__ = ['argmax_format', 'ArgmaxLayer', 'FloatArgmax']


def argmax_format(n):
    """Format of an argmax index over ``n`` values: ``ufixed<w,w>`` with ``w = max(1,
    ceil(log2 n))``, matching :class:`nnfab.hdl.activations.Argmax`."""
    width = max(1, (n - 1).bit_length())
    return FixedFormat(width, width, signed=False)

@register
@dataclass(frozen=True)
class ArgmaxLayer(Layer):
    """Index of the largest of ``n`` values, first on ties (:class:`nnfab.hdl.activations.Argmax`)."""

    kind: ClassVar[str] = "argmax"
    native_keys: ClassVar[dict] = {}
    n: int = 1
    fin: FixedFormat = None

    @property
    def input_shape(self):
        return (self.n,)

    @property
    def output_shape(self):
        return (1,)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return argmax_format(self.n)

    def describe(self):
        return f"argmax over {self.n}"

    @classmethod
    def from_native(cls, e):
        return cls(e.name, n=e.shape[-1], fin=e.fmt)

    def to_native(self, entry, out):
        pass


@register
@dataclass(frozen=True, eq=False)
class FloatArgmax(FloatLayer):
    kind: ClassVar[str] = "argmax"
    name: str

    def output_shape(self, input_shape):
        return (1,)

    def forward(self, x):
        return np.argmax(x, axis=-1)[:, None].astype(np.float64)

    @classmethod
    def from_native(cls, e):
        return cls(e.name)

    def to_native(self, entry, out):
        pass

    def quantize(self, s):
        return ArgmaxLayer(self.name, n=s.shape[-1], fin=s.fmt)
