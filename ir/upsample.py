"""The ``upsample`` layer kind: nearest-neighbour upsampling of frames (engine
:class:`nnfab.hdl.resize.Upsample2D`, golden model :mod:`nnfab.sim.golden.resize`).
"""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat

from .model import Layer

__all__ = ['UpsampleLayer']


@dataclass(frozen=True)
class UpsampleLayer(Layer):
    """Nearest-neighbour upsampling of ``(H, W, C)`` frames by integer factors ``size = (sh,
    sw)``: ``out[r, c] = in[r // sh, c // sw]`` (Keras ``UpSampling2D``, ONNX ``Resize`` in
    nearest mode with integer scales). Codes pass unchanged (format ``fmt``)."""

    kind: ClassVar[str] = "upsample"
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
