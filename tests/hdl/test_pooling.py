import random

import numpy as np
import pytest

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec
from nnfab.fixed import FixedFormat
from nnfab.hdl.pooling import GlobalPoolEngine, PoolEngine
from nnfab.sim.golden.pooling import global_pool, pool

from ..streams import run_stream

FX = FixedFormat(8, 3)


def run_frames(dut, x, n_out, c, seed):
    run = run_stream(dut, x.reshape(-1, x.shape[-1]).tolist(), rng=random.Random(seed),
                     p_idle=0.3, p_stall=0.4, n_outputs=n_out)
    return np.array([[o[j] for j in range(c)] for o in run.outputs])


CASES = [("max", 2, None, "valid"), ("max", 3, 2, "same"), ("max", 3, 1, "same"),
         ("average", 2, None, "valid"), ("average", 3, 2, "valid"), ("average", 5, 1, "valid"),
         ("max", (1, 3), (1, 2), "same"), ("average", (1, 3), (1, 1), "valid")]


@pytest.mark.parametrize("kind,size,stride,padding", CASES)
def test_pool_matches_golden(kind, size, stride, padding):
    seed = CASES.index((kind, size, stride, padding))
    rng = np.random.default_rng(seed)
    shape = (1, 11, 3) if isinstance(size, tuple) else (7, 8, 3)
    out = FixedFormat(7, 3, rounding=["RND", "RND_CONV", "TRN"][seed % 3], overflow="SAT")
    spec = PoolSpec(kind, shape, size, FX, out, strides=stride, padding=padding)
    dut = PoolEngine(spec)
    x = rng.integers(FX.min_code, FX.max_code + 1, (3,) + shape)
    x[0] = FX.min_code
    want = pool(x, spec)
    got = run_frames(dut, x, want.size // 3, 3, seed)
    assert got.tolist() == want.reshape(-1, 3).tolist(), f"seed {seed}"


def test_pool_timing():
    spec = PoolSpec("max", (6, 7, 2), 3, FX, FX, strides=2, padding="same")
    dut = PoolEngine(spec)
    x = np.random.default_rng(0).integers(-128, 128, (2, 6, 7, 2))
    run = run_stream(dut, x.reshape(-1, 2).tolist(), n_outputs=2 * 3 * 4)
    inputs, outputs = dut.schedule(2)
    assert [t - run.accepted_at[0] for t in run.produced_at] == [t - inputs[0] for t in outputs]
    assert run.first_latency == dut.latency
    assert run.accepted_at[42] - run.accepted_at[0] == dut.cycles_per_frame == 7 * 9


@pytest.mark.parametrize("kind,shape", [("max", (4, 5, 3)), ("average", (4, 5, 3)),
                                        ("average", (4, 4, 2)), ("average", (1, 1, 2))])
def test_global_pool_matches_golden(kind, shape):
    rng = np.random.default_rng(len(kind) + shape[0])
    spec = GlobalPoolSpec(kind, shape, FX, FixedFormat(7, 2, rounding="RND_CONV"))
    x = rng.integers(FX.min_code, FX.max_code + 1, (4,) + shape)
    got = run_frames(GlobalPoolEngine(spec), x, 4, shape[2], 1)
    assert got.tolist() == global_pool(x, spec).tolist()
    run = run_stream(GlobalPoolEngine(spec), x.reshape(-1, shape[2]).tolist(), n_outputs=4)
    assert run.first_latency == GlobalPoolEngine(spec).latency


def test_pool_errors():
    with pytest.raises(TypeError) as info:
        PoolEngine("pool")
    assert str(info.value) == "Layer must be a PoolSpec, not 'pool'"
    with pytest.raises(TypeError) as info:
        GlobalPoolEngine(None)
    assert str(info.value) == "Layer must be a GlobalPoolSpec, not None"
