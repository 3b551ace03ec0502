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

import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nnfab.conv_layers import (BatchNormSpec, Conv2DSpec, DepthwiseConv2DSpec, GlobalPoolSpec,
                               PoolSpec)
from nnfab.errors import FormatError, ModelError, UnsupportedLayerError
from nnfab.fixed import MAX_ACCUMULATOR_WIDTH
from nnfab.layers import DenseSpec

from .float_model import (FloatActivation, FloatAdd, FloatArgmax, FloatBatchNorm,
                          FloatConcatenate, FloatConv2D, FloatDense, FloatFlatten,
                          FloatGlobalPool, FloatModel, FloatPool, FloatSoftmax, FloatUpsample,
                          FloatZeroPad)
from nnfab.ir import ActivationLayer, ArgmaxLayer, DenseLayer, Model, SoftmaxLayer
from nnfab.ir import (BatchNormLayer, Conv2DLayer, FlattenLayer, GlobalPoolLayer, PoolLayer,
                      ZeroPadLayer)
from nnfab.ir import AddLayer, ConcatenateLayer, UpsampleLayer
from nnfab.ir import QuantizeLayer
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

    from nnfab.ir import Hls4mlSoftmaxLayer

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
    """Read a native model: a :class:`~nnfab.ir.Model` when it has formats, else a
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


class _Entry:
    """One layer entry being read: its keys, arrays and the tensors it reads."""

    def __init__(self, entry, arrays, inputs):
        self.entry, self.arrays, self.name = entry, arrays, entry["name"]
        self.where = f"Layer {self.name!r}"
        self.shapes = [shape for shape, _ in inputs]
        self.formats = [fmt for _, fmt in inputs]
        self.shape, self.fmt = self.shapes[0], self.formats[0]

    def get(self, key, default=None):
        return self.entry.get(key, default)

    def format(self, key, **limits):
        return format_from_json(self.entry.get(key), self.where, **limits)

    def pair(self, key, default):
        value = self.entry.get(key, default)
        return None if value is None else tuple(value)

    def floats(self, key, *, required=True):
        return _floats(_array(self.arrays, self.entry, key, self.where, required=required),
                       self.where, key)

    def codes(self, key, fmt, *, required=True):
        array = _array(self.arrays, self.entry, key, self.where, required=required)
        if array is None:
            return None
        if fmt is None:
            raise FormatError(f"{self.where}: {key} need a \"{key[:-1]}_format\"")
        return _int_codes(array, fmt, self.where, key)

    def params(self, key):
        return {k: param_from_json(k, v, self.where)
                for k, v in dict(self.entry.get(key) or {}).items()}

    def spec(self, make, *args, **kwargs):
        """``make(*args, **kwargs)``, its ValueError named by layer."""
        try:
            return make(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{self.where}: {exc}") from None


#: Float layer of each type: ``FLOAT_LOADERS[type](entry) -> layer``.
FLOAT_LOADERS = {
    "dense": lambda e: FloatDense(e.name, e.floats("weights"), e.floats("biases", required=False)),
    "activation": lambda e: FloatActivation(e.name, e.get("activation", "linear")),
    "batchnorm": lambda e: FloatBatchNorm(
        e.name, *(e.floats(key) for key in ("gamma", "beta", "mean", "variance")),
        epsilon=float(e.get("epsilon", 1e-3))),
    "softmax": lambda e: FloatSoftmax(e.name),
    "conv2d": lambda e: FloatConv2D(e.name, e.floats("weights"),
                                    e.floats("biases", required=False),
                                    strides=e.pair("strides", (1, 1)),
                                    padding=e.get("padding", "valid")),
    "pool": lambda e: FloatPool(e.name, e.get("pool", "max"), e.pair("pool_size", (2, 2)),
                                e.pair("strides", None), e.get("padding", "valid")),
    "global_pool": lambda e: FloatGlobalPool(e.name, e.get("pool", "average")),
    "flatten": lambda e: FloatFlatten(e.name),
    "argmax": lambda e: FloatArgmax(e.name),
    "add": lambda e: FloatAdd(e.name),
    "concatenate": lambda e: FloatConcatenate(e.name),
    "upsample": lambda e: FloatUpsample(e.name, e.pair("size", (2, 2))),
    "zero_pad": lambda e: FloatZeroPad(e.name, _padding(e)),
}


def _padding(e):
    return tuple(tuple(int(v) for v in side) for side in e.get("padding"))


def _load_graph(name, input_shape, input_format, entries, arrays, loaders, unsupported):
    """Layers of ``entries`` read by ``loaders[type]``, each given the shapes and formats of
    the tensors it reads (``inputs``, or the previous layer)."""
    from nnfab.ir import INPUT

    tensors, layers, previous = {INPUT: (tuple(input_shape), input_format)}, [], INPUT
    for entry in entries:
        where, kind = f"Layer {entry['name']!r}", entry["type"]
        inputs = tuple(entry.get("inputs") or (previous,))
        for tensor in inputs:
            if tensor not in tensors:
                raise ModelError(f"{where}: input {tensor!r} is not the model input {INPUT!r} "
                                 f"or a layer listed before this one")
        try:
            load = loaders[kind]
        except KeyError:
            raise UnsupportedLayerError(unsupported(where, kind)) from None
        layer = load(_Entry(entry, arrays, [tensors[t] for t in inputs]))
        if "inputs" in entry:
            layer = dataclasses.replace(layer, inputs=inputs)
        layers.append(layer)
        tensors[layer.name] = (_output_shape(layer, [tensors[t][0] for t in inputs]),
                               getattr(layer, "output_format", None))
        previous = layer.name
    return layers


def _output_shape(layer, input_shapes):
    shape = layer.output_shape
    return tuple(shape(*input_shapes) if callable(shape) else shape)


def _float_model(name, shape, entries, arrays):
    layers = _load_graph(name, shape, None, entries, arrays, FLOAT_LOADERS,
                         lambda where, kind: f"{where}: a {kind!r} layer exists in quantized "
                                             f"models only; give input.format and the "
                                             f"layer's formats")
    return FloatModel(name, shape, tuple(layers))


def _dense(e):
    w_fmt, b_fmt, out_fmt = e.format("weight_format"), e.format("bias_format"), \
        e.format("output_format")
    if w_fmt is None or out_fmt is None:
        raise FormatError(f"{e.where}: a quantized dense layer needs \"weight_format\" and "
                          f"\"output_format\"")
    weights = e.codes("weights", w_fmt)
    biases = e.codes("biases", b_fmt, required=False)
    if weights.ndim != 2 or weights.shape[1:] != e.shape:
        raise ModelError(f"{e.where}: weights of shape {weights.shape} do not take inputs of "
                         f"shape {e.shape} (expected (n_out, {e.shape[0] if e.shape else '?'}))")
    spec = e.spec(DenseSpec, weights, biases, e.fmt, w_fmt, out_fmt, bias_format=b_fmt,
                  accumulator_format=_accumulator(e.entry, e.where))
    return DenseLayer(e.name, spec=spec, reuse_factor=int(e.get("reuse_factor", 1)))


def _conv2d(e):
    w_fmt, b_fmt, out_fmt = e.format("weight_format"), e.format("bias_format"), \
        e.format("output_format")
    if w_fmt is None or out_fmt is None:
        raise FormatError(f"{e.where}: a quantized conv2d layer needs \"weight_format\" and "
                          f"\"output_format\"")
    weights = e.codes("weights", w_fmt)
    biases = e.codes("biases", b_fmt, required=False)
    activation = e.get("activation")
    # Depthwise kernels are (kh, kw, C): one kernel per channel.
    make = DepthwiseConv2DSpec if weights.ndim == 3 else Conv2DSpec
    spec = e.spec(make, weights, biases, e.shape, e.fmt, w_fmt, out_fmt,
                  strides=e.pair("strides", (1, 1)), padding=e.get("padding", "valid"),
                  bias_format=b_fmt, accumulator_format=_accumulator(e.entry, e.where),
                  activation=activation, activation_format=e.format("activation_format"),
                  activation_params=e.params("activation_params") if activation else None)
    return Conv2DLayer(e.name, spec=spec, reuse_factor=int(e.get("reuse_factor", 1)))


def _quantize(e):
    formats, out_fmt = e.get("formats"), e.format("output_format")
    if not isinstance(formats, list) or out_fmt is None:
        raise FormatError(f"{e.where}: a 'quantize' layer needs \"formats\" (one format string "
                          f"or null per element of the last axis) and \"output_format\"")
    return QuantizeLayer(e.name, shape=e.shape, fin=e.fmt, fout=out_fmt,
                         formats=[None if f is None else format_from_json(f, e.where)
                                  for f in formats])


def _batchnorm(e):
    s_fmt, t_fmt = e.format("scale_format"), e.format("shift_format")
    if s_fmt is None or t_fmt is None:
        raise UnsupportedLayerError(f"{e.where}: a quantized 'batchnorm' layer needs "
                                    f"scale/shift arrays and formats; give a float model "
                                    f"(gamma, beta, mean, variance) instead")
    spec = e.spec(BatchNormSpec, e.codes("scale", s_fmt), e.codes("shift", t_fmt), e.fmt,
                  s_fmt, t_fmt, e.format("output_format"))
    return BatchNormLayer(e.name, spec=spec, shape=e.shape)


def _output_format(e, kind):
    fmt = e.format("output_format")
    if fmt is None:
        raise FormatError(f"{e.where}: a quantized {kind!r} layer needs \"output_format\"")
    return fmt


#: Quantized layer of each type: ``QUANTIZED_LOADERS[type](entry) -> layer``.
QUANTIZED_LOADERS = {
    "dense": _dense,
    "conv2d": _conv2d,
    "quantize": _quantize,
    "batchnorm": _batchnorm,
    "activation": lambda e: ActivationLayer(e.name, function=e.get("activation", "linear"),
                                            shape=e.shape, fin=e.fmt,
                                            fout=e.format("output_format"),
                                            params=e.params("params")),
    "softmax": lambda e: SoftmaxLayer(e.name, n=e.shape[-1], fin=e.fmt,
                                      fout=e.format("output_format")),
    "hls4ml_softmax": lambda e: _hls4ml_softmax(e.entry, e.where, e.shape, e.fmt,
                                                e.format("output_format")),
    "argmax": lambda e: ArgmaxLayer(e.name, n=e.shape[-1], fin=e.fmt),
    "pool": lambda e: PoolLayer(e.name, spec=e.spec(
        PoolSpec, e.get("pool", "max"), e.shape, e.pair("pool_size", (2, 2)), e.fmt,
        e.format("output_format") or e.fmt, strides=e.pair("strides", None),
        padding=e.get("padding", "valid"))),
    "global_pool": lambda e: GlobalPoolLayer(e.name, spec=e.spec(
        GlobalPoolSpec, e.get("pool", "average"), e.shape, e.fmt,
        e.format("output_format") or e.fmt)),
    "flatten": lambda e: FlattenLayer(e.name, shape=e.shape, fmt=e.fmt),
    "zero_pad": lambda e: e.spec(ZeroPadLayer, e.name, shape=e.shape, padding=_padding(e),
                                 fmt=e.fmt),
    "add": lambda e: AddLayer(e.name, shape=e.shape, fins=tuple(e.formats),
                              fout=_output_format(e, "add")),
    "concatenate": lambda e: ConcatenateLayer(e.name, shapes=tuple(e.shapes),
                                              fins=tuple(e.formats),
                                              fout=_output_format(e, "concatenate")),
    "upsample": lambda e: UpsampleLayer(e.name, shape=e.shape, size=e.pair("size", (2, 2)),
                                        fmt=e.fmt),
}


def _quantized_model(name, shape, input_format, entries, arrays):
    layers = _load_graph(name, shape, input_format, entries, arrays, QUANTIZED_LOADERS,
                         lambda where, kind: f"{where}: a {kind!r} layer must be folded "
                                             f"before quantization; give a float model "
                                             f"instead")
    return Model(name, tuple(shape), input_format, tuple(layers))


def _pair_json(value):
    return None if value is None else (list(value) if not isinstance(value, int)
                                       else [value] * 2)


class _Writer:
    """The arrays of the ``.npz`` being written."""

    def __init__(self, quantized):
        self.quantized, self.arrays = quantized, {}

    def array(self, entry, layer, key, values):
        if values is None:
            return
        self.arrays[f"{layer.name}.{key}"] = np.asarray(
            values, dtype=np.int64 if self.quantized else None)
        entry[key] = f"{layer.name}.{key}"


def _save_weighted(layer, entry, out):
    spec = layer.spec if out.quantized else layer
    out.array(entry, layer, "weights", spec.weights)
    out.array(entry, layer, "biases", spec.biases)
    if out.quantized:
        entry.update(weight_format=str(spec.weight_format),
                     bias_format=str(spec.bias_format) if spec.bias_format else None,
                     output_format=str(spec.output_format),
                     accumulator_format=str(spec.accumulator_format)
                     if spec.accumulator_format else None,
                     reuse_factor=layer.reuse_factor)


def _save_conv2d(layer, entry, out):
    _save_weighted(layer, entry, out)
    spec = layer.spec if out.quantized else layer
    entry.update(strides=_pair_json(spec.strides), padding=spec.padding)
    if out.quantized and spec.activation:
        # A fused activation is part of the layer: without it a reloaded model would be
        # another network.
        entry.update(activation=spec.activation, activation_format=str(spec.activation_format))
        if spec.activation_params:
            entry["activation_params"] = {k: param_to_json(v)
                                          for k, v in spec.activation_params.items()}


def _save_pool(layer, entry, out):
    spec = layer.spec if out.quantized else layer
    entry.update(pool=spec.kind if out.quantized else spec.pool,
                 pool_size=_pair_json(spec.pool_size), strides=_pair_json(spec.strides),
                 padding=spec.padding)
    if out.quantized:
        entry["output_format"] = str(spec.output_format)


def _save_activation(layer, entry, out):
    entry["activation"] = layer.function
    if out.quantized:
        entry["output_format"] = str(layer.fout)
        if layer.params:
            entry["params"] = {k: param_to_json(v) for k, v in layer.params.items()}


def _save_batchnorm(layer, entry, out):
    if out.quantized:
        spec = layer.spec
        out.array(entry, layer, "scale", spec.scale)
        out.array(entry, layer, "shift", spec.shift)
        entry.update(scale_format=str(spec.scale_format), shift_format=str(spec.shift_format),
                     output_format=str(spec.output_format))
    else:
        for key in ("gamma", "beta", "mean", "variance"):
            out.array(entry, layer, key, getattr(layer, key))
        entry["epsilon"] = layer.epsilon


def _save_hls4ml_softmax(layer, entry, out):
    spec = layer.spec
    entry.update({key: str(getattr(spec, key)) for key in _HLS4ML_SOFTMAX_FORMATS})
    entry.update(exp_table_size=spec.exp_table_size, inv_table_size=spec.inv_table_size,
                 exp_scale=spec.exp_scale)


def _save_output_format(layer, entry, out):
    if out.quantized:
        entry["output_format"] = str(layer.output_format)


def _save_global_pool(layer, entry, out):
    if out.quantized:
        entry.update(pool=layer.spec.kind, output_format=str(layer.spec.output_format))
    else:
        entry["pool"] = layer.pool


#: Keys and arrays of each layer kind: ``SAVERS[kind](layer, entry, writer)``.
SAVERS = {
    "dense": _save_weighted,
    "conv2d": _save_conv2d,
    "pool": _save_pool,
    "global_pool": _save_global_pool,
    "activation": _save_activation,
    "batchnorm": _save_batchnorm,
    "softmax": _save_output_format,
    "hls4ml_softmax": _save_hls4ml_softmax,
    "quantize": lambda layer, entry, out: entry.update(
        formats=[None if f is None else str(f) for f in layer.formats],
        output_format=str(layer.fout)),
    "flatten": lambda layer, entry, out: None,
    "argmax": lambda layer, entry, out: None,
    "zero_pad": lambda layer, entry, out: entry.update(
        padding=[list(side) for side in layer.padding]),
    "add": _save_output_format,
    "concatenate": _save_output_format,
    "upsample": lambda layer, entry, out: entry.update(size=list(layer.size)),
}


def save_native(model, json_path):
    """Write ``model`` (a :class:`~nnfab.ir.Model` or a
    :class:`~nnfab.gen.float_model.FloatModel`) as ``json_path`` and the ``.npz`` beside it.
    Files are written whole or not at all. A layer's ``inputs`` are written when they are not
    just the layer before it.

    Raises
    ------
    UnsupportedLayerError
        For a layer kind without a native form (nothing is written).
    """
    from nnfab.ir import INPUT

    json_path = Path(json_path)
    quantized = isinstance(model, Model)
    out, entries, previous = _Writer(quantized), [], INPUT
    # A fused layer (e.g. shift_add_dense) is stored as the layers it fuses.
    layers = [part for layer in model.layers for part in getattr(layer, "parts", (layer,))]
    for layer in layers:
        entry = {"name": layer.name, "type": layer.kind}
        if tuple(layer.inputs) != (previous,):
            entry["inputs"] = list(layer.inputs)
        try:
            save = SAVERS[layer.kind]
        except KeyError:
            raise UnsupportedLayerError(f"Layer {layer.name!r}: a {layer.kind!r} layer has no "
                                        f"native form") from None
        save(layer, entry, out)
        entries.append(entry)
        previous = layer.name
    doc = {"nnfab_model": FORMAT_VERSION, "name": model.name,
           "input": {"shape": list(model.input_shape)}, "layers": entries}
    if quantized:
        doc["input"]["format"] = str(model.input_format)
    _write_atomically(json_path, json.dumps(doc, indent=2) + "\n", out.arrays)


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
