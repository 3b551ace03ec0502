"""The ``pool`` and ``global_pool`` layer kinds: windowed and global max or average pooling.

Images are channels-last ``(H, W, C)`` frames streamed one pixel (``C`` lanes) per
transfer. The layer wraps a specification of :mod:`nnfab.conv_layers`.
"""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec
from nnfab.errors import ModelError, ShapeError

from .calibrate import named_spec
from .float_layer import FloatLayer, pads, windows
from .model import Layer
from .native_form import pair_json
from .native_keys import OPTIONAL_FORMAT, OPTIONAL_PAIR, PADDING, PAIR, POOL
from .registry import register

__all__ = ['PoolLayer', 'GlobalPoolLayer', 'FloatPool', 'FloatGlobalPool']


def _check_pool(layer):
    if layer.pool not in ("max", "average"):
        raise ModelError(f"Layer {layer.name!r}: pool must be 'max' or 'average', not "
                         f"{layer.pool!r}")


def _save_pool(layer, pool, spec, entry):
    entry.update(pool=pool, pool_size=pair_json(spec.pool_size),
                 strides=pair_json(spec.strides), padding=spec.padding)


@register
@dataclass(frozen=True)
class PoolLayer(Layer):
    kind: ClassVar[str] = "pool"
    native_keys: ClassVar[dict] = {"pool": POOL, "pool_size": PAIR, "strides": OPTIONAL_PAIR,
                                   "padding": PADDING, "output_format": OPTIONAL_FORMAT}
    required_keys: ClassVar[tuple] = ("pool",)
    spec: PoolSpec = None

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: tuple(self.spec.output_shape))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    def describe(self):
        return f"{self.spec.kind} pool {self.spec.pool_size}"

    @classmethod
    def from_native(cls, e):
        return cls(e.name, spec=e.spec(
            PoolSpec, e.get("pool", "max"), e.shape, e.pair("pool_size", (2, 2)), e.fmt,
            e.format("output_format") or e.fmt, strides=e.pair("strides", None),
            padding=e.get("padding", "valid")))

    def to_native(self, entry, out):
        _save_pool(self, self.spec.kind, self.spec, entry)
        entry["output_format"] = str(self.spec.output_format)


@register
@dataclass(frozen=True)
class GlobalPoolLayer(Layer):
    kind: ClassVar[str] = "global_pool"
    native_keys: ClassVar[dict] = {"pool": POOL, "output_format": OPTIONAL_FORMAT}
    required_keys: ClassVar[tuple] = ("pool",)
    spec: GlobalPoolSpec = None

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: (self.spec.n_channels,))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    @classmethod
    def from_native(cls, e):
        return cls(e.name, spec=e.spec(GlobalPoolSpec, e.get("pool", "average"), e.shape,
                                       e.fmt, e.format("output_format") or e.fmt))

    def to_native(self, entry, out):
        entry.update(pool=self.spec.kind, output_format=str(self.spec.output_format))


@register
@dataclass(frozen=True, eq=False)
class FloatPool(FloatLayer):
    """Max or average pooling, channels-last."""

    kind: ClassVar[str] = "pool"
    name: str
    pool: str = "max"
    pool_size: tuple = (2, 2)
    strides: tuple | None = None
    padding: str = "valid"

    def __post_init__(self):
        object.__setattr__(self, "pool_size", tuple(self.pool_size))
        object.__setattr__(self, "strides", tuple(self.strides or self.pool_size))
        _check_pool(self)
        if self.padding not in ("valid", "same"):
            raise ModelError(f"Layer {self.name!r}: padding must be 'valid' or 'same', not "
                             f"{self.padding!r}")

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: pools (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        p = pads(input_shape, self.pool_size, self.strides, self.padding)
        h = (input_shape[0] + sum(p[0]) - self.pool_size[0]) // self.strides[0] + 1
        w = (input_shape[1] + sum(p[1]) - self.pool_size[1]) // self.strides[1] + 1
        if h < 1 or w < 1:
            raise ShapeError(f"Layer {self.name!r}: pool size {self.pool_size} is larger than "
                             f"the padded input {tuple(input_shape)}")
        return (h, w, input_shape[2])

    def forward(self, x):
        win = windows(x, self.pool_size, self.strides,
                      pads(x.shape[1:], self.pool_size, self.strides, self.padding),
                      pad_value=-float("inf") if self.pool == "max" else 0.0)
        return win.max(axis=(3, 4)) if self.pool == "max" else win.mean(axis=(3, 4))

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.get("pool", "max"), e.pair("pool_size", (2, 2)),
                   e.pair("strides", None), e.get("padding", "valid"))

    def to_native(self, entry, out):
        _save_pool(self, self.pool, self, entry)

    def quantize(self, s):
        out_fmt = s.fmt if self.pool == "max" else s.fmt.replace(**s.modes)
        return PoolLayer(self.name, spec=named_spec(self.name, PoolSpec, self.pool, s.shape,
                                                    self.pool_size, s.fmt, out_fmt,
                                                    strides=self.strides,
                                                    padding=self.padding))


@register
@dataclass(frozen=True, eq=False)
class FloatGlobalPool(FloatLayer):
    """Global max or average pooling: ``(H, W, C)`` frames to ``(C,)`` vectors."""

    kind: ClassVar[str] = "global_pool"
    name: str
    pool: str = "average"

    def __post_init__(self):
        _check_pool(self)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: pools (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        return (input_shape[2],)

    def forward(self, x):
        return x.max(axis=(1, 2)) if self.pool == "max" else x.mean(axis=(1, 2))

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.get("pool", "average"))

    def to_native(self, entry, out):
        entry["pool"] = self.pool

    def quantize(self, s):
        out_fmt = s.fmt if self.pool == "max" else s.output_format()
        return GlobalPoolLayer(self.name, spec=named_spec(self.name, GlobalPoolSpec, self.pool,
                                                          s.shape, s.fmt, out_fmt))
