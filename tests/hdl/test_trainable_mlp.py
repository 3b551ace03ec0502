import random

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.trainable_mlp import TrainableMLP, cycles_per_sample, update_cycles
from nnfab.sim.golden.backprop import train_fixed
from nnfab.training_mlp import TrainableMLPSpec

from ..streams import run_stream
from .test_trainable_dense import make_optimizer, sample_payloads

X = FixedFormat(10, 2, rounding="RND", overflow="SAT")
A = FixedFormat(10, 3, rounding="RND", overflow="SAT")
Y = FixedFormat(12, 4, rounding="RND", overflow="SAT")
D = FixedFormat(12, 3, rounding="RND", overflow="SAT")


def random_problem(rng, loss, kind, *, sizes, n, batch_size, reuse_factor=None):
    w0 = tuple(rng.integers(-1500, 1500, (sizes[l + 1], sizes[l] + 1))
               for l in range(len(sizes) - 1))
    spec = TrainableMLPSpec(sizes, loss, make_optimizer(kind), X, A, Y, D, batch_size, w0,
                            reciprocal_table_size=256, reuse_factor=reuse_factor)
    x = rng.integers(X.min_code, X.max_code + 1, (n, sizes[0]))
    if loss == "mse":
        targets = rng.integers(-1000, 1000, (n, sizes[-1]))
    else:
        targets = rng.integers(0, sizes[-1], n)
    return spec, x, targets


@pytest.mark.parametrize("loss,kind,sizes,reuse_factor,lanes", [
    ("softmax_cross_entropy", "adam", (4, 3, 2), None, (1, 1)),
    ("mse", "momentum", (3, 4, 2, 2), None, (1, 1, 1)),
    # Layer 2: 5 columns over 2 lanes (the last group padded).
    ("softmax_cross_entropy", "adam", (5, 4, 3), 12, (2, 2)),
    ("softmax_cross_entropy", "adam", (5, 4, 3), 4, (6, 5)),  # one cycle per row
    # Layers 2 and 3: 5 columns over 3 lanes, 3 over 2.
    ("mse", "momentum", (3, 4, 2, 2), 5, (4, 3, 2)),
])
def test_trainable_mlp_matches_golden(loss, kind, sizes, reuse_factor, lanes):
    """Every output and every weight code after every epoch, with random idle cycles on the
    input and back-pressure on the output, at the default and smaller reuse factors."""
    seed = 11 + len(sizes) * 10 + len(kind) + (reuse_factor or 0)
    rng = np.random.default_rng(seed)
    spec, x, targets = random_problem(rng, loss, kind, sizes=sizes, n=7, batch_size=2,
                                      reuse_factor=reuse_factor)
    assert tuple(spec.lanes(l) for l in range(1, spec.n_layers + 1)) == lanes
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


@pytest.mark.parametrize("loss,sizes,reuse_factor", [
    ("softmax_cross_entropy", (4, 3, 2), None),
    ("softmax_cross_entropy", (5, 4, 3), 8),
    ("mse", (3, 4, 2, 2), 5),
])
def test_trainable_mlp_cycles_per_sample(loss, sizes, reuse_factor):
    """At full rate: cycles_per_sample between two samples of a batch, plus the update after
    a batch, plus the dump after an epoch."""
    rng = np.random.default_rng(5)
    spec, x, targets = random_problem(rng, loss, "adam", sizes=sizes, n=5, batch_size=2,
                                      reuse_factor=reuse_factor)
    run = run_stream(TrainableMLP(spec), sample_payloads(spec, x, targets, 2),
                     n_outputs=2 * (5 * spec.n_out + spec.n_params), max_cycles=20_000)
    gaps = np.diff(run.accepted_at).tolist()
    per, update = cycles_per_sample(spec), update_cycles(spec)
    # Samples 0-1 | 2-3 | 4 (last) of each epoch, an update after 1, 3 and 4, a dump after 4.
    assert gaps[:5] == [per, per + update, per, per + update, per + update + 2 * spec.n_params]
    if reuse_factor is not None:
        smaller = [spec.layer_sizes[l] * spec.row_cycles(l) for l in range(1, spec.n_layers + 1)]
        assert all(c <= reuse_factor for c in smaller) and per < cycles_per_sample(
            TrainableMLPSpec(**{**vars(spec), "reuse_factor": None}))


def test_trainable_mlp_spec_reuse_factor():
    """Lanes and row cycles of digits' 64-32-10 at R = 288 (8 lanes on the first layer), and
    the errors."""
    rng = np.random.default_rng(0)
    spec, _, _ = random_problem(rng, "softmax_cross_entropy", "adam", sizes=(64, 32, 10), n=1,
                                batch_size=2, reuse_factor=288)
    assert [spec.lanes(1), spec.row_cycles(1), spec.lanes(2), spec.row_cycles(2)] == \
        [8, 9, 2, 17]
    for bad in (9, 0, 2.5, True):
        with pytest.raises(ValueError, match=rf"^Reuse factor must be None or an integer from "
                                             rf"32 \(the largest layer's 32 rows, one cycle per "
                                             rf"row\), not {bad!r}$"):
            random_problem(rng, "softmax_cross_entropy", "adam", sizes=(64, 32, 10), n=1,
                           batch_size=2, reuse_factor=bad)
