"""Choose each dense and convolution layer's reuse factor from a user's budget, and each
output stage's to match the layer that feeds it."""

from dataclasses import replace

import numpy as np

from nnfab.errors import ModelError
from nnfab.ir import INPUT, Conv2DLayer, DenseLayer, OutputStageLayer

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

    An output stage (:class:`~nnfab.ir.OutputStageLayer`, ``C`` channels) not named in
    ``per_layer`` gets, when ``reuse_factor`` or ``max_multipliers`` is given or the layer
    feeding it changes here, ``R = min(C, I)``: ``I`` is the fewest cycles between the
    transfers that reach it (the feeding dense or convolution layer's reuse factor; through
    other layers the smallest of their inputs'; 1 from the model input), so its
    ``ceil(C / R)`` lanes never hold the stream back; ``max_multipliers`` caps the lanes.

    Raises
    ------
    ModelError
        If ``per_layer`` names a layer that is not a dense, convolution or output stage layer
        of the model, gives a reuse factor that does not divide the layer's ``n_in``, or one
        outside 1 to ``C`` for an output stage.
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

    def _choose_stage(self, layer, interval):
        channels = layer.shape[-1]
        if layer.name in self.per_layer:
            r = self.per_layer[layer.name]
            if not isinstance(r, int) or not 1 <= r <= channels:
                raise ModelError(f"Layer {layer.name!r}: reuse factor must be an integer from 1 "
                                 f"to {channels} (the channels), not {r!r}")
            return r
        r = min(channels, interval)
        if self.max_multipliers is not None:
            r = max(r, -(-channels // max(1, self.max_multipliers)))
        return r

    def apply(self, model):
        names = {layer.name for layer in model.layers
                 if isinstance(layer, (*_REUSING, OutputStageLayer))}
        for name in self.per_layer:
            if name not in names:
                raise ModelError(f"Reuse factor given for {name!r}, which is not a dense, "
                                 f"convolution or output stage layer of model {model.name!r} "
                                 f"(those are: {', '.join(sorted(names))})")
        rematch = self.reuse_factor is not None or self.max_multipliers is not None
        # Fewest cycles between two transfers of each tensor, and the tensors changed here.
        interval, moved = {INPUT: 1}, set()
        layers = []
        for layer in model.layers:
            r = layer.reuse_factor if isinstance(layer, (*_REUSING, OutputStageLayer)) else None
            if isinstance(layer, _REUSING):
                r = self._choose(layer)
            elif isinstance(layer, OutputStageLayer) and (
                    rematch or layer.name in self.per_layer or moved & set(layer.inputs)):
                r = self._choose_stage(layer, interval[layer.inputs[0]])
            if r is not None and r != layer.reuse_factor:
                layer = replace(layer, reuse_factor=r)
                moved.add(layer.name)
            if isinstance(layer, _REUSING):
                interval[layer.name] = layer.reuse_factor
            elif isinstance(layer, OutputStageLayer):
                lanes = layer.n_lanes
                interval[layer.name] = -(-layer.shape[-1] // lanes)
            else:
                # A layer that may emit without input (padding, upsampling): every cycle.
                interval[layer.name] = 1 if layer.kind in ("zero_pad", "upsample") else \
                    min(interval[t] for t in layer.inputs)
            layers.append(layer)
        return (model.replace_layers(layers), True) if moved else (model, False)
