"""The hls4ml graph of a Keras or QKeras model (``keras_v2_to_hls``): layer names and classes
as hls4ml gives them, weights as hls4ml loads them."""

import numpy as np

from nnfab.errors import UnsupportedLayerError

from ..importers.keras_config import (SKIPPED_LAYERS, KerasWeights, conv_kernel, input_shape,
                                      keras_layers, read_config, window_geometry)
from ..importers.qkeras_quantizers import apply_quantizer, parse_quantizer
from nnfab.ir import INPUT
from .config import ConfigError
from .quartus import check_quartus_layer, quartus_simple_rnn
from .recurrent import RECURRENT_CLASSES, recurrent

__all__ = ["build_keras", "keras_layer_names"]

#: Keras activation names and their hls4ml layer class.
_ACTIVATIONS = {"relu": ("Activation", "relu"), "linear": ("Activation", "linear"),
                "sigmoid": ("Activation", "sigmoid"), "tanh": ("Activation", "tanh"),
                "softmax": ("Softmax", None)}


def _values(cfg, key, values, name):
    """Float values of weights or biases: QKeras's quantizer applied when the layer has one."""
    spec = cfg.get(f"{key}_quantizer")
    if not spec:
        return values
    fmt, codes = apply_quantizer(*parse_quantizer(spec, name), values)
    return np.ldexp(np.asarray(codes, dtype=np.float64), -fmt.fraction_width)


def _check_quantized_auto(config, name, cls, cfg):
    """hls4ml types an ``auto`` weight or bias of a QKeras layer with its quantizer's type,
    which nnfab does not derive: such a config is rejected."""
    for key, var in (("kernel", "weight"), ("bias", "bias")):
        if cfg.get(f"{key}_quantizer") and config.precision(name, cls, var) == "auto":
            raise ConfigError(f"{config.path}: precision 'auto' for {var!r} of QKeras layer "
                              f"{name!r} is not supported (hls4ml takes its quantizer's type); "
                              f"give the type, such as 'ap_fixed<16,6>'")


def _activation(builder, name, spec):
    """One activation layer from a Keras activation string or a QKeras quantizer."""
    if isinstance(spec, dict) or (isinstance(spec, str) and "(" in spec):
        qname, _ = parse_quantizer(spec, name)
        if qname == "quantized_relu":
            return builder.activation(name, "Activation", "relu", quantizer=True)
        if qname == "quantized_bits":
            return builder.activation(name, "Activation", "linear", quantizer=True)
        raise UnsupportedLayerError(f"Layer {name!r}: quantizer {qname!r} as an activation is "
                                    f"not supported in hls4ml mode")
    if spec not in _ACTIVATIONS:
        raise UnsupportedLayerError(f"Layer {name!r}: activation {spec!r} is not supported in "
                                    f"hls4ml mode (relu, linear, sigmoid, tanh, softmax)")
    cls, function = _ACTIVATIONS[spec]
    if cls == "Softmax":
        return builder.softmax(name)
    return builder.activation(name, cls, function)


def _fused_activation(builder, name, cfg):
    """hls4ml splits a layer's ``activation`` into the layer ``NAME_ACTIVATION``."""
    act = cfg.get("activation")
    if act in (None, "linear"):
        return
    if not isinstance(act, str) or "(" in act:
        raise UnsupportedLayerError(f"Layer {name!r}: activation {act!r} inside a layer is not "
                                    f"supported in hls4ml mode; use a separate QActivation")
    _activation(builder, f"{name}_{act}", act)


def keras_layer_names(config):
    """The layer names hls4ml gives ``config``'s Keras model (``keras_v2_to_hls``): every
    Keras layer's name (``input1`` for a model without an InputLayer) and ``NAME_ACTIVATION``
    for a layer's own activation: the names a ``LayerName`` section may use."""
    layers = keras_layers(read_config(config.model_path), graph=True)
    names = [] if any(cls == "InputLayer" for cls, _, _ in layers) else ["input1"]
    for cls, cfg, _ in layers:
        name = cfg.get("name", cls)
        names.append(name)
        act = cfg.get("activation")
        # hls4ml splits a layer's activation off, except a recurrent layer's (its own tables).
        if act is not None and cls not in ("Activation", "QActivation", "SimpleRNN", "LSTM",
                                           "GRU"):
            names.append(f"{name}_{act.get('class_name') if isinstance(act, dict) else act}")
    return names


def build_keras(config, builder_class):
    """The IR model of ``config``'s Keras model (Sequential or functional, with ``Add`` and
    ``Concatenate`` joins) built by ``builder_class`` with hls4ml's types."""
    raw = read_config(config.model_path)
    layers = keras_layers(raw, graph=True)
    input_name = next((cfg.get("name") for cls, cfg, _ in layers if cls == "InputLayer"),
                      "input1")
    builder = builder_class(config, input_name,
                            input_shape([(cls, cfg) for cls, cfg, _ in layers]))
    weights_path = config.weights_path or config.model_path.with_name(
        config.model_path.stem + "_weights.h5")
    store = KerasWeights(weights_path)
    # Keras layer name -> the nnfab tensor holding its output.
    tensors = {input_name: INPUT}
    try:
        for cls, cfg, inbound in layers:
            name = cfg.get("name", cls)
            if cls == "InputLayer":
                continue
            sources = [tensors[n] for n in inbound] if inbound else [builder.current]
            if config.quartus and cls not in SKIPPED_LAYERS:
                check_quartus_layer(name, cls, cfg)
            if cls in ("Add", "Concatenate"):
                if cls == "Concatenate" and int(cfg.get("axis", -1)) != -1:
                    raise UnsupportedLayerError(f"Layer {name!r}: concatenation along axis "
                                                f"{cfg.get('axis')} is not supported; only -1")
                builder.merge(name, "Merge" if cls == "Add" else "Concatenate",
                              "add" if cls == "Add" else "concatenate", sources)
                tensors[name] = builder.current
                continue
            builder.read(sources[0])
            if cls in SKIPPED_LAYERS:
                tensors[name] = builder.current
                continue
            _build_layer(builder, config, store, cls, cfg, name)
            tensors[name] = builder.current
    finally:
        store.close()
    return builder.model(raw["config"].get("name", config.model_path.stem)
                         if isinstance(raw["config"], dict) else config.model_path.stem)


def _build_layer(builder, config, store, cls, cfg, name):
    use_bias = cfg.get("use_bias", True)
    if cls in ("Dense", "QDense", "Conv2D", "QConv2D"):
        _check_quantized_auto(config, name, cls.lstrip("Q"), cfg)
    if cls in ("Dense", "QDense"):
        w = store.get(name, ["kernel"] + (["bias"] if use_bias else []))
        builder.dense(name, "Dense", _values(cfg, "kernel", w["kernel"], name).T,
                      _values(cfg, "bias", w["bias"], name) if use_bias else None)
        _fused_activation(builder, name, cfg)
    elif cls in ("Conv2D", "QConv2D"):
        one_d, strides, padding = window_geometry(cls, cfg, name, builder.shape)
        w = store.get(name, ["kernel"] + (["bias"] if use_bias else []))
        kernel = conv_kernel(_values(cfg, "kernel", w["kernel"], name), one_d, name,
                             builder.shape)
        builder.conv2d(name, "Conv2D", kernel,
                       _values(cfg, "bias", w["bias"], name) if use_bias else None,
                       strides, padding)
        _fused_activation(builder, name, cfg)
    elif cls in ("Activation", "QActivation"):
        _activation(builder, name, cfg.get("activation"))
    elif cls == "MaxPooling2D":
        one_d, strides, padding = window_geometry(cls, cfg, name, builder.shape)
        pool_size = tuple(cfg.get("pool_size", (2, 2)))
        builder.pool(name, "Pooling2D", "max", pool_size, strides, padding)
    elif cls == "Flatten":
        builder.flatten(name)
    elif cls in RECURRENT_CLASSES:
        w = store.get(name, ["kernel", "recurrent_kernel", "bias"])
        recurrent(builder, name, cls, cfg, w["kernel"], w["recurrent_kernel"], w["bias"])
    elif cls == "SimpleRNN" and config.quartus:
        w = store.get(name, ["kernel", "recurrent_kernel", "bias"])
        quartus_simple_rnn(builder, name, cfg, w["kernel"], w["recurrent_kernel"], w["bias"])
    elif cls == "SimpleRNN":
        raise UnsupportedLayerError(f"Layer {name!r}: Keras layer 'SimpleRNN' is not supported "
                                    f"in hls4ml mode: hls4ml 1.3's Vivado backend writes no code "
                                    f"for it (its C simulation leaves the layer out); use LSTM "
                                    f"or GRU, or Backend Quartus")
    else:
        raise UnsupportedLayerError(f"Layer {name!r}: Keras layer {cls!r} is not supported in "
                                    f"hls4ml mode (Dense, QDense, Conv2D, QConv2D, Activation, "
                                    f"QActivation, MaxPooling2D, Flatten, Dropout, Add, "
                                    f"Concatenate, LSTM, GRU)")
