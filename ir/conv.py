"""The ``conv2d`` layer kind: 2-D, 1-D (height 1) and depthwise convolutions with an
optional fused activation.

Images are channels-last ``(H, W, C)`` frames streamed one pixel (``C`` lanes) per
transfer. The layer wraps a specification of :mod:`nnfab.conv_layers`.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.conv_layers import Conv2DSpec, DepthwiseConv2DSpec
from nnfab.errors import ModelError, ShapeError

from .calibrate import fit_reuse, named_spec, nearest_codes
from .dense import check_fabric_multipliers, save_weighted, weighted_entry, weighted_row
from .float_layer import FloatLayer, check_float_bias, float_array, pads, windows
from .model import Layer
from .native_form import pair_json
from .native_keys import OPTIONAL_FORMAT, PADDING, PAIR, PARAMS, WEIGHTED, string
from .native_params import param_to_json
from .registry import register

__all__ = ['Conv2DLayer', 'FloatConv2D']


def _valid_reuse(n_window, reuse_factor, name):
    if not isinstance(reuse_factor, int) or reuse_factor < 1 or n_window % reuse_factor:
        valid = [r for r in range(1, n_window + 1) if n_window % r == 0]
        raise ModelError(f"Layer {name!r}: reuse factor must divide the window size "
                         f"{n_window} (one of {', '.join(map(str, valid))}), "
                         f"not {reuse_factor!r}")

def _save_geometry(layer, spec, entry, out):
    save_weighted(layer, spec, entry, out)
    entry.update(strides=pair_json(spec.strides), padding=spec.padding)


@register
@dataclass(frozen=True)
class Conv2DLayer(Layer):
    """A 2-D, 1-D (height 1) or depthwise convolution with an optional fused activation,
    built by :class:`~nnfab.hdl.conv.ConvEngine`.

    ``adder_graph``: None, or the window product as one adder graph
    (:class:`~nnfab.hdl.shift_add.ShiftAddDense`, set by
    :class:`nnfab.gen.passes.FuseShiftAdd`): its keyword arguments as sorted ``(name,
    value)`` pairs. Like a fused dense layer it is a build decision: the native format does
    not store it, and a build fuses the reloaded layer again. So is ``fabric_multipliers``
    (see :class:`~nnfab.ir.DenseLayer`)."""

    kind: ClassVar[str] = "conv2d"
    native_keys: ClassVar[dict] = {
        **WEIGHTED, "strides": PAIR, "padding": PADDING,
        "activation": {**string("the name of an activation function"),
                       "type": ["string", "null"]},
        "activation_format": OPTIONAL_FORMAT, "activation_params": PARAMS,
        "pad_code": {"type": "integer", "accepted": "an integer code of the input format"}}
    required_keys: ClassVar[tuple] = ("weights",)
    spec: Conv2DSpec = None
    reuse_factor: int = 1
    adder_graph: tuple | None = None
    fabric_multipliers: int = 0

    def __post_init__(self):
        if not isinstance(self.spec, Conv2DSpec):
            raise ModelError(f"Layer {self.name!r}: needs a Conv2DSpec, not {self.spec!r}")
        _valid_reuse(self.spec.n_window, self.reuse_factor, self.name)
        if self.adder_graph is not None and self.reuse_factor != 1:
            raise ModelError(f"Layer {self.name!r}: an adder-graph convolution needs reuse "
                             f"factor 1, not {self.reuse_factor}")
        check_fabric_multipliers(self)

    input_shape = property(lambda self: tuple(self.spec.input_shape))
    output_shape = property(lambda self: tuple(self.spec.output_shape))
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.result_format)


    def describe(self):
        s = self.spec
        fabric = f", {self.fabric_multipliers} LUT multipliers" if self.fabric_multipliers \
            else ""
        return (f"{s.kernel_size} kernel, {s.n_filters} filters, stride {s.strides}, "
                f"{s.padding}{f' (pad code {s.pad_code})' if s.pad_code else ''}, "
                f"w {s.weight_format}, R={self.reuse_factor}"
                f"{'; shift-add adder graph' if self.adder_graph is not None else ''}"
                f"{fabric}")

    @classmethod
    def from_native(cls, e):
        w_fmt, b_fmt, out_fmt, weights, biases = weighted_entry(e, "conv2d")
        activation = e.get("activation")
        # Depthwise kernels are (kh, kw, C): one kernel per channel.
        make = DepthwiseConv2DSpec if weights.ndim == 3 else Conv2DSpec
        spec = e.spec(make, weights, biases, e.shape, e.fmt, w_fmt, out_fmt,
                      strides=e.pair("strides", (1, 1)), padding=e.get("padding", "valid"),
                      bias_format=b_fmt, accumulator_format=e.accumulator(),
                      activation=activation, activation_format=e.format("activation_format"),
                      activation_params=e.params("activation_params") if activation else None,
                      pad_code=int(e.get("pad_code", 0)))
        return cls(e.name, spec=spec, reuse_factor=int(e.get("reuse_factor", 1)))

    def to_native(self, entry, out):
        spec = self.spec
        _save_geometry(self, spec, entry, out)
        if spec.pad_code:
            entry["pad_code"] = spec.pad_code
        if spec.activation:
            # A fused activation is part of the layer: without it a reloaded model would be
            # another network.
            entry.update(activation=spec.activation,
                         activation_format=str(spec.activation_format))
            if spec.activation_params:
                entry["activation_params"] = {k: param_to_json(v)
                                              for k, v in spec.activation_params.items()}

    def manifest_row(self, engine):
        row = weighted_row(self)
        if engine.adder_graph:
            graph = engine.dense
            row.update(adder_graph=True, shift_add_terms=graph.n_shift_add_terms,
                       adders=graph.n_adders, adder_levels=graph.levels,
                       clock_mhz=graph.clock_mhz,
                       estimated_f_max_mhz=round(graph.estimated_f_max_hz / 1e6, 1))
        return row


@register
@dataclass(frozen=True, eq=False)
class FloatConv2D(FloatLayer):
    """2-D convolution, channels-last; ``weights`` of shape (n_filters, kh, kw, C_in)."""

    kind: ClassVar[str] = "conv2d"
    name: str
    weights: np.ndarray
    biases: np.ndarray | None = None
    strides: tuple = (1, 1)
    padding: str = "valid"

    def __post_init__(self):
        object.__setattr__(self, "weights", float_array(self.weights, self.name, "weights", 4))
        check_float_bias(self)
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.padding not in ("valid", "same"):
            raise ModelError(f"Layer {self.name!r}: padding must be 'valid' or 'same', not "
                             f"{self.padding!r}")

    @property
    def kernel(self):
        return self.weights.shape[1:3]

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] != self.weights.shape[3]:
            raise ShapeError(f"Layer {self.name!r}: expects (H, W, {self.weights.shape[3]}) "
                             f"frames, not {tuple(input_shape)}")
        p = pads(input_shape, self.kernel, self.strides, self.padding)
        h = (input_shape[0] + sum(p[0]) - self.kernel[0]) // self.strides[0] + 1
        w = (input_shape[1] + sum(p[1]) - self.kernel[1]) // self.strides[1] + 1
        if h < 1 or w < 1:
            raise ShapeError(f"Layer {self.name!r}: kernel {self.kernel} is larger than the "
                             f"padded input {tuple(input_shape)}")
        return (h, w, self.weights.shape[0])

    def forward(self, x):
        win = windows(x, self.kernel, self.strides,
                      pads(x.shape[1:], self.kernel, self.strides, self.padding))
        y = np.einsum("bhwijc,fijc->bhwf", win, self.weights)
        return y + self.biases if self.biases is not None else y

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.floats("weights"), e.floats("biases", required=False),
                   strides=e.pair("strides", (1, 1)), padding=e.get("padding", "valid"))

    def to_native(self, entry, out):
        _save_geometry(self, self, entry, out)

    def quantize(self, s):
        w_fmt, b_fmt, biases = s.weight_formats()
        spec = named_spec(self.name, Conv2DSpec, nearest_codes(self.weights, w_fmt), biases,
                          s.shape, s.fmt, w_fmt, s.output_format(), strides=self.strides,
                          padding=self.padding, bias_format=b_fmt)
        return Conv2DLayer(self.name, spec=spec,
                           reuse_factor=fit_reuse(s.reuse_factor, spec.n_window))
