"""IR layers for images: convolution, pooling, batch normalization, padding and flatten.

Images are channels-last ``(H, W, C)`` frames streamed one pixel (``C`` lanes) per transfer.
Each layer wraps a specification of :mod:`nnfab.conv_layers`; its engine is looked up in
:data:`nnfab.gen.assemble.ENGINES` and its golden model in
:data:`nnfab.sim.golden.network.GOLDEN`.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.conv_layers import BatchNormSpec, Conv2DSpec, GlobalPoolSpec, PoolSpec
from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat

from .ir import Layer

__all__ = ["Conv2DLayer", "PoolLayer", "GlobalPoolLayer", "BatchNormLayer", "FlattenLayer",
           "ZeroPadLayer"]


def _valid_reuse(n_window, reuse_factor, name):
    if not isinstance(reuse_factor, int) or reuse_factor < 1 or n_window % reuse_factor:
        valid = [r for r in range(1, n_window + 1) if n_window % r == 0]
        raise ModelError(f"Layer {name!r}: reuse factor must divide the window size "
                         f"{n_window} (one of {', '.join(map(str, valid))}), "
                         f"not {reuse_factor!r}")


@dataclass(frozen=True)
class Conv2DLayer(Layer):
    """A 2-D, 1-D (height 1) or depthwise convolution with an optional fused activation."""

    kind: ClassVar[str] = "conv2d"
    spec: Conv2DSpec = None
    reuse_factor: int = 1

    def __post_init__(self):
        if not isinstance(self.spec, Conv2DSpec):
            raise ModelError(f"Layer {self.name!r}: needs a Conv2DSpec, not {self.spec!r}")
        _valid_reuse(self.spec.n_window, self.reuse_factor, self.name)

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: tuple(self.spec.output_shape))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.result_format)


    def describe(self):
        s = self.spec
        return (f"{s.kernel_size} kernel, {s.n_filters} filters, stride {s.strides}, "
                f"{s.padding}, w {s.weight_format}, R={self.reuse_factor}")


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


