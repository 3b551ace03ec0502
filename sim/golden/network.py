"""Golden model of a whole network: the IR's graph of layers applied to a batch of inputs.

The network is any object with ``layers`` in topological order, each with ``name``, ``kind``
and ``inputs`` (a model of :mod:`nnfab.ir`; the model input tensor is named ``"input"``).
Layers are looked up by ``kind`` in :data:`GOLDEN` and read through their attributes, so this
module does not depend on the generator. Every kind goes through the same golden function that
its engine's tests use.
"""

import numpy as np

from . import activations
from .batchnorm import batchnorm
from .conv import conv2d
from .dense import dense, dense_relu
from .layout import flatten, zero_pad
from .merge import add, concatenate
from .pooling import global_pool, pool
from .quantize import quantize_lanes
from .recurrent import recurrent
from .multithreshold import multithreshold
from .output_stage import output_stage
from .resize import upsample_nearest
from .softmax_hls4ml import softmax_hls4ml
from .tflite import add_int8, average_int8
from .tflite_softmax import softmax_int8

__all__ = ["GOLDEN", "golden_for", "run_layer", "run_network", "trace_network"]

#: Golden function of each layer kind: ``GOLDEN[kind](layer, *inputs) -> output`` on raw codes
#: of shape ``(batch, *shape)``.
GOLDEN = {}

#: Name of the model's input tensor (:data:`nnfab.ir.graph.INPUT`).
INPUT = "input"


def golden_for(kind):
    """Decorator registering ``function(layer, *inputs)`` as the golden model of ``kind``."""
    def register(function):
        if kind in GOLDEN:
            raise ValueError(f"Layer kind {kind!r} already has a golden function")
        GOLDEN[kind] = function
        return function
    return register


golden_for("dense")(lambda layer, x: dense(x, layer.spec))
golden_for("activation")(lambda layer, x: activations.activation(
    layer.function, x, fin=layer.fin, fout=layer.fout, **dict(layer.params)))
golden_for("softmax")(lambda layer, x: activations.softmax(
    x, fin=layer.fin, fout=layer.fout, exp_table=layer.exp_table, inv_table=layer.inv_table))
golden_for("argmax")(lambda layer, x: activations.argmax(x, fin=layer.fin)[:, None])
golden_for("output_stage")(lambda layer, x: output_stage(x, layer.stage))
golden_for("multithreshold")(lambda layer, x: multithreshold(x, layer.thresholds, layer.base))
golden_for("hls4ml_softmax")(lambda layer, x: softmax_hls4ml(x, layer.spec))
golden_for("quantize")(lambda layer, x: quantize_lanes(x, fin=layer.fin, formats=layer.formats,
                                                       fout=layer.fout))
golden_for("conv2d")(lambda layer, x: conv2d(x, layer.spec))
golden_for("pool")(lambda layer, x: pool(x, layer.spec))
golden_for("global_pool")(lambda layer, x: global_pool(x, layer.spec))
golden_for("batchnorm")(lambda layer, x: batchnorm(x, layer.spec))
golden_for("flatten")(lambda layer, x: flatten(x))
golden_for("zero_pad")(lambda layer, x: zero_pad(x, layer.padding))
golden_for("add")(lambda layer, *xs: add(xs, layer.fins, layer.fout))
golden_for("concatenate")(lambda layer, *xs: concatenate(xs, layer.fins, layer.fout))
golden_for("tflite_average_pool")(lambda layer, x: average_int8(
    np.asarray(x, dtype=np.int64).sum(axis=(1, 2)), layer.divider.count, layer.low, layer.high))
golden_for("tflite_add")(lambda layer, a, b: add_int8(a, b, layer.params))
golden_for("tflite_softmax")(lambda layer, x: softmax_int8(x, layer.input_scale, layer.beta))
golden_for("recurrent")(lambda layer, x: recurrent(x, layer.spec))
golden_for("upsample")(lambda layer, x: upsample_nearest(x, layer.size))


@golden_for("rom_dense")
@golden_for("shift_add_dense")
@golden_for("shift_add_chain")
def _fused(layer, x):
    """A fused layer is its parts in order: no arithmetic of its own to trust."""
    for part in layer.parts:
        x = run_layer(part, x)
    return x


def run_layer(layer, *inputs):
    """Apply one IR layer to codes of shape ``(batch, *input_shape)``, one array per input.

    Raises
    ------
    NotImplementedError
        If the layer's kind has no golden function in :data:`GOLDEN`.
    """
    try:
        function = GOLDEN[layer.kind]
    except KeyError:
        raise NotImplementedError(f"No golden model for layer kind {layer.kind!r}") from None
    return function(layer, *(np.asarray(x) for x in inputs))


def trace_network(model, x, *, until=None):
    """Every layer's output codes, as a dict from layer name to array, in topological order
    (up to and including ``until`` if given)."""
    tensors = {INPUT: np.asarray(x)}
    outputs = {}
    for layer in model.layers:
        tensors[layer.name] = outputs[layer.name] = run_layer(
            layer, *(tensors[t] for t in layer.inputs))
        if layer.name == until:
            break
    return outputs


def run_network(model, x, *, until=None):
    """Run ``model`` on a batch of input codes.

    Parameters
    ----------
    model : nnfab.ir.Model
    x : array_like of int, shape (batch, *model.input_shape)
        Raw codes of ``model.input_format``.
    until : str, optional
        Stop after the layer of this name and return its output.

    Returns
    -------
    ndarray, shape (batch, *output_shape)
        Raw codes of the last layer's (or ``until``'s) output format.
    """
    layers = list(model.layers)
    uses = {}
    for layer in layers:
        for name in layer.inputs:
            uses[name] = uses.get(name, 0) + 1
    tensors = {INPUT: np.asarray(x)}
    left = dict(uses)  # readers still to run, per tensor
    i = 0
    while i < len(layers):
        layer, step = layers[i], 1
        folded = _dense_relu(layer, layers[i + 1] if i + 1 < len(layers) else None,
                             uses, until, tensors)
        read = list(layer.inputs)  # folded: the dense layer's (its output is never stored)
        if folded is not None:
            layer, step = layers[i + 1], 2
            tensors[layer.name] = folded
        else:
            tensors[layer.name] = run_layer(layer, *(tensors[t] for t in layer.inputs))
        if layer.name == until:
            break
        # Free a tensor once its last reader ran (image batches are gigabytes per tensor).
        for name in read:
            left[name] -= 1
            if not left[name]:
                del tensors[name]
        i += step
    return tensors[until if until is not None else layers[-1].name]


def _dense_relu(layer, following, uses, until, tensors):
    """The output of ``following`` when it is a ReLU that alone reads the dense ``layer``
    and :func:`~nnfab.sim.golden.dense.dense_relu` folds the two; else None."""
    if (layer.kind != "dense" or following is None or following.kind != "activation"
            or following.function != "relu" or following.inputs != (layer.name,)
            or uses.get(layer.name) != 1 or layer.name == until
            or following.fin != layer.spec.output_format):
        return None
    return dense_relu(tensors[layer.inputs[0]], layer.spec, following.fout)
