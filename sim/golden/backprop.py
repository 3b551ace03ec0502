"""Golden model of the trainable multi-layer perceptron (:mod:`nnfab.hdl.trainable_mlp`):
forward pass keeping the activations, output error, backward pass through the transposed
weights and the ReLU masks, batch gradient sums and optimizer updates, in exact integers
(Python integers in object arrays, results as NumPy int64); plus the float64 reference of the
same training.

Rounding of each step (the casts of :func:`nnfab.casts.cast`, i.e. the destination format's
rounding and overflow modes; every sum and product before a cast is exact):

- ``z_l``: the exact row sum cast to ``activation_format`` (hidden) or ``output_format``;
  ``a_l = max(z_l, 0)``, exact;
- ``e_L``: as the single layer (:func:`nnfab.sim.golden.training.output_errors`);
- ``e_{l-1}``: the exact ``W_l^T e_l`` cast to ``error_format``, then masked (0 where
  ``a_{l-1} <= 0``);
- gradient: the exact batch sum read with ``log2(batch_size)`` more fraction bits, cast to
  ``gradient_format``;
- update: :func:`nnfab.sim.golden.optim.update` (its own documented rounding, saturation of
  weights and state).
"""

import numpy as np

from nnfab.casts import cast, to_float
from nnfab.training_mlp import TrainableMLPSpec

from .optim import init_state, update
from .training import FloatOptimizer, TrainingTrace, float_output_errors, output_errors

__all__ = ["forward", "predict", "train_fixed", "train_float", "split_weights",
           "float_predict"]


def _spec(spec):
    if not isinstance(spec, TrainableMLPSpec):
        raise TypeError(f"Specification must be a TrainableMLPSpec, not {spec!r}")
    return spec


def _augment(a, one):
    a = np.asarray(a).astype(object)
    return np.concatenate([a, np.full((len(a), 1), one, dtype=object)], axis=1)


def forward(spec, weights, x):
    """Activations ``[a_0, a_1, ..., a_{L-1}, y]`` (object arrays of codes, shapes (n, n_l))
    of the input codes ``x`` (shape (n, n_0)) with parameters ``weights`` (``L`` arrays of
    codes, shapes ``(n_l, n_{l-1} + 1)``); ``a_l = max(z_l, 0)`` for the hidden layers, ``y``
    the output codes."""
    spec = _spec(spec)
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != spec.n_in:
        raise ValueError(f"Inputs must have shape (n, {spec.n_in}), not {x.shape}")
    acts = [x.astype(object)]
    for l in range(1, spec.n_layers + 1):
        total = _augment(acts[-1], spec.one_code(l)) @ np.asarray(weights[l - 1]).astype(object).T
        z = cast(total, spec.forward_format(l), spec.layer_output_format(l)).astype(object)
        acts.append(z if l == spec.n_layers else np.maximum(z, 0))
    return acts


def predict(spec, weights, x):
    """Output codes ``y`` (int64, shape (n, n_out)) of the inputs ``x``."""
    return forward(spec, weights, x)[-1].astype(np.int64)


def _gradient_sums(spec, weights, acts, targets):
    """Per layer the exact ``sum over the samples of e_l a_{l-1}^T`` (object arrays)."""
    y = acts[-1].astype(np.int64)
    e = output_errors(spec, y, targets).astype(object)
    sums = [None] * spec.n_layers
    for l in range(spec.n_layers, 0, -1):
        a_prev = _augment(acts[l - 1], spec.one_code(l))
        sums[l - 1] = e.T @ a_prev
        if l > 1:
            back = e @ np.asarray(weights[l - 1])[:, :-1].astype(object)
            e_prev = cast(back, spec.backward_format(l), spec.error_format).astype(object)
            e = np.where(acts[l - 1] > 0, e_prev, 0).astype(object)
    return sums


def train_fixed(spec, x, targets, *, epochs):
    """Train the network of ``spec`` for ``epochs`` epochs over the samples ``x`` (codes of
    ``input_format``, shape (n, n_0)) in order, with ``targets`` (codes of ``output_format``,
    shape (n, n_out), for ``mse``; labels, shape (n,), for ``softmax_cross_entropy``).

    Batches of ``batch_size`` consecutive samples; the last sample of an epoch closes its batch
    (a short batch is still divided by ``batch_size``). Steps count updates from 1.

    Returns
    -------
    TrainingTrace
        Per epoch the output codes (before each batch's update) and the parameters at its end,
        as one int64 vector of :attr:`~nnfab.training_mlp.TrainableMLPSpec.n_params` codes
        (layer 1 first, row-major), the order the hardware streams them.
    """
    spec = _spec(spec)
    x = np.asarray(x, dtype=np.int64)
    targets = np.asarray(targets)
    weights = [w.copy() for w in spec.initial_weights]
    opt = init_state(spec.optimizer, spec.n_params)
    step = 1
    trace = TrainingTrace()
    for _ in range(epochs):
        outputs = []
        for start in range(0, len(x), spec.batch_size):
            stop = min(start + spec.batch_size, len(x))
            acts = forward(spec, weights, x[start:stop])
            outputs.append(acts[-1].astype(np.int64))
            sums = _gradient_sums(spec, weights, acts, targets[start:stop])
            g = np.concatenate([cast(s, spec.mean_format(l), spec.optimizer.gradient_format)
                                .ravel() for l, s in enumerate(sums, start=1)])
            flat = update(spec.optimizer, np.concatenate([w.ravel() for w in weights]), g, opt,
                          step=step)
            weights = _split(spec, flat)
            step += 1
        trace.outputs.append(np.concatenate(outputs))
        trace.weights.append(np.concatenate([w.ravel() for w in weights]))
    return trace


def _split(spec, flat):
    """The flat parameter vector as ``L`` arrays of shapes ``(n_l, n_{l-1} + 1)``."""
    out, offset = [], 0
    for l in range(1, spec.n_layers + 1):
        n = spec.layer_params(l)
        out.append(np.asarray(flat[offset:offset + n]).reshape(spec.weight_shape(l)))
        offset += n
    return out


def split_weights(spec, flat):
    """The flat parameter vector of :func:`train_fixed` as one array per layer."""
    return _split(_spec(spec), flat)


def _float_forward(spec, weights, x):
    acts = [np.asarray(x, dtype=np.float64)]
    for l, w in enumerate(weights, start=1):
        z = np.concatenate([acts[-1], np.ones((len(acts[-1]), 1))], axis=1) @ w.T
        acts.append(z if l == spec.n_layers else np.maximum(z, 0))
    return acts


def float_predict(spec, flat_weights, x):
    """Float outputs (shape (n, n_out)) of the float inputs ``x`` with the flat float
    parameters ``flat_weights`` (as :func:`train_float` gives them)."""
    spec = _spec(spec)
    return _float_forward(spec, _split(spec, np.asarray(flat_weights)), x)[-1]


def train_float(spec, x, targets, *, epochs, lr, **optimizer_args):
    """The same training in float64: the same initial parameters (as values), batches, epochs,
    loss and ReLU, the plain float optimizer of ``spec.optimizer.kind``
    (:class:`~nnfab.sim.golden.training.FloatOptimizer`, ``optimizer_args`` passed on) with
    learning rate ``lr``. ``x`` and ``targets`` are floats (or labels).

    Returns
    -------
    TrainingTrace
        Float outputs and the flat float parameters per epoch.
    """
    spec = _spec(spec)
    x = np.asarray(x, dtype=np.float64)
    targets = np.asarray(targets)
    wf = spec.optimizer.weight_format
    flat = np.concatenate([to_float(w, wf).astype(np.float64).ravel()
                           for w in spec.initial_weights])
    opt = FloatOptimizer(spec.optimizer.kind, lr=lr, **optimizer_args)
    state = opt.init(flat)
    trace = TrainingTrace()
    for _ in range(epochs):
        outputs = []
        for start in range(0, len(x), spec.batch_size):
            weights = _split(spec, flat)
            acts = _float_forward(spec, weights, x[start:start + spec.batch_size])
            outputs.append(acts[-1])
            e = float_output_errors(spec.loss, acts[-1], targets[start:start + spec.batch_size])
            grads = [None] * spec.n_layers
            for l in range(spec.n_layers, 0, -1):
                a_prev = np.concatenate([acts[l - 1], np.ones((len(e), 1))], axis=1)
                grads[l - 1] = e.T @ a_prev / spec.batch_size
                if l > 1:
                    e = (e @ weights[l - 1][:, :-1]) * (acts[l - 1] > 0)
            flat = opt.step(flat, np.concatenate([g.ravel() for g in grads]), state)
        trace.outputs.append(np.concatenate(outputs))
        trace.weights.append(flat.copy())
    return trace
