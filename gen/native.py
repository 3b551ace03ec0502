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

from nnfab.errors import FormatError, ModelError, UnsupportedLayerError
from nnfab.ir import FLOAT_KINDS, INPUT, KINDS, Model
from nnfab.ir.native_form import Entry, Writer
from nnfab.ir.native_params import format_from_json

from .float_model import FloatModel
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
        # Kinds that exist only in quantized models may name keys of their own alike
        # (``tflite_softmax``'s ``beta``).
        keys = [key for key in _FLOAT_ONLY_KEYS
                if key in entry and entry.get("type") in FLOAT_KINDS]
        if keys:
            raise FormatError(f"Layer {entry['name']!r}: {keys[0]!r} belongs to a float model, "
                              f"but input.format makes this model quantized; give scale/shift "
                              f"codes with their formats, or leave out all formats")
    return _quantized_model(name, shape, input_format, layers, arrays)

#: Largest number of elements of a model's input.
MAX_INPUT_SIZE = 1 << 20

def _load_graph(name, input_shape, input_format, entries, arrays, kinds, unsupported):
    """Layers of ``entries`` read by ``kinds[type].from_native``, each given the shapes and
    formats of the tensors it reads (``inputs``, or the previous layer)."""
    tensors, layers, previous = {INPUT: (tuple(input_shape), input_format)}, [], INPUT
    for entry in entries:
        where, kind = f"Layer {entry['name']!r}", entry["type"]
        inputs = tuple(entry.get("inputs") or (previous,))
        for tensor in inputs:
            if tensor not in tensors:
                raise ModelError(f"{where}: input {tensor!r} is not the model input {INPUT!r} "
                                 f"or a layer listed before this one")
        try:
            load = kinds[kind].from_native
        except KeyError:
            raise UnsupportedLayerError(unsupported(where, kind)) from None
        layer = load(Entry(entry, arrays, [tensors[t] for t in inputs]))
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
    layers = _load_graph(name, shape, None, entries, arrays, FLOAT_KINDS,
                         lambda where, kind: f"{where}: a {kind!r} layer exists in quantized "
                                             f"models only; give input.format and the "
                                             f"layer's formats")
    return FloatModel(name, shape, tuple(layers))

def _quantized_model(name, shape, input_format, entries, arrays):
    layers = _load_graph(name, shape, input_format, entries, arrays, KINDS,
                         lambda where, kind: f"{where}: a {kind!r} layer must be folded "
                                             f"before quantization; give a float model "
                                             f"instead")
    return Model(name, tuple(shape), input_format, tuple(layers))

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
    json_path = Path(json_path)
    quantized = isinstance(model, Model)
    kinds = KINDS if quantized else FLOAT_KINDS
    out, entries, previous = Writer(quantized), [], INPUT
    for layer, inputs in _stored_layers(model.layers):
        entry = {"name": layer.name, "type": layer.kind}
        if inputs != (previous,):
            entry["inputs"] = list(inputs)
        if layer.kind not in kinds or getattr(kinds[layer.kind], "native_keys", {}) is None:
            raise UnsupportedLayerError(f"Layer {layer.name!r}: a {layer.kind!r} layer has no "
                                        f"native form")
        layer.to_native(entry, out)
        entries.append(entry)
        previous = layer.name
    doc = {"nnfab_model": FORMAT_VERSION, "name": model.name,
           "input": {"shape": list(model.input_shape)}, "layers": entries}
    if quantized:
        doc["input"]["format"] = str(model.input_format)
    _write_atomically(json_path, json.dumps(doc, indent=2) + "\n", out.arrays)

def _stored_layers(layers):
    """``(layer, inputs)`` as the native format stores them: a fused layer (e.g.
    ``shift_add_dense``) as the layers it fuses, and a layer reading a fused layer reading the
    last of its parts instead (the fused layer takes the name of one of its parts, often not
    the last: ``MatMul_0`` of ``MatMul_0, Relu_0``)."""
    last_part = {layer.name: _leaves(layer)[-1].name for layer in layers
                 if getattr(layer, "parts", ())}
    for layer in layers:
        parts = _leaves(layer)
        inner = {part.name for part in parts}
        for k, part in enumerate(parts):
            # The parts after the first read each other; only outside names are renamed.
            yield part, tuple(name if (k and name in inner) else last_part.get(name, name)
                              for name in part.inputs)


def _leaves(layer):
    """The layers a fused layer stores, its parts' parts first (a chain of fused layers), or
    the layer itself."""
    parts = getattr(layer, "parts", ())
    return tuple(leaf for part in parts for leaf in _leaves(part)) if parts else (layer,)


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
