"""The model: a graph of quantized layers with integer codes and fixed-point formats.

A :class:`Model` is what every importer produces and what the generator, the golden network
model and the reports consume. Each layer knows its input and output shapes and formats and
names the tensors it reads (:mod:`nnfab.ir.graph`: a layer's output tensor has the layer's
name; a chain needs no names). Shapes exclude the batch dimension; images are channels-last
``(height, width, channels)`` and travel as one pixel per stream transfer. Each layer kind
is a module of this package.

The native file format (see :mod:`nnfab.gen.native`) is this IR written as JSON plus an
``.npz`` of arrays.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nnfab.errors import FormatError, ModelError, ShapeError
from nnfab.fixed import FixedFormat

from .graph import INPUT, consumers_of, is_chain, resolve_graph, rewire_removed

__all__ = ['Layer', 'FusedLayer', 'Model']


@dataclass(frozen=True)
class Layer:
    """Base of the IR layers: a name, the tensors read (``inputs``, see
    :mod:`nnfab.ir.graph`; empty means the layer before) and the shapes and formats on both
    sides. A layer with several inputs overrides :attr:`input_shapes` and
    :attr:`input_formats`; ``input_shape``/``input_format`` are then its first input's.

    A layer kind is a subclass registered with :func:`nnfab.ir.registry.register`, which
    says what the class attributes and methods below mean."""

    name: str
    inputs: tuple = field(default=(), kw_only=True)

    #: Keys of the native form with their value schemas (None: stored as other layers).
    native_keys: ClassVar[dict | None] = None
    #: Keys that float and quantized entries of this kind alike need.
    required_keys: ClassVar[tuple] = ()

    @classmethod
    def from_native(cls, entry):
        """The layer of a native entry (:class:`~nnfab.ir.native_form.Entry`)."""
        raise NotImplementedError

    def to_native(self, entry, writer):
        """Write this layer's keys into ``entry`` and its arrays through ``writer``."""
        raise NotImplementedError

    def manifest_row(self, engine):
        """Kind-specific keys of this layer's manifest row; ``engine`` is its built engine."""
        return {}

    @property
    def input_shapes(self):
        """Shape of each input, in the order of ``inputs``."""
        return (tuple(self.input_shape),)

    @property
    def input_formats(self):
        """Format of each input, in the order of ``inputs``."""
        return (self.input_format,)

    @property
    def input_shape(self):
        raise NotImplementedError

    @property
    def output_shape(self):
        raise NotImplementedError

    @property
    def input_format(self):
        raise NotImplementedError

    @property
    def output_format(self):
        raise NotImplementedError

    @property
    def n_multipliers(self):
        """Multipliers this layer uses in hardware (0 for layers without products)."""
        return 0

    def describe(self):
        """A short human-readable summary for reports."""
        return ""

@dataclass(frozen=True)
class FusedLayer(Layer):
    """Base of the kinds that build several layers (``parts``, in order) as one engine: its
    input is the first part's, its output the last part's. The native format stores the parts
    (``native_keys`` None), and the golden model runs them in order."""

    parts: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def input_shape(self):
        return self.parts[0].input_shape

    @property
    def output_shape(self):
        return self.parts[-1].output_shape

    @property
    def input_format(self):
        return self.parts[0].input_format

    @property
    def output_format(self):
        return self.parts[-1].output_format


@dataclass(frozen=True)
class Model:
    """A quantized network: an input (shape and format) and a graph of layers
    (:mod:`nnfab.ir.graph`); ``layers`` is kept in topological order with explicit
    ``inputs``, and the last layer is the output.

    Raises
    ------
    ModelError
        If there is no layer, two layers share a name, an input names no tensor, a layer gets
        a number of inputs it does not take, the graph has a cycle or a layer feeds nothing.
    ShapeError
        If a layer's input shape is not the shape of the tensor it reads.
    FormatError
        If a layer's input format is not the format of the tensor it reads.
    """

    name: str
    input_shape: tuple
    input_format: FixedFormat
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        layers = resolve_graph(self.name, self.layers)
        object.__setattr__(self, "layers", layers)
        tensors = {INPUT: (self.input_shape, self.input_format)}
        for layer in layers:
            shapes, formats = tuple(layer.input_shapes), tuple(layer.input_formats)
            if len(shapes) != len(layer.inputs):
                raise ModelError(f"Layer {layer.name!r}: a {layer.kind!r} layer built for "
                                 f"{len(shapes)} inputs reads {len(layer.inputs)} "
                                 f"({', '.join(map(repr, layer.inputs))})")
            for tensor, in_shape, in_format in zip(layer.inputs, shapes, formats):
                shape, fmt = tensors[tensor]
                if tuple(in_shape) != shape:
                    raise ShapeError(f"Layer {layer.name!r}: input shape {tuple(in_shape)} does "
                                     f"not match the output shape {shape} of {tensor!r}")
                if in_format != fmt:
                    raise FormatError(f"Layer {layer.name!r}: input format {in_format} does not "
                                      f"match the output format {fmt} of {tensor!r}")
            tensors[layer.name] = (tuple(layer.output_shape), layer.output_format)

    @property
    def output_shape(self):
        return tuple(self.layers[-1].output_shape)

    @property
    def output_format(self):
        return self.layers[-1].output_format

    @property
    def n_inputs(self):
        return int(np.prod(self.input_shape))

    @property
    def n_outputs(self):
        return int(np.prod(self.output_shape))

    @property
    def is_chain(self):
        """Whether each layer reads just the layer before it."""
        return is_chain(self.layers)

    def consumers(self):
        """Map from each tensor name (``"input"`` and every layer's) to its readers' names."""
        return consumers_of(self.layers)

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def replace_layers(self, layers):
        """This model with ``layers`` instead (a pass's result); inputs of removed or fused
        layers are rewired as :func:`nnfab.ir.graph.rewire_removed` says."""
        return Model(self.name, self.input_shape, self.input_format,
                     tuple(rewire_removed(self.layers, layers)))
