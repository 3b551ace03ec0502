"""Real-valued inputs of an int8 model: the input tensor's scale and zero point, as a TFLite
or onnxruntime-quantized ONNX file declares them, and the quantizer that turns real values into
its int8 codes.

A TFLite model's input is its int8 tensor (codes in ``fixed<8,8>``, see
:mod:`nnfab.gen.importers.tflite`); an int8 ONNX model's the codes of its input's
``QuantizeLinear`` (:mod:`nnfab.gen.importers.onnx_qdq`). ``nnfab verify|run --inputs`` takes
those codes as an integer array, or real values as a float array, quantized here exactly as
TFLite's ``QUANTIZE`` of float32 does (:func:`nnfab.sim.golden.tflite.affine_quantize`) or as
ONNX's ``QuantizeLinear`` does. The build folder's manifest records the pair (and the rounding)
as ``input.quantization``, so that ``nnfab verify DIR`` and ``nnfab run`` do the same.
"""

from dataclasses import dataclass

from nnfab.errors import ModelError

__all__ = ["InputQuantization", "tflite_input_quantization", "ROUNDINGS"]

#: How real inputs are rounded to codes: TFLite's ``QUANTIZE`` or ONNX's ``QuantizeLinear``.
ROUNDINGS = ("tflite", "onnx")


@dataclass(frozen=True)
class InputQuantization:
    """``real = scale * (code - zero_point)`` of an int8 input tensor.

    Attributes
    ----------
    scale : float
        The file's float32 scale (exactly, as a Python float).
    zero_point : int
    rounding : str
        ``"tflite"`` or ``"onnx"`` (:meth:`codes`).
    """

    scale: float
    zero_point: int
    rounding: str = "tflite"

    def as_dict(self):
        """The manifest's ``input.quantization`` section."""
        return {"scale": self.scale, "zero_point": self.zero_point,
                **({"rounding": self.rounding} if self.rounding != "tflite" else {})}

    @classmethod
    def from_manifest(cls, section, where):
        """The pair of a manifest's ``input`` section, or None when it has none.

        Raises
        ------
        ModelError
            If the section's ``quantization`` is not a positive ``scale`` and an integer
            ``zero_point`` within -128..127 (``where`` names the file).
        """
        found = section.get("quantization")
        if found is None:
            return None
        scale, zero_point = (found.get("scale"), found.get("zero_point")) \
            if isinstance(found, dict) else (None, None)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0 \
                or not isinstance(zero_point, int) or isinstance(zero_point, bool) \
                or not -128 <= zero_point <= 127:
            raise ModelError(f"{where}: input.quantization is {found!r}; expected a positive "
                             f"'scale' and an integer 'zero_point' in -128..127")
        rounding = found.get("rounding", "tflite")
        if rounding not in ROUNDINGS:
            raise ModelError(f"{where}: input.quantization.rounding is {rounding!r}; expected "
                             f"one of {', '.join(ROUNDINGS)}")
        return cls(float(scale), zero_point, rounding)

    def codes(self, x):
        """Int8 codes (int64) of the real values ``x``: TFLite's ``QUANTIZE`` of float32
        (ties away from zero), or ONNX's ``QuantizeLinear`` (``rounding="onnx"``: ``x / scale``
        in float32, ties to even, plus the zero point, saturated)."""
        if self.rounding == "onnx":
            import numpy as np

            quotient = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
            return np.clip(np.rint(quotient).astype(np.int64) + self.zero_point, -128, 127)
        from nnfab.sim.golden.tflite import affine_quantize

        return affine_quantize(x, self.scale, self.zero_point)

    def note(self, name):
        """The line the command line prints when it quantizes ``name``'s floats."""
        how = "ONNX's QuantizeLinear" if self.rounding == "onnx" else "TFLite's QUANTIZE"
        return (f"{name} holds floats: quantized to the int8 input as {how} does "
                f"(scale {self.scale!r}, zero point {self.zero_point}); give integers to "
                f"pass codes as they are")


def tflite_input_quantization(model):
    """The :class:`InputQuantization` of a :class:`~nnfab.gen.importers.tflite_file.TfliteModel`'s
    int8 input tensor, or None when it has no per-tensor scale."""
    tensor = model.tensors[model.inputs[0]]
    if tensor.dtype != "int8" or len(tensor.scales) != 1:
        return None
    return InputQuantization(float(tensor.scales[0]), int(tensor.zero_points[0]))
