import random

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.trainable_dense import TrainableDense
from nnfab.sim.golden.training import train_fixed
from nnfab.training import TrainableDenseSpec, adam, momentum, sgd, adagrad

from ..streams import run_stream

X = FixedFormat(10, 2, rounding="RND", overflow="SAT")
Y = FixedFormat(12, 4, rounding="RND", overflow="SAT")
D = FixedFormat(12, 4, rounding="RND", overflow="SAT")
WF = FixedFormat(12, 3)
GF = FixedFormat(12, 3)


def make_optimizer(kind):
    common = dict(weight_format=WF, gradient_format=GF, lr_shift=3)
    if kind == "sgd":
        return sgd(**common)
    if kind == "momentum":
        return momentum(state_format=FixedFormat(14, 4), momentum_shift=2, **common)
    if kind == "adagrad":
        return adagrad(square_format=FixedFormat(16, 4, signed=False), **common)
    return adam(state_format=FixedFormat(14, 4), square_format=FixedFormat(16, 4, signed=False),
                **common)


def expected_stream(spec, trace):
    words = []
    for outputs, weights in zip(trace.outputs, trace.weights):
        words += outputs.ravel().tolist() + weights.ravel().tolist()
    return words


def sample_payloads(spec, x, targets, epochs):
    payloads = []
    for _ in range(epochs):
        for n, row in enumerate(x):
            target = ([int(v) for v in targets[n]] if spec.loss == "mse" else int(targets[n]))
            payloads.append({"x": [int(v) for v in row], "target": target,
                             "last": int(n == len(x) - 1)})
    return payloads


def random_problem(rng, loss, kind, *, n_in, n_out, n, batch_size):
    w0 = rng.integers(-200, 200, (n_out, n_in + 1))
    spec = TrainableDenseSpec(n_in, n_out, loss, make_optimizer(kind), X, Y, D, batch_size, w0)
    x = rng.integers(X.min_code, X.max_code + 1, (n, n_in))
    if loss == "mse":
        targets = rng.integers(-1000, 1000, (n, n_out))
    else:
        targets = rng.integers(0, n_out, n)
    return spec, x, targets


@pytest.mark.parametrize("loss,kind", [("mse", "sgd"), ("mse", "momentum"),
                                       ("softmax_cross_entropy", "adagrad"),
                                       ("softmax_cross_entropy", "adam")])
def test_trainable_dense_matches_golden(loss, kind):
    seed = 7 + len(loss) * 10 + len(kind)
    rng = np.random.default_rng(seed)
    spec, x, targets = random_problem(rng, loss, kind, n_in=3, n_out=3, n=7, batch_size=2)
    epochs = 2
    trace = train_fixed(spec, x, targets, epochs=epochs)
    expected = expected_stream(spec, trace)
    run = run_stream(TrainableDense(spec), sample_payloads(spec, x, targets, epochs),
                     rng=random.Random(seed), p_idle=0.3, p_stall=0.3, n_outputs=len(expected),
                     max_cycles=100_000)
    assert run.outputs == expected, f"seed {seed}"
