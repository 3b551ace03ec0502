"""The backpropagation golden model: spec checks, the edge codes of each cast, and closeness
to the float64 training (a float check; golden against RTL is code equality elsewhere)."""

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.sim.golden.backprop import forward, split_weights, train_fixed, train_float
from nnfab.training import sgd
from nnfab.training_mlp import TrainableMLPSpec

X = FixedFormat(10, 2, rounding="RND", overflow="SAT")
A = FixedFormat(10, 3, rounding="RND", overflow="SAT")
Y = FixedFormat(12, 4, rounding="RND", overflow="SAT")
E = FixedFormat(8, 1, rounding="RND", overflow="SAT")
WF = FixedFormat(12, 3)


def make_spec(weights, sizes=(2, 2, 1), loss="mse", batch_size=1, lr_shift=3, wf=WF):
    return TrainableMLPSpec(sizes, loss, sgd(weight_format=wf, gradient_format=wf,
                                             lr_shift=lr_shift),
                            X, A, Y, E, batch_size, tuple(np.asarray(w) for w in weights))


def test_forward_casts_and_relu():
    # Layer 1: z = [x0 + x1 + 1, -(x0) ] in A (frac 7): saturation at the top, ReLU at 0.
    one = 1 << 9  # 1.0 in WF
    spec = make_spec([[[one, one, one], [-one, 0, 0]], [[one, one, 0]]])
    x = np.array([[X.max_code, X.max_code], [X.min_code, 0], [1 << 7, 1]])
    acts = forward(spec, [np.asarray(w) for w in spec.initial_weights], x)
    z1 = acts[1].astype(np.int64)
    assert z1[0].tolist() == [A.max_code, 0]       # 2 + 2 + 1 saturates to 3.99..; -2 -> 0
    assert z1[1].tolist() == [0, 2 << 7]           # -2 + 0 + 1 -> relu 0; 2.0
    # 0.5 + 2**-8 + 1.0 in A (frac 7): the tie 2**-8 rounds half up to 2**-7.
    assert z1[2].tolist() == [(3 << 6) + 1, 0]


def test_backward_error_saturates_and_masks():
    one = 1 << 9
    w1 = [[one, 0, 0], [0, one, 0]]
    w2 = [[WF.max_code, WF.min_code, 0]]          # ~4 and -4
    spec = make_spec([w1, w2], lr_shift=30)        # tiny steps: weights stay
    x = np.array([[1 << 8, 0]])                    # a1 = [1, 0]: the second unit is masked
    target = np.array([[Y.min_code]])              # error y - t saturates E at +1.99
    trace = train_fixed(spec, x, target, epochs=1)
    assert trace.weights[0].tolist() == np.concatenate(
        [np.ravel(w1), np.ravel(w2)]).tolist()
    # Recompute the hidden error as the docstring says: cast(4 * 1.99) saturates E.
    from nnfab.sim.golden.backprop import _gradient_sums
    acts = forward(spec, list(spec.initial_weights), x)
    sums = _gradient_sums(spec, list(spec.initial_weights), acts, target)
    e_out = E.max_code
    assert sums[1].tolist() == [[e_out * int(acts[1][0, 0]), 0, e_out * (1 << 7)]]
    # e_1 = [sat(+), 0 (masked: a = 0)]; most negative weight would give E.min_code.
    assert sums[0].tolist() == [[E.max_code * (1 << 8), 0, E.max_code * (1 << 8)],
                                [0, 0, 0]]


def test_backward_most_negative_error():
    one = 1 << 9
    w1 = [[one, 0, 0], [0, one, 0]]
    w2 = [[WF.min_code, 0, 0]]
    spec = make_spec([w1, w2], lr_shift=30)
    from nnfab.sim.golden.backprop import _gradient_sums
    x = np.array([[1 << 8, 1 << 8]])
    acts = forward(spec, list(spec.initial_weights), x)
    sums = _gradient_sums(spec, list(spec.initial_weights), acts, np.array([[Y.min_code]]))
    assert sums[0][0, 0] == E.min_code * (1 << 8)  # -4 * 1.99 saturates low
    assert sums[0][1].tolist() == [0, 0, 0]        # weight 0: error 0 though a > 0


def test_spec_errors():
    w = [np.zeros((2, 3), dtype=np.int64), np.zeros((1, 3), dtype=np.int64)]
    with pytest.raises(ValueError, match=r"^Layer sizes must list 3 to 5 sizes \(2 to 4 dense "
                                         r"layers\), not \(2, 1\)$"):
        make_spec(w[:1], sizes=(2, 1))
    with pytest.raises(ValueError, match=r"^Initial weights of layer 2 must have shape "
                                         r"\(1, 3\), not \(2, 3\)$"):
        make_spec([w[0], w[0]])
    with pytest.raises(ValueError, match=r"^Initial weights must be 2 arrays, one per layer, "
                                         r"not 1$"):
        make_spec(w[:1])
    with pytest.raises(ValueError, match=r"^Activation format must hold 1.0 for the bias, "
                                         r"not fixed<4,1>$"):
        TrainableMLPSpec((2, 2, 1), "mse", sgd(weight_format=WF, gradient_format=WF,
                                               lr_shift=1), X, FixedFormat(4, 1), Y, E, 1,
                         tuple(w))
    with pytest.raises(ValueError, match=r"^Batch size must be a power of two, not 3$"):
        make_spec(w, batch_size=3)
    with pytest.raises(TypeError, match=r"^Specification must be a TrainableMLPSpec"):
        train_fixed(object(), [[0, 0]], [[0]], epochs=1)


def test_golden_close_to_float():
    """A float check only: a small regression network trained both ways."""
    seed = 3
    rng = np.random.default_rng(seed)
    wf = FixedFormat(16, 3)
    w0 = [rng.integers(-2000, 2000, (4, 3)), rng.integers(-2000, 2000, (1, 5))]
    spec = make_spec(w0, sizes=(2, 4, 1), batch_size=4, lr_shift=4, wf=wf)
    x = rng.uniform(-1, 1, (32, 2))
    t = (x[:, :1] * 0.5 - x[:, 1:] * 0.25)
    xc = np.round(x * 2 ** 8).astype(np.int64)
    tc = np.round(t * 2 ** 8).astype(np.int64)
    fixed = train_fixed(spec, xc, tc, epochs=4)
    flt = train_float(spec, xc / 2 ** 8, tc / 2 ** 8, epochs=4, lr=2.0 ** -4)
    got = fixed.weights[-1] / 2 ** 13
    assert np.abs(got - flt.weights[-1]).max() < 0.02, f"seed {seed}"
    assert [w.shape for w in split_weights(spec, fixed.weights[-1])] == [(4, 3), (1, 5)]
