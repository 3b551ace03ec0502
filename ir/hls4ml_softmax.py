"""IR layers that reproduce hls4ml's own arithmetic where it differs from nnfab's layers."""

from dataclasses import dataclass
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.softmax_hls4ml import Hls4mlSoftmaxSpec

from .model import Layer
from .native_keys import FORMAT, TABLE_SIZE
from .native_params import format_from_json
from .registry import register

__all__ = ["Hls4mlSoftmaxLayer"]

_FORMATS = ("output_format", "accum_format", "exp_table_format", "inv_table_format",
            "inv_input_format")


@register
@dataclass(frozen=True)
class Hls4mlSoftmaxLayer(Layer):
    """hls4ml's ``stable`` softmax over a vector (:class:`nnfab.softmax_hls4ml.Hls4mlSoftmaxSpec`,
    built by :class:`nnfab.hdl.softmax_hls4ml.Hls4mlSoftmax`)."""

    kind: ClassVar[str] = "hls4ml_softmax"
    native_keys: ClassVar[dict] = {
        **{key: FORMAT for key in _FORMATS},
        "exp_table_size": TABLE_SIZE, "inv_table_size": TABLE_SIZE,
        "exp_scale": {"type": "number", "minimum": -1e6, "maximum": 1e6,
                      "accepted": "a number from -1000000 to 1000000 (hls4ml's exp_scale)"}}
    spec: Hls4mlSoftmaxSpec = None

    def __post_init__(self):
        if not isinstance(self.spec, Hls4mlSoftmaxSpec):
            raise ModelError(f"Layer {self.name!r}: needs an Hls4mlSoftmaxSpec, not "
                             f"{self.spec!r}")

    input_shape = property(lambda self: (self.spec.n,))
    output_shape = property(lambda self: (self.spec.n,))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.output_format)

    def describe(self):
        s = self.spec
        return (f"hls4ml stable softmax, exp table {s.exp_table_size} x {s.exp_table_format}, "
                f"inv table {s.inv_table_size} x {s.inv_table_format}, out {s.output_format}")

    @classmethod
    def from_native(cls, e):
        formats = {key: format_from_json(e.get(key), e.where) for key in _FORMATS}
        missing = [key for key, value in formats.items() if value is None]
        if missing:
            raise ModelError(f"{e.where}: an 'hls4ml_softmax' layer needs {', '.join(missing)}")
        try:
            spec = Hls4mlSoftmaxSpec(n=e.shape[-1], input_format=e.fmt,
                                     exp_table_size=int(e.get("exp_table_size", 1024)),
                                     inv_table_size=int(e.get("inv_table_size", 1024)),
                                     exp_scale=float(e.get("exp_scale", 1.0)), **formats)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{e.where}: {exc}") from None
        return cls(e.name, spec=spec)

    def to_native(self, entry, out):
        spec = self.spec
        entry.update({key: str(getattr(spec, key)) for key in _FORMATS})
        entry.update(exp_table_size=spec.exp_table_size, inv_table_size=spec.inv_table_size,
                     exp_scale=spec.exp_scale)

    def manifest_row(self, engine):
        spec = self.spec
        return dict(accumulator_format=str(spec.accum_format),
                    exp_table=f"{spec.exp_table_size} x {spec.exp_table_format}",
                    inv_table=f"{spec.inv_table_size} x {spec.inv_table_format}",
                    inv_input_format=str(spec.inv_input_format))
