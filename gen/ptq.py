"""Post-training quantization: a float model and sample inputs to the quantized IR.

Formats are powers of two (no scale factors): every tensor gets ``fixed<B, I>`` with the bit
budget ``B`` and the fewest integer bits ``I`` that hold the tensor's largest magnitude, as
hls4ml's profiling-based precision choice does. Weights and biases are taken per layer from the
values themselves; activations (each layer's output) from the float forward pass over the
calibration inputs. Rounding to nearest (``RND_CONV``) and saturation on every cast keep the
error small; the report compares the float model with the quantized golden model.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nnfab.casts import quantize, to_float
from nnfab.conv_layers import BatchNormSpec, Conv2DSpec, GlobalPoolSpec, PoolSpec
from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.fixed import MAX_INTEGER_WIDTH, FixedFormat
from nnfab.layers import DenseSpec
from nnfab.sim.golden.network import run_network
from nnfab.tables import SELU_ALPHA, SELU_SCALE, elu_table

from .float_model import FloatModel
from nnfab.ir import ActivationLayer, ArgmaxLayer, DenseLayer, Model, SoftmaxLayer
from nnfab.ir import INPUT
from nnfab.ir import (BatchNormLayer, Conv2DLayer, FlattenLayer, GlobalPoolLayer, PoolLayer,
                      ZeroPadLayer)
from nnfab.ir import AddLayer, ConcatenateLayer, UpsampleLayer
from .passes import FoldBatchNorm

__all__ = ["PTQConfig", "PTQ_RULES", "integer_bits_for", "quantize_model", "PTQReport", "compare"]


@dataclass(frozen=True)
class PTQConfig:
    """Bit budgets of post-training quantization.

    Parameters
    ----------
    weight_bits, bias_bits, activation_bits : int
        Total bits of weights, biases and every layer output.
    rounding, overflow : str
        Modes of every output cast (the storage formats of weights and biases are TRN/WRAP;
        their values are rounded to nearest when quantized).
    headroom_bits : int
        Extra integer bits on calibrated activation formats, for inputs beyond the
        calibration set.
    """

    weight_bits: int = 8
    bias_bits: int = 8
    activation_bits: int = 8
    rounding: str = "RND_CONV"
    overflow: str = "SAT"
    headroom_bits: int = 0

    def __post_init__(self):
        for name in ("weight_bits", "bias_bits", "activation_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 2 <= value <= 32:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be an integer "
                                 f"from 2 to 32, not {value!r}")


def integer_bits_for(max_abs, *, signed=True):
    """Fewest integer bits ``I`` (sign included) so that ``fixed<W,I>`` reaches ``max_abs``
    (up to one LSB below the next power of two)."""
    if max_abs <= 0:
        return 1 if signed else 0
    return math.floor(math.log2(max_abs)) + 1 + (1 if signed else 0)


def _format_for(values, bits, *, signed=True, headroom=0, where="", **modes):
    """``fixed<bits, I>`` holding every value; ``where`` (``"Layer 'd1': weights"``) names the
    tensor in errors.

    Raises
    ------
    ModelError
        If a value is not finite or the format would be beyond the limits of
        :mod:`nnfab.fixed` (values beyond ``2**255`` or all below ``2**-256`` in magnitude).
    """
    max_abs = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if not math.isfinite(max_abs):
        raise ModelError(f"{where} reach {max_abs!r}; PTQ needs finite values (a float "
                         f"overflow in the model?)")
    integer = integer_bits_for(max_abs, signed=signed) + headroom
    if abs(integer) > MAX_INTEGER_WIDTH:
        raise ModelError(f"{where} need {integer} integer bits (largest magnitude "
                         f"{max_abs!r}); nnfab builds formats with -{MAX_INTEGER_WIDTH} to "
                         f"{MAX_INTEGER_WIDTH} integer bits")
    return FixedFormat(bits, integer, signed=signed, **modes)


def _spec(name, make, *args, **kwargs):
    """A layer specification, its ValueError (e.g. an accumulator too wide) named by layer."""
    try:
        return make(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Layer {name!r}: {exc}") from None


def _codes(values, fmt):
    """Round ``values`` to nearest into ``fmt``, saturating, as codes of ``fmt``."""
    return quantize(values, fmt.replace(rounding="RND_CONV", overflow="SAT"))


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
    x = to_float(_codes(calibration, input_format), input_format)
    trace = float_model.forward(x, trace=True)
    modes = dict(rounding=config.rounding, overflow=config.overflow)
    tensors = {INPUT: (input_format, float_model.input_shape)}
    layers = []
    for layer in float_model.layers:
        try:
            rule = PTQ_RULES[layer.kind]
        except KeyError:
            raise UnsupportedLayerError(f"Layer {layer.name!r}: PTQ cannot quantize a "
                                        f"{layer.kind!r} layer here") from None
        step = _Step(layer, [tensors[t] for t in layer.inputs], trace[layer.name], config,
                     modes, reuse_factor)
        new = dataclasses.replace(rule(step), inputs=layer.inputs)
        layers.append(new)
        tensors[new.name] = (new.output_format, tuple(new.output_shape))
    return Model(float_model.name, float_model.input_shape, input_format, tuple(layers))


@dataclass(frozen=True)
class _Step:
    """What a PTQ rule sees of one float layer: the formats and shapes of its inputs (as
    quantized so far) and its float outputs over the calibration set."""

    layer: object
    inputs: list
    out: np.ndarray
    config: PTQConfig
    modes: dict
    reuse_factor: int

    fmt = property(lambda self: self.inputs[0][0])
    shape = property(lambda self: self.inputs[0][1])
    where = property(lambda self: f"Layer {self.layer.name!r}:")

    def output_format(self, **kwargs):
        """``activation_bits`` with the integer bits the calibration outputs need."""
        return _format_for(self.out, self.config.activation_bits,
                           headroom=self.config.headroom_bits,
                           where=f"{self.where} outputs", **kwargs, **self.modes)

    def weight_formats(self):
        layer, config = self.layer, self.config
        w_fmt = _format_for(layer.weights, config.weight_bits, where=f"{self.where} weights")
        b_fmt = _format_for(layer.biases, config.bias_bits, where=f"{self.where} biases") \
            if layer.biases is not None else None
        return w_fmt, b_fmt, (None if b_fmt is None else _codes(layer.biases, b_fmt))


def _dense(s):
    w_fmt, b_fmt, biases = s.weight_formats()
    spec = _spec(s.layer.name, DenseSpec, _codes(s.layer.weights, w_fmt), biases, s.fmt, w_fmt,
                 s.output_format(), bias_format=b_fmt)
    return DenseLayer(s.layer.name, spec=spec, reuse_factor=_fit_reuse(s.reuse_factor,
                                                                        spec.n_in))


def _conv2d(s):
    layer = s.layer
    w_fmt, b_fmt, biases = s.weight_formats()
    spec = _spec(layer.name, Conv2DSpec, _codes(layer.weights, w_fmt), biases, s.shape, s.fmt,
                 w_fmt, s.output_format(), strides=layer.strides, padding=layer.padding,
                 bias_format=b_fmt)
    return Conv2DLayer(layer.name, spec=spec,
                       reuse_factor=_fit_reuse(s.reuse_factor, spec.n_window))


def _pool(s):
    layer = s.layer
    out_fmt = s.fmt if layer.pool == "max" else s.fmt.replace(**s.modes)
    return PoolLayer(layer.name, spec=_spec(layer.name, PoolSpec, layer.pool, s.shape,
                                            layer.pool_size, s.fmt, out_fmt,
                                            strides=layer.strides, padding=layer.padding))


def _global_pool(s):
    out_fmt = s.fmt if s.layer.pool == "max" else s.output_format()
    return GlobalPoolLayer(s.layer.name, spec=_spec(s.layer.name, GlobalPoolSpec, s.layer.pool,
                                                    s.shape, s.fmt, out_fmt))


def _concatenate(s):
    formats = [fmt for fmt, _ in s.inputs]
    fout = formats[0] if all(f == formats[0] for f in formats) else s.output_format()
    return ConcatenateLayer(s.layer.name, shapes=[shape for _, shape in s.inputs],
                            fins=formats, fout=fout)


#: How PTQ quantizes each float layer kind: ``PTQ_RULES[kind](step) -> IR layer``.
PTQ_RULES = {
    "dense": _dense,
    "conv2d": _conv2d,
    "activation": lambda s: _activation(s.layer, s.fmt, s.shape, s.out, s.config, s.modes),
    "batchnorm": lambda s: _batchnorm(s.layer, s.fmt, s.shape, s.out, s.config, s.modes),
    "softmax": lambda s: SoftmaxLayer(s.layer.name, n=s.shape[-1], fin=s.fmt,
                                      fout=FixedFormat(s.config.activation_bits, 1,
                                                       signed=False, **s.modes)),
    "argmax": lambda s: ArgmaxLayer(s.layer.name, n=s.shape[-1], fin=s.fmt),
    "pool": _pool,
    "global_pool": _global_pool,
    "flatten": lambda s: FlattenLayer(s.layer.name, shape=s.shape, fmt=s.fmt),
    "zero_pad": lambda s: ZeroPadLayer(s.layer.name, shape=s.shape, fmt=s.fmt,
                                       padding=s.layer.padding),
    "add": lambda s: AddLayer(s.layer.name, shape=s.shape, fins=[f for f, _ in s.inputs],
                              fout=s.output_format()),
    "concatenate": _concatenate,
    "upsample": lambda s: UpsampleLayer(s.layer.name, shape=s.shape, size=s.layer.size,
                                        fmt=s.fmt),
}


def _activation(layer, fmt, shape, out, config, modes):
    function, params = layer.function, {}
    unsigned = function in ("relu", "sigmoid", "hard_sigmoid")
    if function == "linear":
        out_fmt = fmt
    elif function in ("sigmoid", "hard_sigmoid"):
        out_fmt = FixedFormat(config.activation_bits, 1, signed=False, **modes)
    elif function in ("tanh", "hard_tanh"):
        out_fmt = FixedFormat(config.activation_bits, 2, **modes)
    else:
        out_fmt = _format_for(out, config.activation_bits, signed=not unsigned,
                              headroom=config.headroom_bits,
                              where=f"Layer {layer.name!r}: outputs", **modes)
    if function in ("elu", "selu"):
        # Negative branch from a table over [-8, 0) (|entries| < 1.76) with one entry per
        # input code there (at most 1024); positive slope rounded to 17 fraction bits.
        alpha, scale = (SELU_ALPHA, SELU_SCALE) if function == "selu" else (1.0, 1.0)
        table_format = FixedFormat(max(config.activation_bits + 2, 10), 2, rounding="RND")
        table_size = min(1024, max(2, 8 << max(fmt.fraction_width, 0)))
        scale_format = FixedFormat(18, 1, signed=False, rounding="RND")
        params = dict(table=elu_table(alpha=alpha, scale=scale, table_format=table_format,
                                      table_size=table_size),
                      scale=(scale_format, int(_codes(np.array(scale), scale_format))))
        function = "elu"
    return ActivationLayer(layer.name, function=function, shape=shape, fin=fmt, fout=out_fmt,
                           params=params)


def _batchnorm(layer, fmt, shape, out, config, modes):
    """A batch normalization that could not be folded (no dense or convolution before it):
    per-channel scale and shift in ``weight_bits`` and ``bias_bits``."""
    where = f"Layer {layer.name!r}:"
    s_fmt = _format_for(layer.scale, config.weight_bits, where=f"{where} scales")
    t_fmt = _format_for(layer.shift, config.bias_bits, where=f"{where} shifts")
    out_fmt = _format_for(out, config.activation_bits, headroom=config.headroom_bits,
                          where=f"{where} outputs", **modes)
    spec = _spec(layer.name, BatchNormSpec, _codes(layer.scale, s_fmt),
                 _codes(layer.shift, t_fmt), fmt, s_fmt, t_fmt, out_fmt)
    return BatchNormLayer(layer.name, spec=spec, shape=tuple(shape))


def _fit_reuse(reuse_factor, n_in):
    return max(r for r in range(1, n_in + 1) if n_in % r == 0 and r <= reuse_factor)


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
    codes = _codes(x, model.input_format)
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
