"""Choose each dense, convolution and recurrent layer's reuse factor from a user's budget, and each
output stage's to match the layer that feeds it."""

from dataclasses import replace

import numpy as np

from nnfab.errors import ModelError
from nnfab.ir import INPUT, Conv2DLayer, DenseLayer, OutputStageLayer, RecurrentLayer
from nnfab.ir.dense import check_reuse_factor
from nnfab.layers import reuse_factors

from .base import Pass

__all__ = ["ChooseReuseFactors"]


_REUSING = (DenseLayer, Conv2DLayer, RecurrentLayer)


def _dense_spec(layer):
    """The DenseSpec of a dense layer or of a recurrent layer's step product, else None."""
    if isinstance(layer, DenseLayer):
        return layer.spec
    return layer.spec.dense_spec if isinstance(layer, RecurrentLayer) else None


def _valid(layer):
    """Reuse factors of a dense or recurrent layer (also multiples of ``n_in``:
    :func:`~nnfab.layers.reuse_factors`) or a convolution (divisors of its window)."""
    spec = _dense_spec(layer)
    if spec is not None:
        return reuse_factors(spec.n_in, spec.n_out)
    return reuse_factors(layer.spec.n_window)


def _n_in(layer):
    """Products per output of a dense layer (``n_in``), a recurrent layer's step (``n_in +
    units``) or a convolution (its window)."""
    spec = _dense_spec(layer)
    return layer.spec.n_window if spec is None else spec.n_in


def _weight_matrix(layer):
    spec = _dense_spec(layer)
    return layer.spec.dense_weights if spec is None else spec.weights


class ChooseReuseFactors(Pass):
    """Set reuse factors, per layer or from a multiplier budget.

    Parameters
    ----------
    reuse_factor : int or None
        One reuse factor for every dense, convolution and recurrent layer (its step's product
        of ``n_in + units`` inputs); a layer it does not fit gets the largest valid one below
        it: a divisor of ``n_in`` (a convolution's window size ``kh * kw * C_in``) or, for a
        dense or recurrent layer, ``n_in`` times a divisor of ``n_out``
        (:func:`~nnfab.layers.reuse_factors`, hls4ml's rule).
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
        of the model, gives a reuse factor the layer cannot take (see ``reuse_factor``), or
        one outside 1 to ``C`` for an output stage.
    """

    def __init__(self, *, reuse_factor=None, per_layer=None, max_multipliers=None):
        self.reuse_factor = reuse_factor
        self.per_layer = dict(per_layer or {})
        self.max_multipliers = max_multipliers

    def _choose(self, layer):
        n_in = _n_in(layer)
        if layer.name in self.per_layer:
            r = self.per_layer[layer.name]
            if isinstance(layer, Conv2DLayer):  # dense and recurrent layers check theirs when
                check_reuse_factor(layer.name, r, n_in)  # replaced (apply), with this function
            return r
        if self.max_multipliers is not None:
            nonzero = np.count_nonzero(_weight_matrix(layer) != 0, axis=1)
            for r in reuse_factors(n_in):
                if int(np.sum(-(-nonzero // r))) <= self.max_multipliers:
                    return r
            return n_in
        if self.reuse_factor is not None:
            return max(r for r in _valid(layer) if r <= self.reuse_factor)
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
                                 f"convolution, recurrent or output stage layer of model {model.name!r} "
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
