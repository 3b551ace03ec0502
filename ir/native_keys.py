"""Schemas of the values of native layer keys, which each layer kind combines into its
``native_keys`` (:mod:`nnfab.ir.registry`); :mod:`nnfab.gen.native_schema` builds the JSON
Schema of the whole file from them.

Each value schema carries an ``"accepted"`` annotation, the words the error message uses for
what is accepted (JSON Schema ignores keywords it does not know).
"""

__all__ = ["MAX_DIMENSION", "string", "NAME", "ARRAY", "FORMAT", "OPTIONAL_FORMAT", "REUSE",
           "SIZE", "PAIR", "OPTIONAL_PAIR", "PADDING", "TABLE_SIZE", "POOL", "PARAMS", "TABLE",
           "WEIGHTED"]

#: Largest size of one input dimension, stride or window side.
MAX_DIMENSION = 1 << 16


def string(accepted="a non-empty string"):
    """Schema of a non-empty printable string, described as ``accepted`` in errors."""
    return {"type": "string", "minLength": 1, "maxLength": 256,
            "pattern": "^[^\\x00-\\x1f\\x7f]*$", "accepted": accepted}


NAME = string("a non-empty string of at most 256 printable characters")
ARRAY = string("the name of an array in the .npz file (a non-empty string)")
FORMAT = {"type": "string", "minLength": 1, "maxLength": 100,
          "accepted": "a format string such as \"fixed<8,3>\" or \"ufixed<8,0,RND,SAT>\""}
OPTIONAL_FORMAT = {"type": ["string", "null"], "minLength": 1, "maxLength": 100,
                   "accepted": "a format string such as \"fixed<8,3>\", or null"}
REUSE = {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION,
         "accepted": f"an integer from 1 to {MAX_DIMENSION}"}
SIZE = {"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION,
        "accepted": f"an integer from 1 to {MAX_DIMENSION}"}
PAIR = {"type": "array", "minItems": 2, "maxItems": 2, "items": SIZE,
        "accepted": f"a list of two integers from 1 to {MAX_DIMENSION}"}
OPTIONAL_PAIR = {**PAIR, "type": ["array", "null"],
                 "accepted": f"a list of two integers from 1 to {MAX_DIMENSION}, or null"}
PADDING = {"enum": ["valid", "same"], "accepted": "\"valid\" or \"same\""}
TABLE_SIZE = {"type": "integer", "minimum": 2, "maximum": 1 << 24,
              "accepted": "an integer from 2 to 16777216"}
POOL = {"enum": ["max", "average"], "accepted": "\"max\" or \"average\""}

_INTEGER = {"type": "integer", "accepted": "an integer"}
_FRACTION = {"type": "string", "pattern": "^[0-9]{1,30}(/[1-9][0-9]{0,29})?$",
             "accepted": "a non-negative fraction string such as \"7/2\""}
_CONSTANT = {"type": "object", "required": ["format", "code"], "additionalProperties": False,
             "properties": {"format": FORMAT, "code": _INTEGER},
             "accepted": "an object with \"format\" and \"code\" (an integer)"}
_TABLE = {"type": "object", "additionalProperties": False,
          "required": ["table", "table_size", "table_format", "input_range", "codes"],
          "accepted": "a table: an object with table, table_size, table_format, input_range and "
                      "codes",
          "properties": {
              "table": string("the name of a table kind"),
              "table_size": {**TABLE_SIZE, "maximum": MAX_DIMENSION,
                             "accepted": f"an integer from 2 to {MAX_DIMENSION}"},
              "table_format": FORMAT,
              "input_range": {**_FRACTION, "accepted": "a positive fraction string such as "
                                                       "\"8\""},
              "codes": {"type": "array", "items": _INTEGER, "maxItems": MAX_DIMENSION,
                        "accepted": f"a list of at most {MAX_DIMENSION} integer codes"},
              "index_rounding": {"enum": ["floor", "zero", "magnitude"],
                                 "accepted": "\"floor\" or \"zero\""}}}
#: A look-up table (:func:`~nnfab.ir.native_params.param_to_json`'s form).
TABLE = _TABLE
#: Activation parameters (``params``, a fused activation's ``activation_params``).
PARAMS = {"type": "object", "additionalProperties": False,
          "accepted": "an object of activation parameters",
          "properties": {
              "relu_max": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 2.0**64},
                                     _FRACTION],
                           "accepted": "a number from 0 to 2**64 or a fraction string"},
              "alpha_format": FORMAT, "alpha_code": _INTEGER,
              "slope": _CONSTANT, "offset": _CONSTANT, "scale": _CONSTANT, "table": _TABLE}}

#: Keys of a layer with weights and biases (``dense``, ``conv2d``).
WEIGHTED = {"weights": ARRAY, "biases": {**ARRAY, "type": ["string", "null"],
                                         "accepted": "the name of an array, or null"},
            "weight_format": FORMAT, "bias_format": OPTIONAL_FORMAT,
            "output_format": FORMAT, "accumulator_format": OPTIONAL_FORMAT,
            "reuse_factor": REUSE}
