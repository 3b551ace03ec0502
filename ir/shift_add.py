"""IR layer of a dense layer fused with its requantizers and activation into one shift-add
adder graph (made by :class:`nnfab.gen.passes.FuseShiftAdd`)."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError

from .dense import weighted_row
from .model import FusedLayer
from .registry import register

__all__ = ["ShiftAddDenseLayer"]


@register
@dataclass(frozen=True)
class ShiftAddDenseLayer(FusedLayer):
    """``parts``: an optional :class:`~nnfab.ir.QuantizeLayer`, a
    :class:`~nnfab.ir.DenseLayer` at reuse factor 1 with exact accumulation (or a signed
    explicit accumulator, hls4ml's ``accum_t``), an optional
    :class:`~nnfab.ir.ActivationLayer` and an optional ``QuantizeLayer``, in this order,
    built as one :class:`nnfab.hdl.shift_add.ShiftAddDense` (II 1). ``input_lanes``: the
    per-element formats the input is known to hold (a previous layer's requantizer), or None.
    ``multiplier_threshold``: weights with more canonical signed digits are multiplier leaves
    of the adder graph (None: all shift-add terms). ``clock_mhz`` and ``family``: the target
    clock the engine's registers are placed for by its delay model (None: the family's
    default), or ``adder_levels_per_stage`` instead.

    The golden model is the parts' golden models in order, so the fused layer computes exactly
    what the separate layers do. The native format stores the parts (:attr:`parts`).

    Raises
    ------
    ModelError
        If the parts are not in that pattern.
    """

    kind: ClassVar[str] = "shift_add_dense"
    input_lanes: tuple | None = None
    adder_levels_per_stage: int | None = None
    clock_mhz: float | None = None
    family: str = "ecp5"
    lut_adder_width: int = 0
    multiplier_threshold: int | None = None

    def __post_init__(self):
        super().__post_init__()
        kinds = [p.kind for p in self.parts]
        dense = [n for n, k in enumerate(kinds) if k == "dense"]
        ok = len(dense) == 1
        if ok:
            n = dense[0]
            before, after = kinds[:n], kinds[n + 1:]
            ok = before in ([], ["quantize"]) and after in (
                [], ["activation"], ["quantize"], ["activation", "quantize"])
        if not ok:
            raise ModelError(f"Layer {self.name!r}: a shift-add dense layer fuses "
                             f"[quantize] dense [activation] [quantize], not "
                             f"{' '.join(kinds) or 'nothing'}")
        spec = self.dense.spec
        if self.dense.reuse_factor != 1 or not (spec.exact_accumulation or
                                                spec.accumulator.signed):
            raise ModelError(f"Layer {self.name!r}: a shift-add dense layer needs reuse "
                             f"factor 1 and exact accumulation or a signed accumulator, not "
                             f"reuse factor {self.dense.reuse_factor} with accumulator "
                             f"{spec.accumulator}")

    def _part(self, kind, *, before_dense):
        n = next(i for i, p in enumerate(self.parts) if p.kind == "dense")
        side = self.parts[:n] if before_dense else self.parts[n + 1:]
        return next((p for p in side if p.kind == kind), None)

    @property
    def dense(self):
        return next(p for p in self.parts if p.kind == "dense")

    @property
    def input_quantizer(self):
        return self._part("quantize", before_dense=True)

    @property
    def activation(self):
        return self._part("activation", before_dense=False)

    @property
    def output_quantizer(self):
        return self._part("quantize", before_dense=False)

    @property
    def reuse_factor(self):
        return 1

    @property
    def spec(self):
        return self.dense.spec

    def describe(self):
        names = ", ".join(p.name for p in self.parts)
        return f"shift-add adder graph of {names}; {self.dense.describe()}"

    def manifest_row(self, engine):
        return {**weighted_row(self), "shift_add_terms": engine.n_shift_add_terms,
                "fused_layers": [part.name for part in self.parts], "adders": engine.n_adders,
                "shared_subexpressions": engine.n_shared_subexpressions,
                "adder_levels": engine.levels,
                "clock_mhz": engine.clock_mhz,
                "estimated_f_max_mhz": round(engine.estimated_f_max_hz / 1e6, 1)}
