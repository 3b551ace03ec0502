"""The ``activation`` layer kind: an elementwise activation function."""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.tables import SELU_ALPHA, SELU_SCALE, elu_table

from .calibrate import format_for, nearest_codes
from .dense import check_fabric_multipliers
from .float_layer import FloatLayer
from .model import Layer
from .native_keys import FORMAT, PARAMS, string
from .native_params import param_to_json
from .registry import register

__all__ = ['ActivationLayer', 'FloatActivation', 'FLOAT_ACTIVATIONS']

#: Float forward pass of each activation function of float models.
FLOAT_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
}


@register
@dataclass(frozen=True)
class ActivationLayer(Layer):
    """An elementwise activation ``function`` (one of
    :data:`nnfab.activation_params.ACTIVATION_KINDS`, parameters as
    :func:`nnfab.activation_params.check_activation` takes them) over tensors of ``shape``.

    ``fabric_multipliers``: of the ``shape[-1]`` constant products of a ``leaky_relu``,
    ``hard_sigmoid`` or ``elu`` (:func:`nnfab.hdl.activations.has_constant_product`), how many
    the engine builds from shift-add terms in LUTs instead of DSP blocks (set by
    :class:`nnfab.gen.passes.BudgetDspBlocks` for a target device). A build decision, like a
    dense layer's: the native format does not store it."""

    kind: ClassVar[str] = "activation"
    native_keys: ClassVar[dict] = {"activation": string("the name of an activation function"),
                                   "output_format": FORMAT, "params": PARAMS}
    required_keys: ClassVar[tuple] = ("activation",)
    function: str = "linear"
    shape: tuple = ()
    fin: FixedFormat = None
    fout: FixedFormat = None
    params: dict = field(default_factory=dict)
    fabric_multipliers: int = 0

    def __post_init__(self):
        from nnfab.activation_params import check_activation

        try:
            check_activation(self.function, fin=self.fin, fout=self.fout, **dict(self.params))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"Layer {self.name!r}: {exc}") from None
        check_fabric_multipliers(self)
        lanes = self.shape[-1] if self.shape else 1
        if self.fabric_multipliers > lanes:
            raise ModelError(f"Layer {self.name!r}: fabric multipliers must be at most its "
                             f"{lanes} elements, not {self.fabric_multipliers}")

    @property
    def input_shape(self):
        return tuple(self.shape)

    @property
    def output_shape(self):
        return tuple(self.shape)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return self.fout

    def describe(self):
        fabric = f", {self.fabric_multipliers} LUT multipliers" if self.fabric_multipliers \
            else ""
        return f"{self.function}, out {self.fout}{fabric}"

    @classmethod
    def from_native(cls, e):
        return cls(e.name, function=e.get("activation", "linear"), shape=e.shape, fin=e.fmt,
                   fout=e.format("output_format"), params=e.params("params"))

    def to_native(self, entry, out):
        entry["activation"] = self.function
        entry["output_format"] = str(self.fout)
        if self.params:
            entry["params"] = {k: param_to_json(v) for k, v in self.params.items()}

    def manifest_row(self, engine):
        return {"function": self.function}


@register
@dataclass(frozen=True, eq=False)
class FloatActivation(FloatLayer):
    kind: ClassVar[str] = "activation"
    name: str
    function: str

    def __post_init__(self):
        if self.function not in FLOAT_ACTIVATIONS:
            raise UnsupportedLayerError(
                f"Layer {self.name!r}: activation {self.function!r} is not supported; use one "
                f"of {', '.join(sorted(FLOAT_ACTIVATIONS))}")

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        return FLOAT_ACTIVATIONS[self.function](x)

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.get("activation", "linear"))

    def to_native(self, entry, out):
        entry["activation"] = self.function

    def quantize(self, s):
        """Output format by function: linear keeps the input's, (hard) sigmoid is
        ``ufixed<B,1>``, (hard) tanh ``fixed<B,2>``, the others calibrated; ELU and SELU get
        their negative branch as a table."""
        function, params, fmt, config = self.function, {}, s.fmt, s.config
        unsigned = function in ("relu", "sigmoid", "hard_sigmoid")
        if function == "linear":
            out_fmt = fmt
        elif function in ("sigmoid", "hard_sigmoid"):
            out_fmt = FixedFormat(config.activation_bits, 1, signed=False, **s.modes)
        elif function in ("tanh", "hard_tanh"):
            out_fmt = FixedFormat(config.activation_bits, 2, **s.modes)
        else:
            out_fmt = format_for(s.out, config.activation_bits, signed=not unsigned,
                                 headroom=config.headroom_bits,
                                 where=f"Layer {self.name!r}: outputs", **s.modes)
        if function in ("elu", "selu"):
            # Negative branch from a table over [-8, 0) (|entries| < 1.76) with one entry per
            # input code there (at most 1024); positive slope rounded to 17 fraction bits.
            alpha, scale = (SELU_ALPHA, SELU_SCALE) if function == "selu" else (1.0, 1.0)
            table_format = FixedFormat(max(config.activation_bits + 2, 10), 2, rounding="RND")
            table_size = min(1024, max(2, 8 << max(fmt.fraction_width, 0)))
            scale_format = FixedFormat(18, 1, signed=False, rounding="RND")
            params = dict(table=elu_table(alpha=alpha, scale=scale, table_format=table_format,
                                          table_size=table_size),
                          scale=(scale_format, int(nearest_codes(np.array(scale),
                                                                 scale_format))))
            function = "elu"
        return ActivationLayer(self.name, function=function, shape=s.shape, fin=fmt,
                               fout=out_fmt, params=params)
