"""The ``batchnorm`` layer kind: a batch normalization that could not be folded."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.conv_layers import BatchNormSpec

from .model import Layer

__all__ = ['BatchNormLayer']


@dataclass(frozen=True)
class BatchNormLayer(Layer):
    """A batch normalization that could not be folded: per-channel scale and shift."""

    kind: ClassVar[str] = "batchnorm"
    spec: BatchNormSpec = None
    shape: tuple = ()

    input_shape = property(lambda self: tuple(self.shape))
    output_shape = property(lambda self: tuple(self.shape))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)
