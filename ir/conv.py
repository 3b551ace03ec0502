"""The ``conv2d`` layer kind: 2-D, 1-D (height 1) and depthwise convolutions with an
optional fused activation.

Images are channels-last ``(H, W, C)`` frames streamed one pixel (``C`` lanes) per
transfer. The layer wraps a specification of :mod:`nnfab.conv_layers`.
"""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.conv_layers import Conv2DSpec
from nnfab.errors import ModelError

from .model import Layer

__all__ = ['Conv2DLayer']


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
