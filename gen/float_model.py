"""Float models: a network's architecture and float64 weights, before quantization.

Importers of float models (Keras, ONNX, the native format without formats) produce a
:class:`FloatModel`; :mod:`nnfab.gen.ptq` turns it into the quantized IR. ``forward`` is the
float64 reference the reports compare against. The float layer of each kind lives in the kind's
module of :mod:`nnfab.ir` (registered in :data:`nnfab.ir.FLOAT_KINDS`) and is re-exported here.
"""

from dataclasses import dataclass

import numpy as np

from nnfab.ir import (FLOAT_ACTIVATIONS, INPUT, FloatActivation, FloatAdd, FloatArgmax,
                      FloatBatchNorm, FloatConcatenate, FloatConv2D, FloatDense, FloatFlatten,
                      FloatGlobalPool, FloatLayer, FloatPool, FloatSoftmax, FloatUpsample,
                      FloatZeroPad, consumers_of, resolve_graph, rewire_removed)

__all__ = ["FloatLayer", "FloatDense", "FloatActivation", "FloatBatchNorm", "FloatSoftmax",
           "FloatArgmax", "FloatConv2D", "FloatPool", "FloatGlobalPool", "FloatZeroPad",
           "FloatFlatten", "FloatAdd", "FloatConcatenate", "FloatUpsample", "FloatModel",
           "FLOAT_ACTIVATIONS"]


@dataclass(frozen=True, eq=False)
class FloatModel:
    """A float network: input shape and a graph of float layers (:mod:`nnfab.ir.graph`),
    kept in topological order with explicit ``inputs``; the last layer is the output.

    Raises
    ------
    ModelError
        If there is no layer, two layers share a name, an input names no tensor, the graph has
        a cycle or a layer feeds nothing.
    ShapeError
        If a layer does not take the shapes of the tensors it reads.
    """

    name: str
    input_shape: tuple
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        object.__setattr__(self, "layers", resolve_graph(self.name, self.layers))
        self.shapes()

    def shapes(self):
        """Output shape of every layer, in order."""
        tensors = {INPUT: self.input_shape}
        for layer in self.layers:
            tensors[layer.name] = tuple(layer.output_shape(*(tensors[t] for t in layer.inputs)))
        return [tensors[layer.name] for layer in self.layers]

    def consumers(self):
        """Map from each tensor name (``"input"`` and every layer's) to its readers' names."""
        return consumers_of(self.layers)

    def forward(self, x, *, trace=False):
        """float64 forward pass over a batch ``(batch, *input_shape)``; with ``trace``, a dict of
        every layer's output."""
        tensors = {INPUT: np.asarray(x, dtype=np.float64)}
        for layer in self.layers:
            tensors[layer.name] = layer.forward(*(tensors[t] for t in layer.inputs))
        del tensors[INPUT]
        return tensors if trace else tensors[self.layers[-1].name]

    def replace_layers(self, layers):
        return FloatModel(self.name, self.input_shape, tuple(rewire_removed(self.layers, layers)))
