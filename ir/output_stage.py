"""The ``output_stage`` layer kind: TFLite's integer requantization of accumulators to int8.

An integer operator of a TFLite model is an exact integer sum (a ``dense`` or ``conv2d`` layer
whose output is its whole accumulator) followed by this layer: per channel (the last axis),
``clamp(rescale(acc) + zero_point, low, high)`` as :class:`nnfab.output_stage.OutputStage`
describes. Its engine is :class:`nnfab.hdl.output_stage.OutputStageEngine` (``ceil(C / R)``
time-shared lanes for reuse factor ``R``: II ``ceil(C / lanes)`` per vector, latency II + 2),
its golden function :func:`nnfab.sim.golden.output_stage.output_stage`.
"""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat
from nnfab.output_stage import ROUNDINGS, OutputStage

from .model import Layer
from .native_keys import REUSE
from .registry import register

__all__ = ["OutputStageLayer", "integer_format"]

_INTEGERS = {"type": "array", "minItems": 1, "maxItems": 1 << 16,
             "items": {"type": "integer"}, "accepted": "a non-empty list of integers"}
_INTEGER = {"type": "integer", "accepted": "an integer"}


def integer_format(width, signed=True):
    """Integer codes of ``width`` bits as a format: ``fixed<W,W>`` (``ufixed`` unsigned)."""
    return FixedFormat(width, width, signed=signed)


@register
@dataclass(frozen=True)
class OutputStageLayer(Layer):
    """Requantize integer accumulators (``fin``, an integer format of at most 32 bits, or 48
    with ``"half_away"`` or ``"half_even"`` rounding) to the stage's ``width``-bit codes, per
    channel of the last axis.

    Parameters
    ----------
    shape : tuple of int
        Input and output shape; its last axis has ``stage.channels`` entries (or any number
        for a per-tensor stage).
    fin : FixedFormat
        Integer format of the accumulators (``fixed<W,W>``).
    stage : OutputStage
    reuse_factor : int
        Channels per hardware lane, 1 to ``shape[-1]``: ``ceil(shape[-1] / reuse_factor)``
        lanes take a vector in ``ceil(shape[-1] / lanes)`` cycles.
        :class:`~nnfab.gen.passes.ChooseReuseFactors` matches it to the layer that feeds it.

    Raises
    ------
    ModelError
        If ``fin`` is not an integer format, too wide, the channels do not match, or the
        reuse factor is out of range.
    """

    kind: ClassVar[str] = "output_stage"
    native_keys: ClassVar[dict] = {"multipliers": _INTEGERS, "shifts": _INTEGERS,
                                   "zero_point": _INTEGER, "low": _INTEGER, "high": _INTEGER,
                                   "width": _INTEGER,
                                   "rounding": {"enum": list(ROUNDINGS),
                                                "accepted": " or ".join(f'"{r}"'
                                                                        for r in ROUNDINGS)},
                                   "offsets": _INTEGERS, "reuse_factor": REUSE}
    required_keys: ClassVar[tuple] = ("multipliers", "shifts")
    shape: tuple = ()
    fin: FixedFormat = None
    stage: OutputStage = None
    reuse_factor: int = 1

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if not isinstance(self.stage, OutputStage):
            raise ModelError(f"Layer {self.name!r}: output stage layer needs an OutputStage, "
                             f"not {self.stage!r}")
        fin, limit = self.fin, 32 if self.stage.rounding == "gemmlowp" else 48
        if not isinstance(fin, FixedFormat) or fin.fraction_width != 0 or not fin.signed or \
                fin.width > limit:
            raise ModelError(f"Layer {self.name!r}: output stage input must be a signed integer "
                             f"format of at most {limit} bits (fixed<W,W>), not {fin!r}")
        if not self.shape or self.stage.channels not in (1, self.shape[-1]):
            raise ModelError(f"Layer {self.name!r}: output stage has {self.stage.channels} "
                             f"channels; its input of shape {self.shape} needs "
                             f"{self.shape[-1] if self.shape else '?'} or 1")
        if not isinstance(self.reuse_factor, int) or \
                not 1 <= self.reuse_factor <= self.shape[-1]:
            raise ModelError(f"Layer {self.name!r}: reuse factor must be an integer from 1 to "
                             f"{self.shape[-1]} (the channels), not {self.reuse_factor!r}")

    @property
    def n_lanes(self):
        """Hardware lanes: ``ceil(channels / reuse_factor)``."""
        return -(-self.shape[-1] // self.reuse_factor)

    @property
    def input_shape(self):
        return self.shape

    @property
    def output_shape(self):
        return self.shape

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return integer_format(self.stage.width)

    def describe(self):
        s = self.stage
        return (f"requantize {self.fin} -> int{s.width}, zero point {s.zero_point}, clamp "
                f"[{s.low}, {s.high}], {s.channels} channel{'s' * (s.channels > 1)}, "
                f"{s.rounding}, R={self.reuse_factor}")

    @classmethod
    def from_native(cls, e):
        stage = e.spec(OutputStage, tuple(e.get("multipliers")), tuple(e.get("shifts")),
                       zero_point=int(e.get("zero_point", 0)), low=int(e.get("low", -128)),
                       high=int(e.get("high", 127)), width=int(e.get("width", 8)),
                       rounding=e.get("rounding", "gemmlowp"),
                       offsets=tuple(e.get("offsets", ())))
        return cls(e.name, shape=e.shape, fin=e.fmt, stage=stage,
                   reuse_factor=int(e.get("reuse_factor", 1)))

    def to_native(self, entry, out):
        s = self.stage
        entry.update(multipliers=list(s.multipliers), shifts=list(s.shifts),
                     zero_point=s.zero_point, low=s.low, high=s.high, width=s.width,
                     rounding=s.rounding, reuse_factor=self.reuse_factor)
        if s.offsets:
            entry["offsets"] = list(s.offsets)

    def manifest_row(self, engine):
        s = self.stage
        return dict(zero_point=s.zero_point, clamp=[s.low, s.high], rounding=s.rounding,
                    channels=s.channels, reuse_factor=engine.reuse_factor, lanes=engine.n_lanes,
                    multiplier_bits=max(m.bit_length() for m in s.multipliers))
