"""The ``add`` and ``concatenate`` layer kinds, which join branches of a graph.

Their engines are :class:`nnfab.hdl.join.Add` and :class:`~nnfab.hdl.join.Concatenate`; their
golden models are in :mod:`nnfab.sim.golden.merge`.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError, ShapeError
from nnfab.fixed import FixedFormat

from .float_layer import FloatLayer
from .model import Layer
from .native_keys import FORMAT
from .registry import register

__all__ = ['AddLayer', 'ConcatenateLayer', 'FloatAdd', 'FloatConcatenate']


def _save_output_format(layer, entry, out):
    entry["output_format"] = str(layer.output_format)


def _save_nothing(layer, entry, out):
    pass


def _check_joined(layer, n):
    if n < 2:
        raise ModelError(f"Layer {layer.name!r}: a {layer.kind!r} layer joins 2 or more "
                         f"tensors, not {n}")
    if layer.inputs and len(layer.inputs) != n:
        raise ModelError(f"Layer {layer.name!r}: has {n} input formats but reads "
                         f"{len(layer.inputs)} tensors ({', '.join(map(repr, layer.inputs))})")
    if not isinstance(layer.fout, FixedFormat):
        raise ModelError(f"Layer {layer.name!r}: needs an output format, not {layer.fout!r}")

@register
@dataclass(frozen=True)
class AddLayer(Layer):
    """Element-wise sum of two or more tensors of one ``shape``: the exact sum of the inputs'
    values (formats ``fins``, one per input), cast once to ``fout`` with its rounding and
    overflow modes (hls4ml's ``Add`` merge: ``res = data1 + data2`` assigned to ``res_T``)."""

    kind: ClassVar[str] = "add"
    native_keys: ClassVar[dict] = {"output_format": FORMAT}
    shape: tuple = ()
    fins: tuple = ()
    fout: FixedFormat = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "fins", tuple(self.fins))
        _check_joined(self, len(self.fins))

    input_shape = property(lambda self: self.shape)
    input_shapes = property(lambda self: (self.shape,) * len(self.fins))
    output_shape = property(lambda self: self.shape)
    input_format = property(lambda self: self.fins[0])
    input_formats = property(lambda self: self.fins)
    output_format = property(lambda self: self.fout)

    def describe(self):
        return f"sum of {len(self.fins)}, out {self.fout}"

    @classmethod
    def from_native(cls, e):
        return cls(e.name, shape=e.shape, fins=tuple(e.formats), fout=e.output_format("add"))

    to_native = _save_output_format

@register
@dataclass(frozen=True)
class ConcatenateLayer(Layer):
    """Tensors joined along the last axis (Keras ``Concatenate(axis=-1)``, ONNX ``Concat`` on
    the channel axis of channels-last tensors). Input ``k`` has shape ``shapes[k]`` (all equal
    but for the last axis) and format ``fins[k]``; each is cast to ``fout``."""

    kind: ClassVar[str] = "concatenate"
    native_keys: ClassVar[dict] = {"output_format": FORMAT}
    shapes: tuple = ()
    fins: tuple = ()
    fout: FixedFormat = None

    def __post_init__(self):
        shapes = tuple(tuple(int(n) for n in shape) for shape in self.shapes)
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "fins", tuple(self.fins))
        _check_joined(self, len(self.fins))
        if len(shapes) != len(self.fins) or any(not s or s[:-1] != shapes[0][:-1]
                                                for s in shapes):
            raise ModelError(f"Layer {self.name!r}: concatenates {len(self.fins)} tensors along "
                             f"the last axis, so needs as many shapes that agree on the other "
                             f"axes, not {list(shapes)}")

    input_shape = property(lambda self: self.shapes[0])
    input_shapes = property(lambda self: self.shapes)
    output_shape = property(lambda self: self.shapes[0][:-1] + (sum(s[-1] for s in self.shapes),))
    input_format = property(lambda self: self.fins[0])
    input_formats = property(lambda self: self.fins)
    output_format = property(lambda self: self.fout)

    def describe(self):
        return f"{' + '.join(str(s[-1]) for s in self.shapes)} lanes, out {self.fout}"

    @classmethod
    def from_native(cls, e):
        return cls(e.name, shapes=tuple(e.shapes), fins=tuple(e.formats),
                   fout=e.output_format("concatenate"))

    to_native = _save_output_format


@register
@dataclass(frozen=True, eq=False)
class FloatAdd(FloatLayer):
    """Element-wise sum of two or more tensors of one shape."""

    kind: ClassVar[str] = "add"
    name: str

    def output_shape(self, *input_shapes):
        if len(input_shapes) < 2 or any(tuple(s) != tuple(input_shapes[0])
                                        for s in input_shapes):
            raise ShapeError(f"Layer {self.name!r}: adds 2 or more tensors of one shape, not "
                             f"{[tuple(s) for s in input_shapes]}")
        return tuple(input_shapes[0])

    def forward(self, *xs):
        return sum(xs[1:], xs[0])

    @classmethod
    def from_native(cls, e):
        return cls(e.name)

    to_native = _save_nothing

    def quantize(self, s):
        """Output format calibrated."""
        return AddLayer(self.name, shape=s.shape, fins=[f for f, _ in s.inputs],
                        fout=s.output_format())


@register
@dataclass(frozen=True, eq=False)
class FloatConcatenate(FloatLayer):
    """Tensors joined along the last axis."""

    kind: ClassVar[str] = "concatenate"
    name: str

    def output_shape(self, *input_shapes):
        if len(input_shapes) < 2 or any(tuple(s)[:-1] != tuple(input_shapes[0])[:-1]
                                        for s in input_shapes):
            raise ShapeError(f"Layer {self.name!r}: concatenates 2 or more tensors that agree "
                             f"on all axes but the last, not "
                             f"{[tuple(s) for s in input_shapes]}")
        return tuple(input_shapes[0])[:-1] + (sum(s[-1] for s in input_shapes),)

    def forward(self, *xs):
        return np.concatenate(xs, axis=-1)

    @classmethod
    def from_native(cls, e):
        return cls(e.name)

    to_native = _save_nothing

    def quantize(self, s):
        """The inputs' format when they agree, else a calibrated one."""
        formats = [fmt for fmt, _ in s.inputs]
        fout = formats[0] if all(f == formats[0] for f in formats) else s.output_format()
        return ConcatenateLayer(self.name, shapes=[shape for _, shape in s.inputs],
                                fins=formats, fout=fout)
