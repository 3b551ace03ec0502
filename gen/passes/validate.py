"""Check a quantized model before building it."""

from nnfab.errors import FormatError, ModelError

from .base import Pass

__all__ = ["Validate"]


class Validate(Pass):
    """Every tensor's format is known and every layer is one the generator can build.

    Shapes and formats between layers are checked when the :class:`~nnfab.gen.ir.Model` is
    made; this pass adds what only the generator cares about: the input must be a flat vector
    or a channels-last image, and only the last layer may be an argmax.

    Raises
    ------
    FormatError, ModelError
    """

    def apply(self, model):
        if model.input_format is None:
            raise FormatError(f"Model {model.name!r}: the input format is missing")
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
