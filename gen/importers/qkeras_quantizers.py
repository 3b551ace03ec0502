"""QKeras quantizers as fixed-point formats, reproducing QKeras 0.9 exactly.

Derived from QKeras's ``quantizers.py`` and checked against
``shared/vectors/frameworks/qkeras_quantizers.csv.gz`` (31,600 applications, QKeras 0.9.0):

- ``quantized_bits(bits, integer, symmetric, keep_negative=1, alpha=1 or None)``:
  ``clip(round(x * 2**(bits-1-integer)), -2**(bits-1) + symmetric, 2**(bits-1) - 1)`` with
  ``tf.round`` (half to even), that is ``fixed<bits, integer+1, RND_CONV, SAT>``
  (``SAT_SYM`` when ``symmetric``).
- ``quantized_bits(..., keep_negative=0)``: ``ufixed<bits, integer, RND_CONV, SAT>``
  (``symmetric`` has no effect).
- ``quantized_relu(bits, integer)``: ``ufixed<bits, integer, RND_CONV, SAT>``.
- ``quantized_po2(bits, max_value)``: ``sign(x) * 2**clip(round(log2|x|), min_exp, max_exp)``
  (``|x| < 1e-7`` gives ``+-2**min_exp``, so never zero), with ``min_exp = -2**e``,
  ``max_exp = 2**e - 1``, ``e = bits - 1 - s`` and ``s = 0`` when ``max_value <= 1`` else 1;
  ``|x|`` is first clipped to ``max_value``. The values are exact in a fixed-point format
  (:func:`po2_format`) but not a cast into one, so only weights may use it.
- ``quantized_tanh(bits, use_stochastic_rounding=0, symmetric=0, use_real_tanh=0)``: with
  QKeras' default internal sigmoid (``hard``), ``2 * hard_sigmoid(x) - 1`` is ``clip(x, -1,
  1)``, then ``clip(round(p * m) / m, -1 + symmetric / m, 1 - 1 / m)`` with ``m =
  2**(bits-1)``: a hard tanh cast to ``fixed<bits, 1, RND_CONV, SAT>`` (``SAT_SYM`` when
  ``symmetric``).
- ``quantized_sigmoid(bits, symmetric=0, use_real_sigmoid=0, use_stochastic_rounding=0)``:
  ``clip(round(hard_sigmoid(x) * m) / m, 0, 1 - 1 / m)`` with QKeras' ``hard_sigmoid(x) =
  clip(x / 2 + 1/2, 0, 1)`` and ``m = 2**bits``: that hard sigmoid cast to ``ufixed<bits, 0,
  RND_CONV, SAT>``.

  With ``use_real_sigmoid``/``use_real_tanh`` the float32 ``sigmoid``/``tanh`` replaces the
  hard function: the same casts of a smooth function (:func:`quantizer_format` gives the
  format, the caller builds a table).

The last two are activations (``activations=True`` in :func:`parse_quantizer`);
``symmetric`` sigmoids are refused (their lower clip ``1/m`` is no cast).
"""

import json
import re

import numpy as np

from nnfab.casts import quantize
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat

__all__ = ["parse_quantizer", "quantizer_format", "apply_quantizer", "po2_format",
           "ACTIVATION_QUANTIZERS"]

_KERAS_EPSILON = 1e-7
_CALL_RE = re.compile(r"^\s*(?P<name>[a-z_0-9]+)\s*\((?P<args>.*)\)\s*$")
_POSITIONAL = {
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope"),
    "quantized_po2": ("bits", "max_value"),
    "quantized_tanh": ("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
    "quantized_sigmoid": ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding"),
}
_DEFAULTS = {
    # post_training_scale: QKeras 0.9 (the Keras 3 port) writes it, None unless set.
    "quantized_bits": dict(bits=8, integer=0, symmetric=0, keep_negative=True, alpha=None,
                           use_stochastic_rounding=False, post_training_scale=None),
    "quantized_relu": dict(bits=8, integer=0, use_sigmoid=0, negative_slope=0.0,
                           use_stochastic_rounding=False, relu_upper_bound=None),
    "quantized_po2": dict(bits=8, max_value=None, use_stochastic_rounding=False,
                          quadratic_approximation=False, log2_rounding="rnd"),
    "quantized_tanh": dict(bits=8, use_stochastic_rounding=False, symmetric=False,
                           use_real_tanh=False),
    "quantized_sigmoid": dict(bits=8, symmetric=False, use_real_sigmoid=False,
                              use_stochastic_rounding=False),
}
#: Quantizers that are activations only (never applied to weights).
ACTIVATION_QUANTIZERS = ("quantized_tanh", "quantized_sigmoid")
_IGNORED = {"qnoise_factor", "var_name", "use_ste", "use_variables", "scale_axis",
            "min_po2_exponent", "max_po2_exponent", "relu_shift"}


def _literal(text, layer):
    text = text.strip()
    if text in ("None", "none"):
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text.replace("'", '"'))
    except ValueError:
        raise UnsupportedLayerError(f"Layer {layer!r}: quantizer argument {text!r} is not a "
                                    f"number, a string or None") from None


def parse_quantizer(spec, layer, *, activations=False):
    """A QKeras quantizer (a Keras config dict or a string such as ``"quantized_relu(3,1)"``)
    as ``(name, config)`` with QKeras's defaults filled in; with ``activations`` also
    ``quantized_tanh`` and ``quantized_sigmoid``.

    Raises
    ------
    UnsupportedLayerError
        If the quantizer is not ``quantized_bits``, ``quantized_relu`` or ``quantized_po2``, or
        a setting is one nnfab cannot reproduce exactly (stochastic rounding, ``alpha`` other
        than 1 or None, a relu upper bound, a negative slope, sigmoid mode).
    """
    if isinstance(spec, dict):
        name, given = spec.get("class_name"), dict(spec.get("config") or {})
    elif isinstance(spec, str):
        match = _CALL_RE.match(spec)
        if match is None:
            name, given = spec.strip(), {}
        else:
            name, given = match["name"], {}
            args = [a for a in match["args"].split(",") if a.strip()]
            for i, arg in enumerate(args):
                if "=" in arg:
                    key, value = arg.split("=", 1)
                    given[key.strip()] = _literal(value, layer)
                elif name in _POSITIONAL and i < len(_POSITIONAL[name]):
                    given[_POSITIONAL[name][i]] = _literal(arg, layer)
    else:
        raise UnsupportedLayerError(f"Layer {layer!r}: quantizer {spec!r} is neither a "
                                    f"config dict nor a string")
    if name not in _DEFAULTS or (name in ACTIVATION_QUANTIZERS and not activations):
        raise UnsupportedLayerError(
            f"Layer {layer!r}: quantizer {name!r} is not supported; use quantized_bits, "
            f"quantized_relu or quantized_po2"
            f"{', quantized_tanh or quantized_sigmoid' if activations else ''}")
    config = dict(_DEFAULTS[name])
    for key, value in given.items():
        if key in _IGNORED:
            continue
        if key not in config:
            raise UnsupportedLayerError(f"Layer {layer!r}: {name} argument {key!r} is not "
                                        f"supported")
        config[key] = value
    _check(name, config, layer)
    return name, config


def _check(name, c, layer):
    def reject(what, value, accepted):
        raise UnsupportedLayerError(f"Layer {layer!r}: {name} {what} {value!r} is not "
                                    f"supported; use {accepted}")

    if c.get("use_stochastic_rounding"):
        reject("use_stochastic_rounding", c["use_stochastic_rounding"], "False")
    if not isinstance(c["bits"], int) or isinstance(c["bits"], bool) or c["bits"] < 1:
        reject("bits", c["bits"], "a positive integer")
    if name == "quantized_bits":
        if c["alpha"] not in (None, 1, 1.0):
            reject("alpha", c["alpha"], "alpha=1 or None")
        if c["post_training_scale"] is not None:
            reject("post_training_scale", c["post_training_scale"], "None")
        if not isinstance(c["integer"], int) or isinstance(c["integer"], bool):
            reject("integer", c["integer"], "an integer")
        if c["bits"] - bool(c["keep_negative"]) < 1:
            reject("bits", c["bits"], "at least 2 bits with keep_negative (binary quantizers "
                   "are not supported)")
    elif name == "quantized_tanh":
        pass  # every setting but stochastic rounding (checked above) is a cast
    elif name == "quantized_sigmoid":
        if c["symmetric"]:
            reject("symmetric", c["symmetric"], "0")
    elif name == "quantized_relu":
        if c["use_sigmoid"]:
            reject("use_sigmoid", c["use_sigmoid"], "0")
        if c["negative_slope"]:
            reject("negative_slope", c["negative_slope"], "0.0")
        if c["relu_upper_bound"] is not None:
            reject("relu_upper_bound", c["relu_upper_bound"], "None")
        if not isinstance(c["integer"], int) or isinstance(c["integer"], bool):
            reject("integer", c["integer"], "an integer")
    else:
        if c["quadratic_approximation"]:
            reject("quadratic_approximation", c["quadratic_approximation"], "False")
        if c["log2_rounding"] != "rnd":
            reject("log2_rounding", c["log2_rounding"], "'rnd'")
        if c["max_value"] is not None and not (isinstance(c["max_value"], (int, float))
                                               and c["max_value"] > 0):
            reject("max_value", c["max_value"], "a positive number or None")


def quantizer_format(name, config):
    """The fixed-point format (with rounding and overflow) a ``quantized_bits``,
    ``quantized_relu``, ``quantized_tanh`` or ``quantized_sigmoid`` quantizer casts to; None for
    ``quantized_po2``."""
    bits = config["bits"]
    if name == "quantized_tanh":
        return FixedFormat(bits, 1, rounding="RND_CONV",
                           overflow="SAT_SYM" if config["symmetric"] else "SAT")
    if name == "quantized_sigmoid":
        return FixedFormat(bits, 0, signed=False, rounding="RND_CONV", overflow="SAT")
    if name == "quantized_bits":
        if config["keep_negative"]:
            return FixedFormat(bits, config["integer"] + 1, rounding="RND_CONV",
                               overflow="SAT_SYM" if config["symmetric"] else "SAT")
        return FixedFormat(bits, config["integer"], signed=False, rounding="RND_CONV",
                           overflow="SAT")
    if name == "quantized_relu":
        return FixedFormat(bits, config["integer"], signed=False, rounding="RND_CONV",
                           overflow="SAT")
    return None


def _po2_exponents(config):
    max_value = config["max_value"]
    sign_bit = 0 if max_value is not None and max_value <= 1 else 1
    effect = config["bits"] - 1 - sign_bit
    return -2 ** effect, 2 ** effect - 1


def po2_format(config):
    """The narrowest signed format holding every value ``quantized_po2(config)`` can give."""
    min_exp, max_exp = _po2_exponents(config)
    if config["max_value"] is not None:
        max_exp = min(max_exp, int(np.round(np.log2(np.float32(config["max_value"])))))
    return FixedFormat(max_exp - min_exp + 2, max_exp + 2)


def _po2_values(x, config):
    """QKeras's ``quantized_po2`` in float32, as QKeras computes it."""
    x = np.asarray(x, dtype=np.float32)
    min_exp, max_exp = _po2_exponents(config)
    sign = np.where(x < 0, np.float32(-1), np.float32(1))
    x_abs = np.abs(x)
    filtered = np.where(x_abs < np.float32(_KERAS_EPSILON), np.float32(_KERAS_EPSILON), x_abs)
    if config["max_value"] is not None:
        max_value = np.float32(config["max_value"])
        filtered = np.where(filtered >= max_value, max_value, filtered)
    log2 = np.log(filtered) / np.float32(np.log(2.0))
    exponent = np.clip(np.round(log2), min_exp, max_exp)
    exponent = np.where(x_abs < np.float32(_KERAS_EPSILON), min_exp, exponent)
    return sign.astype(np.float64) * np.exp2(exponent.astype(np.float64))


def apply_quantizer(name, config, x):
    """Apply a parsed quantizer to float values.

    Returns
    -------
    (FixedFormat, ndarray of int)
        The format and the raw codes of the quantized values, same shape as ``x``.
    """
    x32 = np.asarray(x, dtype=np.float32)
    if name == "quantized_po2":
        fmt = po2_format(config)
        return fmt, quantize(_po2_values(x32, config), fmt)
    fmt = quantizer_format(name, config)
    return fmt, quantize(x32.astype(np.float64), fmt)
