import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.gen.train import make_problem
from nnfab.sim.golden.training import forward, train_fixed, train_float
from nnfab.training import TrainableDenseSpec, sgd

X = FixedFormat(10, 2)
OPT = sgd(weight_format=FixedFormat(12, 3), gradient_format=FixedFormat(12, 3), lr_shift=3)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "adam"])
def test_fixed_point_regression_tracks_float(optimizer):
    problem = make_problem("regression", optimizer=optimizer, seed=1)
    fixed = train_fixed(problem.spec, problem.x_codes, problem.y_codes, epochs=16)
    flt = train_float(problem.spec, problem.x_train, problem.y_train, epochs=16, lr=problem.lr)
    w_fixed = fixed.weights[-1] * 2.0 ** -12
    # Fixed point against float: approximate (quantized data, rounded steps, rsqrt table).
    assert np.allclose(w_fixed, flt.weights[-1], atol=0.06), f"seed 1, {optimizer}"
    if optimizer != "adagrad":  # Adagrad's decaying steps are still on their way at epoch 16
        # Against the true line y = 3x + 2: approximate, the data are noisy (N(0, 0.1)).
        assert np.allclose(w_fixed, [[3, 2]], atol=0.1), f"seed 1, {optimizer}"


def test_forward_is_exact():
    spec = TrainableDenseSpec(2, 1, "mse", OPT, X, FixedFormat(8, 4), FixedFormat(8, 4), 1,
                              np.array([[512, -256, 128]]))
    # 1.0 * x0 - 0.5 * x1 + 0.25, x = (1.0, 0.5) -> 1.0 (code 16 in fixed<8,4>).
    assert forward(spec, spec.initial_weights, [[256, 128]]).tolist() == [[16]]


def test_spec_errors():
    args = dict(n_in=2, n_out=1, loss="mse", optimizer=OPT, input_format=X,
                output_format=X, error_format=X, batch_size=2,
                initial_weights=np.zeros((1, 3), np.int64))
    with pytest.raises(ValueError, match=r"^Batch size must be a power of two, not 3$"):
        TrainableDenseSpec(**dict(args, batch_size=3))
    with pytest.raises(ValueError, match=r"^Loss must be one of 'mse', 'softmax_cross_entropy', "
                                         r"not 'hinge'$"):
        TrainableDenseSpec(**dict(args, loss="hinge"))
    with pytest.raises(ValueError, match=r"^Input format must hold 1\.0 for the bias, not "
                                         r"fixed<8,0>$"):
        TrainableDenseSpec(**dict(args, input_format=FixedFormat(8, 0)))
    with pytest.raises(ValueError, match=r"^Initial weights must have shape \(1, 3\), not "
                                         r"\(1, 2\)$"):
        TrainableDenseSpec(**dict(args, initial_weights=np.zeros((1, 2), np.int64)))
    with pytest.raises(ValueError, match=r"^Softmax cross-entropy needs at least 2 outputs, "
                                         r"not 1$"):
        TrainableDenseSpec(**dict(args, loss="softmax_cross_entropy"))
    with pytest.raises(TypeError, match=r"^Optimizer must be an OptimizerSpec, not 'sgd'$"):
        TrainableDenseSpec(**dict(args, optimizer="sgd"))
