"""What a layer kind's native form is read from and written to: an :class:`Entry` (one layer
of ``model.json`` with the ``.npz`` arrays and the tensors it reads) and a :class:`Writer`
(the arrays being written). Each kind's ``from_native`` and ``to_native``
(:mod:`nnfab.ir.registry`) use them; :mod:`nnfab.gen.native` reads and writes whole files.
"""

import numpy as np

from nnfab.errors import FormatError, ModelError
from nnfab.fixed import MAX_ACCUMULATOR_WIDTH

from .native_params import format_from_json, param_from_json

__all__ = ["Entry", "Writer", "pair_json"]


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

class Entry:
    """One layer entry being read: its keys (``entry``), the model's ``arrays`` and the
    ``(shape, format)`` of each tensor it reads (``inputs``; formats are None in a float
    model). ``shape`` and ``fmt`` are the first input's."""

    def __init__(self, entry, arrays, inputs):
        self.entry, self.arrays, self.name = entry, arrays, entry["name"]
        self.where = f"Layer {self.name!r}"
        self.shapes = [shape for shape, _ in inputs]
        self.formats = [fmt for _, fmt in inputs]
        self.shape, self.fmt = self.shapes[0], self.formats[0]

    def get(self, key, default=None):
        return self.entry.get(key, default)

    def format(self, key, **limits):
        """The format under ``key`` (None if absent); FormatError names the layer."""
        return format_from_json(self.entry.get(key), self.where, **limits)

    def output_format(self, kind):
        """``output_format``, which a quantized ``kind`` layer must have."""
        fmt = self.format("output_format")
        if fmt is None:
            raise FormatError(f"{self.where}: a quantized {kind!r} layer needs "
                              f"\"output_format\"")
        return fmt

    def accumulator(self):
        """``accumulator_format`` (None if absent), at most
        :data:`~nnfab.fixed.MAX_ACCUMULATOR_WIDTH` bits wide."""
        return self.format("accumulator_format", max_width=MAX_ACCUMULATOR_WIDTH)

    def pair(self, key, default):
        value = self.entry.get(key, default)
        return None if value is None else tuple(value)

    def padding(self):
        """``padding`` as ``((top, bottom), (left, right))``."""
        return tuple(tuple(int(v) for v in side) for side in self.entry.get("padding"))

    def floats(self, key, *, required=True):
        """A float model's array named under ``key``, float64 and finite."""
        return _floats(_array(self.arrays, self.entry, key, self.where, required=required),
                       self.where, key)

    def codes(self, key, fmt, *, required=True):
        """A quantized model's array named under ``key``: integer codes that fit ``fmt``."""
        array = _array(self.arrays, self.entry, key, self.where, required=required)
        if array is None:
            return None
        if fmt is None:
            raise FormatError(f"{self.where}: {key} need a \"{key[:-1]}_format\"")
        return _int_codes(array, fmt, self.where, key)

    def params(self, key):
        """Activation parameters under ``key`` (:func:`~.native_params.param_from_json`)."""
        return {k: param_from_json(k, v, self.where)
                for k, v in dict(self.entry.get(key) or {}).items()}

    def spec(self, make, *args, **kwargs):
        """``make(*args, **kwargs)``, its ValueError named by layer."""
        try:
            return make(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{self.where}: {exc}") from None

def pair_json(value):
    """A pair (or an int for both) as a JSON list; None stays None."""
    return None if value is None else (list(value) if not isinstance(value, int)
                                       else [value] * 2)

class Writer:
    """The arrays of the ``.npz`` being written; ``quantized`` says whether they are codes."""

    def __init__(self, quantized):
        self.quantized, self.arrays = quantized, {}

    def array(self, entry, layer, key, values):
        """Store ``values`` as ``LAYER.KEY`` and name it under ``key`` (nothing for None)."""
        if values is None:
            return
        self.arrays[f"{layer.name}.{key}"] = np.asarray(
            values, dtype=np.int64 if self.quantized else None)
        entry[key] = f"{layer.name}.{key}"
