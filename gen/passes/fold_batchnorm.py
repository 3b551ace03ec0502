"""Fold a batch normalization into the dense layer before it (float models)."""

from nnfab.gen.float_model import FloatBatchNorm, FloatDense

from .base import Pass

__all__ = ["FoldBatchNorm"]


class FoldBatchNorm(Pass):
    """``BN(W x + b) = (s * W) x + (s * b + t)`` with ``s = gamma / sqrt(var + eps)`` and
    ``t = beta - mean * s``, per output: a batch normalization right after a dense layer
    disappears into its weights and biases. Other batch normalizations are left in place."""

    def apply(self, model):
        layers, changed = [], False
        for layer in model.layers:
            if isinstance(layer, FloatBatchNorm) and layers and isinstance(layers[-1], FloatDense):
                dense = layers.pop()
                scale, shift = layer.scale, layer.shift
                biases = dense.biases if dense.biases is not None else 0.0
                layers.append(FloatDense(dense.name, dense.weights * scale[:, None],
                                         biases * scale + shift))
                changed = True
            else:
                layers.append(layer)
        return (model.replace_layers(layers), True) if changed else (model, False)
