"""The ``recurrent`` layer kind: SimpleRNN, LSTM and GRU (``reset_after`` true or false)
layers with Keras' equations and gate order (:class:`nnfab.recurrent.RecurrentSpec`), built by
:class:`~nnfab.hdl.recurrent.RecurrentEngine`.

A sequence tensor has shape ``(n_steps, n_in)`` and streams one time step (``n_in`` lanes) per
transfer; the layer's output is ``(n_steps, units)`` with ``return_sequences``, else the last
state ``(units,)``. The state starts at zero for every sequence.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.recurrent import CELLS, N_GATES, RecurrentSpec, cell_lanes_for
from nnfab.tables import sigmoid_table, tanh_table

from .activation import FLOAT_ACTIVATIONS
from .dense import check_reuse_factor, pruned_multipliers
from .calibrate import fit_reuse, format_for, named_spec, nearest_codes
from .float_layer import FloatLayer, float_array
from .model import Layer
from .native_keys import ARRAY, FORMAT, OPTIONAL_FORMAT, PARAMS, REUSE, TABLE, string
from .native_params import param_from_json, param_to_json
from .registry import register

__all__ = ["RecurrentLayer", "FloatRecurrent"]

_OPTIONAL_ARRAY = {**ARRAY, "type": ["string", "null"],
                   "accepted": "the name of an array, or null"}
_FORMATS = ("weight_format", "recurrent_weight_format", "bias_format", "preact_format",
            "gate_format", "candidate_format", "cell_format", "accumulator_format",
            "reset_product_format", "feedback_format", "cell_feedback_format")
#: Activations a recurrent layer takes (table-free ones or sigmoid/tanh with their tables).
ACTIVATIONS = ("linear", "relu", "hard_sigmoid", "hard_tanh", "sigmoid", "tanh")


def _check_activations(name, activation, recurrent_activation):
    for what, value in (("activation", activation),
                        ("recurrent activation", recurrent_activation)):
        if value not in ACTIVATIONS:
            raise UnsupportedLayerError(
                f"Layer {name!r}: {what} {value!r} is not supported in a recurrent layer; use "
                f"one of {', '.join(ACTIVATIONS)}")


@register
@dataclass(frozen=True)
class RecurrentLayer(Layer):
    """A recurrent layer (:class:`~nnfab.recurrent.RecurrentSpec`) with the ``reuse_factor``
    of its step's dense engine (dividing ``n_in + units``) and ``cell_lanes``, the units its
    cell update handles per cycle (1 to ``units``; None: ``ceil(units / reuse_factor)``, see
    :func:`nnfab.recurrent.cell_lanes_for`); the step takes ``passes * (dense latency +
    ceil(units / cell_lanes))`` cycles (:class:`~nnfab.hdl.recurrent.RecurrentEngine`)."""

    kind: ClassVar[str] = "recurrent"
    native_keys: ClassVar[dict] = {
        "cell": {"enum": list(CELLS), "accepted": ", ".join(f'"{c}"' for c in CELLS)},
        "weights": ARRAY, "recurrent_weights": ARRAY, "biases": _OPTIONAL_ARRAY,
        "recurrent_biases": _OPTIONAL_ARRAY,
        **{key: OPTIONAL_FORMAT for key in _FORMATS}, "output_format": FORMAT,
        "activation": string("the name of an activation function"),
        "recurrent_activation": string("the name of an activation function"),
        "sigmoid_table": TABLE, "tanh_table": TABLE,
        "hard_sigmoid_slope": {**PARAMS["properties"]["slope"],
                               "type": ["object", "null"]},
        "return_sequences": {"type": "boolean", "accepted": "true or false"},
        "reset_after": {"type": "boolean", "accepted": "true or false"},
        "reuse_factor": REUSE,
        "cell_lanes": {**REUSE, "type": ["integer", "null"],
                       "accepted": f"{REUSE['accepted']}, or null (the default)"}}
    required_keys: ClassVar[tuple] = ("cell", "weights", "recurrent_weights")
    spec: RecurrentSpec = None
    reuse_factor: int = 1
    cell_lanes: int | None = None

    def __post_init__(self):
        if not isinstance(self.spec, RecurrentSpec):
            raise ModelError(f"Layer {self.name!r}: recurrent layer needs a RecurrentSpec, "
                             f"not {self.spec!r}")
        check_reuse_factor(self.name, self.reuse_factor, self.spec.n_in + self.spec.units,
                           "n_in + units", self.spec.dense_spec.n_out, "its pre-activations")
        try:
            cell_lanes_for(self.spec.units, self.reuse_factor, self.cell_lanes)
        except ValueError as error:
            raise ModelError(f"Layer {self.name!r}: {error}") from None

    @property
    def lanes(self):
        """The cell update's lanes: ``cell_lanes``, or its default from the reuse factor."""
        return cell_lanes_for(self.spec.units, self.reuse_factor, self.cell_lanes)

    input_shape = property(lambda self: self.spec.input_shape)
    output_shape = property(lambda self: self.spec.output_shape)
    input_format = property(lambda self: self.spec.input_format)
    output_format = property(lambda self: self.spec.state_format)

    @property
    def n_multipliers(self):
        return pruned_multipliers(self.spec.dense_spec.weights, self.reuse_factor)

    def describe(self):
        s = self.spec
        return (f"{s.cell} {s.n_in}→{s.units} over {s.n_steps} steps"
                f"{', sequences' if s.return_sequences else ''}, preact {s.preact_format}, "
                f"state {s.state_format}, R={self.reuse_factor}, {self.lanes} cell lanes")

    @classmethod
    def from_native(cls, e):
        formats = {key: e.format(key) for key in _FORMATS}
        if e.format("output_format") is None or formats["weight_format"] is None:
            raise ModelError(f"{e.where}: a quantized recurrent layer needs \"weight_format\" "
                             f"and \"output_format\"")
        if len(e.shape) != 2:
            raise ShapeError(f"{e.where}: a recurrent layer reads sequences (n_steps, n_in), "
                             f"not shape {e.shape}")
        tables = {key: param_from_json("table", e.get(key), e.where)
                  for key in ("sigmoid_table", "tanh_table") if e.get(key) is not None}
        if e.get("hard_sigmoid_slope") is not None:
            tables["hard_sigmoid_slope"] = param_from_json("slope", e.get("hard_sigmoid_slope"),
                                                           e.where)
        spec = e.spec(
            RecurrentSpec, e.get("cell"), e.codes("weights", formats["weight_format"]),
            e.codes("recurrent_weights", formats["recurrent_weight_format"]),
            e.codes("biases", formats["bias_format"], required=False), e.shape[0],
            bool(e.get("return_sequences", False)), e.fmt,
            formats["weight_format"], formats["recurrent_weight_format"],
            formats["preact_format"], e.format("output_format"),
            bias_format=formats["bias_format"], gate_format=formats["gate_format"],
            candidate_format=formats["candidate_format"], cell_format=formats["cell_format"],
            recurrent_biases=e.codes("recurrent_biases", formats["bias_format"],
                                     required=False),
            activation=e.get("activation", "tanh"),
            recurrent_activation=e.get("recurrent_activation", "sigmoid"),
            accumulator_format=formats["accumulator_format"],
            reset_product_format=formats["reset_product_format"],
            feedback_format=formats["feedback_format"],
            cell_feedback_format=formats["cell_feedback_format"],
            reset_after=bool(e.get("reset_after", True)), **tables)
        if spec.n_in != e.shape[1]:
            raise ShapeError(f"{e.where}: weights of shape {spec.weights.shape} do not take "
                             f"inputs of shape {e.shape}")
        lanes = e.get("cell_lanes")
        return cls(e.name, spec=spec, reuse_factor=int(e.get("reuse_factor", 1)),
                   cell_lanes=None if lanes is None else int(lanes))

    def to_native(self, entry, out):
        s = self.spec
        entry.update(cell=s.cell, return_sequences=s.return_sequences,
                     activation=s.activation, recurrent_activation=s.recurrent_activation)
        if not s.reset_after:
            entry["reset_after"] = False
        for key in ("weights", "recurrent_weights", "biases", "recurrent_biases"):
            out.array(entry, self, key, getattr(s, key))
        for key in _FORMATS:
            value = getattr(s, key)
            entry[key] = None if value is None else str(value)
        entry.update(output_format=str(s.state_format),
                     sigmoid_table=param_to_json(s.sigmoid_table),
                     tanh_table=param_to_json(s.tanh_table), reuse_factor=self.reuse_factor)
        if self.cell_lanes is not None:
            entry["cell_lanes"] = self.cell_lanes
        if s.hard_sigmoid_slope is not None:
            entry["hard_sigmoid_slope"] = param_to_json(s.hard_sigmoid_slope)

    def manifest_row(self, engine):
        s = self.spec
        return dict(cell=s.cell, units=s.units, n_steps=s.n_steps,
                    return_sequences=s.return_sequences, reuse_factor=self.reuse_factor,
                    cell_lanes=engine.cell_lanes,
                    preact_format=str(s.preact_format), state_format=str(s.state_format),
                    **({"accumulator_format": str(s.accumulator_format)}
                       if s.accumulator_format is not None else {}),
                    **({"feedback_format": str(s.feedback_format)}
                       if s.feedback_format is not None else {}),
                    **({"reset_after": s.reset_after} if s.cell == "gru" else {}),
                    **({"reset_product_format": str(s.reset_product_format)}
                       if s.reset_product_format is not None else {}),
                    step_latency=engine.latency,
                    step_initiation_interval=engine.initiation_interval,
                    sequence_latency=engine.sequence_latency,
                    sequence_interval=engine.sequence_interval,
                    shift_add_terms=engine.n_shift_add_terms)


@register
@dataclass(frozen=True, eq=False)
class FloatRecurrent(FloatLayer):
    """Keras' SimpleRNN, LSTM or GRU (``reset_after`` true or false) in float: ``weights`` of
    shape (n_gates * units, n_in) (Keras' kernel transposed), ``recurrent_weights`` (n_gates *
    units, units), ``biases`` (n_gates * units,) and, GRU with ``reset_after`` only,
    ``recurrent_biases``; gate rows in Keras' order (LSTM ``i, f, c, o``; GRU ``z, r, h``).
    Without ``reset_after`` the candidate is ``act(W_h x + U_h (r * h) + b_h)``."""

    kind: ClassVar[str] = "recurrent"
    name: str
    cell: str
    weights: np.ndarray
    recurrent_weights: np.ndarray
    biases: np.ndarray | None = None
    recurrent_biases: np.ndarray | None = None
    return_sequences: bool = False
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True

    def __post_init__(self):
        if self.cell not in CELLS:
            raise UnsupportedLayerError(f"Layer {self.name!r}: cell {self.cell!r} is not "
                                        f"supported; use one of {', '.join(CELLS)}")
        _check_activations(self.name, self.activation, self.recurrent_activation)
        w = float_array(self.weights, self.name, "weights", 2)
        rows = w.shape[0]
        if rows % N_GATES[self.cell]:
            raise ShapeError(f"Layer {self.name!r}: a {self.cell} layer's weights need "
                             f"{N_GATES[self.cell]} * units rows, not {rows}")
        units = rows // N_GATES[self.cell]
        u = float_array(self.recurrent_weights, self.name, "recurrent weights", 2)
        if u.shape != (rows, units):
            raise ShapeError(f"Layer {self.name!r}: recurrent weights must have shape "
                             f"{(rows, units)}, not {u.shape}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "recurrent_weights", u)
        for key in ("biases", "recurrent_biases"):
            if getattr(self, key) is not None:
                b = float_array(getattr(self, key), self.name, key.replace("_", " "), 1)
                if b.shape != (rows,):
                    raise ShapeError(f"Layer {self.name!r}: {key.replace('_', ' ')} must have "
                                     f"shape ({rows},), not {b.shape}")
                object.__setattr__(self, key, b)
        if self.recurrent_biases is not None and self.cell != "gru":
            raise ModelError(f"Layer {self.name!r}: recurrent biases are GRU's, not a "
                             f"{self.cell} layer's")
        if not self.reset_after and self.cell != "gru":
            raise ModelError(f"Layer {self.name!r}: reset_after=False is GRU's, not a "
                             f"{self.cell} layer's")
        if not self.reset_after and self.recurrent_biases is not None:
            raise ModelError(f"Layer {self.name!r}: recurrent biases are a GRU's with "
                             f"reset_after, not without")

    @property
    def units(self):
        return self.recurrent_weights.shape[1]

    def output_shape(self, input_shape):
        if len(input_shape) != 2 or input_shape[1] != self.weights.shape[1]:
            raise ShapeError(f"Layer {self.name!r}: expects sequences of shape (n_steps, "
                             f"{self.weights.shape[1]}), not {tuple(input_shape)}")
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def run(self, x):
        """``(output, internals)``: the forward pass over ``x`` (batch, n_steps, n_in) and the
        arrays of every step's pre-activations (``"preact"``), LSTM cell state (``"cell"``)
        and GRU-without-``reset_after`` reset products ``r * h`` (``"reset"``), for
        calibration."""
        n, act = self.units, FLOAT_ACTIVATIONS[self.activation]
        rec = FLOAT_ACTIVATIONS[self.recurrent_activation]
        b = np.zeros(len(self.weights)) if self.biases is None else self.biases
        rb = np.zeros(len(self.weights)) if self.recurrent_biases is None \
            else self.recurrent_biases
        h = np.zeros((x.shape[0], n))
        c = np.zeros_like(h)
        states, preacts, cells, resets = [], [], [], []
        for t in range(x.shape[1]):
            px, ph = x[:, t] @ self.weights.T + b, h @ self.recurrent_weights.T + rb
            if self.cell == "simple_rnn":
                p = px + ph
                h = act(p)
            elif self.cell == "lstm":
                p = px + ph
                i, f, g, o = rec(p[:, :n]), rec(p[:, n:2 * n]), act(p[:, 2 * n:3 * n]), \
                    rec(p[:, 3 * n:])
                c = f * c + i * g
                h = o * act(c)
                cells.append(c)
            elif not self.reset_after:
                p = px + ph
                z, r = rec(p[:, :n]), rec(p[:, n:2 * n])
                q = r * h
                p[:, 2 * n:] = px[:, 2 * n:] + q @ self.recurrent_weights[2 * n:].T
                h = z * h + (1 - z) * act(p[:, 2 * n:])
                resets.append(q)
            else:
                p = np.concatenate([px[:, :2 * n] + ph[:, :2 * n], px[:, 2 * n:],
                                    ph[:, 2 * n:]], axis=1)
                z, r = rec(p[:, :n]), rec(p[:, n:2 * n])
                candidate = px[:, 2 * n:] + r * ph[:, 2 * n:]
                p = np.concatenate([p, candidate], axis=1)
                h = z * h + (1 - z) * act(candidate)
            preacts.append(p)
            states.append(h)
        out = np.stack(states, axis=1) if self.return_sequences else h
        return out, {"preact": np.stack(preacts), "cell": np.stack(cells) if cells else None,
                     "reset": np.stack(resets) if resets else None}

    def forward(self, x):
        return self.run(x)[0]

    @classmethod
    def from_native(cls, e):
        return cls(e.name, e.get("cell"), e.floats("weights"), e.floats("recurrent_weights"),
                   e.floats("biases", required=False),
                   e.floats("recurrent_biases", required=False),
                   bool(e.get("return_sequences", False)), e.get("activation", "tanh"),
                   e.get("recurrent_activation", "sigmoid"), bool(e.get("reset_after", True)))

    def to_native(self, entry, out):
        entry.update(cell=self.cell, return_sequences=self.return_sequences,
                     activation=self.activation, recurrent_activation=self.recurrent_activation)
        if not self.reset_after:
            entry["reset_after"] = False
        for key in ("weights", "recurrent_weights", "biases", "recurrent_biases"):
            out.array(entry, self, key, getattr(self, key))

    def quantize(self, s):
        """Weights, recurrent weights and biases each in their calibrated ``weight_bits`` /
        ``bias_bits`` format; pre-activations, the LSTM cell and (GRU without ``reset_after``)
        the reset products ``r * h`` calibrated on the float forward pass over the
        calibration inputs with 2 bits more than ``activation_bits``;
        sigmoid outputs ``ufixed<B,1>``, tanh outputs and the state ``fixed<B,2>`` (as the
        ``activation`` rule); tables of 256 entries in ``fixed<B+2,2,RND,SAT>``."""
        config, where, bits = s.config, f"Layer {self.name!r}:", s.config.activation_bits
        _, internals = self.run(s.in_values[0])
        w_fmt = format_for(self.weights, config.weight_bits, where=f"{where} weights")
        u_fmt = format_for(self.recurrent_weights, config.weight_bits,
                           where=f"{where} recurrent weights")
        all_biases = [b for b in (self.biases, self.recurrent_biases) if b is not None]
        b_fmt = format_for(np.concatenate(all_biases), config.bias_bits,
                           where=f"{where} biases") if all_biases else None

        def calibrated(values, what):
            return format_for(values, bits + 2, headroom=config.headroom_bits,
                              where=f"{where} {what}", **s.modes)

        def bounded(function):
            if function in ("sigmoid", "hard_sigmoid"):
                return FixedFormat(bits, 1, signed=False, **s.modes)
            if function in ("tanh", "hard_tanh"):
                return FixedFormat(bits, 2, **s.modes)
            return None

        table_format = FixedFormat(bits + 2, 2, rounding="RND", overflow="SAT")
        state = bounded(self.activation) if self.cell == "simple_rnn" else \
            FixedFormat(bits, 2, **s.modes)
        spec = named_spec(
            self.name, RecurrentSpec, self.cell, nearest_codes(self.weights, w_fmt),
            nearest_codes(self.recurrent_weights, u_fmt),
            None if self.biases is None else nearest_codes(self.biases, b_fmt),
            s.shape[0], self.return_sequences, s.fmt, w_fmt, u_fmt,
            calibrated(internals["preact"], "pre-activations"),
            state or s.output_format(), bias_format=b_fmt,
            gate_format=bounded(self.recurrent_activation) if self.cell != "simple_rnn"
            else None,
            candidate_format=bounded(self.activation) if self.cell != "simple_rnn" else None,
            cell_format=calibrated(internals["cell"], "cell states")
            if self.cell == "lstm" else None,
            recurrent_biases=None if self.recurrent_biases is None
            else nearest_codes(self.recurrent_biases, b_fmt),
            activation=self.activation, recurrent_activation=self.recurrent_activation,
            sigmoid_table=sigmoid_table(table_size=256, table_format=table_format),
            tanh_table=tanh_table(table_size=256, table_format=table_format),
            reset_product_format=None if self.reset_after
            else calibrated(internals["reset"], "reset products"),
            reset_after=self.reset_after)
        return RecurrentLayer(self.name, spec=spec,
                              reuse_factor=fit_reuse(s.reuse_factor, spec.n_in + spec.units,
                                                     spec.dense_spec.n_out))
