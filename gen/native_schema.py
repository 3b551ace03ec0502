"""The JSON Schema of the native model format (``NAME.json``), and its validation with messages
that name the key path, the value and what is accepted.

The schema says which keys each layer type takes and what kind of value each key holds; what it
cannot say (array shapes against the layers, format strings that parse, a quantized model having
formats everywhere) is checked by :func:`nnfab.gen.native.load_native` in code. Each value schema
carries an ``"accepted"`` annotation, the words the error message uses for what is accepted
(JSON Schema ignores keywords it does not know).
"""

import json

import jsonschema

from nnfab.errors import ModelError, UnsupportedLayerError

__all__ = ["LAYER_TYPES", "SCHEMA", "check_document"]

LAYER_TYPES = ("dense", "conv2d", "pool", "global_pool", "zero_pad", "flatten", "activation",
               "batchnorm", "quantize", "softmax", "hls4ml_softmax", "argmax", "add",
               "concatenate", "upsample")

#: Largest size of one input dimension, stride or window side.
MAX_DIMENSION = 1 << 16


def _string(accepted="a non-empty string"):
    return {"type": "string", "minLength": 1, "maxLength": 256,
            "pattern": "^[^\\x00-\\x1f\\x7f]*$", "accepted": accepted}


_NAME = _string("a non-empty string of at most 256 printable characters")
_ARRAY = _string("the name of an array in the .npz file (a non-empty string)")
_FORMAT = {"type": "string", "minLength": 1, "maxLength": 100,
           "accepted": "a format string such as \"fixed<8,3>\" or \"ufixed<8,0,RND,SAT>\""}
_OPTIONAL_FORMAT = {"type": ["string", "null"], "minLength": 1, "maxLength": 100,
                    "accepted": "a format string such as \"fixed<8,3>\", or null"}
_REUSE = {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION,
          "accepted": f"an integer from 1 to {MAX_DIMENSION}"}
_SIZE = {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION,
         "accepted": f"an integer from 1 to {MAX_DIMENSION}"}
_PAIR = {"type": "array", "minItems": 2, "maxItems": 2, "items": _SIZE,
         "accepted": f"a list of two integers from 1 to {MAX_DIMENSION}"}
_OPTIONAL_PAIR = {**_PAIR, "type": ["array", "null"],
                  "accepted": f"a list of two integers from 1 to {MAX_DIMENSION}, or null"}
_PADDING = {"enum": ["valid", "same"], "accepted": "\"valid\" or \"same\""}
_TABLE_SIZE = {"type": "integer", "minimum": 2, "maximum": 1 << 24,
               "accepted": "an integer from 2 to 16777216"}

_INTEGER = {"type": "integer", "accepted": "an integer"}
_FRACTION = {"type": "string", "pattern": "^[0-9]{1,30}(/[1-9][0-9]{0,29})?$",
             "accepted": "a non-negative fraction string such as \"7/2\""}
_CONSTANT = {"type": "object", "required": ["format", "code"], "additionalProperties": False,
             "properties": {"format": _FORMAT, "code": _INTEGER},
             "accepted": "an object with \"format\" and \"code\" (an integer)"}
_TABLE = {"type": "object", "additionalProperties": False,
          "required": ["table", "table_size", "table_format", "input_range", "codes"],
          "accepted": "a table: an object with table, table_size, table_format, input_range and "
                      "codes",
          "properties": {
              "table": _string("the name of a table kind"),
              "table_size": {**_TABLE_SIZE, "maximum": MAX_DIMENSION,
                             "accepted": f"an integer from 2 to {MAX_DIMENSION}"},
              "table_format": _FORMAT,
              "input_range": {**_FRACTION, "accepted": "a positive fraction string such as "
                                                       "\"8\""},
              "codes": {"type": "array", "items": _INTEGER, "maxItems": MAX_DIMENSION,
                        "accepted": f"a list of at most {MAX_DIMENSION} integer codes"}}}
_PARAMS = {"type": "object", "additionalProperties": False,
           "accepted": "an object of activation parameters",
           "properties": {
               "relu_max": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 2.0**64},
                                      _FRACTION],
                            "accepted": "a number from 0 to 2**64 or a fraction string"},
               "alpha_format": _FORMAT, "alpha_code": _INTEGER,
               "slope": _CONSTANT, "offset": _CONSTANT, "scale": _CONSTANT, "table": _TABLE}}

_WEIGHTED = {"weights": _ARRAY, "biases": {**_ARRAY, "type": ["string", "null"],
                                           "accepted": "the name of an array, or null"},
             "weight_format": _FORMAT, "bias_format": _OPTIONAL_FORMAT,
             "output_format": _FORMAT, "accumulator_format": _OPTIONAL_FORMAT,
             "reuse_factor": _REUSE}

#: Keys of each layer type beside ``name`` and ``type``, with their value schemas.
LAYER_KEYS = {
    "dense": _WEIGHTED,
    "conv2d": {**_WEIGHTED, "strides": _PAIR, "padding": _PADDING,
               "activation": {**_string("the name of an activation function"),
                              "type": ["string", "null"]},
               "activation_format": _OPTIONAL_FORMAT, "activation_params": _PARAMS},
    "pool": {"pool": {"enum": ["max", "average"], "accepted": "\"max\" or \"average\""},
             "pool_size": _PAIR, "strides": _OPTIONAL_PAIR, "padding": _PADDING,
             "output_format": _OPTIONAL_FORMAT},
    "flatten": {},
    "activation": {"activation": _string("the name of an activation function"),
                   "output_format": _FORMAT,
                   "params": _PARAMS},
    "batchnorm": {"gamma": _ARRAY, "beta": _ARRAY, "mean": _ARRAY, "variance": _ARRAY,
                  "epsilon": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e3,
                              "accepted": "a number above 0 and at most 1000"},
                  "scale": _ARRAY, "shift": _ARRAY, "scale_format": _FORMAT,
                  "shift_format": _FORMAT, "output_format": _FORMAT},
    "quantize": {"formats": {"type": "array", "minItems": 1, "items": _OPTIONAL_FORMAT,
                             "accepted": "a list of format strings or nulls, one per element "
                                         "of the last axis"},
                 "output_format": _FORMAT},
    "softmax": {"output_format": _FORMAT},
    "hls4ml_softmax": {"output_format": _FORMAT, "accum_format": _FORMAT,
                       "exp_table_format": _FORMAT, "inv_table_format": _FORMAT,
                       "inv_input_format": _FORMAT, "exp_table_size": _TABLE_SIZE,
                       "inv_table_size": _TABLE_SIZE,
                       "exp_scale": {"type": "number", "minimum": -1e6, "maximum": 1e6,
                                     "accepted": "a number from -1000000 to 1000000 "
                                                 "(hls4ml's exp_scale)"}},
    "argmax": {},
    "global_pool": {"pool": {"enum": ["max", "average"], "accepted": "\"max\" or \"average\""},
                    "output_format": _OPTIONAL_FORMAT},
    "zero_pad": {"padding": {"type": "array", "minItems": 2, "maxItems": 2,
                             "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                       "items": {"type": "integer", "minimum": 0,
                                                 "maximum": MAX_DIMENSION}},
                             "accepted": "[[top, bottom], [left, right]], integers >= 0"}},
    "add": {"output_format": _FORMAT},
    "concatenate": {"output_format": _FORMAT},
    "upsample": {"size": _PAIR},
}

#: Keys a layer type needs in float and quantized models alike (the formats a quantized model
#: needs, a quantize layer's among them, are checked in code, which knows whether the model is
#: quantized).
REQUIRED_KEYS = {"dense": ["weights"], "conv2d": ["weights"], "activation": ["activation"],
                 "pool": ["pool"], "global_pool": ["pool"], "zero_pad": ["padding"],
                 "upsample": ["size"]}

_INPUTS = {"type": "array", "minItems": 1, "maxItems": 64, "items": _NAME,
           "accepted": "a list of the names of the tensors the layer reads (\"input\" or "
                       "earlier layers)"}

_LAYER_TYPE = {"enum": list(LAYER_TYPES), "accepted": ", ".join(LAYER_TYPES)}


def _layer_schema(kind, keys):
    properties = {"name": _NAME, "type": _LAYER_TYPE, "inputs": _INPUTS, **keys}
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
        "name": _NAME,
        "arrays": {**_ARRAY, "pattern": "^[^/\\\\\\x00-\\x1f]+$",
                   "accepted": "the file name of the .npz beside the JSON (no folder)"},
        "input": {
            "type": "object",
            "accepted": "an object with \"shape\" and, in a quantized model, \"format\"",
            "required": ["shape"],
            "additionalProperties": False,
            "properties": {
                "shape": {"type": "array", "minItems": 1, "maxItems": 3,
                          "items": _SIZE,
                          "accepted": f"a list of 1 to 3 integers from 1 to {MAX_DIMENSION}"},
                "format": _FORMAT,
            },
        },
        "layers": {
            "type": "array", "minItems": 1, "maxItems": 1000,
            "accepted": "a list of 1 to 1000 layers",
            "items": {
                "type": "object",
                "accepted": "an object with \"name\", \"type\" and the keys of its type",
                "required": ["name", "type"],
                "properties": {"name": _NAME, "type": _LAYER_TYPE},
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
