"""HGQ2 models: Keras 3 ``.keras`` files whose layers come from HGQ2 (``hgq.layers``).

An HGQ2 quantizer gives every element of its tensor (or of one axis, or the whole tensor: the
shape of its variables says which) its own fixed-point format, from integer-valued variables
stored in ``model.weights.h5`` beside the layer's kernel: ``k`` (keep negative, 0 or 1) and
either ``i`` and ``f`` (``q_type`` ``kif``: integer bits without the sign, fraction bits) or
``b`` and ``i`` (``kbi``: bits without the sign, ``f = b - i``); HGQ2 rounds ``i``, ``f``,
``b`` half to even. Element ``j`` is ``fixed<k+i+f, k+i, Q, O>`` (``ufixed<i+f, i>`` when
``k = 0``), and 0 when ``k + i + f <= 0``. The rounding ``Q`` is ``TRN``, ``RND``,
``RND_CONV``, ``TRN_ZERO``, ``RND_ZERO``, ``RND_INF`` or ``RND_MIN_INF`` (``S_`` prefixed modes
round stochastically only in training, so they import as the plain mode); the overflow ``O`` is
``WRAP``, ``SAT`` or ``SAT_SYM``. HGQ2 (through the ``quantizers`` package) saturates before it
rounds and wraps after; with the grid's bounds on the grid both give ``ap_fixed``'s cast.

Where each quantizer goes (layer ``L`` of the Keras model; IR layer names in brackets):

- a ``QDense``/``QConv2D`` input quantizer (``iq``) and output quantizer (``oq``): one format
  for the whole tensor is a cast (:class:`~nnfab.ir.ActivationLayer` ``"linear"``), one format
  per element of the last axis a :class:`~nnfab.ir.QuantizeLayer` (``L_iq``, ``L_oq``); a
  model's first quantizer sets its input format (the common format of its lanes) instead of
  a cast. A ``Quantizer`` layer is the same (``L``);
- the kernel (``kq``) and bias (``bq``) quantizers: applied to the stored float32 weights as
  HGQ2 applies them (float32 arithmetic, including HGQ2's rule that a ``WRAP`` weight quantizer
  of a trainable layer only rounds), then taken as exact codes (``L``);
- a layer's ``relu`` acts on the exact sum, before the output quantizer (``L_relu``; fused into
  a convolution); without an output quantizer the layer outputs its exact accumulator, as HGQ2
  does in float32. HGQ2 computes in float32: its outputs equal nnfab's while its sums stay
  within float32's 24-bit mantissa, which HGQ2's usual widths keep.

Supported: ``InputLayer``, ``QDense`` (vector inputs), ``QConv2D`` (channels-last, ``valid`` or
``same``), ``Quantizer``, ``Flatten``, ``Dropout`` (dropped), ``Activation``/``ReLU`` (``relu``,
``linear``), in a chain; layers in float32. Refused with an
:class:`~nnfab.errors.UnsupportedLayerError` naming the layer: other layers (pooling, batch
normalization, einsum, softmax, look-up tables, merges...), ``float`` quantizers, the ``WRAP_SM``
overflow, a ``scaler`` or ``affine``, a custom ``bw_mapper``, activations other than ``relu``
and ``linear``, and formats that differ along any axis but the last of an image.

Read from the config and weights only (:mod:`.keras3`; no Keras, no HGQ2, no TensorFlow).
"""

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.ir import ActivationLayer, FlattenLayer, Model, QuantizeLayer
from nnfab.ir.quantize import lanes_format

from ._common import DEFAULT_INPUT_FORMAT, conv_layer, dense_layer, exact, relu_format
from .keras_config import SKIPPED_LAYERS, conv_kernel, keras_layers, window_geometry

__all__ = ["is_hgq2", "build_hgq2", "Hgq2Quantizer", "ROUNDINGS", "OVERFLOWS", "LAYERS"]

#: HGQ2 rounding modes nnfab imports (``S_`` variants too: stochastic in training only).
ROUNDINGS = ("TRN", "RND", "RND_CONV", "TRN_ZERO", "RND_ZERO", "RND_INF", "RND_MIN_INF")
#: HGQ2 overflow modes nnfab imports.
OVERFLOWS = ("WRAP", "SAT", "SAT_SYM")
#: Layer classes of an HGQ2 model nnfab imports.
LAYERS = ("InputLayer", "QDense", "QConv2D", "Quantizer", "Flatten", "Activation", "ReLU") + \
    SKIPPED_LAYERS


def is_hgq2(config):
    """Whether a Keras 3 model config holds HGQ2 layers (``module`` ``hgq...`` or
    ``registered_name`` ``hgq>...``)."""
    body = config.get("config") if isinstance(config, dict) else None
    layers = body.get("layers") if isinstance(body, dict) else body
    if not isinstance(layers, list):
        return False
    return any(isinstance(entry, dict) and (
        str(entry.get("module") or "").split(".")[0] == "hgq"
        or str(entry.get("registered_name") or "").startswith("hgq>")) for entry in layers)


class Hgq2Quantizer:
    """One HGQ2 fixed-point quantizer: its modes and its ``k``, ``i``, ``f`` per element.

    Parameters
    ----------
    name : str
        Where it is, for messages (``"fc1_iq"``).
    conf : dict
        Its ``QuantizerConfig`` as the model config holds it (``{"config": {...}}`` or the
        inner dict).
    variables : list of ndarray
        Its variables in the order Keras 3 saves them (trainable ones first, each group in
        creation order).
    trainable : bool
        Whether the quantizer and its layer are trainable (HGQ2's weight quantizers in ``WRAP``
        mode only round then).

    Raises
    ------
    UnsupportedLayerError
        For a ``float`` quantizer, an unknown mode, ``WRAP_SM``, a ``scaler``, an ``affine`` or a
        custom ``bw_mapper``.
    ModelError
        If the variables are not those of the quantizer's type and modes.
    """

    def __init__(self, name, conf, variables, *, trainable=True):
        conf = conf.get("config", conf) if isinstance(conf, dict) else conf
        if not isinstance(conf, dict) or "q_type" not in conf:
            raise ModelError(f"Quantizer {name!r}: its config {conf!r} is not an HGQ2 "
                             f"QuantizerConfig (an object with 'q_type')")
        self.name = name
        q_type = str(conf["q_type"]).lower()
        if q_type not in ("kif", "kbi"):
            raise UnsupportedLayerError(f"Quantizer {name!r}: q_type {q_type!r} is not "
                                        f"supported; nnfab imports fixed-point quantizers "
                                        f"('kif', 'kbi')")
        for key in ("scaler", "affine", "bw_mapper"):
            if conf.get(key) is not None:
                raise UnsupportedLayerError(f"Quantizer {name!r}: {key} {conf[key]!r} is not "
                                            f"supported; use None")
        rounding = str(conf.get("round_mode", "RND")).upper()
        rounding = rounding[2:] if rounding.startswith("S_") else rounding
        overflow = str(conf.get("overflow_mode", "WRAP")).upper()
        if rounding not in ROUNDINGS or overflow not in OVERFLOWS:
            raise UnsupportedLayerError(
                f"Quantizer {name!r}: round_mode {conf.get('round_mode')!r}, overflow_mode "
                f"{conf.get('overflow_mode')!r} are not supported; use round_mode "
                f"{', '.join(ROUNDINGS)} (or S_ of one) and overflow_mode "
                f"{', '.join(OVERFLOWS)}")
        self.rounding, self.overflow = rounding, overflow
        self.is_weight = bool(conf.get("is_weight", False))
        self.round_only = self.is_weight and overflow == "WRAP" and trainable and \
            bool(conf.get("trainable", True)) and (q_type == "kif" or rounding == "RND")
        self.k, self.i, self.f = _kif(name, q_type, overflow, variables)

    def __repr__(self):
        return (f"Hgq2Quantizer({self.name!r}, {self.rounding}, {self.overflow}, "
                f"shape={self.k.shape})")

    def _broadcast(self, shape):
        try:
            return [np.broadcast_to(a, shape) for a in (self.k, self.i, self.f)]
        except ValueError:
            raise ShapeError(f"Quantizer {self.name!r}: bit widths of shape {self.k.shape} do "
                             f"not apply to a tensor of shape {shape}") from None

    def formats(self, shape):
        """The format of each element of a ``shape`` tensor (batch axis left out): an object
        array of :class:`~nnfab.fixed.FixedFormat` or None (zero bits)."""
        k, i, f = (a.reshape(shape) for a in self._broadcast((1,) + tuple(shape)))
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            kk, ii, ff = int(k[index]), int(i[index]), int(f[index])
            out[index] = None if kk + ii + ff <= 0 else FixedFormat(
                kk + ii + ff, kk + ii, signed=bool(kk), rounding=self.rounding,
                overflow=self.overflow)
        return out

    def apply(self, values):
        """``values`` (float32 weights of the quantizer's shape) quantized as HGQ2 does, in
        float32; float64 values, exact."""
        x = np.asarray(values, dtype=np.float32)
        k, i, f = (a.astype(np.float32) for a in self._broadcast(x.shape))
        scale = np.exp2(f).astype(np.float32)
        if self.round_only:
            return (_ROUND[self.rounding](x * scale) / scale).astype(np.float64)
        clamped = np.maximum(i, -f)
        if self.overflow != "WRAP":
            top = np.exp2(clamped).astype(np.float32)
            high = top - np.exp2(-f).astype(np.float32)
            low = -k * (high if self.overflow == "SAT_SYM" else top)
            x = np.where(x > high, high, np.where(x < low, low, x))
        x = _ROUND[self.rounding](x * scale) / scale
        if self.overflow == "WRAP":
            bias = k * np.exp2(clamped + k - 1).astype(np.float32)
            x = np.mod(x + bias, np.exp2(clamped + k).astype(np.float32)) - bias
        return np.where(k + i + f > 0, x, np.float32(0)).astype(np.float64)


#: HGQ2's rounding functions (``quantizers.fixed_point``), in float32 as HGQ2 runs them.
_ROUND = {
    "TRN": np.floor,
    "RND": lambda x: np.floor(x + np.float32(0.5)),
    "RND_CONV": np.round,
    "TRN_ZERO": lambda x: np.floor(np.abs(x)) * np.sign(x),
    "RND_ZERO": lambda x: -np.floor(-np.abs(x) + np.float32(0.5)) * np.sign(x),
    "RND_MIN_INF": lambda x: -np.floor(-x + np.float32(0.5)),
    "RND_INF": lambda x: np.floor(np.abs(x) + np.float32(0.5)) * np.sign(x),
}


def _kif(name, q_type, overflow, variables):
    """``(k, i, f)`` as float64 integer arrays from the saved variables: Keras 3 saves the
    trainable ones first, each group in creation order (``k``, then ``i``/``f`` or ``b``/``i``;
    ``i`` is trainable unless ``WRAP``, which adds a scalar ``i_decay_speed``)."""
    wrap = overflow == "WRAP"
    if q_type == "kif":
        order = ("f", "k", "i", "decay") if wrap else ("i", "f", "k")
    else:
        order = ("b", "k", "i", "decay") if wrap else ("b", "i", "k")
    if len(variables) != len(order):
        raise ModelError(f"Quantizer {name!r}: {len(variables)} variables saved; a {q_type!r} "
                         f"quantizer in {overflow} mode has {len(order)} "
                         f"({', '.join(order)})")
    found = dict(zip(order, variables))
    if np.asarray(found["k"]).dtype != np.uint8:
        raise ModelError(f"Quantizer {name!r}: variable k has dtype {found['k'].dtype}, not "
                         f"uint8 (variables of another quantizer?)")
    k = np.asarray(found["k"], dtype=np.float64)
    if not np.all((k == 0) | (k == 1)):
        raise ModelError(f"Quantizer {name!r}: k holds {np.unique(k).tolist()}; k is 0 or 1")
    rounded = {}
    for key in ("b", "i", "f"):
        if key in found:
            value = np.asarray(found[key], dtype=np.float64)
            if value.shape != k.shape or not np.all(np.isfinite(value)):
                raise ModelError(f"Quantizer {name!r}: variable {key} of shape {value.shape} "
                                 f"(k: {k.shape}) or not finite")
            rounded[key] = np.round(value)  # HGQ2's round_conv: half to even
    i = rounded["i"]
    f = rounded["f"] if q_type == "kif" else rounded["b"] - i
    return k, i, f


def _quantizer(store, lname, path, conf, trainable=True):
    return Hgq2Quantizer(f"{lname}_{path.split('/')[0]}", conf,
                         store.variables(lname, path), trainable=trainable)


def _datalane(name, quantizer, fmt, shape, first):
    """IR layer(s) of a quantizer on data of ``fmt`` and ``shape``; with ``first``, the
    model's input format and the layers after it."""
    formats = quantizer.formats(shape)
    lanes = formats.reshape(-1, shape[-1])
    if any(list(row) != list(lanes[0]) for row in lanes[1:]):
        raise UnsupportedLayerError(
            f"Quantizer {quantizer.name!r}: gives the elements of one channel of its "
            f"{shape} tensor different formats; nnfab takes one format per element of the "
            f"last axis (homogeneous_axis covering the other axes)")
    lanes = list(lanes[0])
    single = len(set(lanes)) == 1 and lanes[0] is not None
    if first:
        fmt = lanes[0] if single else lanes_format(lanes, rounding=quantizer.rounding,
                                                   overflow=quantizer.overflow)
        return fmt, [] if single else [QuantizeLayer(name, shape=shape, fin=fmt,
                                                     formats=tuple(lanes))]
    if single:
        return fmt, [ActivationLayer(name, function="linear", shape=shape, fin=fmt,
                                     fout=lanes[0])]
    return fmt, [QuantizeLayer(name, shape=shape, fin=fmt, formats=tuple(lanes))]


def _activation(lname, act, fmt, shape):
    if act in (None, "linear"):
        return []
    if act == "relu":
        return [ActivationLayer(lname, function="relu", shape=shape, fin=fmt,
                                fout=relu_format(fmt))]
    raise UnsupportedLayerError(f"Layer {lname!r}: activation {act!r} is not supported in an "
                                f"HGQ2 model; use relu or linear")


def _check_layer(cls, lname, cfg):
    if cls not in LAYERS:
        raise UnsupportedLayerError(f"Layer {lname!r}: HGQ2 model layer {cls!r} is not "
                                    f"supported (supported: {', '.join(LAYERS[:7])}, "
                                    f"Dropout)")
    dtype = cfg.get("dtype")
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if policy not in (None, "float32"):
        raise UnsupportedLayerError(f"Layer {lname!r}: dtype policy {policy!r} is not "
                                    f"supported; HGQ2 layers import in float32")


def _weights(store, lname, cfg, names, trainable):
    """Kernel (and bias) of a QDense/QConv2D quantized as HGQ2 does: ``{name: values}``."""
    w = store.get(lname, names)
    out = {}
    for name, path in (("kernel", "kq/quantizer"), ("bias", "bq/quantizer")):
        if name in names:
            q = _quantizer(store, lname, path, cfg.get(f"{path[0]}q_conf") or {}, trainable)
            out[name] = q.apply(w[name])
    return out


def build_hgq2(name, config, store, *, input_format=None):
    """The quantized IR of an HGQ2 model (see the module docstring).

    Parameters
    ----------
    config : dict
        The Keras 3 model config.
    store : Keras3Weights
        Its weights.
    input_format : FixedFormat, optional
        Input format when the first layer does not quantize its input (default
        :data:`~nnfab.gen.importers._common.DEFAULT_INPUT_FORMAT`).

    Raises
    ------
    UnsupportedLayerError
        For layers, modes and settings outside the module docstring's list, naming the layer.
    ModelError
        For a config or weights file that does not hold what the config says.
    """
    if not hasattr(store, "variables"):
        raise ModelError(f"Model {name!r}: HGQ2 models are read from Keras 3 .keras files")
    layers = keras_layers(config)
    shape = fmt = model_shape = model_format = None
    out = []
    for cls, cfg in layers:
        lname = cfg.get("name", cls)
        _check_layer(cls, lname, cfg)
        if cls == "InputLayer":
            dims = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            shape = model_shape = tuple(int(v) for v in dims[1:])
            continue
        if shape is None:
            raise ModelError(f"Layer {lname!r}: HGQ2 model has no InputLayer before it")
        if cls in SKIPPED_LAYERS:
            continue
        first = model_format is None
        new = []
        if cls == "Quantizer":
            q = _quantizer(store, lname, "quantizer", cfg.get("config") or {})
            fmt, new = _datalane(lname, q, fmt, shape, first)
        elif cls in ("QDense", "QConv2D"):
            if cfg.get("enable_iq", True):
                q = _quantizer(store, lname, "iq/quantizer", cfg.get("iq_conf") or {})
                fmt, new = _datalane(f"{lname}_iq", q, fmt, shape, first)
            elif first:
                fmt = input_format or DEFAULT_INPUT_FORMAT
            in_fmt = new[-1].output_format if new else fmt
            in_shape = tuple(new[-1].output_shape) if new else shape
            new += _weighted(cls, lname, cfg, store, in_fmt, in_shape,
                             bool(cfg.get("trainable", True)))
            if cfg.get("enable_oq", False):
                q = _quantizer(store, lname, "oq/quantizer", cfg.get("oq_conf") or {})
                new += _datalane(f"{lname}_oq", q, new[-1].output_format,
                                 tuple(new[-1].output_shape), False)[1]
        elif first:
            raise UnsupportedLayerError(f"Layer {lname!r}: an HGQ2 model nnfab imports starts "
                                        f"with a QDense, QConv2D or Quantizer layer, not a "
                                        f"{cls!r} layer")
        elif cls == "Flatten":
            if len(shape) > 1:
                new = [FlattenLayer(lname, shape=shape, fmt=fmt)]
        else:
            if cls == "ReLU" and any(cfg.get(key) not in (None, 0, 0.0) for key in
                                     ("max_value", "negative_slope", "threshold")):
                raise UnsupportedLayerError(f"Layer {lname!r}: ReLU with max_value, "
                                            f"negative_slope or threshold is not supported; "
                                            f"nnfab imports the plain ReLU")
            new = _activation(lname, "relu" if cls == "ReLU" else cfg.get("activation"), fmt,
                              shape)
        if first:
            model_format = fmt
        for layer in new:
            out.append(layer)
            fmt, shape = layer.output_format, tuple(layer.output_shape)
    if model_format is None:
        raise ModelError(f"Model {name!r}: no quantized layer")
    return Model(name, model_shape, model_format, tuple(out))


def _weighted(cls, lname, cfg, store, fmt, shape, trainable):
    """The QDense or QConv2D of a quantized input of ``fmt`` and ``shape``, then its
    activation (fused into a convolution)."""
    use_bias = cfg.get("use_bias", True)
    names = ["kernel"] + (["bias"] if use_bias else [])
    act = cfg.get("activation")
    if act not in (None, "linear", "relu"):
        _activation(lname, act, fmt, shape)  # raises, naming the layer
    if cls == "QDense":
        if len(shape) != 1:
            raise UnsupportedLayerError(f"Layer {lname!r}: QDense on input of shape {shape}; "
                                        f"nnfab imports QDense on vectors (Flatten before it)")
        w = _weights(store, lname, cfg, names, trainable)
        if w["kernel"].ndim != 2 or w["kernel"].shape[0] != shape[0]:
            raise ShapeError(f"Layer {lname!r}: kernel of shape {w['kernel'].shape} does not "
                             f"take {shape[0]} inputs")
        w_fmt, w_codes = exact(w["kernel"].T, lname, "weights")
        b_fmt, b_codes = exact(w["bias"], lname, "biases") if use_bias else (None, None)
        layer = dense_layer(lname, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                            bias_format=b_fmt, input_format=fmt)
        return [layer] + _activation(f"{lname}_relu", act, layer.output_format,
                                     tuple(layer.output_shape))
    _, strides, padding = window_geometry(cls, cfg, lname, shape)
    w = _weights(store, lname, cfg, names, trainable)
    w_fmt, w_codes = exact(conv_kernel(w["kernel"], False, lname, shape), lname, "weights")
    b_fmt, b_codes = exact(w["bias"], lname, "biases") if use_bias else (None, None)
    return [conv_layer(lname, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                       bias_format=b_fmt, input_shape=shape, input_format=fmt, strides=strides,
                       padding=padding, activation="relu" if act == "relu" else None)]
