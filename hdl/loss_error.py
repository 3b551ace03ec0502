"""The output error of on-chip training, as FSM states shared by the trainable designs
(:class:`~nnfab.hdl.trainable_dense.TrainableDense`, :class:`~nnfab.hdl.trainable_mlp.
TrainableMLP`); the arithmetic of :func:`nnfab.sim.golden.training.output_errors`.
"""

from amaranth.hdl import Signal

from .softmax import SOFTMAX_LATENCY, Softmax
from .cast import fixed_shape, requantize

__all__ = ["output_error_states", "error_cycles"]


def error_cycles(spec):
    """Cycles of :func:`output_error_states` from entering ``"ERROR"`` to ``done()`` taking
    effect: 1 (``mse``), or 1 plus the softmax's latency (:data:`~nnfab.hdl.activations.
    SOFTMAX_LATENCY`)."""
    return 1 if spec.loss == "mse" else 1 + SOFTMAX_LATENCY


def output_error_states(m, spec, *, outputs, targets, label, errors, done):
    """Add the states ``"ERROR"`` (and ``"SOFTMAX"`` for cross-entropy) to the FSM being
    built in ``m``: from ``"ERROR"``, the error codes ``errors[n] = cast(outputs[n] - targets[n],
    error_format)`` (``mse``, one cycle) or ``cast(p[n] - (label == n), error_format)`` with
    ``p`` the table softmax of the outputs in ``probability_format`` through a
    :class:`~nnfab.hdl.softmax.Softmax` (reciprocal table ``spec.reciprocal_table``), then
    ``done()`` (called inside the last state, it adds its statements and ``m.next``).

    ``spec`` is any specification with ``loss``, ``n_out``, ``output_format``,
    ``probability_format``, ``difference_format``, ``error_format`` and ``reciprocal_table``;
    ``outputs``, ``targets`` (``mse``) and ``errors`` are lists of ``n_out`` signals of the
    output, output and error formats; ``label`` the label signal (cross-entropy).
    """
    n_out, diff_fmt, D = spec.n_out, spec.difference_format, spec.error_format
    with m.State("ERROR"):
        if spec.loss == "mse":
            for n in range(n_out):
                diff = Signal(fixed_shape(diff_fmt), name=f"diff{n}")
                m.d.comb += diff.eq(outputs[n] - targets[n])
                m.d.sync += errors[n].eq(requantize(diff, src=diff_fmt, dst=D))
            done()
            return
        sm = m.submodules.softmax = Softmax(n=n_out, fin=spec.output_format,
                                            fout=spec.probability_format,
                                            inv_table=spec.reciprocal_table)
        m.d.comb += [sm.i.valid.eq(1)] + [sm.i.payload[n].eq(outputs[n]) for n in range(n_out)]
        with m.If(sm.i.ready):
            m.next = "SOFTMAX"
    with m.State("SOFTMAX"):
        m.d.comb += sm.o.ready.eq(1)
        one = 1 << spec.probability_format.fraction_width
        with m.If(sm.o.valid):
            for n in range(n_out):
                diff = Signal(fixed_shape(diff_fmt), name=f"diff{n}")
                m.d.comb += diff.eq(sm.o.payload[n] - (label == n) * one)
                m.d.sync += errors[n].eq(requantize(diff, src=diff_fmt, dst=D))
            done()
