"""Set small weights to zero, so the engines prune them (quantized models)."""

import numpy as np

from nnfab.ir import DenseLayer
from nnfab.layers import DenseSpec

from .base import Pass

__all__ = ["PruneWeights"]


class PruneWeights(Pass):
    """Zero every weight code whose magnitude is at most ``max_code`` (0 changes nothing: the
    engines already skip exact zeros at elaboration, which is the pruning that always happens).

    Raises
    ------
    ValueError
        If ``max_code`` is negative.
    """

    def __init__(self, max_code=0):
        if not isinstance(max_code, int) or max_code < 0:
            raise ValueError(f"Pruning threshold must be a non-negative integer code, "
                             f"not {max_code!r}")
        self.max_code = max_code

    def apply(self, model):
        if self.max_code == 0:
            return model, False
        layers, changed = [], False
        for layer in model.layers:
            if isinstance(layer, DenseLayer):
                s = layer.spec
                small = (np.abs(s.weights.astype(np.int64)) <= self.max_code) & (s.weights != 0)
                if np.any(small):
                    weights = np.where(small, 0, s.weights.astype(np.int64))
                    spec = DenseSpec(weights, s.biases, s.input_format, s.weight_format,
                                     s.output_format, bias_format=s.bias_format,
                                     accumulator_format=s.accumulator_format)
                    layer = DenseLayer(layer.name, spec=spec, reuse_factor=layer.reuse_factor)
                    changed = True
            layers.append(layer)
        return (model.replace_layers(layers), True) if changed else (model, False)
