"""IR layer of consecutive fused shift-add dense layers built as one pipeline (made by
:class:`nnfab.gen.passes.ChainShiftAdd`)."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError

from .model import FusedLayer
from .registry import register

__all__ = ["ShiftAddChainLayer", "CHAIN_TIMING"]

#: The options of :class:`~nnfab.ir.ShiftAddDenseLayer` that place registers: the layers of
#: a chain share them (one pipeline, one timing).
CHAIN_TIMING = ("adder_levels_per_stage", "clock_mhz", "family")


@register
@dataclass(frozen=True)
class ShiftAddChainLayer(FusedLayer):
    """``parts``: two or more :class:`~nnfab.ir.ShiftAddDenseLayer`, each reading the one
    before, with the same timing (``clock_mhz``, ``family``, ``adder_levels_per_stage``),
    built as one :class:`nnfab.hdl.shift_add_chain.ShiftAddChain` (II 1): one free-running
    pipeline whose registers are placed over all of them, one skid FIFO at its output.

    The golden model is the parts' golden models in order; the native format stores the
    layers the parts fuse.

    Raises
    ------
    ModelError
        If there are fewer than two parts, a part is not a shift-add dense layer or the parts'
        timing differs.
    """

    kind: ClassVar[str] = "shift_add_chain"

    def __post_init__(self):
        super().__post_init__()
        kinds = [p.kind for p in self.parts]
        if len(kinds) < 2 or set(kinds) != {"shift_add_dense"}:
            raise ModelError(f"Layer {self.name!r}: a shift-add chain fuses two or more "
                             f"shift_add_dense layers, not {' '.join(kinds) or 'nothing'}")
        timing = {tuple(getattr(p, key) for key in CHAIN_TIMING) for p in self.parts}
        if len(timing) != 1:
            raise ModelError(f"Layer {self.name!r}: the layers of a shift-add chain share "
                             f"their timing ({', '.join(CHAIN_TIMING)}), not "
                             f"{sorted(timing, key=str)!r}")

    @property
    def reuse_factor(self):
        return 1

    @property
    def layers(self):
        """The fused layers the chain builds, in order (its parts)."""
        return self.parts

    def describe(self):
        return "one pipeline of " + "; ".join(p.describe() for p in self.parts)

    def manifest_row(self, engine):
        """The chain's keys, and in ``chain`` a row per fused layer (no latency or Fmax of
        its own: the chain is one pipeline)."""
        rows = [{"name": part.name, "kind": part.kind, "latency": None,
                 **part.manifest_row(layer)} for part, layer in zip(self.parts, engine.layers)]
        for row in rows:  # the chain's timing is its own
            del row["estimated_f_max_mhz"]
        return {"chain": rows,
                "fused_layers": [sub.name for part in self.parts for sub in part.parts],
                "adder_levels": engine.levels, "clock_mhz": engine.clock_mhz,
                "estimated_f_max_mhz": round(engine.estimated_f_max_hz / 1e6, 1)}
