"""A multi-layer perceptron that learns in hardware by backpropagation: parameters, gradient
sums and optimizer state in memories, forward pass, output error, backward pass through the
transposed weights and the ReLU masks, and updates through one
:class:`~nnfab.hdl.optim.UpdateUnit`.
"""

from amaranth.hdl import Array, C, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.training_mlp import TrainableMLPSpec

from .cast import fixed_shape, requantize
from .loss_error import error_cycles, output_error_states
from .optim import UPDATE_LATENCY, UpdateUnit
from .trainable_dense import sample_layout
from .unused import discard

__all__ = ["TrainableMLP", "cycles_per_sample", "batch_cycles_per_sample", "update_cycles"]

def update_cycles(spec):
    """Cycles of a batch's update at full rate: every parameter read and sent to the
    pipelined :class:`~nnfab.hdl.optim.UpdateUnit` one per cycle (``P_total``), then its
    :data:`~nnfab.hdl.optim.UPDATE_LATENCY` (6) until the last weight is written back, and
    one cycle to leave the update."""
    return spec.n_params + UPDATE_LATENCY + 1


def cycles_per_sample(spec):
    """RTL cycles of one sample at full rate, not counting the batch's update and the epoch's
    weight dump: 1 to accept it, ``n_l R_l + 1`` per layer forward and backward (``R_l`` =
    :meth:`~nnfab.training_mlp.TrainableMLPSpec.row_cycles`; ``n_l R_l = P_l``, the layer's
    parameters, at the default reuse factor), the ``n_out`` outputs and the error
    (:func:`~nnfab.hdl.loss_error.error_cycles`: 1, or 7 through the softmax). The update
    adds :func:`update_cycles` per batch, the dump ``2 P_total`` per epoch, at any reuse
    factor."""
    walks = sum(2 * (spec.layer_sizes[l] * spec.row_cycles(l) + 1)
                for l in range(1, spec.n_layers + 1))
    return 1 + walks + spec.n_out + error_cycles(spec)


def batch_cycles_per_sample(spec):
    """:func:`cycles_per_sample` plus the batch update shared over the batch's samples
    (:func:`update_cycles` ``/ batch_size``); the epoch's dump not counted."""
    return cycles_per_sample(spec) + update_cycles(spec) / spec.batch_size


class TrainableMLP(wiring.Component):
    """Trains the network of a :class:`~nnfab.training_mlp.TrainableMLPSpec` on a stream of
    samples, with the arithmetic of :func:`nnfab.sim.golden.backprop.train_fixed`.

    Layer ``l``'s ``P_l = n_l c_l`` parameters (``c_l = n_{l-1} + 1`` columns) are split over
    ``k_l`` = :meth:`~nnfab.training_mlp.TrainableMLPSpec.lanes` banks (the spec's
    ``reuse_factor``; one at the default): bank ``k`` holds the columns ``i = g k_l + k``,
    parameter ``(o, i)`` at address ``o R_l + g`` (``R_l`` =
    :meth:`~nnfab.training_mlp.TrainableMLPSpec.row_cycles` ``= ceil(c_l / k_l)``, the last
    group padded with zeros); the gradient sums are banked the same way. Each cycle every lane
    reads and writes its own bank at the same address and does one multiply-accumulate:

    - forward, layer by layer, row-major over ``(o, g)`` (memories read one cycle ahead), the
      lanes' products summed into the row's sum, the casts and ReLU at each row's end;
      activations and errors are registers;
    - the ``n_out`` output codes streamed out;
    - the output error (:func:`~nnfab.hdl.loss_error.output_error_states`);
    - backward, ``l = L .. 1``, column-group-major over ``(g, o)``: gradient sums
      ``S_l[o, i] += e_l[o] a_{l-1}[i]`` (read-modify-write of each lane's bank) and, for
      ``l > 1``, one accumulator per lane giving the errors ``e_{l-1}[i]`` of the group's
      columns at its end, in the same walk;
    - at the end of a batch every parameter, layer 1 first, row-major (the optimizer's order
      at any reuse factor), read one per cycle and sent through the pipelined update unit; a
      second walk in the same order writes the updated weights back as the unit returns them
      (:func:`update_cycles`: ``P + 7`` cycles); after the sample flagged ``last``, all
      parameters streamed out in the same order.

    Sums are exact, so the codes do not depend on the reuse factor. Cycles per sample:
    :func:`cycles_per_sample` (``2 sum_l n_l R_l + 2 L + n_out + 2``, 6 more through the
    softmax), plus ``P + 7`` per batch and ``2 P`` per epoch (``P`` all parameters).

    Parameters
    ----------
    spec : TrainableMLPSpec

    Members
    -------
    i : ``In(stream.Signature(sample_layout(spec)))``
        :func:`nnfab.hdl.trainable_dense.sample_layout`: ``x``, ``target``, ``last``.
    o : ``Out(stream.Signature(signed(max(W_y, W_w))))``
        Per sample its ``n_out`` output codes (before its batch's update), and after the last
        sample of an epoch the :attr:`~nnfab.training_mlp.TrainableMLPSpec.n_params`
        parameter codes.

    Raises
    ------
    TypeError
        If ``spec`` is not a TrainableMLPSpec.
    """

    def __init__(self, spec):
        if not isinstance(spec, TrainableMLPSpec):
            discard(self)  # a rejected design is not an unused one
            raise TypeError(f"Specification must be a TrainableMLPSpec, not {spec!r}")
        self._spec = spec
        width = max(spec.output_format.width, spec.optimizer.weight_format.width)
        super().__init__({
            "i": In(stream.Signature(sample_layout(spec))),
            "o": Out(stream.Signature(signed(width))),
        })

    def __repr__(self):
        return f"TrainableMLP({self._spec!r})"

    @property
    def spec(self):
        return self._spec

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        opt = spec.optimizer
        L, sizes = spec.n_layers, spec.layer_sizes
        E, Y = spec.error_format, spec.output_format
        lanes = [spec.lanes(l) for l in range(1, L + 1)]
        groups = [spec.row_cycles(l) for l in range(1, L + 1)]
        depths = [sizes[l] * groups[l - 1] for l in range(1, L + 1)]
        unit = m.submodules.update = UpdateUnit(opt, depth=spec.n_params)

        # Per layer (index l - 1), per lane: weight and gradient-sum banks, their ports.
        w_rd, w_wr, g_rd, g_wr = [], [], [], []
        for l in range(1, L + 1):
            w0 = spec.initial_weights[l - 1]
            n_k, n_g = lanes[l - 1], groups[l - 1]
            ports = [], [], [], []
            for k in range(n_k):
                init = [int(w0[o, g * n_k + k]) if g * n_k + k < w0.shape[1] else 0
                        for o in range(sizes[l]) for g in range(n_g)]
                wmem = Memory(shape=fixed_shape(opt.weight_format), depth=depths[l - 1],
                              init=init)
                gmem = Memory(shape=fixed_shape(spec.accumulator_format(l)),
                              depth=depths[l - 1], init=[])
                suffix = f"{l}" if n_k == 1 else f"{l}_{k}"
                m.submodules[f"weights{suffix}"] = wmem
                m.submodules[f"gradients{suffix}"] = gmem
                for port_list, port in zip(ports, (wmem.read_port(), wmem.write_port(),
                                                   gmem.read_port(), gmem.write_port())):
                    port_list.append(port)
            for all_ports, port_list in zip((w_rd, w_wr, g_rd, g_wr), ports):
                all_ports.append(port_list)

        # Activations a_0 .. a_{L-1} (with the bias input 1.0 last), outputs, errors e_1 .. e_L.
        acts = []
        for l in range(L):
            fmt = spec.layer_input_format(l + 1)
            regs = [Signal(fixed_shape(fmt), name=f"a{l}_{n}") for n in range(sizes[l])]
            acts.append(regs + [Signal(fixed_shape(fmt), init=spec.one_code(l + 1),
                                       name=f"one{l}")])
        # Lane k of layer l sees the columns g k_l + k of a_{l-1} (0 past the last).
        lane_acts = [[Array([acts[l - 1][g * lanes[l - 1] + k]
                             if g * lanes[l - 1] + k <= sizes[l - 1] else C(0)
                             for g in range(groups[l - 1])])
                      for k in range(lanes[l - 1])] for l in range(1, L + 1)]
        ys = [Signal(fixed_shape(Y), name=f"y{o}") for o in range(spec.n_out)]
        errs = [[Signal(fixed_shape(E), name=f"e{l}_{n}") for n in range(sizes[l])]
                for l in range(1, L + 1)]
        err_arr = [Array(e) for e in errs]
        # The walk's operands a_{l-1}[i] (per lane) and e_l[o], registered as the memories
        # read their weights: all arrive together one cycle later (the "_d" cycle), and no
        # multiplexer over a whole layer precedes a multiplier in the same clock period.
        a_sel = [[Signal(fixed_shape(spec.layer_input_format(l)), name=f"a_sel{l}_{k}")
                  for k in range(lanes[l - 1])] for l in range(1, L + 1)]
        e_sel = [Signal(fixed_shape(E), name=f"e_sel{l}") for l in range(1, L + 1)]
        if spec.loss == "mse":
            targets = [Signal(fixed_shape(Y), name=f"t{o}") for o in range(spec.n_out)]
            label = None
        else:
            targets, label = None, Signal(spec.label_width)
        last = Signal()
        in_batch = Signal(range(spec.batch_size + 1))  # samples already summed in this batch
        step = Signal(unit.i.payload.step.shape(), init=1)

        # Walks: bank address p of row o, column group g; the "_d" copies are one cycle behind.
        # The update and the dump walk (p, column i, lane k, parameter q of the layer).
        p = Signal(range(max(depths) + 1))
        o = Signal(range(max(sizes) + 1))
        g = Signal(range(max(groups) + 1))
        i = Signal(range(max(sizes) + 2))
        lane = Signal(range(max(lanes) + 1))
        q = Signal(range(max(spec.layer_params(l) for l in range(1, L + 1)) + 1))
        # The update's write-back walk, behind the read walk (p, q, i, lane) by the unit.
        write_walk = (Signal.like(p, name="p_w"), Signal.like(q, name="q_w"),
                      Signal.like(i, name="i_w"), Signal.like(lane, name="lane_w"))
        run, run_d = Signal(), Signal()
        p_d, o_d, g_d = Signal.like(p), Signal.like(o), Signal.like(g)
        acc_width = max(max(spec.forward_format(l).width for l in range(1, L + 1)),
                        max(spec.backward_format(l).width for l in range(2, L + 1)))
        accs = [Signal(signed(acc_width), name=f"acc{k}") for k in range(max(lanes))]
        n_emit = Signal(range(spec.n_out + 1))
        for l in range(L):
            for k in range(lanes[l]):
                m.d.comb += [w_rd[l][k].addr.eq(p), g_rd[l][k].addr.eq(p),
                             g_wr[l][k].addr.eq(p_d), w_wr[l][k].addr.eq(write_walk[0])]
        m.d.sync += [run_d.eq(run), p_d.eq(p), o_d.eq(o), g_d.eq(g)]

        def start_walk():
            m.d.sync += [p.eq(0), o.eq(0), g.eq(0), run.eq(1)]
            m.d.sync += [acc.eq(0) for acc in accs]

        def row_walk(l):
            """Advance the walk row-major over layer l's (o, g) (inside its state)."""
            with m.If(run):
                m.d.sync += p.eq(p + 1)
                with m.If(g == groups[l - 1] - 1):
                    m.d.sync += [g.eq(0), o.eq(o + 1)]
                with m.Else():
                    m.d.sync += g.eq(g + 1)
                with m.If(p == depths[l - 1] - 1):
                    m.d.sync += run.eq(0)

        def column_walk(l):
            """Advance the walk column-group-major over layer l's (g, o) (inside its state)."""
            with m.If(run):
                with m.If(o == sizes[l] - 1):
                    m.d.sync += [o.eq(0), g.eq(g + 1), p.eq(g + 1)]
                    with m.If(g == groups[l - 1] - 1):
                        m.d.sync += run.eq(0)
                with m.Else():
                    m.d.sync += [o.eq(o + 1), p.eq(p + groups[l - 1])]

        def parameter_walk(l, done, walk=(p, q, i, lane)):
            """Advance a row-major walk ``(p, q, i, lane)`` over layer l's parameters (one per
            call); at its last, restart it and call ``done()``."""
            w_p, w_q, w_i, w_lane = walk
            n_k, cols = lanes[l - 1], sizes[l - 1] + 1
            m.d.sync += [w_q.eq(w_q + 1), w_i.eq(w_i + 1), w_lane.eq(w_lane + 1)]
            with m.If((w_i == cols - 1) | (w_lane == n_k - 1)):
                m.d.sync += [w_lane.eq(0), w_p.eq(w_p + 1)]
            with m.If(w_i == cols - 1):
                m.d.sync += w_i.eq(0)
            with m.If(w_q == spec.layer_params(l) - 1):
                m.d.sync += [w_p.eq(0), w_q.eq(0), w_i.eq(0), w_lane.eq(0)]
                done()

        # The update: the read walk (state UPDATE<l>) reads one parameter per cycle; a cycle
        # later its weight and gradient mean go into the pipelined update unit, and the write
        # walk stores each updated weight as the unit returns it (in the same order).
        issue = Signal()
        issue_layer, write_layer = Signal(range(L)), Signal(range(L))
        issue_lane = Signal.like(lane)
        issue_index = Signal.like(unit.i.payload.index)
        write_last = Signal()  # the batch's last updated weight is being written
        m.d.sync += issue.eq(0)
        m.d.comb += [unit.i.valid.eq(issue), unit.i.payload.index.eq(issue_index),
                     unit.i.payload.step.eq(step), unit.o.ready.eq(1)]
        with m.Switch(issue_layer):
            for l in range(1, L + 1):
                with m.Case(l - 1):
                    g_sum = Array(port.data for port in g_rd[l - 1])[issue_lane]
                    m.d.comb += [
                        unit.i.payload.weight.eq(
                            Array(port.data for port in w_rd[l - 1])[issue_lane]),
                        unit.i.payload.gradient.eq(requantize(
                            g_sum, src=spec.mean_format(l), dst=opt.gradient_format)),
                    ]
        with m.If(unit.o.valid):
            with m.Switch(write_layer):
                for l in range(1, L + 1):
                    with m.Case(l - 1):
                        for k, port in enumerate(w_wr[l - 1]):
                            m.d.comb += [port.data.eq(unit.o.payload),
                                         port.en.eq(write_walk[3] == k)]

                        def write_done(l=l):
                            if l < L:
                                m.d.sync += write_layer.eq(l)
                            else:
                                m.d.sync += write_layer.eq(0)
                                m.d.comb += write_last.eq(1)
                        parameter_walk(l, write_done, write_walk)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    payload = self.i.payload
                    m.d.sync += [acts[0][n].eq(payload.x[n]) for n in range(spec.n_in)]
                    if spec.loss == "mse":
                        m.d.sync += [targets[n].eq(payload.target[n])
                                     for n in range(spec.n_out)]
                    else:
                        m.d.sync += label.eq(payload.target)
                    m.d.sync += last.eq(payload.last)
                    start_walk()
                    m.next = "FORWARD1"

            for l in range(1, L + 1):
                with m.State(f"FORWARD{l}"):
                    row_walk(l)
                    fwd_fmt, out_fmt = spec.forward_format(l), spec.layer_output_format(l)
                    total = Signal(fixed_shape(fwd_fmt), name=f"forward_total{l}")
                    m.d.sync += [a_sel[l - 1][k].eq(lane_acts[l - 1][k][g])
                                 for k in range(lanes[l - 1])]
                    m.d.comb += total.eq(accs[0] + sum(
                        w_rd[l - 1][k].data * a_sel[l - 1][k] for k in range(lanes[l - 1])))
                    with m.If(run_d):
                        with m.If(g_d == groups[l - 1] - 1):
                            z = Signal(fixed_shape(out_fmt), name=f"z{l}")
                            m.d.comb += z.eq(requantize(total, src=fwd_fmt, dst=out_fmt))
                            m.d.sync += accs[0].eq(0)
                            if l == L:
                                m.d.sync += Array(ys)[o_d].eq(z)
                            else:
                                m.d.sync += Array(acts[l])[o_d].eq(Mux(z > 0, z, 0))
                            with m.If(o_d == sizes[l] - 1):
                                if l == L:
                                    m.d.sync += n_emit.eq(0)
                                    m.next = "EMIT"
                                else:
                                    start_walk()
                                    m.next = f"FORWARD{l + 1}"
                        with m.Else():
                            m.d.sync += accs[0].eq(total)

            with m.State("EMIT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(Array(ys)[n_emit])]
                with m.If(self.o.ready):
                    m.d.sync += n_emit.eq(n_emit + 1)
                    with m.If(n_emit == spec.n_out - 1):
                        m.next = "ERROR"

            def error_done():
                start_walk()
                m.next = f"BACKWARD{L}"

            output_error_states(m, spec, outputs=ys, targets=targets, label=label,
                                errors=errs[L - 1], done=error_done)

            for l in range(L, 0, -1):
                with m.State(f"BACKWARD{l}"):
                    column_walk(l)
                    n_k = lanes[l - 1]
                    m.d.sync += [a_sel[l - 1][k].eq(lane_acts[l - 1][k][g]) for k in range(n_k)]
                    m.d.sync += e_sel[l - 1].eq(err_arr[l - 1][o])
                    e_o = e_sel[l - 1]
                    for k in range(n_k):
                        m.d.comb += [
                            g_wr[l - 1][k].en.eq(run_d),
                            g_wr[l - 1][k].data.eq(e_o * a_sel[l - 1][k]
                                                   + Mux(in_batch == 0, 0, g_rd[l - 1][k].data)),
                        ]
                    if l > 1:
                        bwd_fmt = spec.backward_format(l)
                        for k in range(n_k):
                            total = Signal(fixed_shape(bwd_fmt), name=f"backward_total{l}_{k}")
                            m.d.comb += total.eq(accs[k] + w_rd[l - 1][k].data * e_o)
                            with m.If(run_d):
                                m.d.sync += accs[k].eq(total)
                                with m.If(o_d == sizes[l] - 1):
                                    m.d.sync += accs[k].eq(0)
                                    e_new = requantize(total, src=bwd_fmt, dst=E)
                                    with m.Switch(g_d):
                                        for n_g in range(groups[l - 1]):
                                            col = n_g * n_k + k
                                            if col < sizes[l - 1]:  # not the bias, no padding
                                                with m.Case(n_g):
                                                    m.d.sync += errs[l - 2][col].eq(Mux(
                                                        a_sel[l - 1][k] > 0, e_new, 0))
                    with m.If(run_d & (o_d == sizes[l] - 1) & (g_d == groups[l - 1] - 1)):
                        if l > 1:
                            start_walk()
                            m.next = f"BACKWARD{l - 1}"
                        else:
                            with m.If(last | (in_batch == spec.batch_size - 1)):
                                m.d.sync += [in_batch.eq(0), p.eq(0), q.eq(0), i.eq(0),
                                             lane.eq(0)]
                                m.next = "UPDATE1"
                            with m.Else():
                                m.d.sync += in_batch.eq(in_batch + 1)
                                m.next = "IDLE"

            base = 0
            for l in range(1, L + 1):
                with m.State(f"UPDATE{l}"):
                    m.d.sync += [issue.eq(1), issue_layer.eq(l - 1), issue_lane.eq(lane),
                                 issue_index.eq(base + q)]

                    def read_done(l=l):
                        m.next = f"UPDATE{l + 1}" if l < L else "UPDATE_DRAIN"
                    parameter_walk(l, read_done)
                base += spec.layer_params(l)

                weight = Array(port.data for port in w_rd[l - 1])[lane]
                with m.State(f"DUMP_READ{l}"):
                    m.next = f"DUMP_SEND{l}"
                with m.State(f"DUMP_SEND{l}"):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(weight)]
                    with m.If(self.o.ready):
                        m.next = f"DUMP_READ{l}"

                        def dump_done(l=l):
                            m.next = f"DUMP_READ{l + 1}" if l < L else "IDLE"
                        parameter_walk(l, dump_done)

            with m.State("UPDATE_DRAIN"):
                with m.If(write_last):
                    m.d.sync += step.eq(step + 1)
                    with m.If(last):
                        m.next = "DUMP_READ1"
                    with m.Else():
                        m.next = "IDLE"
        return m
