"""Golden model of a recurrent layer (:class:`nnfab.recurrent.RecurrentSpec`: SimpleRNN,
LSTM, GRU), exact integer NumPy over a batch of sequences.

Each step's pre-activations are :func:`nnfab.sim.golden.dense.dense` of the spec's
``dense_spec`` over ``[x_t, h_{t-1}]``; the activations are
:func:`nnfab.sim.golden.activations.activation`; the cell updates are exact sums of exact
products (Python integers), each cast once with :func:`nnfab.casts.cast`; the state fed
back is cast to the spec's feedback formats when it has them. A GRU without ``reset_after``
runs the dense layer a second time, over ``[x_t, cast(r * h_{t-1})]``, for its candidate.
"""

import numpy as np

from nnfab.casts import as_codes, cast
from nnfab.recurrent import exact_sum_format

from .activations import activation
from .dense import dense

__all__ = ["recurrent", "exact_sum"]


def exact_sum(terms):
    """The exact sum of ``terms``, each ``(sign, codes, format)`` or ``(sign, a, a_format, b,
    b_format)`` (a product), as ``(codes, format)``: codes on the finest grid of the terms, the
    format wide enough for any sum of them."""
    parts = []
    for sign, *rest in terms:
        if len(rest) == 2:
            codes, fmt = rest
        else:
            a, fa, b, fb = rest
            codes, fmt = np.asarray(a, dtype=object) * np.asarray(b, dtype=object), \
                fa.mul_format(fb)
        parts.append((sign, np.asarray(codes, dtype=object), fmt))
    fmt = exact_sum_format([f for _, _, f in parts])
    total = sum(sign * (codes << (fmt.fraction_width - f.fraction_width))
                for sign, codes, f in parts)
    return total, fmt


def _act(spec, kind, codes, fin, fout):
    return activation(kind, codes, fin=fin, fout=fout, **spec.activation_params(kind))


def _simple_rnn(spec, p, h, c, again):
    return _act(spec, spec.activation, p, spec.preact_format, spec.state_format), c


def _lstm(spec, p, h, c, again):
    n, pf, gf = spec.units, spec.preact_format, spec.gate_format
    i, f, o = (_act(spec, spec.recurrent_activation, p[:, k * n:(k + 1) * n], pf, gf)
               for k in (0, 1, 3))
    g = _act(spec, spec.activation, p[:, 2 * n:3 * n], pf, spec.candidate_format)
    c = cast(*exact_sum([(1, f, gf, c, spec.c_feedback_format),
                         (1, i, gf, g, spec.candidate_format)]), spec.cell_format)
    t = _act(spec, spec.activation, c, spec.cell_format, spec.candidate_format)
    return cast(*exact_sum([(1, o, gf, t, spec.candidate_format)]), spec.state_format), c


def _gru(spec, p, h, c, again):
    n, pf, gf, cf = spec.units, spec.preact_format, spec.gate_format, spec.candidate_format
    z, r = (_act(spec, spec.recurrent_activation, p[:, k * n:(k + 1) * n], pf, gf)
            for k in (0, 1))
    if not spec.reset_after:  # the second product, over [x_t, r * h_{t-1}]
        q = cast(*exact_sum([(1, r, gf, h, spec.h_feedback_format)]), spec.reset_input_format)
        pre = again(q, spec.reset_input_format)[:, 2 * n:]
    else:
        reset = (1, r, gf, p[:, 3 * n:], pf)
        if spec.reset_product_format is not None:  # hls4ml: the product cast on its own
            reset = (1, cast(*exact_sum([reset]), spec.reset_product_format),
                     spec.reset_product_format)
        pre = cast(*exact_sum([(1, p[:, 2 * n:3 * n], pf), reset]), pf)
    g = _act(spec, spec.activation, pre, pf, cf)
    return cast(*exact_sum([(1, z, gf, h, spec.h_feedback_format), (1, g, cf),
                            (-1, z, gf, g, cf)]), spec.state_format), c


_STEPS = {"simple_rnn": _simple_rnn, "lstm": _lstm, "gru": _gru}


def recurrent(x, spec):
    """Run ``spec`` over a batch of sequences from a zero state.

    Parameters
    ----------
    x : array_like of int, shape (batch, n_steps, n_in)
        Raw codes of ``spec.input_format``.
    spec : RecurrentSpec

    Returns
    -------
    ndarray of int, shape (batch, n_steps, units) or (batch, units)
        Raw codes of ``spec.state_format``: every step's state with ``return_sequences``,
        else the last.

    Raises
    ------
    ValueError
        If ``x`` is not of shape ``(batch, n_steps, n_in)``, or as
        :func:`~nnfab.casts.as_codes` for codes out of range.
    """
    x = as_codes(x, spec.input_format)
    if x.ndim != 3 or x.shape[1:] != spec.input_shape:
        raise ValueError(f"Input must have shape (batch, {spec.n_steps}, {spec.n_in}), not "
                         f"{x.shape}")
    d = spec.dense_spec
    xs = cast(x, spec.input_format, d.input_format)
    h = np.zeros((x.shape[0], spec.units), dtype=np.int64)
    c = np.zeros_like(h)
    states = []
    for t in range(spec.n_steps):
        def again(v, fmt, t=t):
            return dense(np.concatenate([xs[:, t], cast(v, fmt, d.input_format)], axis=1), d)

        p = again(h, spec.h_feedback_format)
        out, c = _STEPS[spec.cell](spec, p, h, c, again)
        states.append(out)
        h = out if spec.feedback_format is None else \
            cast(out, spec.state_format, spec.feedback_format)
        if spec.cell_feedback_format is not None:
            c = cast(c, spec.cell_format, spec.cell_feedback_format)
    return np.stack(states, axis=1) if spec.return_sequences else states[-1]
