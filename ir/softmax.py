"""The ``softmax`` layer kind: a table-based softmax over a vector."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.fixed import FixedFormat
from nnfab.tables import LookupTable

import numpy as np

from .float_layer import FloatLayer
from .model import Layer
from .native_keys import FORMAT
from .registry import register

__all__ = ['SoftmaxLayer', 'FloatSoftmax']


@register
@dataclass(frozen=True)
class SoftmaxLayer(Layer):
    """Table-based softmax over a vector of ``n`` values
    (:class:`nnfab.hdl.softmax.Softmax`)."""

    kind: ClassVar[str] = "softmax"
    native_keys: ClassVar[dict] = {"output_format": FORMAT}
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

    @classmethod
    def from_native(cls, e):
        return cls(e.name, n=e.shape[-1], fin=e.fmt, fout=e.format("output_format"))

    def to_native(self, entry, out):
        entry["output_format"] = str(self.output_format)


@register
@dataclass(frozen=True, eq=False)
class FloatSoftmax(FloatLayer):
    kind: ClassVar[str] = "softmax"
    name: str

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    @classmethod
    def from_native(cls, e):
        return cls(e.name)

    def to_native(self, entry, out):
        pass

    def quantize(self, s):
        """Output ``ufixed<activation_bits, 1>``."""
        return SoftmaxLayer(self.name, n=s.shape[-1], fin=s.fmt,
                            fout=FixedFormat(s.config.activation_bits, 1, signed=False,
                                             **s.modes))
