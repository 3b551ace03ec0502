"""The native form of each layer kind: how a ``model.json`` entry (with its ``.npz`` arrays)
becomes an IR or float layer, and back.

Tables keyed by the entry's ``type`` (the layer's ``kind``): :data:`QUANTIZED_LOADERS` and
:data:`FLOAT_LOADERS` read an :class:`Entry`, :data:`SAVERS` write a layer's keys and arrays
through a :class:`Writer`. :mod:`nnfab.gen.native` reads and writes whole files with them; the
keys each type takes are in :mod:`nnfab.gen.native_schema`.
"""

import numpy as np

from nnfab.conv_layers import (BatchNormSpec, Conv2DSpec, DepthwiseConv2DSpec, GlobalPoolSpec,
                               PoolSpec)
from nnfab.errors import FormatError, ModelError, UnsupportedLayerError
from nnfab.fixed import MAX_ACCUMULATOR_WIDTH
from nnfab.ir import (ActivationLayer, AddLayer, ArgmaxLayer, BatchNormLayer, ConcatenateLayer,
                      Conv2DLayer, DenseLayer, FlattenLayer, GlobalPoolLayer, PoolLayer,
                      QuantizeLayer, SoftmaxLayer, UpsampleLayer, ZeroPadLayer)
from nnfab.layers import DenseSpec

from .float_model import (FloatActivation, FloatAdd, FloatArgmax, FloatBatchNorm,
                          FloatConcatenate, FloatConv2D, FloatDense, FloatFlatten,
                          FloatGlobalPool, FloatPool, FloatSoftmax, FloatUpsample, FloatZeroPad)
from .native_params import format_from_json, param_from_json, param_to_json

__all__ = ["Entry", "Writer", "FLOAT_LOADERS", "QUANTIZED_LOADERS", "SAVERS"]


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

def _weighted(e, kind):
    """``(weight format, bias format, output format, weight codes, bias codes or None)`` of a
    quantized dense or conv2d entry."""
    w_fmt, b_fmt, out_fmt = e.format("weight_format"), e.format("bias_format"), \
        e.format("output_format")
    if w_fmt is None or out_fmt is None:
        raise FormatError(f"{e.where}: a quantized {kind} layer needs \"weight_format\" and "
                          f"\"output_format\"")
    return (w_fmt, b_fmt, out_fmt, e.codes("weights", w_fmt),
            e.codes("biases", b_fmt, required=False))

def _dense(e):
    w_fmt, b_fmt, out_fmt, weights, biases = _weighted(e, "dense")
    if weights.ndim != 2 or weights.shape[1:] != e.shape:
        raise ModelError(f"{e.where}: weights of shape {weights.shape} do not take inputs of "
                         f"shape {e.shape} (expected (n_out, {e.shape[0] if e.shape else '?'}))")
    spec = e.spec(DenseSpec, weights, biases, e.fmt, w_fmt, out_fmt, bias_format=b_fmt,
                  accumulator_format=_accumulator(e.entry, e.where))
    return DenseLayer(e.name, spec=spec, reuse_factor=int(e.get("reuse_factor", 1)))

def _conv2d(e):
    w_fmt, b_fmt, out_fmt, weights, biases = _weighted(e, "conv2d")
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

def _pair_json(value):
    return None if value is None else (list(value) if not isinstance(value, int)
                                       else [value] * 2)

class Writer:
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
