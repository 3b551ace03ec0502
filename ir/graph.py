"""Model graphs: layers joined by named tensors, checked and put in topological order.

A model is a directed acyclic graph. Every layer produces one tensor, named after the layer, and
names the tensors it reads in ``inputs``; the model's input tensor is named :data:`INPUT`. A
tensor may feed several layers (fan-out); a layer may read several tensors (``add``,
``concatenate``). A chain is the special case where every layer reads the layer before it, and
an empty ``inputs`` means exactly that, so chains are written as plain lists of layers.

The quantized IR (:class:`nnfab.ir.Model`) and the float models
(:class:`nnfab.gen.float_model.FloatModel`) share this module's rules: :func:`resolve_graph`
checks names and edges and returns the layers in topological order with explicit inputs.
"""

import dataclasses

from nnfab.errors import ModelError

__all__ = ["INPUT", "resolve_graph", "consumers_of", "is_chain", "rewire_removed"]

#: Name of the model's input tensor; no layer may take it.
INPUT = "input"


def _with_inputs(layer, inputs):
    inputs = tuple(inputs)
    return layer if tuple(layer.inputs) == inputs else dataclasses.replace(layer, inputs=inputs)


def resolve_graph(model_name, layers):
    """Check a model's layers as a graph and order them topologically.

    Parameters
    ----------
    model_name : str
        Named in errors.
    layers : sequence of layers
        Objects with ``name`` and ``inputs`` (a tuple of tensor names; empty means the layer
        listed before it, or the model input for the first layer). Frozen dataclasses.

    Returns
    -------
    tuple of layers
        The same layers with explicit ``inputs``, in a topological order that keeps the given
        order wherever the edges allow. The last one is the model's output.

    Raises
    ------
    ModelError
        If there is no layer, two layers share a name, a layer is named :data:`INPUT`, an
        input names no tensor, the edges form a cycle, or some layer's output feeds nothing
        (a model has one output).
    """
    layers = tuple(layers)
    if not layers:
        raise ModelError(f"Model {model_name!r} has no layers")
    names = set()
    for layer in layers:
        if layer.name == INPUT:
            raise ModelError(f"Model {model_name!r}: a layer is named {INPUT!r}, the name of the "
                             f"model's input tensor; rename the layer")
        if layer.name in names:
            raise ModelError(f"Model {model_name!r}: two layers are named {layer.name!r}")
        names.add(layer.name)
    explicit, previous = [], INPUT
    for layer in layers:
        inputs = tuple(layer.inputs) or (previous,)
        for tensor in inputs:
            if tensor != INPUT and tensor not in names:
                raise ModelError(f"Layer {layer.name!r}: input {tensor!r} is no tensor of model "
                                 f"{model_name!r} (the model input {INPUT!r} or a layer's name)")
        if len(set(inputs)) != len(inputs):
            raise ModelError(f"Layer {layer.name!r}: reads tensor {inputs[0]!r} twice "
                             f"({list(inputs)}); each input must be another tensor")
        explicit.append(_with_inputs(layer, inputs))
        previous = layer.name
    ordered, placed, pending = [], {INPUT}, list(explicit)
    while pending:
        ready = next((n for n, layer in enumerate(pending)
                      if all(t in placed for t in layer.inputs)), None)
        if ready is None:
            cycle = ", ".join(repr(layer.name) for layer in pending)
            raise ModelError(f"Model {model_name!r}: layers {cycle} read each other's outputs in "
                             f"a cycle; a model must be acyclic")
        layer = pending.pop(ready)
        ordered.append(layer)
        placed.add(layer.name)
    consumers = consumers_of(ordered)
    for layer in ordered[:-1]:
        if not consumers[layer.name]:
            raise ModelError(f"Layer {layer.name!r}: its output feeds no layer; a model has one "
                             f"output (here {ordered[-1].name!r}), so every other layer must "
                             f"feed another")
    return tuple(ordered)


def consumers_of(layers):
    """Map from every tensor name (:data:`INPUT` and each layer's) to the names of the layers
    reading it, in order."""
    consumers = {INPUT: []}
    for layer in layers:
        consumers.setdefault(layer.name, [])
    for layer in layers:
        for tensor in layer.inputs:
            consumers[tensor].append(layer.name)
    return consumers


def is_chain(layers):
    """Whether every layer of resolved ``layers`` reads just the one listed before it."""
    previous = INPUT
    for layer in layers:
        if tuple(layer.inputs) != (previous,):
            return False
        previous = layer.name
    return True


def rewire_removed(old_layers, new_layers):
    """New layers for a model whose pass removed or fused some layers of ``old_layers``.

    A layer of ``new_layers`` with empty ``inputs`` keeps the inputs of the old layer of its
    name (a new name reads the layer listed before it). An input naming a layer that no longer
    exists is replaced by that layer's own input, followed until a tensor that still exists: a
    folded or fused layer's consumers read what it was folded into. When the old model is a
    chain, the new layers are simply chained again.

    Raises
    ------
    ModelError
        If a removed layer that other layers read had several inputs (nothing to follow).
    """
    new_layers = list(new_layers)
    if is_chain(old_layers):
        return [_with_inputs(layer, ()) for layer in new_layers]
    old = {layer.name: layer for layer in old_layers}
    present = {INPUT} | {layer.name for layer in new_layers}

    def follow(tensor):
        while tensor not in present:
            inputs = old[tensor].inputs
            if len(inputs) != 1:
                raise ModelError(f"Layer {tensor!r} was removed, but it had {len(inputs)} "
                                 f"inputs; its consumers cannot be rewired")
            tensor = inputs[0]
        return tensor

    out = []
    for layer in new_layers:
        inputs = tuple(layer.inputs) or (old[layer.name].inputs if layer.name in old else ())
        out.append(_with_inputs(layer, tuple(follow(t) for t in inputs)))
    return out
