"""The ``batchnorm`` layer kind: a batch normalization (float models), and one that could not
be folded into the layer before it (quantized models: per-channel scale and shift)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.conv_layers import BatchNormSpec
from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError

from .calibrate import format_for, named_spec, nearest_codes
from .float_layer import FloatLayer, float_array
from .model import Layer
from .native_keys import ARRAY, FORMAT
from .registry import register

__all__ = ['BatchNormLayer', 'FloatBatchNorm']


@register
@dataclass(frozen=True)
class BatchNormLayer(Layer):
    """A batch normalization that could not be folded: per-channel scale and shift."""

    kind: ClassVar[str] = "batchnorm"
    native_keys: ClassVar[dict] = {
        "gamma": ARRAY, "beta": ARRAY, "mean": ARRAY, "variance": ARRAY,
        "epsilon": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e3,
                    "accepted": "a number above 0 and at most 1000"},
        "scale": ARRAY, "shift": ARRAY, "scale_format": FORMAT, "shift_format": FORMAT,
        "output_format": FORMAT}
    spec: BatchNormSpec = None
    shape: tuple = ()

    input_shape = property(lambda self: tuple(self.shape))
    output_shape = property(lambda self: tuple(self.shape))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    @classmethod
    def from_native(cls, e):
        s_fmt, t_fmt = e.format("scale_format"), e.format("shift_format")
        if s_fmt is None or t_fmt is None:
            raise UnsupportedLayerError(f"{e.where}: a quantized 'batchnorm' layer needs "
                                        f"scale/shift arrays and formats; give a float model "
                                        f"(gamma, beta, mean, variance) instead")
        spec = e.spec(BatchNormSpec, e.codes("scale", s_fmt), e.codes("shift", t_fmt), e.fmt,
                      s_fmt, t_fmt, e.format("output_format"))
        return cls(e.name, spec=spec, shape=e.shape)

    def to_native(self, entry, out):
        spec = self.spec
        out.array(entry, self, "scale", spec.scale)
        out.array(entry, self, "shift", spec.shift)
        entry.update(scale_format=str(spec.scale_format), shift_format=str(spec.shift_format),
                     output_format=str(spec.output_format))


@register
@dataclass(frozen=True, eq=False)
class FloatBatchNorm(FloatLayer):
    """``y = gamma * (x - mean) / sqrt(variance + epsilon) + beta`` over the last axis."""

    kind: ClassVar[str] = "batchnorm"
    name: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    epsilon: float = 1e-3

    def __post_init__(self):
        for what in ("gamma", "beta", "mean", "variance"):
            object.__setattr__(self, what, float_array(getattr(self, what), self.name, what, 1))
            if getattr(self, what).shape != self.gamma.shape:
                raise ShapeError(f"Layer {self.name!r}: {what} must have shape "
                                 f"{self.gamma.shape} as gamma, not {getattr(self, what).shape}")
        if np.any(self.variance + self.epsilon <= 0):
            raise ModelError(f"Layer {self.name!r}: variance + epsilon must be positive, not "
                             f"{float(np.min(self.variance + self.epsilon))!r}")

    @property
    def scale(self):
        return self.gamma / np.sqrt(self.variance + self.epsilon)

    @property
    def shift(self):
        return self.beta - self.mean * self.scale

    def output_shape(self, input_shape):
        if input_shape[-1] != self.gamma.shape[0]:
            raise ShapeError(f"Layer {self.name!r}: normalizes {self.gamma.shape[0]} channels, "
                             f"not {input_shape[-1]}")
        return tuple(input_shape)

    def forward(self, x):
        return x * self.scale + self.shift

    @classmethod
    def from_native(cls, e):
        return cls(e.name, *(e.floats(key) for key in ("gamma", "beta", "mean", "variance")),
                   epsilon=float(e.get("epsilon", 1e-3)))

    def to_native(self, entry, out):
        for key in ("gamma", "beta", "mean", "variance"):
            out.array(entry, self, key, getattr(self, key))
        entry["epsilon"] = self.epsilon

    def quantize(self, s):
        """A batch normalization that could not be folded (no dense or convolution before
        it): per-channel scale and shift in ``weight_bits`` and ``bias_bits``."""
        config, where = s.config, f"Layer {self.name!r}:"
        s_fmt = format_for(self.scale, config.weight_bits, where=f"{where} scales")
        t_fmt = format_for(self.shift, config.bias_bits, where=f"{where} shifts")
        out_fmt = format_for(s.out, config.activation_bits, headroom=config.headroom_bits,
                             where=f"{where} outputs", **s.modes)
        spec = named_spec(self.name, BatchNormSpec, nearest_codes(self.scale, s_fmt),
                          nearest_codes(self.shift, t_fmt), s.fmt, s_fmt, t_fmt, out_fmt)
        return BatchNormLayer(self.name, spec=spec, shape=tuple(s.shape))
