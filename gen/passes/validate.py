"""Check a quantized model before building it."""

import dataclasses

from nnfab.errors import FormatError, ModelError
from nnfab.fixed import MAX_ACCUMULATOR_WIDTH, FixedFormat

from .base import Pass

__all__ = ["Validate"]


class Validate(Pass):
    """Every tensor's format is known and every layer is one the generator can build.

    Shapes and formats between layers are checked when the :class:`~nnfab.ir.Model` is
    made; this pass adds what only the generator cares about: the input must be a flat vector
    or a channels-last image, only the last layer may be an argmax, and every format is within
    the limits of :mod:`nnfab.fixed` (tensors at most :data:`~nnfab.fixed.MAX_WIDTH` bits,
    accumulators at most :data:`~nnfab.fixed.MAX_ACCUMULATOR_WIDTH`, ``|I|`` at most
    :data:`~nnfab.fixed.MAX_INTEGER_WIDTH`), whichever front end made the model.

    Raises
    ------
    FormatError, ModelError
    """

    def apply(self, model):
        if model.input_format is None:
            raise FormatError(f"Model {model.name!r}: the input format is missing")
        _check_limits(model.input_format, f"Model {model.name!r}: input format")
        for layer in model.layers:
            for what, fmt, max_width in _formats(layer):
                _check_limits(fmt, f"Layer {layer.name!r}: {what}", max_width)
        for layer in model.layers:
            if layer.output_format is None:
                raise FormatError(f"Layer {layer.name!r}: the output format is missing")
        for layer in model.layers[:-1]:
            if layer.kind == "argmax":
                raise ModelError(f"Layer {layer.name!r}: an argmax must be the last layer")
        if len(model.input_shape) not in (1, 2, 3):
            raise ModelError(f"Model {model.name!r}: input shape {model.input_shape} is "
                             f"neither a vector nor a channels-last image")
        return model, False


def _check_limits(fmt, where, max_width=None):
    try:
        if max_width is None:
            fmt.check_limits()
        else:
            fmt.check_limits(max_width=max_width)
    except ValueError as exc:
        raise FormatError(f"{where}: {exc}") from None


def _formats(layer):
    """``(what, format, max_width)`` of every format a layer holds (``max_width`` None for
    the tensor limit)."""
    found = []
    for what in ("input_format", "output_format"):
        fmt = getattr(layer, what, None)
        if isinstance(fmt, FixedFormat):
            found.append((what.replace("_", " "), fmt, None))
    for part in (layer, *getattr(layer, "parts", ())):
        spec = getattr(part, "spec", None)
        if spec is not None and dataclasses.is_dataclass(spec):
            for field in dataclasses.fields(spec):
                fmt = getattr(spec, field.name, None)
                if isinstance(fmt, FixedFormat):
                    wide = "accum" in field.name
                    found.append((field.name.replace("_", " "), fmt,
                                  MAX_ACCUMULATOR_WIDTH if wide else None))
        accumulator = getattr(spec, "accumulator", None) if spec is not None else None
        if isinstance(accumulator, FixedFormat):
            found.append(("accumulator", accumulator, MAX_ACCUMULATOR_WIDTH))
    return found
