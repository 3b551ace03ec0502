"""The layer kinds of TFLite's int8 operators that are not an integer sum and an output stage:
``tflite_average_pool`` (``AVERAGE_POOL_2D`` over the whole map), ``tflite_add`` (``ADD`` of two
int8 tensors) and ``tflite_softmax`` (int8 ``SOFTMAX``).

Their tensors are TFLite's int8 codes (``fixed<8,8>``, :func:`~nnfab.ir.integer_format`), the
zero points and scales held by the layer. They exist only in quantized models (there is no float
layer and no PTQ rule: the importer of :mod:`nnfab.gen.importers.tflite` makes them). Engines:
:class:`nnfab.hdl.pool_tflite.GlobalAveragePoolTfliteEngine`,
:class:`nnfab.hdl.add_tflite.AddTfliteEngine`, :class:`nnfab.hdl.softmax_tflite.TfliteSoftmax`;
golden functions: :func:`nnfab.sim.golden.tflite.average_int8`,
:func:`~nnfab.sim.golden.tflite.add_int8`, :func:`nnfab.sim.golden.tflite_softmax.softmax_int8`.
``MAX_POOL_2D`` needs no kind of its own: it is a ``pool`` layer (a max of int8 codes is exact).
"""

import math
from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.gemmlowp import MAX_DEPTH
from nnfab.tflite_ops import AddParams, AverageDivider

from .model import Layer
from .output_stage import integer_format
from .registry import register

__all__ = ["TfliteAveragePoolLayer", "TfliteAddLayer", "TfliteSoftmaxLayer", "INT8"]

#: TFLite's int8 codes as a format: ``fixed<8,8>``.
INT8 = integer_format(8)

_CODE = {"type": "integer", "minimum": -128, "maximum": 127,
         "accepted": "an integer from -128 to 127"}
_THREE = {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "integer"},
          "accepted": "a list of 3 integers (input 1, input 2, output)"}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0,
             "accepted": "a number above 0 (the float32 of the .tflite file)"}


def _check_int8(layer, fmt, what="input"):
    if fmt != INT8:
        raise ModelError(f"Layer {layer.name!r}: a {layer.kind!r} layer reads and writes int8 "
                         f"codes ({INT8}); its {what} format is {fmt}")


def _checked(layer, make, *args, **kwargs):
    try:
        return make(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {layer.name!r}: {exc}") from None


@register
@dataclass(frozen=True)
class TfliteAveragePoolLayer(Layer):
    """TFLite int8 ``AVERAGE_POOL_2D`` whose window is the whole map (VALID): ``(H, W, C)``
    frames of int8 codes to ``(C,)`` vectors, each the sum of a channel's ``H * W`` codes
    divided by ``H * W``, rounded half away from zero, clamped to ``[low, high]`` (the fused
    activation's range) — ``reference_integer_ops::AveragePool``.

    Parameters
    ----------
    shape : tuple of 3 int
        The input frame ``(H, W, C)``.
    low, high : int
        The clamp, -128 to 127.

    Raises
    ------
    ModelError
        If the shape is not a frame or the clamp is out of range.
    """

    kind: ClassVar[str] = "tflite_average_pool"
    native_keys: ClassVar[dict] = {"low": _CODE, "high": _CODE}
    shape: tuple = ()
    low: int = -128
    high: int = 127

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ModelError(f"Layer {self.name!r}: a global average pool reads (H, W, C) "
                             f"frames, not shape {self.shape}")
        _checked(self, lambda: self.divider)

    @property
    def divider(self):
        """The :class:`~nnfab.tflite_ops.AverageDivider` of ``H * W`` positions."""
        return AverageDivider(self.shape[0] * self.shape[1], self.low, self.high)

    input_shape = property(lambda self: self.shape)
    output_shape = property(lambda self: (self.shape[2],))
    input_format = property(lambda self: INT8)
    output_format = property(lambda self: INT8)

    def describe(self):
        return (f"TFLite average of {self.shape[0]}x{self.shape[1]}, clamp "
                f"[{self.low}, {self.high}]")

    @classmethod
    def from_native(cls, e):
        layer = cls(e.name, shape=e.shape, low=int(e.get("low", -128)),
                    high=int(e.get("high", 127)))
        _check_int8(layer, e.fmt)
        return layer

    def to_native(self, entry, out):
        entry.update(low=self.low, high=self.high)

    def manifest_row(self, engine):
        d = self.divider
        return dict(count=d.count, clamp=[d.low, d.high], magic=d.magic, shift=d.shift)


@register
@dataclass(frozen=True)
class TfliteAddLayer(Layer):
    """TFLite int8 ``ADD`` of two tensors of one ``shape`` (no broadcasting), element by
    element, with each input rescaled as ``reference_integer_ops::Add`` does (the
    :class:`~nnfab.tflite_ops.AddParams` from the three tensors' scales and zero points).

    Parameters
    ----------
    shape : tuple of int
        Shape of both inputs and of the output.
    params : AddParams

    Raises
    ------
    ModelError
        If ``params`` is not an :class:`AddParams` or the layer does not read two tensors.
    """

    kind: ClassVar[str] = "tflite_add"
    native_keys: ClassVar[dict] = {"zero_points": _THREE, "multipliers": _THREE,
                                   "shifts": _THREE, "low": _CODE, "high": _CODE}
    required_keys: ClassVar[tuple] = ("zero_points", "multipliers", "shifts")
    shape: tuple = ()
    params: AddParams = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if not isinstance(self.params, AddParams):
            raise ModelError(f"Layer {self.name!r}: a TFLite add needs an AddParams, not "
                             f"{self.params!r}")
        if not self.shape:
            raise ModelError(f"Layer {self.name!r}: a TFLite add needs a shape")
        if self.inputs and len(self.inputs) != 2:
            raise ModelError(f"Layer {self.name!r}: a TFLite add reads 2 tensors, not "
                             f"{len(self.inputs)} ({', '.join(map(repr, self.inputs))})")

    input_shape = property(lambda self: self.shape)
    input_shapes = property(lambda self: (self.shape, self.shape))
    output_shape = property(lambda self: self.shape)
    input_format = property(lambda self: INT8)
    input_formats = property(lambda self: (INT8, INT8))
    output_format = property(lambda self: INT8)

    def describe(self):
        z1, z2, z = self.params.zero_points
        return (f"TFLite add, zero points {z1}, {z2} -> {z}, clamp [{self.params.low}, "
                f"{self.params.high}]")

    @classmethod
    def from_native(cls, e):
        params = e.spec(AddParams, tuple(e.get("zero_points")), tuple(e.get("multipliers")),
                        tuple(e.get("shifts")), low=int(e.get("low", -128)),
                        high=int(e.get("high", 127)))
        layer = cls(e.name, shape=e.shape, params=params)
        for k, fmt in enumerate(e.formats):
            _check_int8(layer, fmt, f"input {k}")
        if len(e.shapes) != 2 or any(tuple(s) != tuple(e.shape) for s in e.shapes):
            raise ModelError(f"Layer {e.name!r}: a TFLite add reads 2 tensors of one shape, "
                             f"not {[tuple(s) for s in e.shapes]}")
        return layer

    def to_native(self, entry, out):
        p = self.params
        entry.update(zero_points=list(p.zero_points), multipliers=list(p.multipliers),
                     shifts=list(p.shifts), low=p.low, high=p.high)

    def manifest_row(self, engine):
        p = self.params
        return dict(zero_points=list(p.zero_points), clamp=[p.low, p.high],
                    left_shift=p.left_shift)


@register
@dataclass(frozen=True)
class TfliteSoftmaxLayer(Layer):
    """TFLite int8 ``SOFTMAX`` over a vector of ``n`` codes, output scale 1/256 and zero
    point -128, exactly as ``reference_ops::Softmax`` (gemmlowp fixed point).

    Parameters
    ----------
    n : int, 1 to 511
    input_scale, beta : float
        The input tensor's scale and the operator's ``beta`` (the float32 values of the file).

    Raises
    ------
    ModelError
        If ``n`` or a scale is out of range.
    """

    kind: ClassVar[str] = "tflite_softmax"
    native_keys: ClassVar[dict] = {"input_scale": _POSITIVE, "beta": _POSITIVE}
    required_keys: ClassVar[tuple] = ("input_scale", "beta")
    n: int = 1
    input_scale: float = 1.0
    beta: float = 1.0

    def __post_init__(self):
        if not isinstance(self.n, int) or isinstance(self.n, bool) or \
                not 1 <= self.n <= MAX_DEPTH:
            raise ModelError(f"Layer {self.name!r}: TFLite softmax depth must be an integer "
                             f"from 1 to {MAX_DEPTH}, not {self.n!r}")
        for what in ("input_scale", "beta"):
            value = getattr(self, what)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    not math.isfinite(value) or value <= 0:
                raise ModelError(f"Layer {self.name!r}: TFLite softmax "
                                 f"{what.replace('_', ' ')} must be a finite number above 0, "
                                 f"not {value!r}")
            object.__setattr__(self, what, float(value))

    input_shape = property(lambda self: (self.n,))
    output_shape = property(lambda self: (self.n,))
    input_format = property(lambda self: INT8)
    output_format = property(lambda self: INT8)

    def describe(self):
        return f"TFLite softmax, input scale {self.input_scale!r}, beta {self.beta!r}"

    @classmethod
    def from_native(cls, e):
        if len(e.shape) != 1:
            raise ModelError(f"Layer {e.name!r}: a TFLite softmax reads vectors, not shape "
                             f"{tuple(e.shape)}")
        layer = cls(e.name, n=int(e.shape[0]), input_scale=e.get("input_scale"),
                    beta=e.get("beta"))
        _check_int8(layer, e.fmt)
        return layer

    def to_native(self, entry, out):
        entry.update(input_scale=self.input_scale, beta=self.beta)

    def manifest_row(self, engine):
        return dict(input_scale=self.input_scale, beta=self.beta)
