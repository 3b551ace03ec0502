"""The model IR: a graph of quantized layers with integer codes and fixed-point formats.

A :class:`Model` is what every importer produces and what the generator, the golden network
model and the reports consume. Each layer knows its input and output shapes and formats and
names the tensors it reads (:mod:`nnfab.gen.graph`: a layer's output tensor has the layer's
name; a chain needs no names). Shapes exclude the batch dimension; images are channels-last
``(height, width, channels)`` and travel as one pixel per stream transfer.

The native file format (see :mod:`nnfab.gen.native`) is this IR written as JSON plus an
``.npz`` of arrays.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nnfab.errors import FormatError, ModelError, ShapeError
from nnfab.fixed import FixedFormat
from nnfab.layers import DenseSpec
from nnfab.tables import LookupTable

from .graph import INPUT, consumers_of, is_chain, resolve_graph, rewire_removed

__all__ = ["Layer", "DenseLayer", "ActivationLayer", "SoftmaxLayer", "ArgmaxLayer", "Model",
           "argmax_format"]


def argmax_format(n):
    """Format of an argmax index over ``n`` values: ``ufixed<w,w>`` with ``w = max(1,
    ceil(log2 n))``, matching :class:`nnfab.hdl.activations.Argmax`."""
    width = max(1, (n - 1).bit_length())
    return FixedFormat(width, width, signed=False)


@dataclass(frozen=True)
class Layer:
    """Base of the IR layers: a name, the tensors read (``inputs``, see
    :mod:`nnfab.gen.graph`; empty means the layer before) and the shapes and formats on both
    sides. A layer with several inputs overrides :attr:`input_shapes` and
    :attr:`input_formats`; ``input_shape``/``input_format`` are then its first input's."""

    name: str
    inputs: tuple = field(default=(), kw_only=True)

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
class DenseLayer(Layer):
    """A fully connected layer (:class:`~nnfab.layers.DenseSpec`), built by
    :class:`~nnfab.hdl.dense.DenseEngine` with ``reuse_factor``."""

    kind: ClassVar[str] = "dense"
    spec: DenseSpec = None
    reuse_factor: int = 1

    def __post_init__(self):
        if not isinstance(self.spec, DenseSpec):
            raise ModelError(f"Layer {self.name!r}: dense layer needs a DenseSpec, "
                             f"not {self.spec!r}")
        if not isinstance(self.reuse_factor, int) or self.reuse_factor < 1 or \
                self.spec.n_in % self.reuse_factor:
            valid = [r for r in range(1, self.spec.n_in + 1) if self.spec.n_in % r == 0]
            raise ModelError(f"Layer {self.name!r}: reuse factor must divide n_in "
                             f"{self.spec.n_in} (one of {', '.join(map(str, valid))}), "
                             f"not {self.reuse_factor!r}")

    @property
    def input_shape(self):
        return (self.spec.n_in,)

    @property
    def output_shape(self):
        return (self.spec.n_out,)

    @property
    def input_format(self):
        return self.spec.input_format

    @property
    def output_format(self):
        return self.spec.output_format

    @property
    def n_multipliers(self):
        """Products per cycle after pruning zero weights: non-zero weights divided by the
        reuse factor (rounded up per output)."""
        nonzero = np.count_nonzero(self.spec.weights != 0, axis=1)
        return int(np.sum(-(-nonzero // self.reuse_factor)))

    def describe(self):
        s = self.spec
        return (f"{s.n_in}→{s.n_out}, w {s.weight_format}, acc {s.accumulator}, "
                f"{s.n_nonzero_weights}/{s.weights.size} non-zero weights, R={self.reuse_factor}")


@dataclass(frozen=True)
class ActivationLayer(Layer):
    """An elementwise activation ``function`` (one of :data:`nnfab.tables.ACTIVATION_KINDS`,
    parameters as :func:`nnfab.tables.check_activation` takes them) over tensors of ``shape``."""

    kind: ClassVar[str] = "activation"
    function: str = "linear"
    shape: tuple = ()
    fin: FixedFormat = None
    fout: FixedFormat = None
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        from nnfab.tables import check_activation

        try:
            check_activation(self.function, fin=self.fin, fout=self.fout, **dict(self.params))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"Layer {self.name!r}: {exc}") from None

    @property
    def input_shape(self):
        return tuple(self.shape)

    @property
    def output_shape(self):
        return tuple(self.shape)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return self.fout

    def describe(self):
        return f"{self.function}, out {self.fout}"


@dataclass(frozen=True)
class SoftmaxLayer(Layer):
    """Table-based softmax over a vector of ``n`` values
    (:class:`nnfab.hdl.activations.Softmax`)."""

    kind: ClassVar[str] = "softmax"
    n: int = 1
    fin: FixedFormat = None
    fout: FixedFormat = None
    exp_table: LookupTable | None = None
    inv_table: LookupTable | None = None

    @property
    def input_shape(self):
        return (self.n,)

    @property
    def output_shape(self):
        return (self.n,)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return self.fout

    def describe(self):
        return f"table softmax, out {self.fout}"


@dataclass(frozen=True)
class ArgmaxLayer(Layer):
    """Index of the largest of ``n`` values, first on ties (:class:`nnfab.hdl.activations.Argmax`)."""

    kind: ClassVar[str] = "argmax"
    n: int = 1
    fin: FixedFormat = None

    @property
    def input_shape(self):
        return (self.n,)

    @property
    def output_shape(self):
        return (1,)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return argmax_format(self.n)

    def describe(self):
        return f"argmax over {self.n}"


@dataclass(frozen=True)
class Model:
    """A quantized network: an input (shape and format) and a graph of layers
    (:mod:`nnfab.gen.graph`); ``layers`` is kept in topological order with explicit
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
        layers are rewired as :func:`nnfab.gen.graph.rewire_removed` says."""
        return Model(self.name, self.input_shape, self.input_format,
                     tuple(rewire_removed(self.layers, layers)))
