"""The QONNX branched model of hls4ml's examples, and the same graph at a smaller frame.

``branched_model_ch_last.onnx`` has a fixed 256x256x3 input. :func:`at_frame` rebuilds its
IR with every spatial size scaled to another input frame: the same layers, weights, formats,
kernels, strides, paddings, pooling and upsampling factors, so every output pixel is computed
by the same arithmetic and only the frame (and with it the borders' share) is smaller. Used by
the RTL test of a cropped frame and by ``bench/branched_full_image.py``.
"""

import dataclasses

from nnfab.ir import INPUT, Model

from .importers.conftest import SHARED

PATH = SHARED / "models" / "hls4ml-example-models" / "onnx" / "branched_model_ch_last.onnx"


def load_branched(max_multipliers=None):
    """The imported model, with reuse factors for ``max_multipliers`` when given."""
    from nnfab.gen.importers.qonnx import load_qonnx
    from nnfab.gen.passes.reuse import ChooseReuseFactors

    model = load_qonnx(PATH)
    if max_multipliers is not None:
        model, _ = ChooseReuseFactors(max_multipliers=max_multipliers).apply(model)
    return model


def at_frame(model, frame):
    """``model`` with input frame ``(H, W)``: each layer rebuilt for its inputs' new shapes.

    Handles the kinds of the branched model (``conv2d``, ``activation``, ``pool``,
    ``upsample``, ``concatenate``); ``H`` and ``W`` must survive its pooling."""
    shapes = {INPUT: (*frame, model.input_shape[-1])}
    layers = []
    for layer in model.layers:
        new = [shapes[t] for t in layer.inputs]
        if layer.kind in ("conv2d", "pool"):
            layer = dataclasses.replace(
                layer, spec=dataclasses.replace(layer.spec, input_shape=new[0]))
        elif layer.kind in ("activation", "upsample"):
            layer = dataclasses.replace(layer, shape=new[0])
        elif layer.kind == "concatenate":
            layer = dataclasses.replace(layer, shapes=tuple(new))
        else:
            raise ValueError(f"Layer {layer.name!r}: kind {layer.kind!r} is not handled")
        layers.append(layer)
        shapes[layer.name] = tuple(layer.output_shape)
    return Model(model.name, shapes[INPUT], model.input_format, layers)


def up_to(model, name):
    """The model's layers up to ``name`` (included), ``name`` as its output: the join alone,
    without what follows it (whose back-pressure a full-rate simulation would measure)."""
    layers = model.layers[:[layer.name for layer in model.layers].index(name) + 1]
    return Model(model.name, model.input_shape, model.input_format, layers)
