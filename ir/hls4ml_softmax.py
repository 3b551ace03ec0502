"""IR layers that reproduce hls4ml's own arithmetic where it differs from nnfab's layers."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.softmax_hls4ml import Hls4mlSoftmaxSpec

from .model import Layer

__all__ = ["Hls4mlSoftmaxLayer"]


@dataclass(frozen=True)
class Hls4mlSoftmaxLayer(Layer):
    """hls4ml's ``stable`` softmax over a vector (:class:`nnfab.softmax_hls4ml.Hls4mlSoftmaxSpec`,
    built by :class:`nnfab.hdl.softmax_hls4ml.Hls4mlSoftmax`)."""

    kind: ClassVar[str] = "hls4ml_softmax"
    spec: Hls4mlSoftmaxSpec = None

    def __post_init__(self):
        if not isinstance(self.spec, Hls4mlSoftmaxSpec):
            raise ModelError(f"Layer {self.name!r}: needs an Hls4mlSoftmaxSpec, not "
                             f"{self.spec!r}")

    input_shape = property(lambda self: (self.spec.n,))
    output_shape = property(lambda self: (self.spec.n,))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    def describe(self):
        s = self.spec
        return (f"hls4ml stable softmax, exp table {s.exp_table_size} x {s.exp_table_format}, "
                f"inv table {s.inv_table_size} x {s.inv_table_format}, out {s.output_format}")


