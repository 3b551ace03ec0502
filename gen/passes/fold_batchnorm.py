"""Fold a batch normalization into the dense or convolution layer before it (float models)."""

from dataclasses import replace

import numpy as np

from nnfab.gen.float_model import FloatBatchNorm, FloatConv2D, FloatDense

from .base import Pass

__all__ = ["FoldBatchNorm"]


class FoldBatchNorm(Pass):
    """``BN(W x + b) = (s * W) x + (s * b + t)`` with ``s = gamma / sqrt(var + eps)`` and
    ``t = beta - mean * s``, per output: a batch normalization right after a dense layer or
    a convolution (per filter) disappears into its weights and biases. Other batch
    normalizations are left in place."""

    def apply(self, model):
        layers, changed = [], False
        consumers = model.consumers()
        for layer in model.layers:
            # Only a batch normalization that alone reads the layer before it (in a graph, a
            # tensor that a skip path also reads must stay as it is).
            if isinstance(layer, FloatBatchNorm) and layers and \
                    isinstance(layers[-1], (FloatDense, FloatConv2D)) and \
                    layer.inputs == (layers[-1].name,) and \
                    consumers[layers[-1].name] == [layer.name]:
                before = layers.pop()
                scale, shift = layer.scale, layer.shift
                biases = before.biases if before.biases is not None else 0.0
                per_output = scale.reshape((-1,) + (1,) * (before.weights.ndim - 1))
                layers.append(replace(before, weights=before.weights * per_output,
                                      biases=np.broadcast_to(biases * scale + shift,
                                                             scale.shape).copy()))
                changed = True
            else:
                layers.append(layer)
        return (model.replace_layers(layers), True) if changed else (model, False)
