"""The ``pool`` and ``global_pool`` layer kinds: windowed and global max or average pooling.

Images are channels-last ``(H, W, C)`` frames streamed one pixel (``C`` lanes) per
transfer. The layer wraps a specification of :mod:`nnfab.conv_layers`.
"""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec

from .model import Layer

__all__ = ['PoolLayer', 'GlobalPoolLayer']


@dataclass(frozen=True)
class PoolLayer(Layer):
    kind: ClassVar[str] = "pool"
    spec: PoolSpec = None

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: tuple(self.spec.output_shape))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    def describe(self):
        return f"{self.spec.kind} pool {self.spec.pool_size}"

@dataclass(frozen=True)
class GlobalPoolLayer(Layer):
    kind: ClassVar[str] = "global_pool"
    spec: GlobalPoolSpec = None

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: (self.spec.n_channels,))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)
