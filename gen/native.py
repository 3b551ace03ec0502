"""nnfab's native model format: ``NAME.json`` (architecture and formats) + ``NAME.npz`` (arrays).

Written by hand or by any tool, read without TensorFlow or PyTorch. Example, a quantized MLP::

    {
      "nnfab_model": 1,
      "name": "digits-mlp",
      "input": {"shape": [64], "format": "ufixed<5,1>"},
      "layers": [
        {"name": "dense_1", "type": "dense", "weights": "dense_1.weights",
         "biases": "dense_1.biases", "weight_format": "fixed<8,1>",
         "bias_format": "fixed<8,2>", "output_format": "fixed<8,4,RND_CONV,SAT>",
         "accumulator_format": null, "reuse_factor": 1},
        {"name": "relu_1", "type": "activation", "activation": "relu",
         "output_format": "ufixed<8,3,RND_CONV,SAT>"},
        {"name": "dense_2", "type": "dense", "...": "..."},
        {"name": "softmax", "type": "softmax", "output_format": "ufixed<8,1,RND_CONV,SAT>"},
        {"name": "argmax", "type": "argmax"}
      ]
    }

- ``weights``/``biases`` name arrays in the ``.npz`` beside the JSON (same stem unless
  ``"arrays"`` names another file). Dense weights have shape (n_out, n_in).
- With formats, arrays hold raw integer codes of those formats: a *quantized* model. Without
  ``weight_format``/``output_format`` anywhere and with ``"input": {"shape": ...}`` only, the
  arrays hold floats: a *float* model, which ``nnfab build`` quantizes with PTQ.
- Every layer's input format is the previous layer's output format (the model input's for the
  first). Layer types: ``dense``, ``activation`` (``relu``, ``linear``, ``bounded_relu`` with
  ``relu_max``, ``leaky_relu`` with ``alpha_format``/``alpha_code``, ``hard_sigmoid``,
  ``hard_tanh``, ``sigmoid``, ``tanh``, ``elu``; parameters in ``params``: formats as
  strings, constants as ``{"format", "code"}``, tables with their ``codes``), ``batchnorm``
  (float models: ``gamma``, ``beta``, ``mean``, ``variance``, ``epsilon``; quantized:
  ``scale``/``shift`` codes with ``scale_format``/``shift_format``), ``conv2d``, ``pool``,
  ``flatten``, ``quantize`` (per-element requantize: ``formats``, one format string or null
  per element of the last axis, and ``output_format``), ``softmax``, ``argmax``.
- A file is checked against the JSON Schema :data:`nnfab.gen.native_schema.SCHEMA` when read:
  the keys each layer type takes (an unknown key is an error, not ignored), the kind and range
  of every value, and the keys every model needs (``dense``/``conv2d`` name their
  ``weights``, ``activation`` its ``activation``, ``pool`` its ``pool``). Then code checks
  what a schema cannot: formats parse and are within the limits of :mod:`nnfab.fixed`, arrays
  exist with the right shapes, dtypes (real numbers; integer codes in a quantized model) and
  finite values, and a model is either quantized throughout (``input.format`` and every
  layer's formats) or float throughout (no format anywhere).
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nnfab.conv_layers import BatchNormSpec, Conv2DSpec, PoolSpec
from nnfab.errors import FormatError, ModelError, UnsupportedLayerError
from nnfab.fixed import MAX_ACCUMULATOR_WIDTH
from nnfab.layers import DenseSpec

from .float_model import (FloatActivation, FloatArgmax, FloatBatchNorm, FloatConv2D,
                          FloatDense, FloatFlatten, FloatModel, FloatPool, FloatSoftmax)
from .ir import ActivationLayer, ArgmaxLayer, DenseLayer, Model, SoftmaxLayer
from .ir_conv import BatchNormLayer, Conv2DLayer, FlattenLayer, PoolLayer
from .ir_quantize import QuantizeLayer
from .native_params import format_from_json, param_from_json, param_to_json
from .native_schema import check_document

__all__ = ["FORMAT_VERSION", "is_native", "load_native", "save_native"]

FORMAT_VERSION = 1


def is_native(path):
    """Whether ``path`` is a native model JSON file (looks at its content, not its name)."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return '"nnfab_model"' in head


def _accumulator(entry, where):
    return format_from_json(entry.get("accumulator_format"), where, max_width=MAX_ACCUMULATOR_WIDTH)


_HLS4ML_SOFTMAX_FORMATS = ("output_format", "accum_format", "exp_table_format",
                           "inv_table_format", "inv_input_format")


def _hls4ml_softmax(entry, where, shape, fmt, out_fmt):
    from nnfab.softmax_hls4ml import Hls4mlSoftmaxSpec

    from .ir_hls4ml import Hls4mlSoftmaxLayer

    formats = {key: format_from_json(entry.get(key), where) for key in _HLS4ML_SOFTMAX_FORMATS}
    missing = [key for key, value in formats.items() if value is None]
    if missing:
        raise ModelError(f"{where}: an 'hls4ml_softmax' layer needs {', '.join(missing)}")
    try:
        spec = Hls4mlSoftmaxSpec(n=shape[-1], input_format=fmt,
                                 exp_table_size=int(entry.get("exp_table_size", 1024)),
                                 inv_table_size=int(entry.get("inv_table_size", 1024)),
                                 exp_scale=float(entry.get("exp_scale", 1.0)), **formats)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: {exc}") from None
    return Hls4mlSoftmaxLayer(entry["name"], spec=spec)


def _array(arrays, entry, key, where, *, required=True):
    name = entry.get(key)
    if name is None:
        if required:
            raise ModelError(f"{where}: {key!r} is missing")
        return None
    if name not in arrays:
        raise ModelError(f"{where}: array {name!r} is not in the .npz file (it holds "
                         f"{', '.join(sorted(arrays)) or 'no arrays'})")
    return arrays[name]


def _int_codes(array, fmt, where, what):
    array = np.asarray(array)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            bad = float(array[~np.isfinite(array)].flat[0])
            raise FormatError(f"{where}: {what} contain {bad!r}; every value must be finite")
        if np.any(array != np.round(array)):
            bad = array[array != np.round(array)].flat[0]
            raise FormatError(f"{where}: {what} code {bad!r} is not an integer (a quantized "
                              f"model stores raw integer codes of {fmt})")
        bad = (array < fmt.min_code) | (array > fmt.max_code)
        if np.any(bad):
            code = float(array[bad].flat[0])
            raise FormatError(f"{where}: {what[:-1]} code {code!r} does not fit {fmt} (codes "
                              f"{fmt.min_code} to {fmt.max_code})")
        array = np.array([int(v) for v in array.flat], dtype=object).reshape(array.shape)
    elif array.dtype.kind not in "iu":
        raise FormatError(f"{where}: {what} must be integer codes, not {array.dtype} values")
    bad = (array < fmt.min_code) | (array > fmt.max_code)
    if np.any(bad):
        code = int(array[bad].flat[0])
        raise FormatError(f"{where}: {what[:-1]} {float(code * fmt.lsb)!r} (code {code}) does "
                          f"not fit {fmt} (range {float(fmt.min_value)!r} to "
                          f"{float(fmt.max_value)!r})")
    return array


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise _DuplicateKey(key)
    return dict(pairs)


class _DuplicateKey(Exception):
    pass


#: Largest total size of the arrays of one model, uncompressed, in bytes.
MAX_ARRAY_BYTES = 1 << 30


def _read(json_path):
    json_path = Path(json_path)
    source = str(json_path)
    try:
        data = json_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"Cannot read model file {source!r}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"Model file {source!r} is not UTF-8 text (byte {exc.start} is "
                         f"0x{data[exc.start]:02x})") from None
    if not text.strip():
        raise ModelError(f"Model file {source!r} is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ModelError(f"Model file {source!r} is not valid JSON: {exc.msg} at line "
                         f"{exc.lineno}") from None
    except _DuplicateKey as exc:
        raise ModelError(f"Model file {source!r}: key {exc.args[0]!r} appears twice in one "
                         f"object; every key must be unique") from None
    except RecursionError:
        raise ModelError(f"Model file {source!r} is not valid JSON: nested too "
                         f"deeply") from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise ModelError(f"Model file {source!r} is not valid JSON: a number has too many "
                         f"digits") from None
    if not isinstance(doc, dict) or "nnfab_model" not in doc:
        raise ModelError(f"Model file {source!r} is not an nnfab model of format "
                         f"version {FORMAT_VERSION} (missing \"nnfab_model\": {FORMAT_VERSION})")
    if doc["nnfab_model"] != FORMAT_VERSION or type(doc["nnfab_model"]) is not int:
        raise ModelError(f"Model file {source!r}: nnfab_model is "
                         f"{json.dumps(doc['nnfab_model'])[:40]}; this nnfab reads format "
                         f"version {FORMAT_VERSION}")
    check_document(doc, source)
    arrays_path = json_path.parent / doc.get("arrays", json_path.with_suffix(".npz").name)
    return doc, _Arrays(arrays_path, source)


class _Arrays:
    """The arrays of the ``.npz`` beside a model, read when first asked for."""

    def __init__(self, path, source):
        self._path, self._source, self._arrays = path, source, None

    def _load(self):
        if self._arrays is not None:
            return self._arrays
        path = str(self._path)
        if not self._path.is_file():
            raise ModelError(f"Array file {path!r} of model file {self._source!r} does not "
                             f"exist")
        if self._path.stat().st_size == 0:
            raise ModelError(f"Array file {path!r} is empty (a .npz file holds the model's "
                             f"arrays)")
        try:
            with zipfile.ZipFile(self._path) as archive:
                total = sum(info.file_size for info in archive.infolist())
        except (OSError, zipfile.BadZipFile, ValueError, EOFError):
            raise ModelError(f"Array file {path!r} is not a readable .npz (not a zip archive; "
                             f"truncated or corrupt?)") from None
        if total > MAX_ARRAY_BYTES:
            raise ModelError(f"Array file {path!r} holds {total} bytes of arrays; nnfab reads "
                             f"at most {MAX_ARRAY_BYTES}")
        arrays, key = {}, None
        try:
            with np.load(self._path, allow_pickle=False) as npz:
                for key in npz.files:
                    arrays[key] = npz[key]
        except Exception:  # noqa: BLE001 -- zipfile, zlib and numpy raise a dozen kinds
            what = f"array {key!r} cannot be read" if key is not None else "no array list"
            raise ModelError(f"Array file {path!r} is not a readable .npz (truncated or "
                             f"corrupt?): {what}") from None
        self._arrays = arrays
        return arrays

    def __contains__(self, name):
        return name in self._load()

    def __getitem__(self, name):
        return self._load()[name]

    def __iter__(self):
        return iter(self._load())


_FLOAT_ONLY_KEYS = ("gamma", "beta", "mean", "variance", "epsilon")


def _format_keys(entry):
    return [key for key in entry if key.endswith("_format") or key in ("formats",)
            if entry[key] is not None]


def load_native(json_path):
    """Read a native model: a :class:`~nnfab.gen.ir.Model` when it has formats, else a
    :class:`~nnfab.gen.float_model.FloatModel`.

    The document is checked against :data:`nnfab.gen.native_schema.SCHEMA` first, then in
    code for what a schema cannot say (arrays against layers, formats that parse, a quantized
    model's formats).

    Raises
    ------
    ModelError
        For unreadable, empty, malformed or inconsistent files (the message names the file,
        the key path or layer and the offending value);
        :class:`~nnfab.errors.UnsupportedLayerError` for an unknown layer type.
    """
    doc, arrays = _read(json_path)
    name = doc.get("name", Path(json_path).stem)
    shape = tuple(int(n) for n in doc["input"]["shape"])
    if int(np.prod(shape)) > MAX_INPUT_SIZE:
        raise ModelError(f"Model {name!r}: input shape {list(shape)} has "
                         f"{int(np.prod(shape))} elements; nnfab builds inputs of at most "
                         f"{MAX_INPUT_SIZE}")
    layers = doc["layers"]
    input_format = format_from_json(doc["input"].get("format"), f"Model {name!r} input")
    if input_format is None:
        for entry in layers:
            keys = _format_keys(entry) + [key for key in ("scale", "shift") if key in entry]
            if keys:
                raise FormatError(
                    f"Model {name!r}: input.format is missing, but layer {entry['name']!r} "
                    f"has {keys[0]!r}; a quantized model needs input.format (a format string "
                    f"such as \"fixed<16,6>\"), a float model has no formats")
        return _float_model(name, shape, layers, arrays)
    for entry in layers:
        keys = [key for key in _FLOAT_ONLY_KEYS if key in entry]
        if keys:
            raise FormatError(f"Layer {entry['name']!r}: {keys[0]!r} belongs to a float model, "
                              f"but input.format makes this model quantized; give scale/shift "
                              f"codes with their formats, or leave out all formats")
    return _quantized_model(name, shape, input_format, layers, arrays)


#: Largest number of elements of a model's input.
MAX_INPUT_SIZE = 1 << 20


def _floats(array, where, what):
    """A float model's array as float64: real numbers, all finite."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.dtype.kind not in "iuf":
        raise ModelError(f"{where}: {what} must be real numbers, not {array.dtype} values")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = float(array[~np.isfinite(array)].flat[0])
        raise ModelError(f"{where}: {what} contain {bad!r}; every value must be finite")
    return array


def _float_model(name, shape, entries, arrays):
    layers = []
    for entry in entries:
        where, kind = f"Layer {entry['name']!r}", entry["type"]
        if kind == "dense":
            layers.append(FloatDense(entry["name"], _floats(_array(arrays, entry, "weights",
                                                                   where), where, "weights"),
                                     _floats(_array(arrays, entry, "biases", where,
                                                    required=False), where, "biases")))
        elif kind == "activation":
            layers.append(FloatActivation(entry["name"], entry.get("activation", "linear")))
        elif kind == "batchnorm":
            layers.append(FloatBatchNorm(
                entry["name"], *(_floats(_array(arrays, entry, key, where), where, key)
                                 for key in ("gamma", "beta", "mean", "variance")),
                epsilon=float(entry.get("epsilon", 1e-3))))
        elif kind == "softmax":
            layers.append(FloatSoftmax(entry["name"]))
        elif kind == "conv2d":
            layers.append(FloatConv2D(entry["name"], _floats(_array(arrays, entry, "weights",
                                                                    where), where, "weights"),
                                      _floats(_array(arrays, entry, "biases", where,
                                                     required=False), where, "biases"),
                                      strides=tuple(entry.get("strides", (1, 1))),
                                      padding=entry.get("padding", "valid")))
        elif kind == "pool":
            layers.append(FloatPool(entry["name"], entry.get("pool", "max"),
                                    tuple(entry.get("pool_size", (2, 2))),
                                    entry.get("strides"), entry.get("padding", "valid")))
        elif kind == "flatten":
            layers.append(FloatFlatten(entry["name"]))
        elif kind == "argmax":
            layers.append(FloatArgmax(entry["name"]))
        else:
            raise UnsupportedLayerError(f"{where}: a {kind!r} layer exists in quantized models "
                                        f"only; give input.format and the layer's formats")
    return FloatModel(name, shape, tuple(layers))


def _quantized_model(name, shape, input_format, entries, arrays):
    layers, fmt, current_shape = [], input_format, tuple(shape)
    for entry in entries:
        where, kind = f"Layer {entry['name']!r}", entry["type"]
        out_fmt = format_from_json(entry.get("output_format"), where)
        if kind == "dense":
            w_fmt = format_from_json(entry.get("weight_format"), where)
            b_fmt = format_from_json(entry.get("bias_format"), where)
            if w_fmt is None or out_fmt is None:
                raise FormatError(f"{where}: a quantized dense layer needs \"weight_format\" "
                                  f"and \"output_format\"")
            weights = _int_codes(_array(arrays, entry, "weights", where), w_fmt, where,
                                 "weights")
            biases = _array(arrays, entry, "biases", where, required=False)
            if biases is not None:
                if b_fmt is None:
                    raise FormatError(f"{where}: biases need a \"bias_format\"")
                biases = _int_codes(biases, b_fmt, where, "biases")
            if weights.ndim != 2 or weights.shape[1:] != current_shape:
                raise ModelError(f"{where}: weights of shape {weights.shape} do not take "
                                 f"inputs of shape {current_shape} (expected (n_out, "
                                 f"{current_shape[0] if current_shape else '?'}))")
            try:
                spec = DenseSpec(weights, biases, fmt, w_fmt, out_fmt, bias_format=b_fmt,
                                 accumulator_format=_accumulator(entry, where))
            except (TypeError, ValueError) as exc:
                raise ModelError(f"{where}: {exc}") from None
            layer = DenseLayer(entry["name"], spec=spec,
                               reuse_factor=int(entry.get("reuse_factor", 1)))
        elif kind == "quantize":
            formats = entry.get("formats")
            if not isinstance(formats, list) or out_fmt is None:
                raise FormatError(f"{where}: a 'quantize' layer needs \"formats\" (one format "
                                  f"string or null per element of the last axis) and "
                                  f"\"output_format\"")
            layer = QuantizeLayer(entry["name"], shape=current_shape, fin=fmt,
                                  formats=[None if f is None else format_from_json(f, where)
                                           for f in formats], fout=out_fmt)
        elif kind == "activation":
            params = {k: param_from_json(k, v, where)
                      for k, v in dict(entry.get("params", {})).items()}
            layer = ActivationLayer(entry["name"], function=entry.get("activation", "linear"),
                                    shape=current_shape, fin=fmt, fout=out_fmt, params=params)
        elif kind == "softmax":
            layer = SoftmaxLayer(entry["name"], n=current_shape[-1], fin=fmt, fout=out_fmt)
        elif kind == "hls4ml_softmax":
            layer = _hls4ml_softmax(entry, where, current_shape, fmt, out_fmt)
        elif kind == "argmax":
            layer = ArgmaxLayer(entry["name"], n=current_shape[-1], fin=fmt)
        elif kind == "conv2d":
            w_fmt = format_from_json(entry.get("weight_format"), where)
            b_fmt = format_from_json(entry.get("bias_format"), where)
            if w_fmt is None or out_fmt is None:
                raise FormatError(f"{where}: a quantized conv2d layer needs \"weight_format\" "
                                  f"and \"output_format\"")
            weights = _int_codes(_array(arrays, entry, "weights", where), w_fmt, where,
                                 "weights")
            biases = _array(arrays, entry, "biases", where, required=False)
            if biases is not None:
                if b_fmt is None:
                    raise FormatError(f"{where}: biases need a \"bias_format\"")
                biases = _int_codes(biases, b_fmt, where, "biases")
            try:
                activation = entry.get("activation")
                spec = Conv2DSpec(weights, biases, current_shape, fmt, w_fmt, out_fmt,
                                  strides=tuple(entry.get("strides", (1, 1))),
                                  padding=entry.get("padding", "valid"), bias_format=b_fmt,
                                  accumulator_format=_accumulator(entry, where),
                                  activation=activation,
                                  activation_format=format_from_json(entry.get("activation_format"),
                                                            where),
                                  activation_params={
                                      k: param_from_json(k, v, where) for k, v in
                                      dict(entry.get("activation_params") or {}).items()}
                                  if activation else None)
            except (TypeError, ValueError) as exc:
                raise ModelError(f"{where}: {exc}") from None
            layer = Conv2DLayer(entry["name"], spec=spec,
                                reuse_factor=int(entry.get("reuse_factor", 1)))
        elif kind == "pool":
            try:
                spec = PoolSpec(entry.get("pool", "max"), current_shape,
                                tuple(entry.get("pool_size", (2, 2))), fmt, out_fmt or fmt,
                                strides=entry.get("strides") and tuple(entry["strides"]),
                                padding=entry.get("padding", "valid"))
            except (TypeError, ValueError) as exc:
                raise ModelError(f"{where}: {exc}") from None
            layer = PoolLayer(entry["name"], spec=spec)
        elif kind == "flatten":
            layer = FlattenLayer(entry["name"], shape=current_shape, fmt=fmt)
        elif kind == "batchnorm":
            s_fmt = format_from_json(entry.get("scale_format"), where)
            t_fmt = format_from_json(entry.get("shift_format"), where)
            if s_fmt is None or t_fmt is None:
                raise UnsupportedLayerError(f"{where}: a quantized 'batchnorm' layer needs "
                                            f"scale/shift arrays and formats; give a float "
                                            f"model (gamma, beta, mean, variance) instead")
            try:
                spec = BatchNormSpec(_int_codes(_array(arrays, entry, "scale", where), s_fmt,
                                                where, "scale"),
                                     _int_codes(_array(arrays, entry, "shift", where), t_fmt,
                                                where, "shift"),
                                     fmt, s_fmt, t_fmt, out_fmt)
            except (TypeError, ValueError) as exc:
                raise ModelError(f"{where}: {exc}") from None
            layer = BatchNormLayer(entry["name"], spec=spec, shape=current_shape)
        else:
            raise UnsupportedLayerError(f"{where}: a {kind!r} layer must be folded before "
                                        f"quantization; give a float model instead")
        layers.append(layer)
        fmt, current_shape = layer.output_format, tuple(layer.output_shape)
    return Model(name, tuple(shape), input_format, tuple(layers))


def save_native(model, json_path):
    """Write ``model`` (a :class:`~nnfab.gen.ir.Model` or a
    :class:`~nnfab.gen.float_model.FloatModel`) as ``json_path`` and the ``.npz`` beside it.
    Files are written whole or not at all."""
    json_path = Path(json_path)
    arrays, entries = {}, []
    quantized = isinstance(model, Model)
    # A fused layer (e.g. shift_add_dense) is stored as the layers it fuses.
    layers = [part for layer in model.layers for part in getattr(layer, "parts", (layer,))]
    for layer in layers:
        entry = {"name": layer.name, "type": layer.kind}
        if layer.kind in ("dense", "conv2d"):
            spec = layer.spec if quantized else layer
            arrays[f"{layer.name}.weights"] = np.asarray(spec.weights,
                                                         dtype=np.int64 if quantized else None)
            entry["weights"] = f"{layer.name}.weights"
            if spec.biases is not None:
                arrays[f"{layer.name}.biases"] = np.asarray(spec.biases,
                                                            dtype=np.int64 if quantized else None)
                entry["biases"] = f"{layer.name}.biases"
            if quantized:
                entry.update(weight_format=str(spec.weight_format),
                             bias_format=str(spec.bias_format) if spec.bias_format else None,
                             output_format=str(spec.output_format),
                             accumulator_format=str(spec.accumulator_format)
                             if spec.accumulator_format else None,
                             reuse_factor=layer.reuse_factor)
            if layer.kind == "conv2d":
                entry.update(strides=list(spec.strides) if not isinstance(spec.strides, int)
                             else [spec.strides] * 2, padding=spec.padding)
                if quantized and spec.activation:
                    # A fused activation is part of the layer: without it a reloaded model
                    # would be another network.
                    entry.update(activation=spec.activation,
                                 activation_format=str(spec.activation_format))
                    if spec.activation_params:
                        entry["activation_params"] = {
                            k: param_to_json(v) for k, v in spec.activation_params.items()}
        elif layer.kind == "pool":
            spec = layer.spec if quantized else layer
            entry.update(pool=spec.kind if quantized else spec.pool,
                         pool_size=list(spec.pool_size) if not isinstance(spec.pool_size, int)
                         else [spec.pool_size] * 2,
                         strides=None if spec.strides is None else
                         (list(spec.strides) if not isinstance(spec.strides, int)
                          else [spec.strides] * 2), padding=spec.padding)
            if quantized:
                entry["output_format"] = str(spec.output_format)
        elif layer.kind == "activation":
            entry["activation"] = layer.function
            if quantized:
                entry["output_format"] = str(layer.fout)
                if layer.params:
                    entry["params"] = {k: param_to_json(v) for k, v in layer.params.items()}
        elif layer.kind == "batchnorm" and quantized:
            spec = layer.spec
            for key in ("scale", "shift"):
                arrays[f"{layer.name}.{key}"] = np.asarray(getattr(spec, key), dtype=np.int64)
                entry[key] = f"{layer.name}.{key}"
            entry.update(scale_format=str(spec.scale_format),
                         shift_format=str(spec.shift_format),
                         output_format=str(spec.output_format))
        elif layer.kind == "batchnorm":
            for key in ("gamma", "beta", "mean", "variance"):
                arrays[f"{layer.name}.{key}"] = getattr(layer, key)
                entry[key] = f"{layer.name}.{key}"
            entry["epsilon"] = layer.epsilon
        elif layer.kind == "softmax" and quantized:
            entry["output_format"] = str(layer.fout)
        elif layer.kind == "hls4ml_softmax":
            spec = layer.spec
            entry.update({key: str(getattr(spec, key)) for key in _HLS4ML_SOFTMAX_FORMATS})
            entry.update(exp_table_size=spec.exp_table_size,
                         inv_table_size=spec.inv_table_size, exp_scale=spec.exp_scale)
        elif layer.kind == "quantize":
            entry.update(formats=[None if f is None else str(f) for f in layer.formats],
                         output_format=str(layer.fout))
        elif layer.kind not in ("flatten", "softmax", "argmax"):
            raise UnsupportedLayerError(f"Layer {layer.name!r}: a {layer.kind!r} layer has no "
                                        f"native form")
        entries.append(entry)
    doc = {"nnfab_model": FORMAT_VERSION, "name": model.name,
           "input": {"shape": list(model.input_shape)}, "layers": entries}
    if quantized:
        doc["input"]["format"] = str(model.input_format)
    _write_atomically(json_path, json.dumps(doc, indent=2) + "\n", arrays)


def _write_atomically(json_path, text, arrays):
    json_path.parent.mkdir(parents=True, exist_ok=True)
    npz_path = json_path.with_suffix(".npz")
    fd, tmp_npz = tempfile.mkstemp(dir=json_path.parent, suffix=".npz")
    os.close(fd)
    fd, tmp_json = tempfile.mkstemp(dir=json_path.parent, suffix=".json")
    os.close(fd)
    try:
        np.savez_compressed(tmp_npz, **arrays)
        Path(tmp_json).write_text(text)
        for tmp in (tmp_npz, tmp_json):
            os.chmod(tmp, 0o644)
        os.replace(tmp_npz, npz_path)
        os.replace(tmp_json, json_path)
    finally:
        for tmp in (tmp_npz, tmp_json):
            if os.path.exists(tmp):
                os.remove(tmp)
