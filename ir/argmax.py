"""The ``argmax`` layer kind: the index of the largest value of a vector."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.fixed import FixedFormat

from .model import Layer

__all__ = ['argmax_format', 'ArgmaxLayer']


def argmax_format(n):
    """Format of an argmax index over ``n`` values: ``ufixed<w,w>`` with ``w = max(1,
    ceil(log2 n))``, matching :class:`nnfab.hdl.activations.Argmax`."""
    width = max(1, (n - 1).bit_length())
    return FixedFormat(width, width, signed=False)

@dataclass(frozen=True)
class ArgmaxLayer(Layer):
    """Index of the largest of ``n`` values, first on ties (:class:`nnfab.hdl.activations.Argmax`)."""

    kind: ClassVar[str] = "argmax"
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
