"""Keras and QKeras models: ``NAME.json`` + ``NAME_weights.h5``, or a whole-model ``.h5``.

Read with :mod:`json` and :mod:`h5py` only (no TensorFlow). Float Keras models become a
:class:`~nnfab.gen.float_model.FloatModel` (PTQ follows in :func:`nnfab.gen.load.load_model`);
QKeras models become a quantized :class:`~nnfab.gen.ir.Model` whose weights and activations are
exactly QKeras's (see :mod:`.qkeras_quantizers` for the quantizer-to-format mapping).

Supported layers: ``InputLayer``, ``Dense``, ``Activation``, ``BatchNormalization`` (float
models), ``Flatten`` of a vector (no-op), ``Dropout`` (dropped), ``QDense``, ``QActivation``.
A ``QDense`` followed by no ``QActivation`` outputs its exact accumulator.
"""

import json
from pathlib import Path

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat

from ..float_model import FloatActivation, FloatBatchNorm, FloatDense, FloatModel, FloatSoftmax
from ..ir import ActivationLayer, Model, SoftmaxLayer
from ._common import dense_layer, exact, open_hdf5, relu_format
from .qkeras_quantizers import apply_quantizer, parse_quantizer, quantizer_format

__all__ = ["load_keras", "read_config", "keras_layers", "DEFAULT_INPUT_FORMAT",
           "SOFTMAX_FORMAT"]

#: Input format of quantized Keras models unless the caller names one (QKeras does not
#: quantize inputs; the jet tagger's and MNIST's test inputs are exact in it).
DEFAULT_INPUT_FORMAT = FixedFormat(16, 6)
#: Output format of a table softmax after a quantized layer.
SOFTMAX_FORMAT = FixedFormat(16, 1, signed=False, rounding="RND_CONV", overflow="SAT")

_FLOAT_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "hard_sigmoid")
_SKIPPED = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
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
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"Model file {str(path)!r} is not valid JSON (truncated?): {exc}") \
            from None
    if not isinstance(config, dict) or "config" not in config:
        raise ModelError(f"Model file {str(path)!r} is not a Keras model config (no 'config')")
    return config


def _is_hdf5(path):
    with open(path, "rb") as file:
        return file.read(8) == b"\x89HDF\r\n\x1a\n"


def keras_layers(config):
    """The layers of a Keras model config as a list of ``(class_name, config)``, checked to be a
    single chain.

    Raises
    ------
    UnsupportedLayerError
        If a layer takes more than one input or the layers do not form one chain.
    """
    body = config["config"]
    layers = body["layers"] if isinstance(body, dict) else body
    if not isinstance(layers, list):
        raise ModelError("Keras model config has no layer list")
    result, previous = [], None
    for entry in layers:
        cls, cfg = entry.get("class_name"), dict(entry.get("config") or {})
        name = cfg.get("name", cls)
        nodes = entry.get("inbound_nodes") or []
        if nodes:
            inbound = nodes[0] if isinstance(nodes[0], list) else [nodes[0]]
            if len(nodes) > 1 or len(inbound) != 1:
                raise UnsupportedLayerError(f"Layer {name!r}: takes {len(inbound)} inputs; nnfab "
                                            f"imports single-chain models only")
            source = inbound[0][0] if isinstance(inbound[0], list) else None
            if source is not None and previous is not None and source != previous:
                raise UnsupportedLayerError(f"Layer {name!r}: takes its input from {source!r}, "
                                            f"not from the layer before it ({previous!r}); "
                                            f"nnfab imports single-chain models only")
        result.append((cls, cfg))
        previous = name
    return result


class _Weights:
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
        except (KeyError, OSError, ValueError) as exc:
            raise ModelError(f"Layer {layer!r}: its weights in {self._path!r} cannot be read "
                             f"(truncated or corrupt file?): {exc}") from None
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
    layers = keras_layers(config)
    name = config["config"].get("name", path.stem) if isinstance(config["config"], dict) \
        else path.stem
    store = _Weights(weights)
    try:
        if any(cls.startswith("Q") or cls == "FixedPointQuantizer" for cls, _ in layers):
            if any(cls == "FixedPointQuantizer" for cls, _ in layers):
                from .hgq import build_hgq

                return build_hgq(name, layers, store)
            return _build_quantized(name, layers, store, input_format or DEFAULT_INPUT_FORMAT)
        return _build_float(name, layers, store)
    finally:
        store.close()


def _input_shape(layers):
    for cls, cfg in layers:
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape:
            return tuple(int(n) for n in shape[1:])
    raise ModelError("Keras model names no input shape (no 'batch_input_shape')")


def _check_use_bias(cfg, w):
    return w.get("bias") if cfg.get("use_bias", True) else None


def _float_activation(name, act, layers):
    if act in (None, "linear"):
        return
    if act == "softmax":
        layers.append(FloatSoftmax(name))
    elif act in _FLOAT_ACTIVATIONS:
        layers.append(FloatActivation(name, act))
    else:
        raise UnsupportedLayerError(f"Layer {name!r}: activation {act!r} is not supported; use "
                                    f"one of linear, relu, sigmoid, tanh, hard_sigmoid, softmax")


def _build_float(name, layers, store):
    shape = _input_shape(layers)
    out = []
    for cls, cfg in layers:
        lname = cfg.get("name", cls)
        if cls == "InputLayer" or cls in _SKIPPED:
            continue
        if cls == "Flatten":
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Layer {lname!r}: Flatten of shape {shape} needs "
                                            f"the convolution importer")
            continue
        if cls == "Dense":
            w = store.get(lname, ["kernel"] + (["bias"] if cfg.get("use_bias", True) else []))
            kernel = w["kernel"]
            if kernel.ndim != 2 or kernel.shape[0] != shape[-1]:
                raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                                 f"{shape[-1]} inputs")
            out.append(FloatDense(lname, kernel.T, _check_use_bias(cfg, w)))
            shape = (kernel.shape[1],)
            _float_activation(f"{lname}_{cfg.get('activation')}", cfg.get("activation"), out)
        elif cls == "Activation":
            _float_activation(lname, cfg.get("activation"), out)
        elif cls == "BatchNormalization":
            w = store.get(lname, ["moving_mean", "moving_variance"])
            n = w["moving_mean"].shape[0]
            out.append(FloatBatchNorm(lname, w.get("gamma", np.ones(n)),
                                      w.get("beta", np.zeros(n)), w["moving_mean"],
                                      w["moving_variance"], float(cfg.get("epsilon", 1e-3))))
        elif cls == "ReLU" and not cfg.get("max_value") and not cfg.get("negative_slope"):
            out.append(FloatActivation(lname, "relu"))
        else:
            raise UnsupportedLayerError(f"Layer {lname!r}: Keras layer {cls!r} is not "
                                        f"supported in a float model")
    return FloatModel(name, _input_shape(layers), tuple(out))


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
    if cfg.get("kernel_quantizer"):
        w_fmt, w_codes = apply_quantizer(*parse_quantizer(cfg["kernel_quantizer"], lname),
                                         kernel.T)
        w_fmt = w_fmt.replace(rounding="TRN", overflow="WRAP")
    else:
        w_fmt, w_codes = exact(kernel.T, lname, "weights")
    b_fmt = b_codes = None
    if use_bias:
        if cfg.get("bias_quantizer"):
            b_fmt, b_codes = apply_quantizer(*parse_quantizer(cfg["bias_quantizer"], lname),
                                             w["bias"])
            b_fmt = b_fmt.replace(rounding="TRN", overflow="WRAP")
        else:
            b_fmt, b_codes = exact(w["bias"], lname, "biases")
    return dense_layer(lname, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                       bias_format=b_fmt, input_format=fmt)


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
    shape = _input_shape(layers)
    fmt, out = input_format, []
    for cls, cfg in layers:
        lname = cfg.get("name", cls)
        if cls == "InputLayer" or cls in _SKIPPED:
            continue
        if cls == "Flatten":
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Layer {lname!r}: Flatten of shape {shape} needs "
                                            f"the convolution importer")
            continue
        if cls in ("QDense", "Dense"):
            new = [_quantized_dense(lname, cfg, store, fmt, shape)]
            act = cfg.get("activation")
            if act not in (None, "linear"):
                new += _quantized_activation(f"{lname}_activation", act, new[0].output_format,
                                             new[0].output_shape)
        elif cls in ("QActivation", "Activation"):
            new = _quantized_activation(lname, cfg.get("activation"), fmt, shape)
        else:
            raise UnsupportedLayerError(f"Layer {lname!r}: layer {cls!r} is not supported in a "
                                        f"quantized model (supported: QDense, QActivation, "
                                        f"Dense, Activation, Flatten, Dropout)")
        for layer in new:
            out.append(layer)
            fmt, shape = layer.output_format, tuple(layer.output_shape)
    return Model(name, _input_shape(layers), input_format, tuple(out))
