"""Keras model configs and weights as nnfab reads them: the layer list (Sequential or functional,
with each layer's inbound layers), the weights file, and the settings shared by the float and
quantized builders (input shape, window geometry, kernels, padding). Read with :mod:`json` and
:mod:`h5py` only (no TensorFlow)."""

import json
from pathlib import Path

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError

from ._common import open_hdf5

__all__ = ["read_config", "keras_layers", "KerasWeights", "input_shape", "pair",
           "window_geometry", "conv_kernel", "check_use_bias", "zero_padding", "SKIPPED_LAYERS",
           "CONV_LAYERS", "POOLS", "GLOBAL_POOLS"]

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
        return self._complete(layer, names, found)

    def _complete(self, layer, names, found):
        """``found``, checked to hold every one of ``names``."""
        missing = [n for n in names if n not in found]
        if missing:
            raise ModelError(f"Layer {layer!r}: weights {', '.join(map(repr, missing))} are "
                             f"missing from {self._path!r} (found "
                             f"{', '.join(map(repr, found)) or 'none'})")
        return found


CONV_LAYERS = ("Conv1D", "Conv2D", "QConv1D", "QConv2D")
POOLS = {"MaxPooling1D": "max", "MaxPooling2D": "max", "AveragePooling1D": "average",
         "AveragePooling2D": "average"}
GLOBAL_POOLS = {"GlobalMaxPooling1D": "max", "GlobalMaxPooling2D": "max",
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


def pair(cfg, key, lname, one_d, default=None):
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
    default = pair(cfg, "pool_size", lname, one_d) if "Pool" in cls else (1, 1)
    strides = pair(cfg, "strides", lname, one_d) or default
    return one_d, strides, padding


def conv_kernel(kernel, one_d, lname, shape):
    """Keras' kernel ``(kh, kw, C_in, F)`` (``(k, C_in, F)`` in 1-D) as ``(F, kh, kw, C_in)``."""
    if one_d and kernel.ndim == 3:
        kernel = kernel[None]
    if kernel.ndim != 4 or kernel.shape[2] != shape[2]:
        raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                         f"{shape[2]} input channels")
    return np.transpose(kernel, (3, 0, 1, 2))


def check_use_bias(cfg, w):
    """The bias of weights ``w`` when the layer config uses one, else None."""
    return w.get("bias") if cfg.get("use_bias", True) else None


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
