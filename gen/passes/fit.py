"""Raise reuse factors until a model's resource estimate fits a device: the default of
``nnfab build``, ``verify`` and ``sweep`` when the user chose no reuse factor."""

from dataclasses import dataclass, field, replace

from nnfab.errors import ModelError
from nnfab.ir import Conv2DLayer, DenseLayer

from ..estimate import estimate_layer, ModelEstimate
from .base import Pass
from .reuse import ChooseReuseFactors, _n_in

__all__ = ["FitToDevice", "FitResult"]


@dataclass
class FitResult:
    """What :class:`FitToDevice` did.

    Attributes
    ----------
    device : object
        The target (``name``, ``luts``, ``dsps``).
    estimate : ModelEstimate
        The estimate of the model it returned.
    changes : list of (str, int, int)
        ``(layer name, reuse factor before, after)`` of every layer it changed, in model order
        (output stages that follow their layer included).
    """

    device: object
    estimate: ModelEstimate = None
    changes: list = field(default_factory=list)
    fits: bool = True

    def lines(self):
        """One line per changed layer, for the user; and a warning when even the largest
        reuse factors do not fit."""
        by_name = {e.name: e for e in self.estimate.layers}
        lines = [f"layer {name}: reuse factor {old} -> {new} to fit {self.device.name} "
                 f"(estimate {by_name[name].luts:,} LUT4 eq., "
                 f"{by_name[name].dsp_blocks} DSP)" for name, old, new in self.changes]
        if not self.fits:
            lines.append(f"warning: {_does_not_fit(self.estimate, self.device)}; built at "
                         f"those reuse factors (--fit DEVICE for another device, --fit none "
                         f"to keep the model's own)")
        return lines

    def as_dict(self):
        """The manifest's ``fit`` section."""
        return {"target": self.device.name, "device_luts": self.device.luts,
                "device_dsps": self.device.dsps,
                "estimate": self.estimate.as_dict(self.device), "fits": self.fits,
                "changed": {name: [old, new] for name, old, new in self.changes}}


def _does_not_fit(estimate, device):
    luts, dsps = estimate.on_device(device.dsps)
    return (f"does not fit {device.name} even at the largest reuse factors: estimate "
            f"{luts:,} LUT4 eq. and {dsps} DSP blocks against {device.luts:,} LUT4 and "
            f"{device.dsps} DSP blocks")


class FitToDevice(Pass):
    """Raise reuse factors, the largest consumer first, until the estimate
    (:func:`~nnfab.gen.estimate.estimate_layer`) fits ``device``.

    Each step takes the dense or convolution layer whose estimate (all multipliers in LUTs)
    is the largest among those that a larger reuse factor makes smaller, and gives it the
    smallest such divisor of its ``n_in`` (a convolution's window); output stages follow the layer that feeds them
    (:class:`ChooseReuseFactors`' rule). A dense layer that leaves reuse factor 1 is no longer
    fused by :class:`~nnfab.gen.passes.FuseShiftAdd`, which runs after this pass.

    Parameters
    ----------
    device : object
        ``name``, ``luts`` (LUT4) and ``dsps`` (18x18 multiplier blocks), as
        :class:`nnfab.boards.synth.Device`.
    fused : callable
        ``fused(layer)``: whether a later :class:`~nnfab.gen.passes.FuseShiftAdd` fuses the
        dense ``layer`` at reuse factor 1 (estimated as a shift-add layer then).
    strict : bool
        Whether a model that does not fit at the largest useful reuse factors is an error
        (the user named the device: ``--fit DEVICE``); otherwise (the default device) the
        model keeps those reuse factors and :attr:`FitResult.fits` is False.

    Attributes
    ----------
    result : FitResult or None
        What the last :meth:`apply` did.

    Raises
    ------
    ModelError
        If ``strict``, the model does not fit and no larger reuse factor lowers a layer's
        estimate (the message names the model, the estimate and the device).
    """

    def __init__(self, device, *, fused=lambda layer: False, strict=True):
        self.device = device
        self._fused = fused
        self._strict = strict
        self.result = None

    def _estimate(self, model, cache):
        estimates = []
        for layer in model.layers:
            key = (layer.name, getattr(layer, "reuse_factor", None))
            if key not in cache:
                cache[key] = estimate_layer(layer, fused=bool(self._fused(layer)))
            estimates.append(cache[key])
        return ModelEstimate(tuple(estimates))

    def _step(self, layer, cost, cache):
        """The smallest reuse factor above ``layer``'s that lowers its estimate, or None
        (shift-add terms at R = 1 may cost less than the multipliers of R = 2)."""
        n_in = _n_in(layer)
        for r in range(layer.reuse_factor + 1, n_in + 1):
            if n_in % r == 0:
                key = (layer.name, r)
                if key not in cache:
                    cache[key] = estimate_layer(replace(layer, reuse_factor=r))
                if cache[key].luts_without_dsps < cost:
                    return r
        return None

    def apply(self, model):
        device, cache, per_layer = self.device, {}, {}
        current = model
        estimate = self._estimate(current, cache)
        while not estimate.fits(device):
            costs = {e.name: e.luts_without_dsps for e in estimate.layers}
            steps = {layer.name: self._step(layer, costs[layer.name], cache)
                     for layer in current.layers
                     if isinstance(layer, (DenseLayer, Conv2DLayer))}
            candidates = [layer for layer in current.layers if steps.get(layer.name)]
            if not candidates:
                if not self._strict:
                    break
                raise ModelError(
                    f"Model {model.name!r} {_does_not_fit(estimate, device)}; choose another "
                    f"device with --fit DEVICE, or build it anyway with --fit none")
            layer = max(candidates, key=lambda c: costs[c.name])
            per_layer[layer.name] = steps[layer.name]
            current, _ = ChooseReuseFactors(per_layer=per_layer).apply(model)
            estimate = self._estimate(current, cache)
        before = {layer.name: getattr(layer, "reuse_factor", None) for layer in model.layers}
        changes = [(layer.name, before[layer.name], layer.reuse_factor)
                   for layer in current.layers
                   if getattr(layer, "reuse_factor", None) != before[layer.name]]
        self.result = FitResult(device, estimate, changes, fits=estimate.fits(device))
        return current, bool(changes)
