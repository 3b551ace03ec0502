"""Golden models of the fixed-point weight-update units (:mod:`nnfab.hdl.optim`): the integer
algorithms of :mod:`nnfab.training`, written independently of the hardware in Python integers.
"""

import numpy as np

from nnfab.training import LFSR_WIDTH, OptimizerSpec, lfsr_step

__all__ = ["rsqrt", "OptimizerState", "init_state", "update"]


def _rs(x, k):
    """Round half up by ``k`` bits (``k <= 0``: exact left shift)."""
    if k <= 0:
        return x << -k
    return (x + (1 << (k - 1))) >> k


def _sr(x, k, r):
    """Stochastic rounding by ``k`` bits with the LFSR state ``r``."""
    if k <= 0:
        return x << -k
    return (x + ((r << k) >> LFSR_WIDTH)) >> k


def _sat(x, fmt):
    return min(max(x, fmt.min_code), fmt.max_code)


def rsqrt(x, *, bits, fraction_width, square_fraction_width, table):
    """``(r, h)`` with ``1/sqrt(x * 2**-Fa) ~= r * 2**-Fr * 2**-h`` for an integer ``x >= 1``
    (module docstring of :mod:`nnfab.training`)."""
    p = x.bit_length() - 1
    e = p - square_fraction_width
    q = e % 2
    h = (e - q) // 2
    j = (x >> (p - bits)) if p >= bits else (x << (bits - p))
    j &= (1 << bits) - 1
    return table[q * (1 << bits) + j], h


class OptimizerState:
    """Optimizer state of ``n`` parameters: ``state`` (first state codes), ``square`` (second
    state codes), both zero at the start, and the LFSR state ``lfsr``."""

    def __init__(self, spec, n):
        self.state = [0] * n
        self.square = [0] * n
        self.lfsr = spec.lfsr_seed


def init_state(spec, n):
    """A fresh :class:`OptimizerState` for ``n`` parameters of ``spec``."""
    if not isinstance(spec, OptimizerSpec):
        raise TypeError(f"Optimizer must be an OptimizerSpec, not {spec!r}")
    return OptimizerState(spec, n)


def _update_one(spec, w, g, m, a, t, r):
    """One parameter: returns ``(w', m', a')``."""
    W, G = spec.weight_format, spec.gradient_format
    fw, fg, s = W.fraction_width, G.fraction_width, spec.lr_shift

    def step_round(x, k):
        return _sr(x, k, r) if spec.stochastic_rounding else _rs(x, k)

    if spec.kind == "sgd":
        return _sat(w - step_round(g, s + fg - fw), W), m, a
    if spec.kind == "momentum":
        M = spec.state_format
        m = _sat(m - _rs(m, spec.momentum_shift) + _rs(g, fg - M.fraction_width), M)
        return _sat(w - step_round(m, s + M.fraction_width - fw), W), m, a
    A = spec.square_format
    fa = A.fraction_width
    if spec.kind == "adagrad":
        a = _sat(a + _rs(g * g, 2 * fg - fa), A)
    else:
        M = spec.state_format
        k1, k2 = spec.beta1_shift, spec.beta2_shift
        m = _sat(m - _rs(m, k1) + _rs(g, fg + k1 - M.fraction_width), M)
        a = _sat(a - _rs(a, k2) + _rs(g * g, 2 * fg + k2 - fa), A)
    r_code, h = rsqrt(a + spec.epsilon_code, bits=spec.rsqrt_bits,
                      fraction_width=spec.rsqrt_fraction_width, square_fraction_width=fa,
                      table=spec.rsqrt_codes)
    shift = spec.step_shift_base + h
    if spec.kind == "adagrad":
        product = g * r_code
    else:
        table = spec.correction_codes
        c = table[t - 1] if t <= len(table) else spec.correction_one
        product = m * c * r_code
    return _sat(w - step_round(product, shift), W), m, a


def update(spec, weights, gradients, opt_state, *, step=1, indices=None):
    """Update ``weights`` (codes of ``spec.weight_format``) with ``gradients`` (codes of
    ``spec.gradient_format``), in order, as the hardware unit does one input at a time.

    Parameters
    ----------
    spec : OptimizerSpec
    weights, gradients : array_like of int, shape (n,)
    opt_state : OptimizerState
        Updated in place (state and square at ``indices``, the LFSR once per parameter).
    step : int, >= 1, or array_like of int, shape (n,)
        Adam's step ``t``; ignored by the other optimizers.
    indices : array_like of int, shape (n,), optional
        Parameter index of each input (default ``0 .. n-1``).

    Returns
    -------
    ndarray of int64, shape (n,)
        The updated weight codes.

    Raises
    ------
    ValueError
        If a step is below 1.
    """
    w = [int(v) for v in np.asarray(weights).ravel()]
    g = [int(v) for v in np.asarray(gradients).ravel()]
    n = len(w)
    idx = range(n) if indices is None else [int(i) for i in np.asarray(indices).ravel()]
    steps = np.broadcast_to(np.asarray(step), (n,))
    out = []
    for k, (wk, gk, pk) in enumerate(zip(w, g, idx)):
        t = int(steps[k])
        if t < 1:
            raise ValueError(f"Step must be a positive integer, not {t!r}")
        new_w, opt_state.state[pk], opt_state.square[pk] = _update_one(
            spec, wk, gk, opt_state.state[pk], opt_state.square[pk], t, opt_state.lfsr)
        opt_state.lfsr = lfsr_step(opt_state.lfsr)
        out.append(new_w)
    return np.array(out, dtype=np.int64)
