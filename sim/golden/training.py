"""Golden model of the trainable dense layer (:mod:`nnfab.hdl.trainable_dense`): forward pass,
loss gradient, batch gradient sums and optimizer updates, in exact integers; plus the float64
reference (the same model trained with plain float arithmetic) and the losses.
"""

from dataclasses import dataclass, field

import numpy as np

from nnfab.casts import cast, to_float
from nnfab.training import TrainableDenseSpec

from .activations import softmax
from .optim import init_state, update

__all__ = ["TrainingTrace", "forward", "output_errors", "train_fixed", "train_float",
           "FloatOptimizer", "float_output_errors", "loss_from_outputs"]


@dataclass
class TrainingTrace:
    """What a training run produced, epoch by epoch.

    Attributes
    ----------
    outputs : list of ndarray, shape (n_samples, n_out)
        Per epoch, each sample's forward output (codes of ``output_format``, or floats for the
        float reference), computed before the update of its batch, as the hardware streams it.
    weights : list of ndarray, shape (n_out, n_in + 1)
        Per epoch, the parameters at its end (codes, or floats).
    """

    outputs: list = field(default_factory=list)
    weights: list = field(default_factory=list)


def _spec(spec):
    if not isinstance(spec, TrainableDenseSpec):
        raise TypeError(f"Specification must be a TrainableDenseSpec, not {spec!r}")
    return spec


def _augment(spec, x):
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != spec.n_in:
        raise ValueError(f"Inputs must have shape (n, {spec.n_in}), not {x.shape}")
    return np.concatenate([x, np.full((len(x), 1), spec.one_code, dtype=np.int64)], axis=1)


def forward(spec, weights, x):
    """Output codes ``cast(W [x, 1], output_format)`` of the inputs ``x`` (codes, shape
    (n, n_in)) with parameters ``weights`` (codes, shape (n_out, n_in + 1))."""
    spec = _spec(spec)
    xa = _augment(spec, x).astype(object)
    acc = xa @ np.asarray(weights).astype(object).T
    return cast(acc, spec.forward_format, spec.output_format).astype(np.int64)


def output_errors(spec, y, targets):
    """Output error codes (``error_format``) of the output codes ``y`` (shape (n, n_out)):
    ``cast(y - target)`` (``mse``) or ``cast(p - onehot(label))`` with ``p`` the table softmax
    in ``probability_format`` (reciprocal table ``spec.reciprocal_table``). ``spec`` is any specification with ``loss``,
    ``output_format``, ``probability_format``, ``difference_format`` and ``error_format``
    (:class:`~nnfab.training.TrainableDenseSpec`, :class:`~nnfab.training_mlp.
    TrainableMLPSpec`)."""
    if spec.loss == "mse":
        diff = y.astype(object) - np.asarray(targets).astype(object)
    else:
        p = softmax(y, fin=spec.output_format, fout=spec.probability_format,
                    inv_table=spec.reciprocal_table).astype(object)
        onehot = np.zeros(y.shape, dtype=object)
        onehot[np.arange(len(y)), np.asarray(targets)] = 1 << spec.probability_format.fraction_width
        diff = p - onehot
    return cast(diff, spec.difference_format, spec.error_format)


def train_fixed(spec, x, targets, *, epochs):
    """Train the layer of ``spec`` for ``epochs`` epochs over the samples ``x`` (codes of
    ``input_format``, shape (n, n_in)) in order, with ``targets`` (codes of ``output_format``,
    shape (n, n_out), for ``mse``; labels, shape (n,), for ``softmax_cross_entropy``).

    Batches of ``batch_size`` consecutive samples; the last sample of an epoch closes its batch.
    The gradient is the exact sum of ``d[o] * x[i]`` over the batch, read with
    ``log2(batch_size)`` more fraction bits and cast to the gradient format (so a short last
    batch is also divided by ``batch_size``). Steps count updates from 1.

    Returns
    -------
    TrainingTrace
        Output codes and parameter codes per epoch.
    """
    spec = _spec(spec)
    xa = _augment(spec, x)
    targets = np.asarray(targets)
    n = len(xa)
    w = spec.initial_weights.copy()
    opt = init_state(spec.optimizer, spec.n_params)
    step = 1
    trace = TrainingTrace()
    for _ in range(epochs):
        outputs = []
        for start in range(0, n, spec.batch_size):
            stop = min(start + spec.batch_size, n)
            y = forward(spec, w, xa[start:stop, :-1])
            outputs.append(y)
            d = output_errors(spec, y, targets[start:stop])
            total = d.astype(object).T @ xa[start:stop].astype(object)
            g = cast(total, spec.mean_format, spec.optimizer.gradient_format)
            w = update(spec.optimizer, w.ravel(), g.ravel(), opt, step=step).reshape(w.shape)
            step += 1
        trace.outputs.append(np.concatenate(outputs))
        trace.weights.append(w.copy())
    return trace


def train_float(spec, x, targets, *, epochs, lr, beta1=0.9, beta2=0.999, epsilon=1e-8,
                momentum=0.9):
    """The same model in float64: the same initial parameters (as values), batches, epochs and
    loss, plain float optimizer of ``spec.optimizer.kind`` (Adam as Kingma and Ba's Algorithm 1,
    epsilon outside the root; Adagrad with epsilon outside the root) with learning rate ``lr``.
    ``x`` and ``targets`` are floats (or labels).

    Returns
    -------
    TrainingTrace
        Float outputs and parameters per epoch.
    """
    spec = _spec(spec)
    kind = spec.optimizer.kind
    x = np.asarray(x, dtype=np.float64)
    xa = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    targets = np.asarray(targets)
    w = to_float(spec.initial_weights, spec.optimizer.weight_format).astype(np.float64)
    opt = FloatOptimizer(kind, lr=lr, beta1=beta1, beta2=beta2, epsilon=epsilon,
                         momentum=momentum)
    state = opt.init(w)
    trace = TrainingTrace()
    for _ in range(epochs):
        outputs = []
        for start in range(0, len(xa), spec.batch_size):
            xb = xa[start:start + spec.batch_size]
            y = xb @ w.T
            outputs.append(y)
            d = float_output_errors(spec.loss, y, targets[start:start + spec.batch_size])
            g = d.T @ xb / spec.batch_size
            w = opt.step(w, g, state)
        trace.outputs.append(np.concatenate(outputs))
        trace.weights.append(w.copy())
    return trace


def float_output_errors(loss, y, targets):
    """The float output error: ``y - target`` (``mse``) or ``softmax(y) - onehot(label)``."""
    if loss == "mse":
        return y - targets
    e = np.exp(y - y.max(axis=1, keepdims=True))
    d = e / e.sum(axis=1, keepdims=True)
    d[np.arange(len(y)), targets] -= 1
    return d


class FloatOptimizer:
    """Plain float64 optimizers of the float references: ``sgd``, ``momentum`` (``m = mu m +
    g``, ``w -= lr m``), ``adagrad`` (epsilon outside the root) and ``adam`` (Kingma and Ba's
    Algorithm 1, epsilon outside the root)."""

    def __init__(self, kind, *, lr, beta1=0.9, beta2=0.999, epsilon=1e-8, momentum=0.9):
        self.kind, self.lr, self.beta1, self.beta2 = kind, lr, beta1, beta2
        self.epsilon, self.momentum = epsilon, momentum

    def init(self, w):
        """Fresh state for the parameters ``w``: ``{"m", "v", "t"}``."""
        return {"m": np.zeros_like(w), "v": np.zeros_like(w), "t": 0}

    def step(self, w, g, state):
        """The parameters after one step with the gradient ``g``; ``state`` updated."""
        lr, m, v = self.lr, state["m"], state["v"]
        state["t"] += 1
        t = state["t"]
        if self.kind == "sgd":
            return w - lr * g
        if self.kind == "momentum":
            state["m"] = m = self.momentum * m + g
            return w - lr * m
        if self.kind == "adagrad":
            state["v"] = v = v + g * g
            return w - lr * g / (np.sqrt(v) + self.epsilon)
        b1, b2 = self.beta1, self.beta2
        state["m"] = m = b1 * m + (1 - b1) * g
        state["v"] = v = b2 * v + (1 - b2) * g * g
        return w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + self.epsilon)


def loss_from_outputs(loss, outputs, targets):
    """Mean loss over the samples, in float64, of outputs given as values (not codes): mean
    squared error over samples and outputs, or mean softmax cross-entropy (float softmax)."""
    y = np.asarray(outputs, dtype=np.float64)
    targets = np.asarray(targets)
    if loss == "mse":
        return float(np.mean((y - targets) ** 2))
    z = y - y.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), targets]))
