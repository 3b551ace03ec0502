"""IR layer of a board build's ROM layer fused with the TFLite output stage after it (made by
:func:`nnfab.boards.network.fuse_rom_output_stages`)."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.layers import rom_folding, rom_requantizer_shortfall, rom_reuse_factors

from .dense import weighted_row
from .model import FusedLayer
from .registry import register

__all__ = ["RomDenseLayer"]


@register
@dataclass(frozen=True)
class RomDenseLayer(FusedLayer):
    """``parts``: a :class:`~nnfab.ir.DenseLayer` whose output is its integer accumulator and
    the :class:`~nnfab.ir.OutputStageLayer` that reads it, built as one
    :class:`nnfab.hdl.dense_rom.DenseRomEngine` with its weights in a ROM at
    ``rom_reuse_factor`` and the stage requantizing its results in place (one time-shared
    lane; ``n_pe + 3 <= n_chunks``, :func:`nnfab.layers.rom_requantizer_keeps_pace`).

    The golden model is the parts' golden models in order; the native format stores the parts.

    Raises
    ------
    ModelError
        If the parts are not a dense layer and an output stage, or the reuse factor is not a
        ROM reuse factor at which the requantizer lane keeps the layer's pace.
    """

    kind: ClassVar[str] = "rom_dense"
    rom_reuse_factor: int = 1

    def __post_init__(self):
        super().__post_init__()
        kinds = [p.kind for p in self.parts]
        if kinds != ["dense", "output_stage"]:
            raise ModelError(f"Layer {self.name!r}: a ROM dense layer fuses dense "
                             f"output_stage, not {' '.join(kinds) or 'nothing'}")
        spec, r = self.spec, self.rom_reuse_factor
        if not isinstance(r, int) or isinstance(r, bool) or \
                rom_folding(spec.n_in, spec.n_out, r) is None:
            raise ModelError(f"Layer {self.name!r}: ROM reuse factor must be a divisor of n_in "
                             f"{spec.n_in} times a divisor of n_out {spec.n_out} (one of "
                             f"{', '.join(map(str, rom_reuse_factors(spec.n_in, spec.n_out)))}"
                             f"), not {r!r}")
        shortfall = rom_requantizer_shortfall(spec.n_in, spec.n_out, r)
        if shortfall:
            raise ModelError(f"Layer {self.name!r}: an output stage inside a ROM layer needs "
                             f"{shortfall} at ROM reuse factor {r}")

    @property
    def dense(self):
        return self.parts[0]

    @property
    def stage(self):
        """The :class:`~nnfab.output_stage.OutputStage` of the second part."""
        return self.parts[1].stage

    @property
    def spec(self):
        return self.dense.spec

    @property
    def reuse_factor(self):
        return self.rom_reuse_factor

    def describe(self):
        return (f"{self.dense.describe()}, weights in ROM at R={self.rom_reuse_factor}; "
                f"{self.parts[1].describe()} inside it")

    def manifest_row(self, engine):
        s = self.stage
        return {**weighted_row(self), "fused_layers": [part.name for part in self.parts],
                "processing_elements": engine.n_pe, "outputs_per_pe": engine.outputs_per_pe,
                "zero_point": s.zero_point, "clamp": [s.low, s.high], "rounding": s.rounding,
                "channels": s.channels, "requantizer_lanes": 1}
