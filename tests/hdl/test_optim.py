import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.optim import UPDATE_LATENCY, UpdateUnit
from nnfab.sim.golden.optim import init_state, update
from nnfab.training import adagrad, adam, momentum, sgd

from ..streams import check_stalls, run_stream

W8 = FixedFormat(12, 3)
G8 = FixedFormat(10, 2)


def random_spec(kind, rng, *, stochastic=False):
    """A small random optimizer of ``kind``: narrow formats so that weights and state saturate."""
    def r(lo, hi):
        return int(rng.integers(lo, hi))
    w = FixedFormat(r(8, 14), r(1, 4))
    g = FixedFormat(r(6, 12), r(0, 3))
    state = FixedFormat(r(8, 14), r(1, 4))
    square = FixedFormat(r(10, 16), r(1, 4), signed=False)
    common = dict(weight_format=w, gradient_format=g, stochastic_rounding=stochastic,
                  lfsr_seed=int(rng.integers(1, 1 << 32)))
    if kind == "sgd":
        return sgd(lr_shift=int(rng.integers(0, 6)), **common)
    if kind == "momentum":
        return momentum(state_format=state, lr_shift=int(rng.integers(0, 6)),
                        momentum_shift=int(rng.integers(1, 5)), **common)
    if kind == "adagrad":
        return adagrad(square_format=square, lr_shift=int(rng.integers(2, 6)),
                       epsilon_code=int(rng.integers(1, 4)), rsqrt_bits=int(rng.integers(3, 7)),
                       **common)
    return adam(state_format=state, square_format=square, lr_shift=int(rng.integers(2, 6)),
                beta1_shift=int(rng.integers(1, 4)), beta2_shift=int(rng.integers(2, 8)),
                epsilon_code=int(rng.integers(1, 4)), correction_depth=int(rng.integers(4, 40)),
                **common)


def random_stream(spec, rng, depth, n):
    """``n`` updates over ``depth`` parameters: edge and random weights and gradients, steps
    beyond the correction table."""
    W, G = spec.weight_format, spec.gradient_format
    index = rng.integers(0, depth, n)
    weight = rng.integers(W.min_code, W.max_code + 1, n)
    weight[::7] = W.max_code
    weight[3::7] = W.min_code
    grad = rng.integers(G.min_code, G.max_code + 1, n)
    grad[1::5] = G.max_code
    grad[2::5] = G.min_code
    grad[4::11] = 0
    step = rng.integers(1, 60, n)
    return index, weight, grad, step


def golden_stream(spec, depth, index, weight, grad, step):
    return update(spec, weight, grad, init_state(spec, depth), step=step, indices=index)


KINDS = ["sgd", "momentum", "adagrad", "adam"]


@pytest.mark.parametrize("stochastic", [False, True], ids=["half-up", "stochastic"])
@pytest.mark.parametrize("kind", KINDS)
def test_update_unit_matches_golden(kind, stochastic):
    """Random orders of indices (repeats back to back, which need the state memories'
    transparent reads at full rate) at full rate and under every stall pattern."""
    for trial in range(3):
        seed = 100 * KINDS.index(kind) + 10 * stochastic + trial
        rng = np.random.default_rng(seed)
        spec = random_spec(kind, rng, stochastic=stochastic)
        depth = int(rng.integers(1, 9))
        index, weight, grad, step = random_stream(spec, rng, depth, 60)
        expected = golden_stream(spec, depth, index, weight, grad, step)
        inputs = [{"index": int(i), "weight": int(w), "gradient": int(g), "step": int(t)}
                  for i, w, g, t in zip(index, weight, grad, step)]
        check_stalls(lambda: UpdateUnit(spec, depth=depth), inputs, expected.tolist(),
                     seed=seed, latency=UPDATE_LATENCY)


def test_update_unit_latency_and_ii():
    """One input per cycle; the same parameter twice in a row and every other cycle."""
    spec = adam(weight_format=W8, gradient_format=G8, state_format=FixedFormat(12, 3),
                square_format=FixedFormat(14, 3, signed=False), lr_shift=4)
    dut = UpdateUnit(spec, depth=4)
    index = [0, 0, 1, 0, 1, 2, 2, 2, 3, 1]
    grad = [-3, 7, -128, 127, 5, -1, 0, 90, -90, 3]
    inputs = [{"index": i, "weight": 5 * k, "gradient": g, "step": k + 1}
              for k, (i, g) in enumerate(zip(index, grad))]
    run = run_stream(dut, inputs)
    assert run.first_latency == dut.latency == UPDATE_LATENCY == 6
    gaps = {b - a for a, b in zip(run.accepted_at, run.accepted_at[1:])}
    assert gaps == {dut.initiation_interval} == {1}
    expected = golden_stream(spec, 4, index, [5 * k for k in range(10)], grad,
                             list(range(1, 11)))
    assert run.outputs == expected.tolist()


def test_update_unit_saturates():
    # A large gradient with lr 1 drives the weight to the format's limits.
    spec = sgd(weight_format=W8, gradient_format=G8, lr_shift=0)
    inputs = [{"index": 0, "weight": W8.max_code, "gradient": G8.min_code, "step": 1},
              {"index": 0, "weight": W8.min_code, "gradient": G8.max_code, "step": 1}]
    assert run_stream(UpdateUnit(spec, depth=1), inputs).outputs == [W8.max_code, W8.min_code]


def test_update_unit_errors():
    spec = sgd(weight_format=W8, gradient_format=G8, lr_shift=1)
    with pytest.raises(TypeError, match=r"^Optimizer must be an OptimizerSpec, not 'sgd'$"):
        UpdateUnit("sgd", depth=4)
    with pytest.raises(TypeError, match=r"^Depth must be an integer, not 4\.0$"):
        UpdateUnit(spec, depth=4.0)
    with pytest.raises(ValueError, match=r"^Depth must be a positive integer, not 0$"):
        UpdateUnit(spec, depth=0)
    with pytest.raises(ValueError, match=r"^Step width must be a positive integer, not -2$"):
        UpdateUnit(spec, depth=1, step_width=-2)
