"""IR layer of per-element requantization (HGQ's ``FixedPointQuantizer``)."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import FormatError, ModelError
from nnfab.fixed import FixedFormat, check_lane_formats, common_format

from .model import Layer
from .native_keys import FORMAT, OPTIONAL_FORMAT
from .native_params import format_from_json
from .registry import register

__all__ = ["QuantizeLayer", "lanes_format"]


def lanes_format(formats, *, rounding="TRN", overflow="WRAP"):
    """The narrowest format holding every value of every lane format exactly
    (:func:`nnfab.fixed.common_format`; None entries, zero-bit lanes, are skipped; all None
    gives ``ufixed<1,0>``), with ``rounding`` and ``overflow``."""
    formats = [f for f in formats if f is not None]
    if not formats:
        return FixedFormat(1, 0, signed=False, rounding=rounding, overflow=overflow)
    return common_format(formats).replace(rounding=rounding, overflow=overflow)


@register
@dataclass(frozen=True)
class QuantizeLayer(Layer):
    """Lane ``j`` (last axis) cast from ``fin`` to its own format ``formats[j]`` (None: zero
    bits, always 0), held exactly in the common format ``fout`` (default
    :func:`lanes_format`). Golden model :func:`nnfab.sim.golden.quantize.quantize_lanes`,
    engine :class:`nnfab.hdl.quantize.LaneQuantizer` (latency 1, II 1).

    Raises
    ------
    ModelError
        If the formats do not match the shape's last axis.
    FormatError
        If a lane format does not fit ``fout``.
    """

    kind: ClassVar[str] = "quantize"
    native_keys: ClassVar[dict] = {
        "formats": {"type": "array", "minItems": 1, "items": OPTIONAL_FORMAT,
                    "accepted": "a list of format strings or nulls, one per element of the "
                                "last axis"},
        "output_format": FORMAT}
    shape: tuple = ()
    fin: FixedFormat = None
    formats: tuple = ()
    fout: FixedFormat = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "formats", tuple(self.formats))
        if not self.shape or len(self.formats) != self.shape[-1]:
            raise ModelError(f"Layer {self.name!r}: {len(self.formats)} lane formats for shape "
                             f"{self.shape}; give one per element of the last axis")
        if not isinstance(self.fin, FixedFormat):
            raise ModelError(f"Layer {self.name!r}: input format must be a FixedFormat, not "
                             f"{self.fin!r}")
        if self.fout is None:
            object.__setattr__(self, "fout", lanes_format(self.formats))
        try:
            check_lane_formats(self.formats, self.fout)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"Layer {self.name!r}: {exc}") from None

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
        return self.fout

    def describe(self):
        n_zero = sum(f is None for f in self.formats)
        return (f"per-element requantize to {len(set(self.formats) - {None})} formats "
                f"({n_zero} zero-bit lanes), out {self.fout}")

    @classmethod
    def from_native(cls, e):
        formats, out_fmt = e.get("formats"), e.format("output_format")
        if not isinstance(formats, list) or out_fmt is None:
            raise FormatError(f"{e.where}: a 'quantize' layer needs \"formats\" (one format "
                              f"string or null per element of the last axis) and "
                              f"\"output_format\"")
        return cls(e.name, shape=e.shape, fin=e.fmt, fout=out_fmt,
                   formats=[None if f is None else format_from_json(f, e.where)
                            for f in formats])

    def to_native(self, entry, out):
        entry.update(formats=[None if f is None else str(f) for f in self.formats],
                     output_format=str(self.fout))
