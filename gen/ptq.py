"""Post-training quantization: a float model and sample inputs to the quantized IR.

Formats are powers of two (no scale factors): every tensor gets ``fixed<B, I>`` with the bit
budget ``B`` and the fewest integer bits ``I`` that hold the tensor's largest magnitude, as
hls4ml's profiling-based precision choice does. Weights and biases are taken per layer from the
values themselves; activations (each layer's output) from the float forward pass over the
calibration inputs. Rounding to nearest (``RND_CONV``) and saturation on every cast keep the
error small; the report compares the float model with the quantized golden model.

Each layer kind's PTQ rule is its float layer's ``quantize(step)`` (in the kind's module of
:mod:`nnfab.ir`); the format choice they share is :mod:`nnfab.ir.calibrate`.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from nnfab.casts import to_float
from nnfab.errors import UnsupportedLayerError
from nnfab.ir import FLOAT_KINDS, INPUT, Model
from nnfab.ir.calibrate import PTQConfig, PTQStep, integer_bits_for, nearest_codes
from nnfab.sim.golden.network import run_network

from .float_model import FloatModel
from .passes import FoldBatchNorm

__all__ = ["PTQConfig", "integer_bits_for", "quantize_model", "PTQReport", "compare",
           "golden_accuracy"]


def quantize_model(float_model, calibration, *, input_format, config=PTQConfig(),
                   reuse_factor=1):
    """Quantize ``float_model`` into the IR.

    Parameters
    ----------
    float_model : FloatModel
    calibration : ndarray of float, shape (n, *input_shape)
        Representative inputs; they set every activation format.
    input_format : FixedFormat
        Format of the network's input codes.
    config : PTQConfig
    reuse_factor : int
        Initial reuse factor of every dense layer (see
        :class:`~nnfab.gen.passes.ChooseReuseFactors` to refine it).

    Returns
    -------
    Model

    Raises
    ------
    UnsupportedLayerError
        For a layer kind PTQ cannot quantize.
    ModelError
        For values that no format within the limits of :mod:`nnfab.fixed` holds (non-finite,
        beyond ``2**255``) or accumulators wider than
        :data:`~nnfab.fixed.MAX_ACCUMULATOR_WIDTH` bits, naming the layer; PTQ fails at the
        first such tensor, before building anything.
    """
    if not isinstance(float_model, FloatModel):
        raise TypeError(f"Model must be a FloatModel, not {float_model!r}")
    float_model, _ = FoldBatchNorm().apply(float_model)
    calibration = np.asarray(calibration, dtype=np.float64)
    # Calibrate on what the hardware sees: inputs rounded into the input format.
    x = to_float(nearest_codes(calibration, input_format), input_format)
    trace = float_model.forward(x, trace=True)
    modes = dict(rounding=config.rounding, overflow=config.overflow)
    values = {INPUT: x, **trace}
    tensors = {INPUT: (input_format, float_model.input_shape)}
    layers = []
    for layer in float_model.layers:
        if layer.kind not in FLOAT_KINDS:
            raise UnsupportedLayerError(f"Layer {layer.name!r}: PTQ cannot quantize a "
                                        f"{layer.kind!r} layer here")
        step = PTQStep(layer, [tensors[t] for t in layer.inputs], trace[layer.name], config,
                       modes, reuse_factor, [values[t] for t in layer.inputs])
        new = dataclasses.replace(layer.quantize(step), inputs=layer.inputs)
        layers.append(new)
        tensors[new.name] = (new.output_format, tuple(new.output_shape))
    return Model(float_model.name, float_model.input_shape, input_format, tuple(layers))


@dataclass(frozen=True)
class PTQReport:
    """Float model versus quantized golden model on the same inputs."""

    n_samples: int
    float_accuracy: float | None
    quantized_accuracy: float | None
    agreement: float
    max_abs_error: float

    def lines(self):
        lines = [f"samples: {self.n_samples}",
                 f"top-1 agreement float vs quantized: {self.agreement:.2%}",
                 f"max |float - quantized| output: {self.max_abs_error:.4g}"]
        if self.float_accuracy is not None:
            lines += [f"accuracy float: {self.float_accuracy:.2%}",
                      f"accuracy quantized: {self.quantized_accuracy:.2%}"]
        return lines


def compare(float_model, model, x, labels=None):
    """Run both models on float inputs ``x`` and compare their outputs (the last layer before
    an argmax is compared; classes are the argmax of the outputs)."""
    if model.layers[-1].kind == "argmax":
        body = model.replace_layers(model.layers[:-1]) if len(model.layers) > 1 else model
        float_body = float_model.replace_layers(
            [layer for layer in float_model.layers if layer.kind != "argmax"])
    else:
        body, float_body = model, float_model
    codes = nearest_codes(x, model.input_format)
    quantized = to_float(run_network(body, codes), body.output_format)
    reference = float_body.forward(to_float(codes, model.input_format))
    q_class, f_class = np.argmax(quantized, axis=-1), np.argmax(reference, axis=-1)
    return PTQReport(
        n_samples=len(x),
        float_accuracy=None if labels is None else float(np.mean(f_class == labels)),
        quantized_accuracy=None if labels is None else float(np.mean(q_class == labels)),
        agreement=float(np.mean(q_class == f_class)),
        max_abs_error=float(np.max(np.abs(quantized - reference))),
    )


def golden_accuracy(model, x, labels):
    """Top-1 accuracy of the golden model of ``model`` on float inputs ``x`` (rounded to
    nearest into the input format, saturated), against ``labels`` (class = the argmax of the
    outputs, or the output itself for a one-lane output such as an argmax layer's)."""
    outputs = run_network(model, nearest_codes(x, model.input_format))
    outputs = outputs.reshape(len(outputs), -1)
    classes = outputs[:, 0] if outputs.shape[-1] == 1 else np.argmax(outputs, axis=-1)
    return float(np.mean(classes == np.asarray(labels)))
