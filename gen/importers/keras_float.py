"""Float Keras models (Sequential or functional graphs with ``Add`` and ``Concatenate``) as a
:class:`~nnfab.gen.float_model.FloatModel`; PTQ follows in :func:`nnfab.gen.load.load_model`."""

import dataclasses

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.ir import INPUT

from ..float_model import (FloatActivation, FloatAdd, FloatBatchNorm, FloatConcatenate,
                           FloatConv2D, FloatDense, FloatFlatten, FloatGlobalPool, FloatModel,
                           FloatPool, FloatSoftmax, FloatUpsample, FloatZeroPad)
from nnfab.ir import FloatRecurrent
from .keras_config import (GLOBAL_POOLS, POOLS, SKIPPED_LAYERS, check_use_bias, conv_kernel,
                           input_shape, pair, window_geometry, zero_padding)

__all__ = ["build_float"]

_FLOAT_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "hard_sigmoid", "elu", "selu")


def _float_activation(name, act):
    """The float layer of a Keras activation name, or ``None`` for ``linear``."""
    if act in (None, "linear"):
        return None
    if act == "softmax":
        return FloatSoftmax(name)
    if act in _FLOAT_ACTIVATIONS:
        return FloatActivation(name, act)
    raise UnsupportedLayerError(f"Layer {name!r}: activation {act!r} is not supported; use "
                                f"one of {', '.join(_FLOAT_ACTIVATIONS)}, softmax")


_FLOAT_SUPPORTED = ("Dense, Conv1D, Conv2D, MaxPooling1D/2D, AveragePooling1D/2D, "
                    "GlobalMaxPooling1D/2D, GlobalAveragePooling1D/2D, ZeroPadding1D/2D, "
                    "UpSampling2D, Add, Concatenate, Activation, ReLU, BatchNormalization, "
                    "Flatten, Dropout, SimpleRNN, LSTM, GRU")

_RECURRENT = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}


def _recurrent(cls, cfg, lname, store, shape):
    """Keras' SimpleRNN, LSTM or GRU: kernel (n_in, G * units), recurrent kernel (units,
    G * units), bias (G * units,) or, GRU with ``reset_after`` (Keras 2's default, assumed when
    the config does not say), (2, 3 * units)."""
    for key, accepted in (("go_backwards", False), ("stateful", False), ("return_state", False)):
        if key in cfg and bool(cfg[key]) != accepted:
            raise UnsupportedLayerError(f"Layer {lname!r}: {key}={cfg[key]!r} is not "
                                        f"supported; only {accepted}")
    if len(shape) != 2:
        raise ShapeError(f"Layer {lname!r}: a {cls} layer reads sequences (n_steps, n_in), not "
                         f"shape {shape}")
    use_bias = cfg.get("use_bias", True)
    w = store.get(lname, ["kernel", "recurrent_kernel"] + (["bias"] if use_bias else []))
    kernel, recurrent_kernel = w["kernel"], w["recurrent_kernel"]
    if kernel.ndim != 2 or kernel.shape[0] != shape[-1]:
        raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                         f"input of shape {shape}")
    bias, recurrent_bias = w.get("bias") if use_bias else None, None
    if bias is not None and bias.ndim == 2:  # GRU reset_after: input and recurrent biases
        bias, recurrent_bias = bias[0], bias[1]
    return [FloatRecurrent(lname, _RECURRENT[cls], kernel.T, recurrent_kernel.T, bias,
                           recurrent_bias, bool(cfg.get("return_sequences", False)),
                           cfg.get("activation", "tanh") or "linear",
                           cfg.get("recurrent_activation", "sigmoid") or "linear",
                           cls != "GRU" or bool(cfg.get("reset_after", True)))]


def _float_layers(cls, cfg, lname, store, shapes):
    """The float layers (a chain) of one Keras layer reading tensors of ``shapes``; an empty
    list for layers without effect."""
    shape = shapes[0]
    if cls == "Flatten":
        return [FloatFlatten(lname)] if len(shape) != 1 else []
    if cls == "Dense":
        w = store.get(lname, ["kernel"] + (["bias"] if cfg.get("use_bias", True) else []))
        kernel = w["kernel"]
        if kernel.ndim != 2 or kernel.shape[0] != shape[-1] or len(shape) != 1:
            raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                             f"input of shape {shape}")
        act = _float_activation(f"{lname}_{cfg.get('activation')}", cfg.get("activation"))
        return [FloatDense(lname, kernel.T, check_use_bias(cfg, w))] + ([act] if act else [])
    if cls in ("Conv1D", "Conv2D"):
        one_d, strides, padding = window_geometry(cls, cfg, lname, shape)
        w = store.get(lname, ["kernel"] + (["bias"] if cfg.get("use_bias", True) else []))
        act = _float_activation(f"{lname}_{cfg.get('activation')}", cfg.get("activation"))
        return [FloatConv2D(lname, conv_kernel(w["kernel"], one_d, lname, shape),
                            check_use_bias(cfg, w), strides, padding)] + ([act] if act else [])
    if cls in POOLS:
        one_d, strides, padding = window_geometry(cls, cfg, lname, shape)
        return [FloatPool(lname, POOLS[cls], pair(cfg, "pool_size", lname, one_d), strides,
                          padding)]
    if cls in GLOBAL_POOLS:
        return [FloatGlobalPool(lname, GLOBAL_POOLS[cls])]
    if cls in ("ZeroPadding1D", "ZeroPadding2D"):
        return [FloatZeroPad(lname, zero_padding(cls, cfg))]
    if cls == "UpSampling2D":
        if cfg.get("interpolation", "nearest") != "nearest":
            raise UnsupportedLayerError(f"Layer {lname!r}: interpolation "
                                        f"{cfg.get('interpolation')!r} is not supported; only "
                                        f"'nearest'")
        return [FloatUpsample(lname, pair(cfg, "size", lname, False, (2, 2)))]
    if cls in _RECURRENT:
        return _recurrent(cls, cfg, lname, store, shape)
    if cls == "Add":
        return [FloatAdd(lname)]
    if cls == "Concatenate":
        if int(cfg.get("axis", -1)) not in (-1, len(shape)):
            raise UnsupportedLayerError(f"Layer {lname!r}: concatenation along axis "
                                        f"{cfg.get('axis')} is not supported; only the last "
                                        f"(channel) axis, -1")
        return [FloatConcatenate(lname)]
    if cls == "Activation":
        act = _float_activation(lname, cfg.get("activation"))
        return [act] if act else []
    if cls == "BatchNormalization":
        w = store.get(lname, ["moving_mean", "moving_variance"])
        n = w["moving_mean"].shape[0]
        return [FloatBatchNorm(lname, w.get("gamma", np.ones(n)), w.get("beta", np.zeros(n)),
                               w["moving_mean"], w["moving_variance"],
                               float(cfg.get("epsilon", 1e-3)))]
    if cls == "ReLU" and not cfg.get("max_value") and not cfg.get("negative_slope"):
        return [FloatActivation(lname, "relu")]
    raise UnsupportedLayerError(f"Layer {lname!r}: Keras layer {cls!r} is not supported in a "
                                f"float model (supported: {_FLOAT_SUPPORTED})")


def build_float(name, layers, store):
    """A :class:`FloatModel` of a Sequential or functional Keras model (``layers`` as
    :func:`keras_layers` gives them with ``graph=True``)."""
    model_input = input_shape([(cls, cfg) for cls, cfg, _ in layers])
    # Keras layer name -> (nnfab tensor name, shape) of its output.
    tensors, out, previous = {}, [], None
    for cls, cfg, inbound in layers:
        lname = cfg.get("name", cls)
        if cls == "InputLayer":
            tensors[lname] = previous = (INPUT, model_input)
            continue
        if inbound is None:
            sources = [previous or (INPUT, model_input)]
        else:
            missing = [n for n in inbound if n not in tensors]
            if missing:
                raise ModelError(f"Layer {lname!r}: reads {missing[0]!r}, which is no layer "
                                 f"before it in the Keras config")
            sources = [tensors[n] for n in inbound]
        if cls in SKIPPED_LAYERS:
            tensors[lname] = previous = sources[0]
            continue
        created = _float_layers(cls, cfg, lname, store, [shape for _, shape in sources])
        inputs = tuple(tensor for tensor, _ in sources)
        shapes = [shape for _, shape in sources]
        for layer in created:
            layer = dataclasses.replace(layer, inputs=inputs)
            out.append(layer)
            shapes = [tuple(layer.output_shape(*shapes))]
            inputs = (layer.name,)
        tensors[lname] = previous = (inputs[0], shapes[0])
    return FloatModel(name, model_input, tuple(out))
