"""A dense layer that learns in hardware: parameters in memory, forward pass, loss gradient
(mean squared error or table softmax cross-entropy), batch gradient sums, and updates through an
:class:`~nnfab.hdl.optim.UpdateUnit`.
"""

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.training import TrainableDenseSpec

from .cast import fixed_shape, requantize
from .loss_error import output_error_states
from .optim import UpdateUnit
from .unused import discard

__all__ = ["sample_layout", "TrainableDense"]


def sample_layout(spec):
    """Input payload: ``x`` (``n_in`` codes of ``input_format``), ``target`` (``n_out`` codes
    of ``output_format`` for ``mse``, a label for ``softmax_cross_entropy``) and ``last`` (the
    sample ends its epoch)."""
    if spec.loss == "mse":
        target = data.ArrayLayout(fixed_shape(spec.output_format), spec.n_out)
    else:
        target = unsigned(spec.label_width)
    return data.StructLayout({
        "x": data.ArrayLayout(fixed_shape(spec.input_format), spec.n_in),
        "target": target,
        "last": 1,
    })


class TrainableDense(wiring.Component):
    """Trains the dense layer of a :class:`~nnfab.training.TrainableDenseSpec` on a stream of
    samples, with the arithmetic of :func:`nnfab.sim.golden.training.train_fixed`.

    Per sample, one multiply-accumulate per cycle: forward pass over the ``P = n_out * (n_in +
    1)`` parameters (weight memory read one cycle ahead), the ``n_out`` outputs streamed out,
    the error (softmax through :class:`~nnfab.hdl.softmax.Softmax` for cross-entropy), then
    the gradient sums ``S[p] += d[o] * x[i]`` (read-modify-write of the accumulator memory, one
    parameter per cycle). At the end of a batch every parameter goes through the update unit
    (its latency + 2 = 8 cycles each); after the sample flagged ``last``, all ``P`` parameters
    are streamed out in index order. Cycles per sample: about ``2 P + n_out + 8`` (``+ 10``
    for softmax), plus ``8 P`` per batch and ``2 P`` per epoch.

    Parameters
    ----------
    spec : TrainableDenseSpec

    Members
    -------
    i : ``In(stream.Signature(sample_layout(spec)))``
    o : ``Out(stream.Signature(signed(max(W_y, W_w))))``
        Per sample its ``n_out`` output codes (before its batch's update), and after the last
        sample of an epoch the ``P`` parameter codes.

    Raises
    ------
    TypeError
        If ``spec`` is not a TrainableDenseSpec.
    """

    def __init__(self, spec):
        if not isinstance(spec, TrainableDenseSpec):
            discard(self)  # a rejected design is not an unused one
            raise TypeError(f"Specification must be a TrainableDenseSpec, not {spec!r}")
        self._spec = spec
        width = max(spec.output_format.width, spec.optimizer.weight_format.width)
        super().__init__({
            "i": In(stream.Signature(sample_layout(spec))),
            "o": Out(stream.Signature(signed(width))),
        })

    def __repr__(self):
        return f"TrainableDense({self._spec!r})"

    @property
    def spec(self):
        return self._spec

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        opt = spec.optimizer
        n_in, n_out, P = spec.n_in, spec.n_out, spec.n_params
        X, Y, D = spec.input_format, spec.output_format, spec.error_format
        acc_fmt, fwd_fmt = spec.accumulator_format, spec.forward_format

        wmem = Memory(shape=fixed_shape(opt.weight_format), depth=P,
                      init=[int(v) for v in spec.initial_weights.ravel()])
        gmem = Memory(shape=fixed_shape(acc_fmt), depth=P, init=[])
        m.submodules.weights, m.submodules.gradients = wmem, gmem
        w_rd, w_wr = wmem.read_port(), wmem.write_port()
        g_rd, g_wr = gmem.read_port(), gmem.write_port()
        unit = m.submodules.update = UpdateUnit(opt, depth=P)

        xs = [Signal(fixed_shape(X), name=f"x{i}") for i in range(n_in)]
        x_arr = Array(xs + [Signal(fixed_shape(X), init=spec.one_code, name="one")])
        if spec.loss == "mse":
            targets = [Signal(fixed_shape(Y), name=f"t{o}") for o in range(n_out)]
        else:
            label = Signal(spec.label_width)
        ys = [Signal(fixed_shape(Y), name=f"y{o}") for o in range(n_out)]
        ds = Array(Signal(fixed_shape(D), name=f"d{o}") for o in range(n_out))
        y_arr = Array(ys)
        last = Signal()
        in_batch = Signal(range(spec.batch_size + 1))  # samples already summed in this batch
        step = Signal(unit.i.payload.step.shape(), init=1)

        # Parameter walk: p with its (o, i); the "_d" copies are one cycle behind (memory data).
        p, o, i = Signal(range(P + 1)), Signal(range(n_out + 1)), Signal(range(n_in + 2))
        run, run_d = Signal(), Signal()
        p_d, o_d, i_d = Signal.like(p), Signal.like(o), Signal.like(i)
        acc = Signal(fixed_shape(fwd_fmt))
        k = Signal(range(max(n_out, P) + 1))

        m.d.comb += [w_rd.addr.eq(p), g_rd.addr.eq(p), g_wr.addr.eq(p_d), w_wr.addr.eq(p)]
        m.d.sync += [run_d.eq(run), p_d.eq(p), o_d.eq(o), i_d.eq(i)]

        def start_walk():
            return [p.eq(0), o.eq(0), i.eq(0), run.eq(1)]

        with m.If(run):
            m.d.sync += p.eq(p + 1)
            with m.If(i == n_in):
                m.d.sync += [i.eq(0), o.eq(o + 1)]
            with m.Else():
                m.d.sync += i.eq(i + 1)
            with m.If(p == P - 1):
                m.d.sync += run.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    payload = self.i.payload
                    m.d.sync += [xs[n].eq(payload.x[n]) for n in range(n_in)]
                    if spec.loss == "mse":
                        m.d.sync += [targets[n].eq(payload.target[n]) for n in range(n_out)]
                    else:
                        m.d.sync += label.eq(payload.target)
                    m.d.sync += [last.eq(payload.last), acc.eq(0)] + start_walk()
                    m.next = "FORWARD"

            with m.State("FORWARD"):
                total = Signal(fixed_shape(fwd_fmt))
                m.d.comb += total.eq(acc + w_rd.data * x_arr[i_d])
                with m.If(run_d):
                    with m.If(i_d == n_in):
                        m.d.sync += [y_arr[o_d].eq(requantize(total, src=fwd_fmt, dst=Y)),
                                     acc.eq(0)]
                        with m.If(o_d == n_out - 1):
                            m.d.sync += k.eq(0)
                            m.next = "EMIT"
                    with m.Else():
                        m.d.sync += acc.eq(total)

            with m.State("EMIT"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(y_arr[k])]
                with m.If(self.o.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == n_out - 1):
                        m.next = "ERROR"

            def error_done():
                m.d.sync += start_walk()
                m.next = "BACKWARD"

            output_error_states(m, spec, outputs=ys,
                                targets=targets if spec.loss == "mse" else None,
                                label=label if spec.loss != "mse" else None,
                                errors=list(ds), done=error_done)

            with m.State("BACKWARD"):
                product = ds[o_d] * x_arr[i_d]
                m.d.comb += [
                    g_wr.en.eq(run_d),
                    g_wr.data.eq(product + Mux(in_batch == 0, 0, g_rd.data)),
                ]
                with m.If(run_d & (p_d == P - 1)):
                    with m.If(last | (in_batch == spec.batch_size - 1)):
                        m.d.sync += [in_batch.eq(0), p.eq(0)]
                        m.next = "UPDATE_READ"
                    with m.Else():
                        m.d.sync += in_batch.eq(in_batch + 1)
                        m.next = "IDLE"

            with m.State("UPDATE_READ"):
                m.next = "UPDATE_SEND"
            with m.State("UPDATE_SEND"):
                g_mean = requantize(g_rd.data, src=spec.mean_format, dst=opt.gradient_format)
                m.d.comb += [
                    unit.i.valid.eq(1),
                    unit.i.payload.index.eq(p),
                    unit.i.payload.weight.eq(w_rd.data),
                    unit.i.payload.gradient.eq(g_mean),
                    unit.i.payload.step.eq(step),
                ]
                with m.If(unit.i.ready):
                    m.next = "UPDATE_WAIT"
            with m.State("UPDATE_WAIT"):
                m.d.comb += [unit.o.ready.eq(1), w_wr.data.eq(unit.o.payload),
                             w_wr.en.eq(unit.o.valid)]
                with m.If(unit.o.valid):
                    m.d.sync += p.eq(p + 1)
                    m.next = "UPDATE_READ"
                    with m.If(p == P - 1):
                        m.d.sync += [step.eq(step + 1), p.eq(0)]
                        with m.If(last):
                            m.next = "DUMP_READ"
                        with m.Else():
                            m.next = "IDLE"

            with m.State("DUMP_READ"):
                m.next = "DUMP_SEND"
            with m.State("DUMP_SEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(w_rd.data)]
                with m.If(self.o.ready):
                    m.d.sync += p.eq(p + 1)
                    m.next = "DUMP_READ"
                    with m.If(p == P - 1):
                        m.d.sync += p.eq(0)
                        m.next = "IDLE"
        return m
