"""A multi-layer perceptron that learns in hardware by backpropagation: parameters, gradient
sums and optimizer state in memories, forward pass, output error, backward pass through the
transposed weights and the ReLU masks, and updates through one
:class:`~nnfab.hdl.optim.UpdateUnit`.
"""

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.training_mlp import TrainableMLPSpec

from .cast import fixed_shape, requantize
from .loss_error import output_error_states
from .optim import UPDATE_LATENCY, UpdateUnit
from .trainable_dense import sample_layout
from .unused import discard

__all__ = ["TrainableMLP", "cycles_per_sample", "UPDATE_CYCLES"]

#: Cycles per parameter of the batch update: read, send, the update unit's latency.
UPDATE_CYCLES = UPDATE_LATENCY + 2


def cycles_per_sample(spec):
    """RTL cycles of one sample at full rate, not counting the batch's update and the epoch's
    weight dump: ``(P + 2)`` per layer forward and backward (``P`` its parameters), the
    ``n_out`` outputs, the error (1 cycle, or the softmax pipeline) and 1 to accept the sample.
    The update adds :data:`UPDATE_CYCLES` ``* P_total`` cycles per batch, the dump ``2 P_total``
    per epoch."""
    walks = sum(2 * (spec.layer_params(l) + 2) for l in range(1, spec.n_layers + 1))
    return walks + spec.n_out + 2


class TrainableMLP(wiring.Component):
    """Trains the network of a :class:`~nnfab.training_mlp.TrainableMLPSpec` on a stream of
    samples, with the arithmetic of :func:`nnfab.sim.golden.backprop.train_fixed`.

    One multiply-accumulate per cycle (reuse factor = the layer's parameter count):

    - forward, layer by layer, row-major over layer ``l``'s ``P_l = n_l (n_{l-1} + 1)``
      parameters (memory read one cycle ahead), the casts and ReLU at each row's end;
      activations and errors are registers;
    - the ``n_out`` output codes streamed out;
    - the output error (:func:`~nnfab.hdl.loss_error.output_error_states`);
    - backward, ``l = L .. 1``, column-major over layer ``l``: gradient sums
      ``S_l[p] += e_l[o] a_{l-1}[i]`` (read-modify-write of the layer's accumulator memory)
      and, for ``l > 1``, the error ``e_{l-1}[i]`` at each column's end, in the same walk;
    - at the end of a batch every parameter, layer 1 first, through the update unit
      (:data:`UPDATE_CYCLES` = 8 cycles each); after the sample flagged ``last``, all
      parameters streamed out in the same order.

    Cycles per sample: :func:`cycles_per_sample` (``2 P + 4 L + n_out + 2`` and the softmax
    latency), plus ``8 P`` per batch and ``2 P`` per epoch.

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
        max_p = max(spec.layer_params(l) for l in range(1, L + 1))
        unit = m.submodules.update = UpdateUnit(opt, depth=spec.n_params)

        # Per layer (index l - 1): weight and gradient-sum memories, their ports.
        w_rd, w_wr, g_rd, g_wr = [], [], [], []
        for l in range(1, L + 1):
            wmem = Memory(shape=fixed_shape(opt.weight_format), depth=spec.layer_params(l),
                          init=[int(v) for v in spec.initial_weights[l - 1].ravel()])
            gmem = Memory(shape=fixed_shape(spec.accumulator_format(l)),
                          depth=spec.layer_params(l), init=[])
            m.submodules[f"weights{l}"], m.submodules[f"gradients{l}"] = wmem, gmem
            w_rd.append(wmem.read_port())
            w_wr.append(wmem.write_port())
            g_rd.append(gmem.read_port())
            g_wr.append(gmem.write_port())

        # Activations a_0 .. a_{L-1} (with the bias input 1.0 last), outputs, errors e_1 .. e_L.
        acts = []
        for l in range(L):
            fmt = spec.layer_input_format(l + 1)
            regs = [Signal(fixed_shape(fmt), name=f"a{l}_{n}") for n in range(sizes[l])]
            acts.append(regs + [Signal(fixed_shape(fmt), init=spec.one_code(l + 1),
                                       name=f"one{l}")])
        act_arr = [Array(a) for a in acts]
        ys = [Signal(fixed_shape(Y), name=f"y{o}") for o in range(spec.n_out)]
        errs = [[Signal(fixed_shape(E), name=f"e{l}_{n}") for n in range(sizes[l])]
                for l in range(1, L + 1)]
        err_arr = [Array(e) for e in errs]
        # The walk's operands a_{l-1}[i] and e_l[o], registered as the memory reads its
        # weight: both arrive together one cycle later (the "_d" cycle), and no multiplexer
        # over a whole layer precedes a multiplier in the same clock period.
        a_sel = [Signal(fixed_shape(spec.layer_input_format(l)), name=f"a_sel{l}")
                 for l in range(1, L + 1)]
        e_sel = [Signal(fixed_shape(E), name=f"e_sel{l}") for l in range(1, L + 1)]
        if spec.loss == "mse":
            targets = [Signal(fixed_shape(Y), name=f"t{o}") for o in range(spec.n_out)]
            label = None
        else:
            targets, label = None, Signal(spec.label_width)
        last = Signal()
        in_batch = Signal(range(spec.batch_size + 1))  # samples already summed in this batch
        step = Signal(unit.i.payload.step.shape(), init=1)

        # Parameter walk: address p with its (o, i); the "_d" copies are one cycle behind.
        p = Signal(range(max_p + 1))
        o = Signal(range(max(sizes) + 1))
        i = Signal(range(max(sizes) + 2))
        run, run_d = Signal(), Signal()
        p_d, o_d, i_d = Signal.like(p), Signal.like(o), Signal.like(i)
        acc_width = max(max(spec.forward_format(l).width for l in range(1, L + 1)),
                        max(spec.backward_format(l).width for l in range(2, L + 1)))
        acc = Signal(signed(acc_width))
        k = Signal(range(max(spec.n_out, max_p) + 1))
        for l in range(L):
            m.d.comb += [w_rd[l].addr.eq(p), g_rd[l].addr.eq(p), g_wr[l].addr.eq(p_d),
                         w_wr[l].addr.eq(p)]
        m.d.sync += [run_d.eq(run), p_d.eq(p), o_d.eq(o), i_d.eq(i)]

        def start_walk():
            m.d.sync += [p.eq(0), o.eq(0), i.eq(0), run.eq(1), acc.eq(0)]

        def row_walk(l):
            """Advance the walk row-major over layer l (inside its state)."""
            n_cols = sizes[l - 1] + 1
            with m.If(run):
                m.d.sync += p.eq(p + 1)
                with m.If(i == n_cols - 1):
                    m.d.sync += [i.eq(0), o.eq(o + 1)]
                with m.Else():
                    m.d.sync += i.eq(i + 1)
                with m.If(p == spec.layer_params(l) - 1):
                    m.d.sync += run.eq(0)

        def column_walk(l):
            """Advance the walk column-major over layer l (inside its state)."""
            n_rows, n_cols = sizes[l], sizes[l - 1] + 1
            with m.If(run):
                with m.If(o == n_rows - 1):
                    m.d.sync += [o.eq(0), i.eq(i + 1), p.eq(i + 1)]
                    with m.If(i == n_cols - 1):
                        m.d.sync += run.eq(0)
                with m.Else():
                    m.d.sync += [o.eq(o + 1), p.eq(p + n_cols)]

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
                    m.d.sync += a_sel[l - 1].eq(act_arr[l - 1][i])
                    m.d.comb += total.eq(acc + w_rd[l - 1].data * a_sel[l - 1])
                    with m.If(run_d):
                        with m.If(i_d == sizes[l - 1]):
                            z = Signal(fixed_shape(out_fmt), name=f"z{l}")
                            m.d.comb += z.eq(requantize(total, src=fwd_fmt, dst=out_fmt))
                            m.d.sync += acc.eq(0)
                            if l == L:
                                m.d.sync += Array(ys)[o_d].eq(z)
                            else:
                                m.d.sync += act_arr[l][o_d].eq(Mux(z > 0, z, 0))
                            with m.If(o_d == sizes[l] - 1):
                                if l == L:
                                    m.d.sync += k.eq(0)
                                    m.next = "EMIT"
                                else:
                                    start_walk()
                                    m.next = f"FORWARD{l + 1}"
                        with m.Else():
                            m.d.sync += acc.eq(total)

            with m.State("EMIT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(Array(ys)[k])]
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == spec.n_out - 1):
                        m.next = "ERROR"

            def error_done():
                start_walk()
                m.next = f"BACKWARD{L}"

            output_error_states(m, spec, outputs=ys, targets=targets, label=label,
                                errors=errs[L - 1], done=error_done)

            for l in range(L, 0, -1):
                with m.State(f"BACKWARD{l}"):
                    column_walk(l)
                    m.d.sync += [a_sel[l - 1].eq(act_arr[l - 1][i]),
                                 e_sel[l - 1].eq(err_arr[l - 1][o])]
                    e_o = e_sel[l - 1]
                    m.d.comb += [
                        g_wr[l - 1].en.eq(run_d),
                        g_wr[l - 1].data.eq(e_o * a_sel[l - 1]
                                            + Mux(in_batch == 0, 0, g_rd[l - 1].data)),
                    ]
                    if l > 1:
                        bwd_fmt = spec.backward_format(l)
                        total = Signal(fixed_shape(bwd_fmt), name=f"backward_total{l}")
                        m.d.comb += total.eq(acc + w_rd[l - 1].data * e_o)
                        with m.If(run_d):
                            m.d.sync += acc.eq(total)
                            with m.If(o_d == sizes[l] - 1):
                                m.d.sync += acc.eq(0)
                                with m.If(i_d < sizes[l - 1]):
                                    e_new = requantize(total, src=bwd_fmt, dst=E)
                                    m.d.sync += err_arr[l - 2][i_d].eq(
                                        Mux(a_sel[l - 1] > 0, e_new, 0))
                    with m.If(run_d & (o_d == sizes[l] - 1) & (i_d == sizes[l - 1])):
                        if l > 1:
                            start_walk()
                            m.next = f"BACKWARD{l - 1}"
                        else:
                            with m.If(last | (in_batch == spec.batch_size - 1)):
                                m.d.sync += [in_batch.eq(0), p.eq(0)]
                                m.next = "UPDATE_READ1"
                            with m.Else():
                                m.d.sync += in_batch.eq(in_batch + 1)
                                m.next = "IDLE"

            base = 0
            for l in range(1, L + 1):
                n_l = spec.layer_params(l)
                with m.State(f"UPDATE_READ{l}"):
                    m.next = f"UPDATE_SEND{l}"
                with m.State(f"UPDATE_SEND{l}"):
                    g_mean = requantize(g_rd[l - 1].data, src=spec.mean_format(l),
                                        dst=opt.gradient_format)
                    m.d.comb += [
                        unit.i.valid.eq(1),
                        unit.i.payload.index.eq(base + p),
                        unit.i.payload.weight.eq(w_rd[l - 1].data),
                        unit.i.payload.gradient.eq(g_mean),
                        unit.i.payload.step.eq(step),
                    ]
                    with m.If(unit.i.ready):
                        m.next = f"UPDATE_WAIT{l}"
                with m.State(f"UPDATE_WAIT{l}"):
                    m.d.comb += [unit.o.ready.eq(1), w_wr[l - 1].data.eq(unit.o.payload),
                                 w_wr[l - 1].en.eq(unit.o.valid)]
                    with m.If(unit.o.valid):
                        m.d.sync += p.eq(p + 1)
                        m.next = f"UPDATE_READ{l}"
                        with m.If(p == n_l - 1):
                            m.d.sync += p.eq(0)
                            if l < L:
                                m.next = f"UPDATE_READ{l + 1}"
                            else:
                                m.d.sync += step.eq(step + 1)
                                with m.If(last):
                                    m.next = "DUMP_READ1"
                                with m.Else():
                                    m.next = "IDLE"
                base += n_l

            for l in range(1, L + 1):
                with m.State(f"DUMP_READ{l}"):
                    m.next = f"DUMP_SEND{l}"
                with m.State(f"DUMP_SEND{l}"):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(w_rd[l - 1].data)]
                    with m.If(self.o.ready):
                        m.d.sync += p.eq(p + 1)
                        m.next = f"DUMP_READ{l}"
                        with m.If(p == spec.layer_params(l) - 1):
                            m.d.sync += p.eq(0)
                            m.next = f"DUMP_READ{l + 1}" if l < L else "IDLE"
        return m
