"""HGQ proxy models: Keras ``.h5`` files with ``FixedPointQuantizer`` layers (HGQ 0.2).

A ``FixedPointQuantizer`` holds, per element of its tensor (or one value for all, shape
``[1]``), ``bits`` (total, sign included), ``integers`` (integer bits, sign included) and
``keep_negative``, with one rounding mode (``RND``) and overflow mode (``SAT``) for the layer:
element ``j`` is ``fixed<bits[j], integers[j], RND, SAT>`` (``ufixed`` without
``keep_negative``); zero bits give 0. Weights of a proxy model are stored already quantized, so
they are taken as exact codes.

The IR: the first quantizer sets the input format (the common format of its elements) and
becomes a :class:`~nnfab.ir.QuantizeLayer`; a quantizer with one format after a
``Dense`` becomes that dense layer's output format (so the dense layer's output is HGQ's
``<dense>_quantizer`` tensor); per-element quantizers become QuantizeLayers of their own name.
"""

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat

from nnfab.ir import ActivationLayer, Model, SoftmaxLayer
from nnfab.ir import QuantizeLayer
from nnfab.ir.quantize import lanes_format
from ._common import SOFTMAX_FORMAT, dense_layer, exact, relu_format

__all__ = ["build_hgq", "quantizer_formats"]


def quantizer_formats(lname, cfg, arrays, n):
    """Per-element formats of a FixedPointQuantizer over ``n`` lanes (None: zero bits).

    Raises
    ------
    UnsupportedLayerError
        For an unknown rounding or overflow mode, or a shape other than one value or one per
        lane.
    """
    rounding, overflow = cfg.get("RND", "TRN"), cfg.get("SAT", "WRAP")
    try:
        FixedFormat(2, 1, rounding=rounding, overflow=overflow)
    except (TypeError, ValueError):
        raise UnsupportedLayerError(f"Layer {lname!r}: quantizer modes RND={rounding!r}, "
                                    f"SAT={overflow!r} are not supported; use ap_fixed modes "
                                    f"(TRN, RND, RND_CONV, ...; WRAP, SAT, SAT_SYM)") from None
    bits, integers, keep = (np.asarray(arrays[k]).reshape(-1).astype(np.int64)
                            for k in ("bits", "integers", "keep_negative"))
    if not (bits.size == integers.size == keep.size) or bits.size not in (1, n):
        raise UnsupportedLayerError(f"Layer {lname!r}: quantizer of {bits.size} elements over "
                                    f"{n} values; nnfab takes one format or one per element")
    formats = []
    for b, i, k in zip(bits.tolist(), integers.tolist(), keep.tolist()):
        if b < 0:
            raise ModelError(f"Layer {lname!r}: quantizer bit width {b} is negative")
        formats.append(None if b == 0 else FixedFormat(b, i, signed=bool(k), rounding=rounding,
                                                       overflow=overflow))
    if len(formats) == 1:
        formats = formats * n
    return formats


def build_hgq(name, layers, store):
    """The quantized IR of an HGQ proxy model (see the module docstring)."""
    shape = fmt = None
    input_format, out = None, []
    for cls, cfg in layers:
        lname = cfg.get("name", cls)
        if cls == "InputLayer":
            shape = tuple(int(v) for v in (cfg.get("batch_input_shape")
                                           or cfg.get("batch_shape"))[1:])
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Layer {lname!r}: input of shape {shape}; the HGQ "
                                            f"importer takes vector inputs")
            continue
        if shape is None:
            raise ModelError(f"Layer {lname!r}: HGQ model has no InputLayer before it")
        if cls == "FixedPointQuantizer":
            arrays = store.get(lname, ["bits", "integers", "keep_negative"])
            formats = quantizer_formats(lname, cfg, arrays, shape[-1])
            if input_format is None:
                input_format = fmt = lanes_format(formats, rounding=cfg.get("RND", "TRN"),
                                                   overflow=cfg.get("SAT", "WRAP"))
                if all(f == fmt for f in formats):
                    continue
            elif len(set(formats)) == 1 and formats[0] is not None and out and \
                    out[-1].kind == "dense" and out[-1].output_format == out[-1].spec.accumulator:
                d = out.pop()
                s = d.spec
                out.append(dense_layer(d.name, weights=s.weights, weight_format=s.weight_format,
                                       biases=s.biases, bias_format=s.bias_format,
                                       input_format=s.input_format, output_format=formats[0]))
                fmt = formats[0]
                continue
            new = [QuantizeLayer(lname, shape=shape, fin=fmt, formats=tuple(formats))]
        elif input_format is None:
            raise UnsupportedLayerError(f"Layer {lname!r}: an HGQ proxy model must start with a "
                                        f"FixedPointQuantizer, not a {cls!r} layer")
        elif cls == "Dense":
            use_bias = cfg.get("use_bias", True)
            w = store.get(lname, ["kernel"] + (["bias"] if use_bias else []))
            if w["kernel"].ndim != 2 or w["kernel"].shape[0] != shape[-1]:
                raise ShapeError(f"Layer {lname!r}: kernel of shape {w['kernel'].shape} does not "
                                 f"take {shape[-1]} inputs")
            w_fmt, w_codes = exact(w["kernel"].T, lname, "weights")
            b_fmt, b_codes = exact(w["bias"], lname, "biases") if use_bias else (None, None)
            new = [dense_layer(lname, weights=w_codes, weight_format=w_fmt, biases=b_codes,
                               bias_format=b_fmt, input_format=fmt)]
            if cfg.get("activation") not in (None, "linear"):
                new.append(_activation(f"{lname}_{cfg['activation']}", cfg["activation"],
                                       new[0].output_format, new[0].output_shape))
        elif cls == "Activation":
            new = [_activation(lname, cfg.get("activation"), fmt, shape)]
        elif cls in ("Dropout", "Flatten") and len(shape) == 1:
            continue
        else:
            raise UnsupportedLayerError(f"Layer {lname!r}: layer {cls!r} is not supported in an "
                                        f"HGQ proxy model (supported: Dense, Activation, "
                                        f"FixedPointQuantizer)")
        for layer in new:
            out.append(layer)
            fmt, shape = layer.output_format, tuple(layer.output_shape)
    if input_format is None:
        raise ModelError(f"Model {name!r}: no FixedPointQuantizer layer")
    return Model(name, _first_shape(layers), input_format, tuple(out))


def _first_shape(layers):
    for cls, cfg in layers:
        if cls == "InputLayer":
            return tuple(int(v) for v in (cfg.get("batch_input_shape")
                                          or cfg.get("batch_shape"))[1:])
    raise ModelError("HGQ model has no InputLayer")


def _activation(lname, act, fmt, shape):
    if act == "relu":
        return ActivationLayer(lname, function="relu", shape=shape, fin=fmt,
                               fout=relu_format(fmt))
    if act == "linear":
        return ActivationLayer(lname, function="linear", shape=shape, fin=fmt, fout=fmt)
    if act == "softmax":
        return SoftmaxLayer(lname, n=shape[-1], fin=fmt, fout=SOFTMAX_FORMAT)
    raise UnsupportedLayerError(f"Layer {lname!r}: activation {act!r} is not supported in an "
                                f"HGQ proxy model; use relu, linear or softmax")
