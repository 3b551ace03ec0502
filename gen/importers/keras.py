"""Keras and QKeras models: ``NAME.json`` + ``NAME_weights.h5``, or a whole-model ``.h5``.

Read with :mod:`json` and :mod:`h5py` only (no TensorFlow). Float Keras models become a
:class:`~nnfab.gen.float_model.FloatModel` (PTQ follows in :func:`nnfab.gen.load.load_model`);
QKeras models become a quantized :class:`~nnfab.ir.Model` whose weights and activations are
exactly QKeras's (see :mod:`.qkeras_quantizers` for the quantizer-to-format mapping).

Supported layers: ``InputLayer``, ``Dense``, ``Conv1D``, ``Conv2D``, ``MaxPooling1D/2D``,
``AveragePooling1D/2D``, ``Activation``, ``ReLU``, ``BatchNormalization`` (float models),
``Flatten``, ``Dropout`` (dropped), ``ZeroPadding1D/2D``, ``GlobalMaxPooling1D/2D`` and
``GlobalAveragePooling1D/2D``; in float models also ``UpSampling2D`` (nearest) and the joins
``Add`` and ``Concatenate`` (last axis) of functional graphs; in quantized models (chains)
``QDense``, ``QConv1D``, ``QConv2D`` and ``QActivation``. Images are channels-last; a 1-D layer's ``(length, C)`` input
is the ``(1, length, C)`` image (the model's input shape then has three axes). A quantized
``QDense`` or ``QConv`` followed by no ``QActivation`` outputs its exact accumulator; a
``relu`` activation inside a ``QConv`` is fused into it (exact ReLU of the accumulator).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec

from ..float_model import (FloatActivation, FloatAdd, FloatBatchNorm, FloatConcatenate,
                           FloatConv2D, FloatDense, FloatFlatten, FloatGlobalPool, FloatModel,
                           FloatPool, FloatSoftmax, FloatUpsample, FloatZeroPad)
from nnfab.ir import ActivationLayer, Model, SoftmaxLayer
from nnfab.ir import FlattenLayer, GlobalPoolLayer, PoolLayer, ZeroPadLayer
from ._common import (DEFAULT_INPUT_FORMAT, SOFTMAX_FORMAT, conv_layer, dense_layer, exact,
                      open_hdf5, relu_format)
from .hgq import build_hgq
from .qkeras_quantizers import apply_quantizer, parse_quantizer, quantizer_format

__all__ = ["load_keras", "read_config", "keras_layers", "input_shape", "window_geometry",
           "conv_kernel", "KerasWeights", "SKIPPED_LAYERS"]

_FLOAT_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "hard_sigmoid", "elu", "selu")
SKIPPED_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
            "GaussianDropout", "AlphaDropout")


def read_config(path):
    """The Keras model config (dict with ``class_name`` and ``config``) of a ``.json`` file or of
    a whole-model ``.h5`` (attribute ``model_config``).

    Raises
    ------
    ModelError
        If the file is not valid JSON or the ``.h5`` holds weights only.
    """
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5", ".keras") or _is_hdf5(path):
        with open_hdf5(path) as file:
            raw = file.attrs.get("model_config")
            if raw is None:
                raise ModelError(f"Model file {str(path)!r} holds weights only (no "
                                 f"'model_config'); pass the model's .json with this file as "
                                 f"its weights")
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) \
                else str(raw)
    else:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelError(f"Model file {str(path)!r} is not UTF-8 text (byte {exc.start} "
                             f"is 0x{exc.object[exc.start]:02x})") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"Model file {str(path)!r} is not valid JSON (truncated?): {exc.msg} "
                         f"at line {exc.lineno}") from None
    except (ValueError, RecursionError):
        raise ModelError(f"Model file {str(path)!r} is not valid JSON") from None
    if not isinstance(config, dict) or "config" not in config:
        raise ModelError(f"Model file {str(path)!r} is not a Keras model config (no 'config')")
    return config


def _is_hdf5(path):
    with open(path, "rb") as file:
        return file.read(8) == b"\x89HDF\r\n\x1a\n"


def _inbound(entry, name):
    """Names of the layers feeding a Keras functional layer entry (Keras 2's nested lists or
    Keras 3's ``args`` of ``__keras_tensor__``), or ``None`` when the config has no edges
    (Sequential)."""
    nodes = entry.get("inbound_nodes")
    if not nodes:
        return None
    if len(nodes) > 1:
        raise UnsupportedLayerError(f"Layer {name!r}: is called {len(nodes)} times (shared "
                                    f"layer); nnfab imports layers called once")
    node = nodes[0]
    if isinstance(node, dict):
        found = []

        def walk(value):
            if isinstance(value, dict):
                if value.get("class_name") == "__keras_tensor__":
                    found.append(value["config"]["keras_history"][0])
                else:
                    for item in value.values():
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(node.get("args", []))
        return found
    node = node if isinstance(node, list) else [node]
    return [item[0] if isinstance(item, list) else item for item in node]


def keras_layers(config, *, graph=False):
    """The layers of a Keras model config as a list of ``(class_name, config)``, checked to be a
    single chain; with ``graph``, ``(class_name, config, inbound)`` triples of any functional
    graph, ``inbound`` the names of the layers feeding each (``None`` in a Sequential model:
    the layer before).

    Raises
    ------
    UnsupportedLayerError
        Without ``graph``, if a layer takes more than one input or the layers do not form one
        chain.
    """
    body = config["config"]
    layers = body.get("layers") if isinstance(body, dict) else body
    if not isinstance(layers, list):
        raise ModelError("Keras model config has no layer list")
    result, previous = [], None
    for index, entry in enumerate(layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) or \
                not isinstance(entry.get("config", {}), (dict, type(None))):
            raise ModelError(f"Keras model config: layer {index} is not an object with a "
                             f"\"class_name\" string and a \"config\" object")
        cls, cfg = entry.get("class_name"), dict(entry.get("config") or {})
        name = cfg.get("name", cls)
        if not isinstance(name, str):
            raise ModelError(f"Keras model config: layer {index} ({cls}) has the name "
                             f"{name!r}; a layer name is a string")
        inbound = _inbound(entry, name)
        if graph:
            result.append((cls, cfg, inbound))
            continue
        if inbound is not None and len(inbound) != 1:
            raise UnsupportedLayerError(f"Layer {name!r}: takes {len(inbound)} inputs; nnfab "
                                        f"imports single-chain models only")
        if inbound and previous is not None and inbound[0] != previous:
            raise UnsupportedLayerError(f"Layer {name!r}: takes its input from {inbound[0]!r}, "
                                        f"not from the layer before it ({previous!r}); "
                                        f"nnfab imports single-chain models only")
        result.append((cls, cfg))
        previous = name
    return result


class KerasWeights:
    """Named weight arrays of a Keras weights file (root groups, or under ``model_weights``)."""

    def __init__(self, path):
        self._path = str(path)
        self._file = open_hdf5(path)
        self._root = self._file["model_weights"] if "model_weights" in self._file else \
            self._file

    def close(self):
        self._file.close()

    def get(self, layer, names):
        """``{short name: array}`` for the weights of ``layer`` (e.g. ``kernel``, ``bias``)."""
        if layer not in self._root:
            raise ModelError(f"Layer {layer!r}: no weights in {self._path!r} (truncated file or "
                             f"weights of another model?)")
        group = self._root[layer]
        found = {}
        try:
            weight_names = [n.decode() if isinstance(n, bytes) else str(n)
                            for n in group.attrs.get("weight_names", [])]
            for full in weight_names:
                short = full.rsplit("/", 1)[-1].split(":")[0]
                found[short] = np.asarray(group[full][()], dtype=np.float64)
            if not weight_names:
                group.visititems(lambda key, obj: found.setdefault(
                    key.rsplit("/", 1)[-1].split(":")[0],
                    np.asarray(obj[()], dtype=np.float64)) if hasattr(obj, "shape") else None)
        except (KeyError, OSError, ValueError, TypeError, AttributeError):
            raise ModelError(f"Layer {layer!r}: its weights in {self._path!r} cannot be read "
                             f"(truncated or corrupt file?)") from None
        missing = [n for n in names if n not in found]
        if missing:
            raise ModelError(f"Layer {layer!r}: weights {', '.join(map(repr, missing))} are "
                             f"missing from {self._path!r} (found "
                             f"{', '.join(map(repr, found)) or 'none'})")
        return found


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
    graph = keras_layers(config, graph=True)
    classes = [cls for cls, _, _ in graph]
    name = config["config"].get("name", path.stem) if isinstance(config["config"], dict) \
        else path.stem
    store = KerasWeights(weights)
    try:
        if any(cls.startswith("Q") or cls == "FixedPointQuantizer" for cls in classes):
            # Quantized Keras models are imported as chains (checked here).
            layers = keras_layers(config)
            if "FixedPointQuantizer" in classes:
                return build_hgq(name, layers, store)
            return _build_quantized(name, layers, store, input_format or DEFAULT_INPUT_FORMAT)
        return _build_float(name, graph, store)
    finally:
        store.close()


_CONV = ("Conv1D", "Conv2D", "QConv1D", "QConv2D")
_POOL = {"MaxPooling1D": "max", "MaxPooling2D": "max", "AveragePooling1D": "average",
         "AveragePooling2D": "average"}
_GLOBAL_POOL = {"GlobalMaxPooling1D": "max", "GlobalMaxPooling2D": "max",
                "GlobalAveragePooling1D": "average", "GlobalAveragePooling2D": "average"}


def input_shape(layers):
    for cls, cfg in layers:
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape:
            shape = tuple(int(n) for n in shape[1:])
            # A 1-D convolution network's (length, C) input is the image (1, length, C).
            if len(shape) == 2 and any(c.endswith("1D") for c, _ in layers):
                shape = (1,) + shape
            return shape
    raise ModelError("Keras model names no input shape (no 'batch_input_shape')")


def _pair(cfg, key, lname, one_d, default=None):
    """A Keras ``kernel_size``/``strides``/``pool_size`` as ``(rows, columns)``."""
    value = cfg.get(key, default)
    if value is None:
        return None
    value = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if one_d:
        if len(value) != 1:
            raise ModelError(f"Layer {lname!r}: {key} {value} of a 1-D layer has "
                             f"{len(value)} entries")
        return (1, value[0])
    return (value[0], value[-1])


def window_geometry(cls, cfg, lname, shape):
    """Check a convolution's or pooling's settings; ``(one_d, strides, padding)``."""
    if len(shape) != 3:
        raise ShapeError(f"Layer {lname!r}: {cls} needs an image input, not shape {shape}")
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"Layer {lname!r}: data_format "
                                    f"{cfg.get('data_format')!r} is not supported; nnfab "
                                    f"imports channels_last models")
    dilation = cfg.get("dilation_rate", 1)
    if any(int(d) != 1 for d in (dilation if isinstance(dilation, (list, tuple))
                                 else [dilation])):
        raise UnsupportedLayerError(f"Layer {lname!r}: dilation_rate {dilation} is not "
                                    f"supported; only 1")
    if int(cfg.get("groups", 1)) != 1:
        raise UnsupportedLayerError(f"Layer {lname!r}: groups={cfg.get('groups')} is not "
                                    f"supported; only 1")
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise UnsupportedLayerError(f"Layer {lname!r}: padding {padding!r} is not supported; "
                                    f"use 'valid' or 'same'")
    one_d = cls.endswith("1D")
    # Keras' default strides: the pool size for pooling, 1 for convolutions.
    default = _pair(cfg, "pool_size", lname, one_d) if "Pool" in cls else (1, 1)
    strides = _pair(cfg, "strides", lname, one_d) or default
    return one_d, strides, padding


def conv_kernel(kernel, one_d, lname, shape):
    """Keras' kernel ``(kh, kw, C_in, F)`` (``(k, C_in, F)`` in 1-D) as ``(F, kh, kw, C_in)``."""
    if one_d and kernel.ndim == 3:
        kernel = kernel[None]
    if kernel.ndim != 4 or kernel.shape[2] != shape[2]:
        raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                         f"{shape[2]} input channels")
    return np.transpose(kernel, (3, 0, 1, 2))


def _check_use_bias(cfg, w):
    return w.get("bias") if cfg.get("use_bias", True) else None


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
                    "Flatten, Dropout")


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
        return [FloatDense(lname, kernel.T, _check_use_bias(cfg, w))] + ([act] if act else [])
    if cls in ("Conv1D", "Conv2D"):
        one_d, strides, padding = window_geometry(cls, cfg, lname, shape)
        w = store.get(lname, ["kernel"] + (["bias"] if cfg.get("use_bias", True) else []))
        act = _float_activation(f"{lname}_{cfg.get('activation')}", cfg.get("activation"))
        return [FloatConv2D(lname, conv_kernel(w["kernel"], one_d, lname, shape),
                            _check_use_bias(cfg, w), strides, padding)] + ([act] if act else [])
    if cls in _POOL:
        one_d, strides, padding = window_geometry(cls, cfg, lname, shape)
        return [FloatPool(lname, _POOL[cls], _pair(cfg, "pool_size", lname, one_d), strides,
                          padding)]
    if cls in _GLOBAL_POOL:
        return [FloatGlobalPool(lname, _GLOBAL_POOL[cls])]
    if cls in ("ZeroPadding1D", "ZeroPadding2D"):
        return [FloatZeroPad(lname, zero_padding(cls, cfg))]
    if cls == "UpSampling2D":
        if cfg.get("interpolation", "nearest") != "nearest":
            raise UnsupportedLayerError(f"Layer {lname!r}: interpolation "
                                        f"{cfg.get('interpolation')!r} is not supported; only "
                                        f"'nearest'")
        return [FloatUpsample(lname, _pair(cfg, "size", lname, False, (2, 2)))]
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


def _build_float(name, layers, store):
    """A :class:`FloatModel` of a Sequential or functional Keras model (``layers`` as
    :func:`keras_layers` gives them with ``graph=True``)."""
    from nnfab.ir import INPUT

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
    pool_size = _pair(cfg, "pool_size", lname, one_d, default=2)
    kind = _POOL[cls]
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
    kind = _GLOBAL_POOL[cls]
    out_fmt = fmt if kind == "max" else _average_format(lname, fmt, shape[0] * shape[1])
    return GlobalPoolLayer(lname, spec=GlobalPoolSpec(kind, shape, fmt, out_fmt))


def zero_padding(cls, cfg):
    """``((top, bottom), (left, right))`` of a Keras ``ZeroPadding1D/2D`` config."""
    pad = cfg.get("padding", 1)
    if cls == "ZeroPadding1D":
        pad = pad if isinstance(pad, (list, tuple)) else (pad, pad)
        return ((0, 0), tuple(int(p) for p in pad))
    if isinstance(pad, int):
        return ((pad, pad), (pad, pad))
    return tuple((int(p), int(p)) if isinstance(p, int) else tuple(int(q) for q in p)
                 for p in pad)


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
        elif cls in _CONV:
            new = _quantized_conv(cls, lname, cfg, store, fmt, shape)
        elif cls in _POOL:
            new = [_quantized_pool(cls, lname, cfg, fmt, shape)]
        elif cls in _GLOBAL_POOL:
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
        else:
            raise UnsupportedLayerError(f"Layer {lname!r}: layer {cls!r} is not supported in a "
                                        f"quantized model (supported: QDense, QConv1D, "
                                        f"QConv2D, QActivation, Dense, Conv1D, Conv2D, "
                                        f"Activation, MaxPooling1D/2D, AveragePooling1D/2D, "
                                        f"GlobalMaxPooling1D/2D, GlobalAveragePooling1D/2D, "
                                        f"ZeroPadding1D/2D, Flatten, Dropout)")
        for layer in new:
            out.append(layer)
            fmt, shape = layer.output_format, tuple(layer.output_shape)
    return Model(name, input_shape(layers), input_format, tuple(out))
