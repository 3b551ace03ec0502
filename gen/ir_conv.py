"""IR layers for images: convolution, pooling, batch normalization, padding and flatten.

Images are channels-last ``(H, W, C)`` frames streamed one pixel (``C`` lanes) per transfer.
Each layer wraps a specification of :mod:`nnfab.conv_layers` and names its engine
(:meth:`engine`) and golden model (:meth:`golden`), which the assembler and the golden network
model use for layer kinds they do not know themselves.
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

    @property
    def n_multipliers(self):
        engine = self.engine()
        engine._MustUse__silence = True  # built only to count
        return engine.n_multipliers

    def describe(self):
        s = self.spec
        return (f"{s.kernel_size} kernel, {s.n_filters} filters, stride {s.strides}, "
                f"{s.padding}, w {s.weight_format}, R={self.reuse_factor}")

    def golden(self, x):
        from nnfab.sim.golden.conv import conv2d

        return conv2d(x, self.spec)

    def engine(self):
        from nnfab.hdl.conv import ConvEngine

        return ConvEngine(self.spec, reuse_factor=self.reuse_factor)


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

    def golden(self, x):
        from nnfab.sim.golden.pooling import pool

        return pool(x, self.spec)

    def engine(self):
        from nnfab.hdl.pooling import PoolEngine

        return PoolEngine(self.spec)


@dataclass(frozen=True)
class GlobalPoolLayer(Layer):
    kind: ClassVar[str] = "global_pool"
    spec: GlobalPoolSpec = None

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: (self.spec.n_channels,))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    def golden(self, x):
        from nnfab.sim.golden.pooling import global_pool

        return global_pool(x, self.spec)

    def engine(self):
        from nnfab.hdl.pooling import GlobalPoolEngine

        return GlobalPoolEngine(self.spec)


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

    def golden(self, x):
        from nnfab.sim.golden.batchnorm import batchnorm

        return batchnorm(x, self.spec)

    def engine(self):
        from nnfab.hdl.batchnorm import BatchNormEngine

        return BatchNormEngine(self.spec)


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

    def golden(self, x):
        from nnfab.sim.golden.layout import flatten

        return flatten(x)

    def engine(self):
        from nnfab.hdl.cast import fixed_shape
        from nnfab.hdl.layout import Flatten

        return Flatten(input_shape=tuple(self.shape), shape=fixed_shape(self.fmt))


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

    def golden(self, x):
        from nnfab.sim.golden.layout import zero_pad

        return zero_pad(x, self.padding)

    def engine(self):
        from nnfab.hdl.cast import fixed_shape
        from nnfab.hdl.layout import ZeroPadding

        return ZeroPadding(input_shape=tuple(self.shape), padding=tuple(map(tuple, self.padding)),
                           shape=fixed_shape(self.fmt))
