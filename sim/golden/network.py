"""Golden model of a whole network: the IR's layers applied in order to a batch of inputs.

The network is any object with ``layers`` (a model of :mod:`nnfab.gen.ir`); each layer is
recognised by its ``kind`` and read through its attributes, so this module does not depend on
the generator. Every layer goes through the same golden function that its engine's tests use.
"""

import numpy as np

from . import activations
from .dense import dense

__all__ = ["run_layer", "run_network", "trace_network"]


def run_layer(layer, x):
    """Apply one IR layer to codes ``x`` of shape ``(batch, *layer.input_shape)``."""
    kind = layer.kind
    if kind == "dense":
        return dense(x, layer.spec)
    if kind == "activation":
        return activations.activation(layer.function, x, fin=layer.fin, fout=layer.fout,
                                      **dict(layer.params))
    if kind == "softmax":
        return activations.softmax(x, fin=layer.fin, fout=layer.fout,
                                   exp_table=layer.exp_table, inv_table=layer.inv_table)
    if kind == "argmax":
        return activations.argmax(x, fin=layer.fin)[:, None]
    if hasattr(layer, "golden"):
        return layer.golden(x)
    raise NotImplementedError(f"No golden model for layer kind {kind!r}")


def run_network(model, x, *, until=None):
    """Run ``model`` on a batch of input codes.

    Parameters
    ----------
    model : nnfab.gen.ir.Model
    x : array_like of int, shape (batch, *model.input_shape)
        Raw codes of ``model.input_format``.
    until : str, optional
        Stop after the layer of this name and return its output.

    Returns
    -------
    ndarray, shape (batch, *output_shape)
        Raw codes of the last layer's (or ``until``'s) output format.
    """
    x = np.asarray(x)
    for layer in model.layers:
        x = run_layer(layer, x)
        if layer.name == until:
            break
    return x


def trace_network(model, x):
    """Every layer's output codes, as a dict from layer name to array."""
    outputs = {}
    x = np.asarray(x)
    for layer in model.layers:
        x = run_layer(layer, x)
        outputs[layer.name] = x
    return outputs
