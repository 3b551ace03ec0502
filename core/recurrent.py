"""Recurrent layer specification: SimpleRNN, LSTM and GRU cells with Keras' equations and gate
order, on integer codes and fixed-point formats, shared by the hardware
(:mod:`nnfab.hdl.recurrent`) and the golden model (:mod:`nnfab.sim.golden.recurrent`).

A layer reads a sequence ``x`` of shape ``(n_steps, n_in)`` from a zero initial state and
returns every step's state ``h_t`` (``return_sequences``, shape ``(n_steps, units)``) or the
last one (shape ``(units,)``). Per step, with ``W`` the kernel, ``U`` the recurrent kernel,
``b`` the bias (rows in Keras' gate order: LSTM ``i, f, c, o``; GRU ``z, r, h``):

- **Pre-activations** ``p = cast(W x_t + U h_{t-1} + b, preact_format)``: exact products and
  sum, one cast. Both products are one :class:`~nnfab.layers.DenseSpec` over the concatenated
  vector ``[x_t, h_{t-1}]`` (:attr:`RecurrentSpec.dense_spec`): ``x`` and ``h`` are shifted
  exactly into their common format, ``W`` and ``U`` into theirs, so the sum is the same
  number. GRU with ``reset_after`` has two rows per unit for its candidate, ``W_h x + b_h``
  and ``U_h h + b_rh``, each cast to ``preact_format``.
- **SimpleRNN** ``h_t = act(p)``, ``act`` the ``activation`` (cast to ``state_format``).
- **LSTM** ``i, f, o = rec(p_i), rec(p_f), rec(p_o)`` in ``gate_format``;
  ``g = act(p_c)`` in ``candidate_format``; ``c_t = cast(f c_{t-1} + i g, cell_format)``;
  ``h_t = cast(o * act(c_t), state_format)``, ``act(c_t)`` in ``candidate_format``.
- **GRU** (``reset_after``, Keras 2's default) ``z, r = rec(p_z), rec(p_r)`` in
  ``gate_format``; ``g = act(cast(p_hx + r * p_hh, preact_format))`` in ``candidate_format``;
  ``h_t = cast(z h_{t-1} + g - z g, state_format)`` (Keras' ``z h + (1 - z) g``). With a
  ``reset_product_format`` the product is cast first: ``cast(p_hx + cast(r * p_hh,
  reset_product_format), preact_format)`` (hls4ml's ``tmpres_state_h``).
- **GRU** ``reset_after=False`` (Keras 1's form, QKeras' and ONNX's default) applies the
  reset gate before the recurrent product: ``z, r`` as above from the first product ``p =
  cast(W x_t + U h_{t-1} + b, preact_format)`` (one bias row, no ``recurrent_biases``);
  ``q = r * h_{t-1}`` (``h_{t-1}`` in ``h_feedback_format``), cast to
  ``reset_product_format`` (None: exact, ``gate_format.mul_format(h_feedback_format)``);
  then the candidate's pre-activation is a second product over ``[x_t, q]`` with the same
  weights, accumulator and cast, ``p'_h = cast(W_h x_t + U_h q + b_h, preact_format)``
  (rows ``h`` of the same :attr:`RecurrentSpec.dense_spec`); ``g = act(p'_h)`` and ``h_t``
  as above.
- With an ``accumulator_format`` (hls4ml's ``accum_t``) the pre-activations are summed as
  hls4ml's ``nnet::dense`` sums: every product and bias cast to it, the sum wrapping in it
  (:class:`~nnfab.layers.DenseSpec` ``accumulator_format``). hls4ml sums ``W x + b`` and
  ``U h + b_r`` in two such accumulators and adds them in a third cast to ``accum_t``; for a
  wrapping ``accum_t`` that is the same number as one accumulator over ``[x_t, h_{t-1}]``
  (two's complement sums are exact modulo ``2**W``), when both biases are codes of it.

With a ``feedback_format`` (QKeras' ``state_quantizer``) the state is cast to it before it
is fed back: ``h_{t-1}`` in the next step's products and GRU's ``z h_{t-1}`` is
``cast(h_{t-1}, feedback_format)``, while the output is ``h_t`` itself; LSTM's
``cell_feedback_format`` does the same for ``c_{t-1}`` in ``f c_{t-1}`` (``act(c_t)`` reads
``c_t`` itself).

Every product and sum inside a step is exact; each ``cast`` applies its format's rounding
and overflow modes (:func:`nnfab.casts.cast`). ``rec`` (``recurrent_activation``) and
``act`` (``activation``) are elementwise activations of :mod:`nnfab.activation_params`;
sigmoid and tanh read the look-up tables ``sigmoid_table`` and ``tanh_table``; ``hard_sigmoid`` is
``clip(slope * x + 1/2, 0, 1)`` with ``hard_sigmoid_slope`` (Keras' 0.2 by default, QKeras'
is 1/2).
"""

from dataclasses import dataclass

import numpy as np

from .activation_params import check_activation
from .fixed import FixedFormat, common_format
from .layers import DenseSpec, code_array
from .tables import LookupTable, sigmoid_table, tanh_table

__all__ = ["CELLS", "N_GATES", "RecurrentSpec", "cell_lanes_for", "exact_sum_format"]

#: Cell types, and the gate rows of their kernels (Keras' order).
CELLS = ("simple_rnn", "lstm", "gru")
N_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def exact_sum_format(formats):
    """The format of an exact signed sum (or difference) of one value of each of ``formats``:
    the finest LSB of them, one integer bit per term beyond the widest (never overflows)."""
    fraction = max(fmt.fraction_width for fmt in formats)
    integer = max(fmt.integer_width + (not fmt.signed) for fmt in formats) + len(formats)
    return FixedFormat(integer + fraction, integer)


def cell_lanes_for(units, reuse_factor, cell_lanes=None):
    """Units a recurrent engine's cell update handles per cycle (its lanes): ``cell_lanes``,
    or by default ``ceil(units / reuse_factor)``, so the walk over the units takes about as
    many cycles as the dense engine's fold (all units at once for ``reuse_factor`` 1).

    Raises
    ------
    ValueError
        If ``cell_lanes`` is not None or an integer from 1 to ``units``.
    """
    if cell_lanes is None:
        return -(-units // reuse_factor)
    if isinstance(cell_lanes, bool) or not isinstance(cell_lanes, int) \
            or not 1 <= cell_lanes <= units:
        raise ValueError(f"cell_lanes must be an integer from 1 to units {units} (units "
                         f"updated per cycle), not {cell_lanes!r}")
    return cell_lanes


def _shifted(codes, src, dst):
    """Codes of ``src`` as codes of ``dst`` that holds them (an exact left shift)."""
    return np.asarray(codes, dtype=object) << (dst.fraction_width - src.fraction_width)


@dataclass(frozen=True, eq=False)
class RecurrentSpec:
    """A recurrent layer (see the module docstring for the arithmetic).

    Parameters
    ----------
    cell : str
        One of :data:`CELLS`.
    weights : array_like of int, shape (n_gates * units, n_in)
        Kernel codes in ``weight_format`` (Keras' kernel transposed).
    recurrent_weights : array_like of int, shape (n_gates * units, units)
        Recurrent kernel codes in ``recurrent_weight_format``.
    biases : array_like of int, shape (n_gates * units,), or None
        Input bias codes in ``bias_format``.
    recurrent_biases : array_like of int, shape (n_gates * units,), or None
        GRU only (``reset_after``, Keras' second bias row), in ``bias_format``.
    n_steps : int, >= 1
        Time steps per sequence.
    return_sequences : bool
    input_format, weight_format, recurrent_weight_format, preact_format, state_format :
    FixedFormat
        ``state_format`` is the output's.
    bias_format : FixedFormat or None
        Required with biases.
    gate_format, candidate_format : FixedFormat or None
        LSTM and GRU: the outputs of ``recurrent_activation`` and ``activation``.
    cell_format : FixedFormat or None
        LSTM: the cell state ``c``.
    accumulator_format : FixedFormat or None
        The pre-activations' accumulator (see the module docstring); None: exact.
    reset_product_format : FixedFormat or None
        GRU: the format ``r * p_hh`` (``reset_after``) or ``r * h_{t-1}`` (not
        ``reset_after``) is cast to (see the module docstring); None: exact.
    reset_after : bool
        GRU: Keras' ``reset_after`` (the default, True); False applies the reset gate to the
        state before the recurrent product (no ``recurrent_biases`` then).
    activation, recurrent_activation : str
        Elementwise activations (:data:`nnfab.activation_params.ACTIVATION_KINDS` without parameters
        other than a table): Keras' defaults ``"tanh"`` and ``"sigmoid"``.
    sigmoid_table, tanh_table : LookupTable
        Tables of the sigmoid and tanh activations (hls4ml's by default).
    feedback_format, cell_feedback_format : FixedFormat or None
        The formats ``h`` and (LSTM) ``c`` are cast to before they are fed back (see the
        module docstring); None: fed back as they are.
    hard_sigmoid_slope : (FixedFormat, int) or None
        The slope of a ``hard_sigmoid`` activation; None: Keras'
        (:data:`~nnfab.activation_params.HARD_SIGMOID_SLOPE`).

    Raises
    ------
    TypeError
        If a format is not a FixedFormat, codes are not integers or a table not a table.
    ValueError
        If the cell is unknown, shapes are inconsistent, a code does not fit its format, a
        format the cell needs is missing, or an activation is not one of those accepted.
    """

    cell: str
    weights: np.ndarray
    recurrent_weights: np.ndarray
    biases: np.ndarray | None
    n_steps: int
    return_sequences: bool
    input_format: FixedFormat
    weight_format: FixedFormat
    recurrent_weight_format: FixedFormat
    preact_format: FixedFormat
    state_format: FixedFormat
    bias_format: FixedFormat | None = None
    gate_format: FixedFormat | None = None
    candidate_format: FixedFormat | None = None
    cell_format: FixedFormat | None = None
    recurrent_biases: np.ndarray | None = None
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    sigmoid_table: LookupTable = None
    tanh_table: LookupTable = None
    accumulator_format: FixedFormat | None = None
    reset_product_format: FixedFormat | None = None
    hard_sigmoid_slope: tuple | None = None
    feedback_format: FixedFormat | None = None
    cell_feedback_format: FixedFormat | None = None
    reset_after: bool = True

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"Cell must be one of {', '.join(map(repr, CELLS))}, not "
                             f"{self.cell!r}")
        if not isinstance(self.n_steps, int) or isinstance(self.n_steps, bool) or \
                self.n_steps < 1:
            raise ValueError(f"Number of steps must be a positive integer, not "
                             f"{self.n_steps!r}")
        if not isinstance(self.return_sequences, bool):
            raise TypeError(f"Return sequences must be a bool, not {self.return_sequences!r}")
        needed = {"simple_rnn": (), "lstm": ("gate_format", "candidate_format", "cell_format"),
                  "gru": ("gate_format", "candidate_format")}[self.cell]
        for name in ("input_format", "weight_format", "recurrent_weight_format",
                     "preact_format", "state_format") + needed:
            if not isinstance(getattr(self, name), FixedFormat):
                raise TypeError(f"{name.replace('_', ' ').capitalize()} of a {self.cell} cell "
                                f"must be a FixedFormat, not {getattr(self, name)!r}")
        for name in ("accumulator_format", "reset_product_format", "feedback_format",
                     "cell_feedback_format"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name),
                                                                  FixedFormat):
                raise TypeError(f"{name.replace('_', ' ').capitalize()} must be a FixedFormat "
                                f"or None, not {getattr(self, name)!r}")
        if self.reset_product_format is not None and self.cell != "gru":
            raise ValueError(f"Reset product format is GRU's, not a {self.cell} cell's")
        if not isinstance(self.reset_after, bool):
            raise TypeError(f"Reset after must be a bool, not {self.reset_after!r}")
        if not self.reset_after and self.cell != "gru":
            raise ValueError(f"Reset after is GRU's, not a {self.cell} cell's")
        if not self.reset_after and self.recurrent_biases is not None:
            raise ValueError("Recurrent biases are a GRU's with reset_after, not without")
        if self.cell_feedback_format is not None and self.cell != "lstm":
            raise ValueError(f"Cell feedback format is LSTM's, not a {self.cell} cell's")
        object.__setattr__(self, "sigmoid_table", self.sigmoid_table or sigmoid_table())
        object.__setattr__(self, "tanh_table", self.tanh_table or tanh_table())
        weights = np.asarray(self.weights)
        if weights.ndim != 2 or 0 in weights.shape or weights.shape[0] % N_GATES[self.cell]:
            raise ValueError(f"Weights of a {self.cell} cell must be a non-empty "
                             f"({N_GATES[self.cell]} * units, n_in) matrix, not of shape "
                             f"{weights.shape}")
        rows, units = weights.shape[0], weights.shape[0] // N_GATES[self.cell]
        object.__setattr__(self, "weights", code_array(weights, self.weight_format, "Weight",
                                                       weights.shape))
        object.__setattr__(self, "recurrent_weights", code_array(
            self.recurrent_weights, self.recurrent_weight_format, "Recurrent weight",
            (rows, units)))
        for name, what in (("biases", "Bias"), ("recurrent_biases", "Recurrent bias")):
            if getattr(self, name) is None:
                continue
            if self.bias_format is None:
                raise ValueError(f"Bias format must be given with {what.lower()}es")
            if name == "recurrent_biases" and self.cell != "gru":
                raise ValueError(f"Recurrent biases are GRU's, not a {self.cell} cell's")
            object.__setattr__(self, name, code_array(getattr(self, name), self.bias_format,
                                                      what, (rows,)))
        for name in ("activation", "recurrent_activation"):
            kind = getattr(self, name)
            fout = self.candidate_format if name == "activation" else self.gate_format
            try:
                check_activation(kind, fin=self.preact_format, fout=fout or self.state_format,
                                 **self.activation_params(kind))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name.replace('_', ' ').capitalize()}: {exc}") from None

    def activation_params(self, kind):
        """Parameters of activation ``kind``: its table for sigmoid and tanh, the slope of a
        hard sigmoid when set, else none."""
        if kind == "sigmoid":
            return {"table": self.sigmoid_table}
        if kind == "tanh":
            return {"table": self.tanh_table}
        if kind == "hard_sigmoid" and self.hard_sigmoid_slope is not None:
            return {"slope": self.hard_sigmoid_slope}
        return {}

    @property
    def h_feedback_format(self):
        """The format of ``h_{t-1}`` as a step reads it."""
        return self.feedback_format or self.state_format

    @property
    def c_feedback_format(self):
        """LSTM: the format of ``c_{t-1}`` as a step reads it."""
        return self.cell_feedback_format or self.cell_format

    @property
    def reset_input_format(self):
        """GRU without ``reset_after``: the format of ``q = r * h_{t-1}``, the second
        product's input."""
        return self.reset_product_format or self.gate_format.mul_format(self.h_feedback_format)

    @property
    def n_in(self):
        return self.weights.shape[1]

    @property
    def units(self):
        return self.recurrent_weights.shape[1]

    @property
    def input_shape(self):
        return (self.n_steps, self.n_in)

    @property
    def output_shape(self):
        return (self.n_steps, self.units) if self.return_sequences else (self.units,)

    @property
    def dense_spec(self):
        """The pre-activations as one dense layer over ``[x_t, h_{t-1}]`` (``n_in + units``
        inputs in the common format of ``input_format`` and ``h_feedback_format``), exact, cast to
        ``preact_format``. GRU: rows ``z, r`` over both, ``W_h x + b_h``, then
        ``U_h h + b_rh`` (with zero blocks, which the engine prunes). GRU without
        ``reset_after``: ``[W | U]`` and ``b`` as they are, over inputs in the common format
        of ``input_format``, ``h_feedback_format`` and :attr:`reset_input_format` (the
        second product reads ``[x_t, r * h_{t-1}]``)."""
        spec = self.__dict__.get("_dense_spec")
        if spec is None:
            spec = self._make_dense_spec()
            object.__setattr__(self, "_dense_spec", spec)
        return spec

    def _make_dense_spec(self):
        w_fmt = common_format([self.weight_format, self.recurrent_weight_format])
        w = _shifted(self.weights, self.weight_format, w_fmt)
        u = _shifted(self.recurrent_weights, self.recurrent_weight_format, w_fmt)
        b, rb = self.biases, self.recurrent_biases
        inputs = [self.input_format, self.h_feedback_format]
        if not self.reset_after:
            inputs.append(self.reset_input_format)
        elif self.cell == "gru":
            n = self.units
            zeros = np.zeros((n, n), dtype=object), np.zeros((n, self.n_in), dtype=object)
            w = np.concatenate([w, zeros[1]])
            u = np.concatenate([u[:2 * n], zeros[0], u[2 * n:]])
            if b is not None or rb is not None:
                b = np.zeros(3 * n, dtype=object) if b is None else np.asarray(b)
                rb = np.zeros(3 * n, dtype=object) if rb is None else np.asarray(rb)
                b = np.concatenate([b[:2 * n] + rb[:2 * n], b[2 * n:], rb[2 * n:]])
        b_fmt = self.bias_format
        if b is not None and self.cell == "gru" and self.reset_after:
            b_fmt = b_fmt.add_format(b_fmt)
        return DenseSpec(np.concatenate([w, u], axis=1), b, common_format(inputs), w_fmt,
                         self.preact_format, bias_format=b_fmt,
                         accumulator_format=self.accumulator_format)
