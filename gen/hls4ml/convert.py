"""An hls4ml project config and its model, to the IR with hls4ml 1.3's arithmetic.

hls4ml's graph and numerics, as its Vivado templates define them (``nnet_dense_latency.h``,
``nnet_activation.h``, ``nnet_batchnorm.h``, ``nnet_conv2d_latency.h``, ``nnet_pooling.h``):

- Weights and biases are written as decimal text with as many digits as the type has
  fraction bits (``'{:.Ff}'.format(w)``, ``hls4ml/model/types.py``), read back as doubles and
  converted to ``weight_t``/``bias_t`` with the type's rounding and overflow (default
  ``TRN``/``WRAP``): :func:`hls4ml_weight_codes`.
- Dense and convolution: every product is cast to ``accum_t``, the accumulator starts at
  ``(accum_t) bias`` and every addition is done in ``accum_t``; one cast to ``result_t`` at
  the end. nnfab's explicit accumulator (:class:`~nnfab.layers.DenseSpec`
  ``accumulator_format``) is exactly this when ``accum_t`` wraps; a saturating ``accum_t`` is
  accepted only where no partial sum can reach its limits.
- A Keras layer with an ``activation`` becomes two layers, ``NAME`` and ``NAME_ACTIVATION``;
  ReLU and linear cast to the activation's own ``result_t`` (under ``WRAP`` a ReLU output above
  the type's maximum wraps negative).
- ONNX: after qonnx's clean-up (nodes renamed ``OPTYPE_i``) and ``GemmToMatMul``, a ``MatMul``
  with constant weights becomes the bias-free Dense ``Dense_MatMul_i`` and the ``Add`` of a
  constant the scale-and-bias layer ``bn_Add_i`` (``ApplyAlpha``: ``(result_t)(x * 1 + b)``,
  one cast), each with its own types; the new layers take the original nodes' configs.
- Softmax: the ``stable`` implementation with hls4ml's tables
  (:mod:`nnfab.softmax_hls4ml`).
- SELU (``nnet_activation.h`` ``selu``): ``(res_T)(lambda * x)`` for ``x >= 0``, lambda
  ``ap_ufixed<16,1>`` (``io_stream``: the input type), else the table entry
  ``table[min(int(x * N / -8), N-1)]`` cast to ``res_T``: an ``elu`` activation with hls4ml's
  table (:func:`nnfab.tables.hls4ml_selu_table`).
- BatchNormalization (``nnet_batchnorm.h`` ``normalize``): ``(res_T)(x * scale + bias)``,
  exact product and sum, with ``scale = gamma / sqrt(var + eps)`` and
  ``bias = beta - scale * mean`` computed by NumPy in the model's own float type (float32),
  then written and read back as every weight is.
- Max pooling (``nnet_pooling.h``): the window's maximum cast to ``accum_t``, then to
  ``res_T``; accepted where ``accum_t`` holds every input value (hls4ml's ``auto``: the input
  type), so that the one cast of nnfab's pooling is hls4ml's two.
"""

import dataclasses
import math
from fractions import Fraction

import numpy as np

from nnfab.activation_params import HLS4ML_SELU_LAMBDA
from nnfab.casts import quantize
from nnfab.conv_layers import BatchNormSpec, Conv2DSpec, PoolSpec
from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.fixed import FixedFormat, Overflow
from nnfab.layers import DenseSpec, reuse_factors
from nnfab.softmax_hls4ml import Hls4mlSoftmaxSpec, hls4ml_table_sizes
from nnfab.tables import (DEFAULT_TABLE_FORMAT, SELU_SCALE, hls4ml_selu_table, quantize_exact,
                          sigmoid_table, tanh_table)

from nnfab.ir import INPUT
from nnfab.ir import ActivationLayer, DenseLayer, Model
from nnfab.ir import BatchNormLayer, Conv2DLayer, FlattenLayer, PoolLayer
from nnfab.ir import Hls4mlSoftmaxLayer
from nnfab.ir import AddLayer, ConcatenateLayer
from .config import ConfigError

__all__ = ["hls4ml_weight_codes", "convert", "auto_accumulator", "auto_scale_bias",
           "activation_table"]

#: hls4ml's softmax table types when the config names none (``fpga_backend.py``).
TABLE_DEFAULT = FixedFormat(18, 8, rounding="RND", overflow="SAT")


def hls4ml_weight_codes(values, fmt):
    """Codes of float ``values`` in ``fmt`` as hls4ml's C simulation loads them: formatted with
    ``max(0, F)`` decimals, parsed as doubles, converted with ``fmt``'s modes."""
    decimals = max(0, fmt.fraction_width)
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    text = np.array([float(f"{v:.{decimals}f}") for v in flat]).reshape(np.shape(values))
    return quantize(text, fmt)


def activation_table(config, name, cls, kind):
    """hls4ml's ``kind`` (``"sigmoid"``, ``"tanh"`` or ``"selu"``) table of layer ``name`` of
    class ``cls`` (``nnet_activation.h`` ``init_sigmoid_table``/``init_tanh_table``/
    ``init_selu_table``): the layer's ``table_size`` entries (default 1024) of ``table_t``
    (default ``ap_fixed<18,8>``), computed in single precision and indexed toward zero
    (:mod:`nnfab.tables`; selu: :func:`~nnfab.tables.hls4ml_selu_table`).

    Raises
    ------
    ConfigError
        For a ``table_size`` that is not a power of two.
    """
    size = config.layer_setting(name, cls, "table_size", 1024)
    table_t = config.layer_setting(name, cls, "table_t") or DEFAULT_TABLE_FORMAT
    try:
        if kind == "selu":
            return hls4ml_selu_table(table_size=int(size), table_format=table_t)
        make = sigmoid_table if kind == "sigmoid" else tanh_table
        return make(table_size=int(size), table_format=table_t, index_rounding="zero",
                    single_precision=True)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: table_size {size!r} of layer {name!r} is not "
                          f"supported ({exc}); nnfab's tables take a power of two") from None


def auto_accumulator(input_format, weight_format, bias_format, n_in, has_bias=True,
                     maximum=None):
    """hls4ml's ``'auto'`` accum/result type of a dense or convolution layer
    (``infer_precision.py`` ``_infer_common_precision``).

    hls4ml always counts the bias (its ``infer_no_bias`` option is off): a layer without one
    has a zero bias of type ``ap_uint<1>`` (Keras) or of the config's ``bias`` type (an ONNX
    ``MatMul``). ``maximum`` is ``Model.Precision.maximum``: width and integer bits are capped
    at its own.
    """
    signed = weight_format.signed or input_format.signed
    log = math.ceil(math.log2(n_in))
    width = weight_format.width + input_format.width + log
    integer = weight_format.integer_width + input_format.integer_width + log
    if has_bias:
        frac = width - integer
        integer = max(integer + (bias_format.signed and not signed),
                      bias_format.integer_width + (signed and not bias_format.signed)) + 1
        width = integer + max(frac, bias_format.fraction_width)
        signed = signed or bias_format.signed
    if maximum is not None:
        width, integer = min(width, maximum.width), min(integer, maximum.integer_width)
    return FixedFormat(width, integer, signed=signed)


def auto_scale_bias(input_format, scale_format, bias_format, maximum=None):
    """hls4ml's ``'auto'`` result type of a scale-and-bias layer (``infer_precision.py``
    ``_infer_bn_precision``): the exact type of ``x * scale + bias``, capped by ``maximum``."""
    signed = scale_format.signed or input_format.signed
    width = input_format.width + scale_format.width
    integer = input_format.integer_width + scale_format.integer_width
    out_signed = signed or bias_format.signed
    out_integer = max(integer + (bias_format.signed and not signed),
                      bias_format.integer_width + (signed and not bias_format.signed)) + 1
    out_width = out_integer + max(width - integer, bias_format.fraction_width)
    if maximum is not None:
        out_width = min(out_width, maximum.width)
        out_integer = min(out_integer, maximum.integer_width)
    return FixedFormat(out_width, out_integer, signed=out_signed)


def _holds(fmt, other):
    """Whether a cast to ``fmt`` keeps every value of ``other`` (a ``SAT_SYM`` signed
    ``fmt`` changes its most negative value)."""
    lowest = -fmt.max_value if fmt.overflow is Overflow.SAT_SYM and fmt.signed else \
        fmt.min_value
    return fmt.holds(other) and lowest <= other.min_value


#: The type hls4ml gives the zero bias of a Keras layer without one (``Layer.add_bias``).
NO_BIAS_FORMAT = FixedFormat(1, 1, signed=False)
#: The scale of an ApplyAlpha made from an ``Add``: 1 as ``ap_uint<1>`` (``merge_const.py``).
SCALE_ONE_FORMAT = FixedFormat(1, 1, signed=False)


class _Builder:
    """Walks a model's layers in order, creating IR layers with the config's types."""

    def __init__(self, config, input_name, input_shape):
        self.config = config
        self.layers = []
        fmt = self._default_if_auto(config.precision(input_name, "Input", "result"))
        if fmt.width > 100:
            raise ConfigError(f"{config.path}: input type {fmt} of layer {input_name!r} is "
                              f"{fmt.width} bits wide; hls4ml 1.3 replaces input types wider "
                              f"than 100 bits (FixInputPrecision), which nnfab does not "
                              f"model: give at most 100 bits")
        self.input_format = fmt
        self.input_shape = tuple(input_shape)
        self.fmt, self.shape = fmt, tuple(input_shape)
        self.reuse = {}
        #: Format and shape of every tensor so far, and the tensor the next layer reads.
        self.tensors = {INPUT: (fmt, self.shape)}
        self.current = INPUT

    # -- helpers ------------------------------------------------------------------------------

    def _fixed(self, value, name, var):
        if value == "auto":
            raise ConfigError(f"{self.config.path}: precision 'auto' for {var!r} of layer "
                              f"{name!r} is not supported there; nnfab infers 'auto' types of "
                              f"dense and convolution layers, ONNX bias additions (ApplyAlpha), "
                              f"batch normalization, max pooling, activations, softmax and the "
                              f"input only")
        return value

    def _types(self, name, cls, n_in, bias_format=None):
        """``(weight, bias, accum, result)`` formats of a dense or convolution layer; ``auto``
        weight and bias types are the model default, ``auto`` accum and result are inferred
        (:func:`auto_accumulator`) with ``bias_format`` if given (a layer without a bias),
        else the config's bias type."""
        c = self.config
        w, b = (c.model_default() if value == "auto" else value
                for value in (c.precision(name, cls, "weight"), c.precision(name, cls, "bias")))
        accum = c.layer_setting(name, cls, "accum_t") or c.precision(name, cls, "accum")
        result = c.precision(name, cls, "result")
        inferred = auto_accumulator(self.fmt, w, bias_format or b, n_in,
                                    maximum=c.model_maximum())
        return w, b, inferred if accum == "auto" else accum, \
            inferred if result == "auto" else result

    def _add(self, layer):
        if not layer.inputs:
            layer = dataclasses.replace(layer, inputs=(self.current,))
        self.layers.append(layer)
        self.fmt, self.shape = layer.output_format, tuple(layer.output_shape)
        self.tensors[layer.name] = (self.fmt, self.shape)
        self.current = layer.name

    def read(self, tensor):
        """Make ``tensor`` (a layer's name, or :data:`~nnfab.ir.graph.INPUT`) the input of
        the next layer."""
        self.fmt, self.shape = self.tensors[tensor]
        self.current = tensor

    def _reuse_factor(self, name, cls, n_in, n_out=None):
        """The layer's ReuseFactor, checked against hls4ml's rule as nnfab's engine takes it
        (:func:`~nnfab.layers.reuse_factors`; multiples of ``n_in`` only with ``n_out``)."""
        r = self.config.reuse_factor(name, cls)
        valid = reuse_factors(n_in, n_out)
        if r not in valid:
            rule = f"divide its {n_in} inputs per output"
            if n_out is not None:
                rule += f" or be {n_in} times a divisor of its {n_out} outputs"
            raise ConfigError(f"{self.config.path}: ReuseFactor {r} of layer {name!r} does not "
                              f"{rule}; nnfab takes {', '.join(map(str, valid))}")
        strategy = self.config.strategy(name, cls)
        if strategy not in ("latency", "resource", "resource_unrolled"):
            raise ConfigError(f"{self.config.path}: Strategy {strategy!r} of layer {name!r} is "
                              f"not supported (Latency, Resource or Resource_Unrolled)")
        return r

    def _check_accumulator(self, name, accum, products, bias):
        """Accept a saturating (or rounding-to-nearest) accum_t only when no partial sum can
        reach its limits: then hls4ml's per-addition overflow never acts."""
        if accum.overflow is Overflow.WRAP:
            return
        bound = np.sum(np.abs(products), axis=-1) + (np.abs(bias) if bias is not None else 0)
        if np.max(bound) > accum.max_value:
            raise ConfigError(f"{self.config.path}: accum {accum} of layer {name!r} saturates "
                              f"after every addition (sums here reach {float(np.max(bound))}, "
                              f"beyond its maximum {float(accum.max_value)}); nnfab's "
                              f"accumulator wraps: give accum an overflow mode of WRAP or a "
                              f"wider type")

    def _accum_bound_check(self, name, w_fmt, w_codes, b_fmt, b_codes, accum):
        x_max = max(abs(float(self.fmt.min_value)), abs(float(self.fmt.max_value)))
        products = np.abs(np.asarray(w_codes, dtype=np.float64)) * float(w_fmt.lsb) * x_max
        # Products are cast to accum_t first: one LSB of rounding at most.
        products = products + float(accum.lsb)
        bias = None if b_codes is None else \
            np.abs(np.asarray(b_codes, dtype=np.float64)) * float(b_fmt.lsb) + float(accum.lsb)
        self._check_accumulator(name, accum, products.reshape(products.shape[0], -1), bias)

    # -- layers -------------------------------------------------------------------------------

    def result_is_auto(self, name, cls):
        """Whether layer ``name``'s ``result`` type is ``auto`` (hls4ml then merges a bias
        ``Add`` after it into it)."""
        return self.config.precision(name, cls, "result") == "auto"

    def dense(self, name, cls, weights, biases, *, typed_zero_bias=False):
        """``weights`` (n_out, n_in) floats, ``biases`` (n_out,) or None: a zero bias of type
        ``ap_uint<1>`` for hls4ml's ``auto`` types, or of the config's bias type when
        ``typed_zero_bias`` (an ONNX ``MatMul``)."""
        if len(self.shape) != 1:
            raise UnsupportedLayerError(f"Layer {name!r}: dense layer on shape {self.shape}")
        n_out, n_in = weights.shape
        w_fmt, b_fmt, accum, result = self._types(
            name, cls, n_in, None if biases is not None or typed_zero_bias else NO_BIAS_FORMAT)
        w = hls4ml_weight_codes(weights, w_fmt)
        b = hls4ml_weight_codes(biases, b_fmt) if biases is not None else None
        self._accum_bound_check(name, w_fmt, w, b_fmt, b, accum)
        try:
            spec = DenseSpec(w, b, self.fmt, w_fmt.replace(rounding="TRN", overflow="WRAP"),
                             result, bias_format=None if b is None else
                             b_fmt.replace(rounding="TRN", overflow="WRAP"),
                             accumulator_format=accum)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"Layer {name!r}: {exc}") from None
        self._add(DenseLayer(name, spec=spec,
                             reuse_factor=self._reuse_factor(name, cls, n_in, spec.n_out)))

    def conv2d(self, name, cls, weights, biases, strides, padding):
        """``weights`` (n_filters, kh, kw, C_in) floats."""
        n_window = int(np.prod(weights.shape[1:]))
        w_fmt, b_fmt, accum, result = self._types(name, cls, n_window,
                                                  None if biases is not None else NO_BIAS_FORMAT)
        w = hls4ml_weight_codes(weights, w_fmt)
        b = hls4ml_weight_codes(biases, b_fmt) if biases is not None else None
        self._accum_bound_check(name, w_fmt, w, b_fmt, b, accum)
        try:
            spec = Conv2DSpec(w, b, self.shape, self.fmt,
                              w_fmt.replace(rounding="TRN", overflow="WRAP"), result,
                              strides=strides, padding=padding,
                              bias_format=None if b is None else
                              b_fmt.replace(rounding="TRN", overflow="WRAP"),
                              accumulator_format=accum)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"Layer {name!r}: {exc}") from None
        self._add(Conv2DLayer(name, spec=spec,
                              reuse_factor=self._reuse_factor(name, cls, n_window)))

    def _default_if_auto(self, value):
        """hls4ml's ``_infer_default_type``: an ``auto`` type it has no rule for is the model
        default."""
        return self.config.model_default() if value == "auto" else value

    def activation(self, name, cls, function, *, quantizer=False):
        """ReLU, linear, sigmoid, tanh or selu (hls4ml's tables, :func:`activation_table`;
        selu is built as an ``elu`` activation with hls4ml's table and slope); an ``auto``
        result is the model default (hls4ml's ``_infer_default_type``), except for a QKeras
        quantizer: rejected there, as hls4ml's handling of it needs the qkeras package to be
        checked against."""
        if function not in ("relu", "linear", "sigmoid", "tanh", "selu"):
            raise UnsupportedLayerError(f"Layer {name!r}: hls4ml activation {function!r} is "
                                        f"not supported in hls4ml mode (relu, linear, "
                                        f"sigmoid, tanh, selu, softmax)")
        result = self.config.precision(name, cls, "result")
        result = self._fixed(result, name, "result") if quantizer else \
            self._default_if_auto(result)
        params = {}
        if function in ("sigmoid", "tanh"):
            params["table"] = activation_table(self.config, name, cls, function)
        elif function == "selu":
            # io_parallel multiplies by an ap_ufixed<16,1> lambda, io_stream by lambda cast to
            # the input type (nnet_activation_stream.h).
            scale = HLS4ML_SELU_LAMBDA if self.config.io_type == "io_parallel" else \
                (self.fmt, quantize_exact(Fraction(SELU_SCALE), self.fmt))
            params = dict(table=activation_table(self.config, name, cls, "selu"), scale=scale)
            function = "elu"
        elif self.config.layer_setting(name, cls, "table_size") is not None:
            self.config.notes.append(f"TableSize of layer {name!r}: {function} reads no table "
                                     f"in hls4ml nor in nnfab; no effect")
        self._add(ActivationLayer(name, function=function, shape=self.shape, fin=self.fmt,
                                  fout=result, params=params))

    def apply_alpha(self, name, biases):
        """``(result_t)(x * 1 + b)``: hls4ml's ApplyAlpha of an ONNX ``Add``; an ``auto`` bias
        type is the model default, an ``auto`` result inferred (:func:`auto_scale_bias`)."""
        n = self.shape[-1]
        self._scale_bias(name, "ApplyAlpha", np.ones(n, dtype=np.int64), SCALE_ONE_FORMAT,
                         np.broadcast_to(biases, (n,)))

    def batchnorm(self, name, scales, biases):
        """hls4ml's BatchNormalization (``nnet_batchnorm.h`` ``normalize``):
        ``(result_t)(x * scale + bias)`` per channel (the last axis), ``scales`` and ``biases``
        floats of shape (C,) written and read back in ``scale_t``/``bias_t``; ``auto`` scale
        and bias types are the model default, an ``auto`` result is inferred
        (:func:`auto_scale_bias`, hls4ml's ``_infer_bn_precision``)."""
        c, cls = self.config, "BatchNormalization"
        s_fmt = c.precision(name, cls, "scale")
        s_fmt = c.model_default() if s_fmt == "auto" else s_fmt
        self._scale_bias(name, cls, hls4ml_weight_codes(scales, s_fmt),
                         s_fmt.replace(rounding="TRN", overflow="WRAP"), biases)

    def _scale_bias(self, name, cls, scale_codes, scale_format, biases):
        """A :class:`~nnfab.ir.BatchNormLayer` ``(result_t)(x * scale + bias)`` with the
        config's bias and result types of layer ``name`` of class ``cls``."""
        c = self.config
        b_fmt = c.precision(name, cls, "bias")
        b_fmt = c.model_default() if b_fmt == "auto" else b_fmt
        result = c.precision(name, cls, "result")
        if result == "auto":
            result = auto_scale_bias(self.fmt, scale_format, b_fmt, c.model_maximum())
        n = self.shape[-1]
        try:
            spec = BatchNormSpec(scale_codes, hls4ml_weight_codes(np.broadcast_to(biases, (n,)),
                                                                  b_fmt),
                                 self.fmt, scale_format,
                                 b_fmt.replace(rounding="TRN", overflow="WRAP"), result)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"Layer {name!r}: {exc}") from None
        self._add(BatchNormLayer(name, spec=spec, shape=self.shape))

    def softmax(self, name, cls="Softmax"):
        c = self.config
        if len(self.shape) != 1:
            raise UnsupportedLayerError(f"Layer {name!r}: softmax over shape {self.shape}")
        implementation = str(c.layer_setting(name, cls, "implementation", "stable")).lower()
        if implementation != "stable":
            raise ConfigError(f"{c.path}: implementation {implementation!r} of softmax layer "
                              f"{name!r} is not supported; nnfab reproduces 'stable' (the "
                              f"default)")
        result = self._default_if_auto(c.precision(name, cls, "result"))
        accum = c.layer_setting(name, cls, "accum_t") or \
            self._default_if_auto(c.precision(name, cls, "accum"))
        exp_t = c.layer_setting(name, cls, "exp_table_t") or TABLE_DEFAULT
        inv_t = c.layer_setting(name, cls, "inv_table_t") or TABLE_DEFAULT
        inv_inp = c.layer_setting(name, cls, "inv_inp_t") or TABLE_DEFAULT
        table_size = int(c.layer_setting(name, cls, "table_size", 1024))
        exp_size, inv_size = hls4ml_table_sizes(table_size, self.fmt, inv_t)
        try:
            spec = Hls4mlSoftmaxSpec(
                n=self.shape[0], input_format=self.fmt, output_format=result,
                accum_format=accum, exp_table_format=exp_t, inv_table_format=inv_t,
                inv_input_format=inv_inp, exp_table_size=exp_size, inv_table_size=inv_size,
                exp_scale=float(c.layer_setting(name, cls, "exp_scale", 1.0)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{c.path}: softmax layer {name!r}: {exc}") from None
        self._add(Hls4mlSoftmaxLayer(name, spec=spec))

    def pool(self, name, cls, kind, pool_size, strides, padding):
        """Max pooling (``nnet_pooling.h``): the maximum cast to ``accum_t``, then to
        ``result_t``. ``auto`` types are the input type (hls4ml's
        ``_infer_pooling_precision``).

        Raises
        ------
        ConfigError
            For an ``accum_t`` that does not hold every value of the input type (its cast
            would change the maximum before the one to ``result_t``).
        """
        if kind != "max":
            raise UnsupportedLayerError(f"Layer {name!r}: average pooling is not supported in "
                                        f"hls4ml mode; only max pooling")
        c = self.config
        result = c.precision(name, cls, "result")
        result = self.fmt if result == "auto" else result
        accum = c.layer_setting(name, cls, "accum_t") or c.precision(name, cls, "accum")
        if accum != "auto" and not _holds(accum, self.fmt):
            raise ConfigError(f"{c.path}: accum {accum} of max pooling layer {name!r} does not "
                              f"hold every value of its input type {self.fmt}: hls4ml casts "
                              f"the maximum to accum_t before result_t, which nnfab does not "
                              f"model; give an accum that holds {self.fmt}, or auto")
        spec = PoolSpec("max", self.shape, pool_size, self.fmt, result, strides=strides,
                        padding=padding)
        self._add(PoolLayer(name, spec=spec))

    def merge(self, name, cls, op, tensors):
        """hls4ml's ``Merge`` (``op="add"``: ``res = data1 + data2`` in ``result_t``) or
        ``Concatenate`` (``res[i] = data_k[j]`` in ``result_t``) of ``tensors``; the result
        type must be given (no ``auto``)."""
        formats = [self.tensors[t][0] for t in tensors]
        shapes = [self.tensors[t][1] for t in tensors]
        result = self._fixed(self.config.precision(name, cls, "result"), name, "result")
        if op == "add":
            if len(tensors) != 2:
                raise UnsupportedLayerError(f"Layer {name!r}: hls4ml adds 2 tensors, not "
                                            f"{len(tensors)}")
            layer = AddLayer(name, shape=shapes[0], fins=formats, fout=result,
                             inputs=tuple(tensors))
        else:
            layer = ConcatenateLayer(name, shapes=shapes, fins=formats, fout=result,
                                     inputs=tuple(tensors))
        self._add(layer)

    def flatten(self, name):
        if len(self.shape) > 1:
            self._add(FlattenLayer(name, shape=self.shape, fmt=self.fmt))

    def model(self, name):
        if not self.layers:
            raise ModelError(f"Model {name!r}: no layers to build")
        return Model(name, self.input_shape, self.input_format, tuple(self.layers))


def convert(config):
    """The IR :class:`~nnfab.ir.Model` of ``config``'s model with hls4ml's arithmetic.

    Parameters
    ----------
    config : Hls4mlConfig

    Raises
    ------
    ConfigError
        For a setting nnfab cannot honour, naming the setting and the layer, and for a
        ``LayerName`` section that names no layer of the model.
    UnsupportedLayerError
        For a layer hls4ml mode does not build, naming it.
    """
    if config.source == "keras":
        from .keras_graph import build_keras, keras_layer_names

        config.check_layer_names(keras_layer_names(config))
        return build_keras(config, _Builder)
    from .onnx_graph import build_onnx, onnx_layer_names

    config.check_layer_names(onnx_layer_names(config))
    return build_onnx(config, _Builder)
