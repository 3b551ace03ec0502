"""The ``softmax`` layer kind: a table-based softmax over a vector."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.fixed import FixedFormat
from nnfab.tables import LookupTable

from .model import Layer

__all__ = ['SoftmaxLayer']


@dataclass(frozen=True)
class SoftmaxLayer(Layer):
    """Table-based softmax over a vector of ``n`` values
    (:class:`nnfab.hdl.activations.Softmax`)."""

    kind: ClassVar[str] = "softmax"
    n: int = 1
    fin: FixedFormat = None
    fout: FixedFormat = None
    exp_table: LookupTable | None = None
    inv_table: LookupTable | None = None

    @property
    def input_shape(self):
        return (self.n,)

    @property
    def output_shape(self):
        return (self.n,)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return self.fout

    def describe(self):
        return f"table softmax, out {self.fout}"
