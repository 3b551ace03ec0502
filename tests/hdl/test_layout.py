import random

import numpy as np
import pytest
from amaranth.hdl import signed

from nnfab.hdl.layout import Flatten, ZeroPadding
from nnfab.sim.golden.layout import flatten, zero_pad


@pytest.mark.parametrize("padding", [((1, 2), (0, 1)), ((0, 0), (3, 0)), ((0, 0), (0, 0))])
def test_zero_padding(padding):
    rng = np.random.default_rng(sum(map(sum, padding)))
    x = rng.integers(-128, 128, (3, 4, 5, 2))
    dut = ZeroPadding(input_shape=(4, 5, 2), padding=padding, shape=signed(8))
    want = zero_pad(x, padding)
    run = run_stream_frames(dut, x, want.reshape(-1, 2), seed=1)
    assert run == want.reshape(-1, 2).tolist()
    assert dut.cycles_per_frame == want[0].shape[0] * want[0].shape[1]


def run_stream_frames(dut, x, want, seed):
    from ..streams import run_stream
    run = run_stream(dut, x.reshape(-1, x.shape[-1]).tolist(), rng=random.Random(seed),
                     p_idle=0.3, p_stall=0.4, n_outputs=len(want))
    n = want.shape[-1]
    return [[o[j] for j in range(n)] for o in run.outputs]


def test_flatten():
    x = np.random.default_rng(2).integers(-128, 128, (4, 3, 2, 3))
    dut = Flatten(input_shape=(3, 2, 3), shape=signed(8))
    want = flatten(x)
    assert run_stream_frames(dut, x, want, seed=2) == want.tolist()
    from ..streams import run_stream
    run = run_stream(dut, x.reshape(-1, 3).tolist(), n_outputs=4)
    assert run.first_latency == dut.latency == 6
    assert set(np.diff(run.accepted_at)) == {1}


@pytest.mark.parametrize("make,error,message", [
    (lambda: ZeroPadding(input_shape=(4, 4, 1), padding=((1, -1), (0, 0)), shape=signed(8)),
     ValueError, "Padding must be non-negative, not ((1, -1), (0, 0))"),
    (lambda: ZeroPadding(input_shape=(4, 4, 1), padding=(1, 1), shape=signed(8)),
     TypeError, "Padding must be ((top, bottom), (left, right)) integers, not (1, 1)"),
    (lambda: Flatten(input_shape=(4, 4), shape=signed(8)),
     TypeError, "Input shape must be a tuple of 3 integers, not (4, 4)"),
    (lambda: Flatten(input_shape=(4, 0, 1), shape=signed(8)),
     ValueError, "Input shape must hold positive integers, not (4, 0, 1)"),
])
def test_layout_errors(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message
