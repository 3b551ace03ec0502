"""The ``zero_pad`` and ``flatten`` layer kinds: zero padding of frames, and frames to
vectors."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import ShapeError
from nnfab.fixed import FixedFormat

from .float_layer import FloatLayer
from .model import Layer
from .native_keys import MAX_DIMENSION
from .registry import register

__all__ = ['FlattenLayer', 'ZeroPadLayer', 'FloatFlatten', 'FloatZeroPad']

_PADDING = {"type": "array", "minItems": 2, "maxItems": 2,
            "items": {"type": "array", "minItems": 2, "maxItems": 2,
                      "items": {"type": "integer", "minimum": 0, "maximum": MAX_DIMENSION}},
            "accepted": "[[top, bottom], [left, right]], integers >= 0"}


def _save_padding(layer, entry, out):
    entry["padding"] = [list(side) for side in layer.padding]


@register
@dataclass(frozen=True)
class ZeroPadLayer(Layer):
    kind: ClassVar[str] = "zero_pad"
    native_keys: ClassVar[dict] = {"padding": _PADDING}
    required_keys: ClassVar[tuple] = ("padding",)
    shape: tuple = ()
    padding: tuple = ((0, 0), (0, 0))
    fmt: FixedFormat = None

    input_shape = property(lambda self: tuple(self.shape))
    output_shape = property(lambda self: (self.shape[0] + sum(self.padding[0]),
                                          self.shape[1] + sum(self.padding[1]), self.shape[2]))
    input_format = property(lambda self: self.fmt)
    output_format = property(lambda self: self.fmt)

    @classmethod
    def from_native(cls, e):
        return e.spec(cls, e.name, shape=e.shape, padding=e.padding(), fmt=e.fmt)

    to_native = _save_padding


@register
@dataclass(frozen=True)
class FlattenLayer(Layer):
    """``(H, W, C)`` frames to ``H * W * C`` vectors (row, column, channel order)."""

    kind: ClassVar[str] = "flatten"
    native_keys: ClassVar[dict] = {}
    shape: tuple = ()
    fmt: FixedFormat = None

    input_shape = property(lambda self: tuple(self.shape))
    output_shape = property(lambda self: (int(np.prod(self.shape)),))
    input_format = property(lambda self: self.fmt)
    output_format = property(lambda self: self.fmt)

    @classmethod
    def from_native(cls, e):
        return cls(e.name, shape=e.shape, fmt=e.fmt)

    def to_native(self, entry, out):
        pass


@register
@dataclass(frozen=True, eq=False)
class FloatZeroPad(FloatLayer):
    """Zero padding of ``(H, W, C)`` frames by ``((top, bottom), (left, right))``."""

    kind: ClassVar[str] = "zero_pad"
    name: str
    padding: tuple = ((0, 0), (0, 0))

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: pads (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        (t, b), (l, r) = self.padding
        return (input_shape[0] + t + b, input_shape[1] + l + r, input_shape[2])

    def forward(self, x):
        return np.pad(x, ((0, 0), *map(tuple, self.padding), (0, 0)))

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.padding())

    to_native = _save_padding

    def quantize(self, s):
        return ZeroPadLayer(self.name, shape=s.shape, fmt=s.fmt, padding=self.padding)


@register
@dataclass(frozen=True, eq=False)
class FloatFlatten(FloatLayer):
    kind: ClassVar[str] = "flatten"
    name: str

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    @classmethod
    def from_native(cls, e):
        return cls(e.name)

    def to_native(self, entry, out):
        pass

    def quantize(self, s):
        return FlattenLayer(self.name, shape=s.shape, fmt=s.fmt)
