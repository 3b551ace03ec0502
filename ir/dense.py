"""The ``dense`` layer kind: a fully connected layer."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import FormatError, ModelError, ShapeError
from nnfab.layers import DenseSpec, reuse_factors

from .calibrate import fit_reuse, named_spec, nearest_codes
from .float_layer import FloatLayer, check_float_bias, float_array
from .model import Layer
from .native_keys import WEIGHTED
from .registry import register

__all__ = ['DenseLayer', 'FloatDense', 'weighted_entry', 'save_weighted', 'weighted_row',
           'check_reuse_factor', 'check_fabric_multipliers', 'pruned_multipliers']


def check_reuse_factor(name, reuse_factor, n, what="n_in", n_out=None, out_what="n_out"):
    """Raise ModelError naming layer ``name`` unless ``reuse_factor`` is one of
    :func:`~nnfab.layers.reuse_factors` of ``n`` inputs and (when given) ``n_out`` outputs;
    ``what`` and ``out_what`` say what they count."""
    valid = reuse_factors(n, n_out)
    if not isinstance(reuse_factor, int) or isinstance(reuse_factor, bool) or \
            reuse_factor not in valid:
        rule = f"divide {what} {n}"
        if n_out is not None:
            rule += f" or be {what} times a divisor of {out_what} {n_out}"
        raise ModelError(f"Layer {name!r}: reuse factor must {rule} (one of "
                         f"{', '.join(map(str, valid))}), not {reuse_factor!r}")


def check_fabric_multipliers(layer):
    """Raise ModelError naming ``layer`` unless its ``fabric_multipliers`` is a non-negative
    integer (the engine checks it against its multipliers)."""
    count = layer.fabric_multipliers
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ModelError(f"Layer {layer.name!r}: fabric multipliers must be a non-negative "
                         f"integer, not {count!r}")


def pruned_multipliers(weights, reuse_factor):
    """Products per cycle of a (n_out, n_in) weight matrix after pruning zero weights: non-zero
    weights per row divided by the reuse factor, rounded up, summed. Above n_in (``R = g *
    n_in``, outputs in g groups) a multiplier serves output ``v`` of every group: one per
    ``v`` whose g rows are not all zero."""
    n_out, n_in = weights.shape
    if reuse_factor > n_in:
        groups = reuse_factor // n_in
        rows = (weights != 0).reshape(groups, n_out // groups, n_in)
        return int(np.count_nonzero(rows.any(axis=(0, 2))))
    nonzero = np.count_nonzero(weights != 0, axis=1)
    return int(np.sum(-(-nonzero // reuse_factor)))


def weighted_entry(e, kind):
    """``(weight format, bias format, output format, weight codes, bias codes or None)`` of a
    quantized dense or conv2d entry."""
    w_fmt, b_fmt, out_fmt = e.format("weight_format"), e.format("bias_format"), \
        e.format("output_format")
    if w_fmt is None or out_fmt is None:
        raise FormatError(f"{e.where}: a quantized {kind} layer needs \"weight_format\" and "
                          f"\"output_format\"")
    return (w_fmt, b_fmt, out_fmt, e.codes("weights", w_fmt),
            e.codes("biases", b_fmt, required=False))


def save_weighted(layer, spec, entry, out):
    """Native keys of a layer with weights: ``spec`` holds them (a float layer is its own)."""
    out.array(entry, layer, "weights", spec.weights)
    out.array(entry, layer, "biases", spec.biases)
    if out.quantized:
        entry.update(weight_format=str(spec.weight_format),
                     bias_format=str(spec.bias_format) if spec.bias_format else None,
                     output_format=str(spec.output_format),
                     accumulator_format=str(spec.accumulator_format)
                     if spec.accumulator_format else None,
                     reuse_factor=layer.reuse_factor)


def weighted_row(layer):
    """Manifest keys of a layer with weights (``spec``) and a reuse factor."""
    spec = layer.spec
    return dict(weight_format=str(spec.weight_format),
                bias_format=str(spec.bias_format) if spec.bias_format else None,
                accumulator_format=str(spec.accumulator), reuse_factor=layer.reuse_factor,
                nonzero_weights=int((spec.weights != 0).sum()), weights=int(spec.weights.size))


@register
@dataclass(frozen=True)
class DenseLayer(Layer):
    """A fully connected layer (:class:`~nnfab.layers.DenseSpec`), built by
    :class:`~nnfab.hdl.dense.DenseEngine` with ``reuse_factor``.

    ``fabric_multipliers``: how many of the engine's multipliers are built from LUTs instead
    of DSP blocks (set by :class:`nnfab.gen.passes.BudgetDspBlocks` for a target device).
    Like fusion it is a build decision: the native format does not store it, and a build for
    a device budgets the reloaded model again."""

    kind: ClassVar[str] = "dense"
    native_keys: ClassVar[dict] = WEIGHTED
    required_keys: ClassVar[tuple] = ("weights",)
    spec: DenseSpec = None
    reuse_factor: int = 1
    fabric_multipliers: int = 0

    def __post_init__(self):
        if not isinstance(self.spec, DenseSpec):
            raise ModelError(f"Layer {self.name!r}: dense layer needs a DenseSpec, "
                             f"not {self.spec!r}")
        check_reuse_factor(self.name, self.reuse_factor, self.spec.n_in,
                           n_out=self.spec.n_out)
        check_fabric_multipliers(self)

    @property
    def input_shape(self):
        return (self.spec.n_in,)

    @property
    def output_shape(self):
        return (self.spec.n_out,)

    @property
    def input_format(self):
        return self.spec.input_format

    @property
    def output_format(self):
        return self.spec.output_format

    @property
    def n_multipliers(self):
        """Products per cycle after pruning zero weights: non-zero weights divided by the
        reuse factor (rounded up per output)."""
        return pruned_multipliers(self.spec.weights, self.reuse_factor)

    def describe(self):
        s = self.spec
        fabric = f", {self.fabric_multipliers} LUT multipliers" if self.fabric_multipliers \
            else ""
        return (f"{s.n_in}→{s.n_out}, w {s.weight_format}, acc {s.accumulator}, "
                f"{s.n_nonzero_weights}/{s.weights.size} non-zero weights, "
                f"R={self.reuse_factor}{fabric}")

    @classmethod
    def from_native(cls, e):
        w_fmt, b_fmt, out_fmt, weights, biases = weighted_entry(e, "dense")
        if weights.ndim != 2 or weights.shape[1:] != e.shape:
            raise ModelError(f"{e.where}: weights of shape {weights.shape} do not take inputs "
                             f"of shape {e.shape} (expected (n_out, "
                             f"{e.shape[0] if e.shape else '?'}))")
        spec = e.spec(DenseSpec, weights, biases, e.fmt, w_fmt, out_fmt, bias_format=b_fmt,
                      accumulator_format=e.accumulator())
        return cls(e.name, spec=spec, reuse_factor=int(e.get("reuse_factor", 1)))

    def to_native(self, entry, out):
        save_weighted(self, self.spec, entry, out)

    def manifest_row(self, engine):
        return {**weighted_row(self), "shift_add_terms": engine.n_shift_add_terms}


@register
@dataclass(frozen=True, eq=False)
class FloatDense(FloatLayer):
    """``y = W @ x + b``; ``weights`` of shape (n_out, n_in)."""

    kind: ClassVar[str] = "dense"
    name: str
    weights: np.ndarray
    biases: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "weights", float_array(self.weights, self.name, "weights", 2))
        check_float_bias(self)

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.weights.shape[1],):
            raise ShapeError(f"Layer {self.name!r}: expects {self.weights.shape[1]} inputs, "
                             f"not shape {tuple(input_shape)}")
        return (self.weights.shape[0],)

    def forward(self, x):
        y = x @ self.weights.T
        return y + self.biases if self.biases is not None else y

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.floats("weights"), e.floats("biases", required=False))

    def to_native(self, entry, out):
        save_weighted(self, self, entry, out)

    def quantize(self, s):
        w_fmt, b_fmt, biases = s.weight_formats()
        spec = named_spec(self.name, DenseSpec, nearest_codes(self.weights, w_fmt), biases,
                          s.fmt, w_fmt, s.output_format(), bias_format=b_fmt)
        return DenseLayer(self.name, spec=spec, reuse_factor=fit_reuse(s.reuse_factor,
                                                                       spec.n_in, spec.n_out))
