"""The ``upsample`` layer kind: nearest-neighbour upsampling of frames (engine
:class:`nnfab.hdl.resize.Upsample2D`, golden model :mod:`nnfab.sim.golden.resize`).
"""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError, ShapeError
from nnfab.fixed import FixedFormat

from .float_layer import FloatLayer
from .model import Layer
from .native_keys import PAIR
from .registry import register

__all__ = ['UpsampleLayer', 'FloatUpsample']


def _save_size(layer, entry, out):
    entry["size"] = list(layer.size)


@register
@dataclass(frozen=True)
class UpsampleLayer(Layer):
    """Nearest-neighbour upsampling of ``(H, W, C)`` frames by integer factors ``size = (sh,
    sw)``: ``out[r, c] = in[r // sh, c // sw]`` (Keras ``UpSampling2D``, ONNX ``Resize`` in
    nearest mode with integer scales). Codes pass unchanged (format ``fmt``)."""

    kind: ClassVar[str] = "upsample"
    native_keys: ClassVar[dict] = {"size": PAIR}
    required_keys: ClassVar[tuple] = ("size",)
    shape: tuple = ()
    size: tuple = (2, 2)
    fmt: FixedFormat = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "size", tuple(self.size))
        if len(self.shape) != 3:
            raise ModelError(f"Layer {self.name!r}: upsamples (H, W, C) frames, not shape "
                             f"{self.shape}")
        if len(self.size) != 2 or not all(isinstance(s, int) and s >= 1 for s in self.size):
            raise ModelError(f"Layer {self.name!r}: size must be two integers >= 1, not "
                             f"{self.size!r}")

    input_shape = property(lambda self: self.shape)
    output_shape = property(lambda self: (self.shape[0] * self.size[0],
                                          self.shape[1] * self.size[1], self.shape[2]))
    input_format = property(lambda self: self.fmt)
    output_format = property(lambda self: self.fmt)

    def describe(self):
        return f"nearest x{self.size[0]}x{self.size[1]}"

    @classmethod
    def from_native(cls, e):
        return cls(e.name, shape=e.shape, size=e.pair("size", (2, 2)), fmt=e.fmt)

    to_native = _save_size


@register
@dataclass(frozen=True, eq=False)
class FloatUpsample(FloatLayer):
    """Nearest-neighbour upsampling of ``(H, W, C)`` frames by integer ``size``."""

    kind: ClassVar[str] = "upsample"
    name: str
    size: tuple = (2, 2)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: upsamples (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        return (input_shape[0] * self.size[0], input_shape[1] * self.size[1], input_shape[2])

    def forward(self, x):
        return x.repeat(self.size[0], axis=1).repeat(self.size[1], axis=2)

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.pair("size", (2, 2)))

    to_native = _save_size

    def quantize(self, s):
        return UpsampleLayer(self.name, shape=s.shape, size=self.size, fmt=s.fmt)
