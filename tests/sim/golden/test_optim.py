import math

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.sim.golden.optim import init_state, rsqrt, update
from nnfab.training import adam, correction_table, lfsr_step, rsqrt_table, sgd

W = FixedFormat(12, 3)
G = FixedFormat(10, 2)


def test_rsqrt_is_within_table_error():
    table = rsqrt_table(6, 12)
    rng = np.random.default_rng(5)
    for x in [1, 2, 3, 255, 256, 1 << 20] + rng.integers(1, 1 << 24, 200).tolist():
        r, h = rsqrt(int(x), bits=6, fraction_width=12, square_fraction_width=10, table=table)
        approx = r * 2.0 ** -12 * 2.0 ** -h
        exact = 1 / math.sqrt(x * 2.0 ** -10)
        assert abs(approx / exact - 1) < 2 ** -7, f"seed 5, x {x}"


def test_correction_table_tends_to_one():
    codes = correction_table(3, 10, 16384, 12)
    assert codes[0] == round(math.sqrt(2 ** -10) / 2 ** -3 * 4096)
    assert abs(codes[-1] - 4096) <= 1


def test_sgd_rounds_half_up_and_saturates():
    spec = sgd(weight_format=W, gradient_format=G, lr_shift=1)
    # Fg = 8, Fw = 9: step = rs(g, 1 + 8 - 9 = 0) = g.
    out = update(spec, [0, W.max_code, W.min_code], [3, G.min_code, G.max_code],
                 init_state(spec, 3))
    assert out.tolist() == [-3, W.max_code, W.min_code]


def test_adam_state_saturates():
    spec = adam(weight_format=W, gradient_format=G, state_format=FixedFormat(8, 1),
                square_format=FixedFormat(8, 1, signed=False), lr_shift=2, beta1_shift=1,
                beta2_shift=1)
    opt = init_state(spec, 1)
    for _ in range(20):
        update(spec, [0], [G.max_code], opt, step=5)
    assert (opt.state[0], opt.square[0]) == (127, 255)


def test_lfsr_sequence():
    r, seen = 1, set()
    for _ in range(1000):
        seen.add(r)
        r = lfsr_step(r)
    assert len(seen) == 1000 and 0 not in seen


def test_errors():
    with pytest.raises(ValueError, match=r"^Learning rate shift must be a non-negative integer, "
                                         r"not -1$"):
        sgd(weight_format=W, gradient_format=G, lr_shift=-1)
    with pytest.raises(TypeError, match=r"^Weight format must be a FixedFormat, not 'fixed'$"):
        sgd(weight_format="fixed", gradient_format=G, lr_shift=1)
    with pytest.raises(ValueError, match=r"^Square format must be unsigned, not fixed<8,1>$"):
        adam(weight_format=W, gradient_format=G, state_format=W,
             square_format=FixedFormat(8, 1), lr_shift=1)
    with pytest.raises(ValueError, match=r"^Beta1 shift must be a positive integer, not 0$"):
        adam(weight_format=W, gradient_format=G, state_format=W,
             square_format=FixedFormat(8, 1, signed=False), lr_shift=1, beta1_shift=0)
    with pytest.raises(ValueError, match=r"^Formats give a negative weight step shift -23; "
                                         r"raise the learning rate shift or the fraction "
                                         r"widths$"):
        adam(weight_format=FixedFormat(40, 1), gradient_format=G, state_format=W,
             square_format=FixedFormat(30, 1, signed=False), lr_shift=0)
    spec = sgd(weight_format=W, gradient_format=G, lr_shift=1)
    with pytest.raises(ValueError, match=r"^Step must be a positive integer, not 0$"):
        update(spec, [0], [0], init_state(spec, 1), step=0)
    with pytest.raises(TypeError, match=r"^Optimizer must be an OptimizerSpec, not None$"):
        init_state(None, 1)
