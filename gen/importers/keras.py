"""Keras and QKeras models: ``NAME.json`` + ``NAME_weights.h5``, or a whole-model ``.h5``.

Read with :mod:`json` and :mod:`h5py` only (no TensorFlow; configs and weights through
:mod:`.keras_config`). Float Keras models become a :class:`~nnfab.gen.float_model.FloatModel`
(:mod:`.keras_float`; PTQ follows in :func:`nnfab.gen.load.load_model`); QKeras models become a quantized :class:`~nnfab.ir.Model` whose weights and activations are
exactly QKeras's (see :mod:`.qkeras_quantizers` for the quantizer-to-format mapping).

Supported layers: ``InputLayer``, ``Dense``, ``Conv1D``, ``Conv2D``, ``MaxPooling1D/2D``,
``AveragePooling1D/2D``, ``Activation``, ``ReLU``, ``BatchNormalization`` (float models),
``Flatten``, ``Dropout`` (dropped), ``ZeroPadding1D/2D``, ``GlobalMaxPooling1D/2D`` and
``GlobalAveragePooling1D/2D``; in float models also ``UpSampling2D`` (nearest) and the joins
``Add`` and ``Concatenate`` (last axis) of functional graphs; in quantized models (chains)
``QDense``, ``QConv1D``, ``QConv2D``, ``QActivation``, and ``QSimpleRNN``, ``QLSTM`` and
``QGRU`` (:mod:`.qkeras_recurrent`). Images are channels-last; a 1-D layer's ``(length, C)`` input
is the ``(1, length, C)`` image (the model's input shape then has three axes). A quantized
``QDense`` or ``QConv`` followed by no ``QActivation`` outputs its exact accumulator; a
``relu`` activation inside a ``QConv`` is fused into it (exact ReLU of the accumulator).
"""

from pathlib import Path

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec
from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.ir import (ActivationLayer, FlattenLayer, GlobalPoolLayer, Model, PoolLayer,
                      SoftmaxLayer, ZeroPadLayer)

from ._common import (DEFAULT_INPUT_FORMAT, SOFTMAX_FORMAT, conv_layer, dense_layer, exact,
                      relu_format)
from .hgq import build_hgq
from .hgq2 import build_hgq2, is_hgq2
from .keras_config import (CONV_LAYERS, GLOBAL_POOLS, POOLS, SKIPPED_LAYERS, KerasWeights,
                           conv_kernel, input_shape, keras_layers, pair, read_config,
                           window_geometry, zero_padding)
from .keras3 import Keras3Weights, read_keras3, temporary_folder
from .keras_float import build_float
from .qkeras_quantizers import apply_quantizer, parse_quantizer, quantizer_format
from .qkeras_recurrent import QKERAS_RECURRENT, qkeras_recurrent

__all__ = ["load_keras", "load_keras3", "build_keras"]


def load_keras(path, *, weights=None, input_format=None, kind=None):
    """Read a Keras or QKeras model.

    Parameters
    ----------
    path : path
        ``NAME.json`` (weights in ``NAME_weights.h5`` beside it unless ``weights`` names another
        file) or a whole-model ``.h5``.
    input_format : FixedFormat, optional
        Input format of a quantized model (default :data:`DEFAULT_INPUT_FORMAT`).

    Returns
    -------
    FloatModel or Model

    Raises
    ------
    ModelError
        For unreadable files and missing weights.
    UnsupportedLayerError
        For layers and quantizer settings nnfab does not import, naming the layer.
    """
    path = Path(path)
    config = read_config(path)
    if weights is None:
        if path.suffix.lower() == ".json":
            weights = path.with_name(path.stem + "_weights.h5")
            if not weights.is_file():
                raise ModelError(f"Weights file {str(weights)!r} of {str(path)!r} does not "
                                 f"exist; name it with weights=")
        else:
            weights = path
    store = KerasWeights(weights)
    try:
        return build_keras(config, store, default_name=path.stem, input_format=input_format)
    finally:
        store.close()


def load_keras3(path, *, input_format=None):
    """Read a Keras 3 ``.keras`` file (see :mod:`.keras3`): the same layers, quantizers and
    models as :func:`load_keras`, and HGQ2 models (:mod:`.hgq2`).

    Raises
    ------
    ModelError, UnsupportedLayerError
        As :func:`load_keras`; ModelError also for a damaged zip.
    """
    with temporary_folder() as folder:
        config, weights = read_keras3(path, folder)
        store = Keras3Weights(weights, config)
        try:
            return build_keras(config, store, default_name=Path(path).stem,
                               input_format=input_format)
        finally:
            store.close()


def build_keras(config, store, *, default_name, input_format=None):
    """The model of a Keras config whose weights ``store`` holds: a float graph for PTQ, or a
    quantized chain for QKeras, HGQ and HGQ2 (:mod:`.hgq2`) models."""
    graph = keras_layers(config, graph=True)
    classes = [cls for cls, _, _ in graph]
    name = config["config"].get("name", default_name) if isinstance(config["config"], dict) \
        else default_name
    if is_hgq2(config):
        return build_hgq2(name, config, store, input_format=input_format)
    if any(cls.startswith("Q") or cls == "FixedPointQuantizer" for cls in classes):
        # Quantized Keras models are imported as chains (checked here).
        layers = keras_layers(config)
        if "FixedPointQuantizer" in classes:
            return build_hgq(name, layers, store)
        return _build_quantized(name, layers, store, input_format or DEFAULT_INPUT_FORMAT)
    return build_float(name, graph, store)


def _quantized_dense(lname, cfg, store, fmt, shape):
    if len(shape) != 1:
        raise UnsupportedLayerError(f"Layer {lname!r}: dense layer on input of shape {shape} "
                                    f"needs a Flatten before it")
    use_bias = cfg.get("use_bias", True)
    w = store.get(lname, ["kernel"] + (["bias"] if use_bias else []))
    kernel = w["kernel"]
    if kernel.ndim != 2 or kernel.shape[0] != shape[0]:
        raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                         f"{shape[0]} inputs")
    w_fmt, w_codes = _quantized_weights(lname, cfg, "kernel", kernel.T, "weights")
    b_fmt = b_codes = None
    if use_bias:
        b_fmt, b_codes = _quantized_weights(lname, cfg, "bias", w["bias"], "biases")
    return dense_layer(lname, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                       bias_format=b_fmt, input_format=fmt)


def _quantized_weights(lname, cfg, key, values, what):
    """Codes and format of a quantized layer's weights or biases: its QKeras quantizer applied,
    or the exact codes of float values."""
    quantizer = cfg.get(f"{key}_quantizer")
    if quantizer:
        fmt, codes = apply_quantizer(*parse_quantizer(quantizer, lname), values)
        return fmt.replace(rounding="TRN", overflow="WRAP"), codes
    return exact(values, lname, what)


def _quantized_conv(cls, lname, cfg, store, fmt, shape):
    one_d, strides, padding = window_geometry(cls, cfg, lname, shape)
    use_bias = cfg.get("use_bias", True)
    w = store.get(lname, ["kernel"] + (["bias"] if use_bias else []))
    kernel = conv_kernel(w["kernel"], one_d, lname, shape)
    w_fmt, w_codes = _quantized_weights(lname, cfg, "kernel", kernel, "weights")
    b_fmt = b_codes = None
    if use_bias:
        b_fmt, b_codes = _quantized_weights(lname, cfg, "bias", w["bias"], "biases")
    act = cfg.get("activation")
    fused = act == "relu"
    layer = conv_layer(lname, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                       bias_format=b_fmt, input_shape=shape, input_format=fmt,
                       strides=strides, padding=padding, activation="relu" if fused else None)
    new = [layer]
    if not fused and act not in (None, "linear"):
        new += _quantized_activation(f"{lname}_activation", act, layer.output_format,
                                     layer.output_shape)
    return new


def _quantized_pool(cls, lname, cfg, fmt, shape):
    """Max pooling keeps the format; average pooling of ``n = 2**k`` values is exact with
    ``k`` more fraction bits (other window sizes are not exact in fixed point: rejected)."""
    one_d, strides, padding = window_geometry(cls, cfg, lname, shape)
    pool_size = pair(cfg, "pool_size", lname, one_d, default=2)
    kind = POOLS[cls]
    out_fmt = fmt
    if kind == "average":
        out_fmt = _average_format(lname, fmt, pool_size[0] * pool_size[1])
    try:
        spec = PoolSpec(kind, shape, pool_size, fmt, out_fmt, strides=strides, padding=padding)
    except (TypeError, ValueError) as exc:
        raise UnsupportedLayerError(f"Layer {lname!r}: {exc}") from None
    return PoolLayer(lname, spec=spec)


def _average_format(lname, fmt, n):
    if n & (n - 1):
        raise UnsupportedLayerError(f"Layer {lname!r}: an average over {n} values is not exact "
                                    f"in fixed point; nnfab imports averages over a power of "
                                    f"two values in quantized models")
    k = n.bit_length() - 1
    return FixedFormat(fmt.width + k, fmt.integer_width, signed=fmt.signed)


def _global_pool(cls, lname, fmt, shape):
    if len(shape) != 3:
        raise ShapeError(f"Layer {lname!r}: {cls} needs an image input, not shape {shape}")
    kind = GLOBAL_POOLS[cls]
    out_fmt = fmt if kind == "max" else _average_format(lname, fmt, shape[0] * shape[1])
    return GlobalPoolLayer(lname, spec=GlobalPoolSpec(kind, shape, fmt, out_fmt))


def _zero_padding(cls, lname, cfg, fmt, shape):
    if len(shape) != 3:
        raise ShapeError(f"Layer {lname!r}: {cls} needs an image input, not shape {shape}")
    return ZeroPadLayer(lname, shape=shape, padding=zero_padding(cls, cfg), fmt=fmt)


def _quantized_activation(lname, spec, fmt, shape):
    """IR layer(s) of a QActivation (or a Keras activation) applied to ``fmt`` values."""
    if isinstance(spec, str) and "(" not in spec:
        if spec == "linear":
            return []
        if spec == "relu":
            return [ActivationLayer(lname, function="relu", shape=shape, fin=fmt,
                                    fout=relu_format(fmt))]
        if spec == "softmax":
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Layer {lname!r}: softmax over shape {shape} is not "
                                            f"supported; only over a vector")
            return [SoftmaxLayer(lname, n=shape[0], fin=fmt, fout=SOFTMAX_FORMAT)]
        if spec not in ("quantized_relu", "quantized_bits"):
            raise UnsupportedLayerError(f"Layer {lname!r}: activation {spec!r} is not supported "
                                        f"in a quantized model; use linear, relu, softmax, "
                                        f"quantized_relu or quantized_bits")
    qname, qcfg = parse_quantizer(spec, lname)
    if qname == "quantized_po2":
        raise UnsupportedLayerError(f"Layer {lname!r}: quantizer 'quantized_po2' is supported for "
                                    f"weights only, not as an activation")
    fout = quantizer_format(qname, qcfg)
    function = "relu" if qname == "quantized_relu" else "linear"
    return [ActivationLayer(lname, function=function, shape=shape, fin=fmt, fout=fout)]


def _build_quantized(name, layers, store, input_format):
    shape = input_shape(layers)
    fmt, out = input_format, []
    for cls, cfg in layers:
        lname = cfg.get("name", cls)
        if cls == "InputLayer" or cls in SKIPPED_LAYERS:
            continue
        if cls == "Flatten":
            if len(shape) == 1:
                continue
            new = [FlattenLayer(lname, shape=shape, fmt=fmt)]
        elif cls in CONV_LAYERS:
            new = _quantized_conv(cls, lname, cfg, store, fmt, shape)
        elif cls in POOLS:
            new = [_quantized_pool(cls, lname, cfg, fmt, shape)]
        elif cls in GLOBAL_POOLS:
            new = [_global_pool(cls, lname, fmt, shape)]
        elif cls in ("ZeroPadding1D", "ZeroPadding2D"):
            new = [_zero_padding(cls, lname, cfg, fmt, shape)]
        elif cls in ("QDense", "Dense"):
            new = [_quantized_dense(lname, cfg, store, fmt, shape)]
            act = cfg.get("activation")
            if act not in (None, "linear"):
                new += _quantized_activation(f"{lname}_activation", act, new[0].output_format,
                                             new[0].output_shape)
        elif cls in ("QActivation", "Activation"):
            new = _quantized_activation(lname, cfg.get("activation"), fmt, shape)
        elif cls in QKERAS_RECURRENT:
            new = [qkeras_recurrent(cls, lname, cfg, store, fmt, shape)]
        else:
            raise UnsupportedLayerError(f"Layer {lname!r}: layer {cls!r} is not supported in a "
                                        f"quantized model (supported: QDense, QConv1D, "
                                        f"QConv2D, QActivation, QSimpleRNN, QLSTM, QGRU, "
                                        f"Dense, Conv1D, Conv2D, "
                                        f"Activation, MaxPooling1D/2D, AveragePooling1D/2D, "
                                        f"GlobalMaxPooling1D/2D, GlobalAveragePooling1D/2D, "
                                        f"ZeroPadding1D/2D, Flatten, Dropout)")
        for layer in new:
            out.append(layer)
            fmt, shape = layer.output_format, tuple(layer.output_shape)
    return Model(name, input_shape(layers), input_format, tuple(out))
