"""The JSON Schema of the native model format (``NAME.json``), and its validation with messages
that name the key path, the value and what is accepted.

The schema says which keys each layer type takes and what kind of value each key holds; what it
cannot say (array shapes against the layers, format strings that parse, a quantized model having
formats everywhere) is checked by :func:`nnfab.gen.native.load_native` in code. The keys of
each layer type are its kind's ``native_keys`` (:mod:`nnfab.ir.registry`). Each value schema
carries an ``"accepted"`` annotation, the words the error message uses for what is accepted
(JSON Schema ignores keywords it does not know).
"""

import json

import jsonschema

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.ir import KINDS, native_kinds
from nnfab.ir.native_keys import ARRAY, FORMAT, MAX_DIMENSION, NAME, SIZE

__all__ = ["LAYER_TYPES", "LAYER_KEYS", "REQUIRED_KEYS", "SCHEMA", "check_document"]

#: The layer types of the native format: the registered kinds with a native form.
LAYER_TYPES = tuple(native_kinds())

#: Keys of each layer type beside ``name`` and ``type``, with their value schemas (each kind's
#: ``native_keys``).
LAYER_KEYS = {kind: KINDS[kind].native_keys for kind in LAYER_TYPES}

#: Keys a layer type needs in float and quantized models alike (the formats a quantized model
#: needs, a quantize layer's among them, are checked in code, which knows whether the model is
#: quantized).
REQUIRED_KEYS = {kind: list(KINDS[kind].required_keys) for kind in LAYER_TYPES
                 if KINDS[kind].required_keys}

_INPUTS = {"type": "array", "minItems": 1, "maxItems": 64, "items": NAME,
           "accepted": "a list of the names of the tensors the layer reads (\"input\" or "
                       "earlier layers)"}

_LAYER_TYPE = {"enum": list(LAYER_TYPES), "accepted": ", ".join(LAYER_TYPES)}


def _layer_schema(kind, keys):
    properties = {"name": NAME, "type": _LAYER_TYPE, "inputs": _INPUTS, **keys}
    return {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"properties": properties, "additionalProperties": False,
                     "required": REQUIRED_KEYS.get(kind, []),
                     "takes": f"{'an' if kind[0] in 'aeiou' else 'a'} {kind!r} layer takes "
                              f"{', '.join(properties)}"}}


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "accepted": "an object with nnfab_model, name, input, layers and arrays",
    "required": ["nnfab_model", "input", "layers"],
    "additionalProperties": False,
    "properties": {
        "nnfab_model": {"const": 1, "accepted": "1"},
        "name": NAME,
        "arrays": {**ARRAY, "pattern": "^[^/\\\\\\x00-\\x1f]+$",
                   "accepted": "the file name of the .npz beside the JSON (no folder)"},
        "input": {
            "type": "object",
            "accepted": "an object with \"shape\" and, in a quantized model, \"format\"",
            "required": ["shape"],
            "additionalProperties": False,
            "properties": {
                "shape": {"type": "array", "minItems": 1, "maxItems": 3,
                          "items": SIZE,
                          "accepted": f"a list of 1 to 3 integers from 1 to {MAX_DIMENSION}"},
                "format": FORMAT,
            },
        },
        "layers": {
            "type": "array", "minItems": 1, "maxItems": 1000,
            "accepted": "a list of 1 to 1000 layers",
            "items": {
                "type": "object",
                "accepted": "an object with \"name\", \"type\" and the keys of its type",
                "required": ["name", "type"],
                "properties": {"name": NAME, "type": _LAYER_TYPE},
                "allOf": [_layer_schema(kind, keys) for kind, keys in LAYER_KEYS.items()],
            },
        },
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def key_path(path):
    """``layers[2].reuse_factor`` from a sequence of keys and indices."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the document"


def _accepted(schema):
    return schema.get("accepted", "a value of the documented kind") \
        if isinstance(schema, dict) else "a value of the documented kind"


def _message(error, doc):
    path = list(error.absolute_path)
    where = key_path(path)
    if error.validator == "required":
        missing = next((key for key in error.validator_value
                        if isinstance(error.instance, dict) and key not in error.instance),
                       error.validator_value[0])
        accepted = _accepted(error.schema.get("properties", {}).get(missing, {}))
        return f"{key_path([*path, missing])} is missing; it must be {accepted}"
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = sorted(key for key in error.instance if key not in allowed)
        takes = error.schema.get("takes", f"it takes {', '.join(allowed)}")
        return f"{where} has the unknown key {extra[0]!r}; {takes}"
    return f"{where} is {_show(error.instance)}; it must be {_accepted(error.schema)}"


def _show(value):
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):  # pragma: no cover (parsed JSON always dumps)
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _relevance(error):
    # The deepest error first (it names the exact key), then the document order.
    return (-len(error.absolute_path),
            [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in error.absolute_path])


def check_document(doc, source):
    """Validate a parsed native model document against :data:`SCHEMA`.

    Parameters
    ----------
    doc : object
        The parsed JSON.
    source : str
        The file, for messages (``Model file 'NAME.json': layers[2].reuse_factor is 1.5; it
        must be an integer from 1 to 65536``).

    Raises
    ------
    UnsupportedLayerError
        For an unknown layer type.
    ModelError
        For any other departure from the schema (the first one, deepest key first).
    """
    errors = list(_VALIDATOR.iter_errors(doc))
    if not errors:
        return
    for error in errors:
        path = list(error.absolute_path)
        if len(path) == 3 and path[0] == "layers" and path[2] == "type" and \
                error.validator == "enum" and isinstance(error.instance, str):
            layer = doc["layers"][path[1]]
            name = layer.get("name")
            raise UnsupportedLayerError(
                f"Layer {name!r}: unknown layer type {layer['type']!r}; nnfab supports "
                f"{', '.join(LAYER_TYPES)}")
    error = min(errors, key=_relevance)
    raise ModelError(f"Model file {source!r}: {_message(error, doc)}")
