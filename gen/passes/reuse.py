"""Choose each dense and convolution layer's reuse factor from a user's budget."""

from dataclasses import replace

import numpy as np

from nnfab.errors import ModelError
from nnfab.ir import DenseLayer
from nnfab.ir import Conv2DLayer

from .base import Pass

__all__ = ["ChooseReuseFactors"]


_REUSING = (DenseLayer, Conv2DLayer)


def _divisors(n):
    return [r for r in range(1, n + 1) if n % r == 0]


def _n_in(layer):
    """Products per output of a dense layer (``n_in``) or a convolution (its window)."""
    return layer.spec.n_in if isinstance(layer, DenseLayer) else layer.spec.n_window


def _weight_matrix(layer):
    spec = layer.spec
    return spec.weights if isinstance(layer, DenseLayer) else spec.dense_weights


class ChooseReuseFactors(Pass):
    """Set reuse factors, per layer or from a multiplier budget.

    Parameters
    ----------
    reuse_factor : int or None
        One reuse factor for every dense and convolution layer; a layer whose ``n_in`` (a
        convolution's window size ``kh * kw * C_in``) it does not divide gets the largest
        divisor of ``n_in`` below it.
    per_layer : dict of str to int
        Reuse factors by layer name; these win over the others.
    max_multipliers : int or None
        Budget of multipliers per layer (products per cycle after pruning): each layer gets
        the smallest reuse factor whose multiplier count fits.

    Raises
    ------
    ModelError
        If ``per_layer`` names a layer that is not a dense or convolution layer of the model,
        or gives a
        reuse factor that does not divide the layer's ``n_in``.
    """

    def __init__(self, *, reuse_factor=None, per_layer=None, max_multipliers=None):
        self.reuse_factor = reuse_factor
        self.per_layer = dict(per_layer or {})
        self.max_multipliers = max_multipliers

    def _choose(self, layer):
        n_in = _n_in(layer)
        if layer.name in self.per_layer:
            r = self.per_layer[layer.name]
            if r not in _divisors(n_in):
                raise ModelError(f"Layer {layer.name!r}: reuse factor must divide n_in {n_in} "
                                 f"(one of {', '.join(map(str, _divisors(n_in)))}), not {r!r}")
            return r
        if self.max_multipliers is not None:
            nonzero = np.count_nonzero(_weight_matrix(layer) != 0, axis=1)
            for r in _divisors(n_in):
                if int(np.sum(-(-nonzero // r))) <= self.max_multipliers:
                    return r
            return n_in
        if self.reuse_factor is not None:
            return max(r for r in _divisors(n_in) if r <= self.reuse_factor)
        return layer.reuse_factor

    def apply(self, model):
        names = {layer.name for layer in model.layers if isinstance(layer, _REUSING)}
        for name in self.per_layer:
            if name not in names:
                raise ModelError(f"Reuse factor given for {name!r}, which is not a dense or "
                                 f"convolution layer of model {model.name!r} (those are: "
                                 f"{', '.join(sorted(names))})")
        layers, changed = [], False
        for layer in model.layers:
            if isinstance(layer, _REUSING):
                r = self._choose(layer)
                if r != layer.reuse_factor:
                    layer = replace(layer, reuse_factor=r)
                    changed = True
            layers.append(layer)
        return (model.replace_layers(layers), True) if changed else (model, False)
