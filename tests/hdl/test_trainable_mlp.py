import random

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.trainable_mlp import TrainableMLP
from nnfab.sim.golden.backprop import train_fixed
from nnfab.training_mlp import TrainableMLPSpec

from ..streams import run_stream
from .test_trainable_dense import make_optimizer, sample_payloads

X = FixedFormat(10, 2, rounding="RND", overflow="SAT")
A = FixedFormat(10, 3, rounding="RND", overflow="SAT")
Y = FixedFormat(12, 4, rounding="RND", overflow="SAT")
D = FixedFormat(12, 3, rounding="RND", overflow="SAT")


def random_problem(rng, loss, kind, *, sizes, n, batch_size):
    w0 = tuple(rng.integers(-1500, 1500, (sizes[l + 1], sizes[l] + 1))
               for l in range(len(sizes) - 1))
    spec = TrainableMLPSpec(sizes, loss, make_optimizer(kind), X, A, Y, D, batch_size, w0,
                            reciprocal_table_size=256)
    x = rng.integers(X.min_code, X.max_code + 1, (n, sizes[0]))
    if loss == "mse":
        targets = rng.integers(-1000, 1000, (n, sizes[-1]))
    else:
        targets = rng.integers(0, sizes[-1], n)
    return spec, x, targets


@pytest.mark.parametrize("loss,kind,sizes", [
    ("softmax_cross_entropy", "adam", (4, 3, 2)),
    ("mse", "momentum", (3, 4, 2, 2)),
])
def test_trainable_mlp_matches_golden(loss, kind, sizes):
    """Every output and every weight code after every epoch, with random idle cycles on the
    input and back-pressure on the output."""
    seed = 11 + len(sizes) * 10 + len(kind)
    rng = np.random.default_rng(seed)
    spec, x, targets = random_problem(rng, loss, kind, sizes=sizes, n=7, batch_size=2)
    epochs = 2
    trace = train_fixed(spec, x, targets, epochs=epochs)
    first = spec.layer_params(1)  # errors reach layer 1: its weights move
    assert trace.weights[-1][:first].tolist() != spec.initial_weights[0].ravel().tolist()
    expected = []
    for outputs, weights in zip(trace.outputs, trace.weights):
        expected += outputs.ravel().tolist() + weights.tolist()
    run = run_stream(TrainableMLP(spec), sample_payloads(spec, x, targets, epochs),
                     rng=random.Random(seed), p_idle=0.3, p_stall=0.3,
                     n_outputs=len(expected), max_cycles=200_000)
    assert run.outputs == expected, f"seed {seed}"


def test_trainable_mlp_rejects_other_specs():
    with pytest.raises(TypeError, match=r"^Specification must be a TrainableMLPSpec, not 3$"):
        TrainableMLP(3)
