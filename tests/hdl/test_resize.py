"""Nearest-neighbour upsampling in Amaranth's simulator: bit-exact against the golden model
under idle cycles and every back-pressure pattern, with the full-rate schedule measured."""

import gc

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from nnfab.hdl.resize import Upsample2D
from nnfab.sim.golden.resize import upsample_nearest

from ..streams import check_stalls

CASES = [((3, 4, 2), (2, 2)), ((2, 3, 1), (1, 3)), ((3, 2, 3), (3, 1)), ((1, 1, 2), (2, 3)),
         ((2, 5, 1), (1, 1)), ((4, 1, 2), (2, 1))]


@pytest.mark.parametrize("input_shape,size", CASES, ids=str)
def test_upsample_matches_golden(input_shape, size):
    seed = sum(input_shape) * 10 + sum(size)
    rng = np.random.default_rng(seed)
    n_frames = 3
    x = rng.integers(-128, 128, (n_frames, *input_shape))
    x.reshape(-1)[::4] = -128
    want = upsample_nearest(x, size)

    def make():
        return Upsample2D(input_shape=input_shape, size=size, shape=signed(8))

    c = input_shape[2]
    full = check_stalls(make, x.reshape(-1, c).tolist(), want.reshape(-1, c).tolist(),
                        seed=seed)
    dut = make()
    inputs, outputs = dut.schedule(n_frames)
    assert full.accepted_at == inputs and full.produced_at == outputs
    assert full.first_latency == dut.latency == 1
    assert full.produced_at[-1] - full.produced_at[0] + 1 == n_frames * dut.cycles_per_frame
    assert dut.initiation_interval * input_shape[0] * input_shape[1] == dut.cycles_per_frame


def test_upsample_attributes():
    dut = Upsample2D(input_shape=(3, 4, 2), size=(2, 3), shape=unsigned(5))
    assert dut.output_shape == (6, 12, 2) and dut.cycles_per_frame == 72
    assert dut.initiation_interval == 6 and dut.row_buffer_depth == 4
    assert Upsample2D(input_shape=(3, 4, 2), size=(1, 3), shape=unsigned(5)).row_buffer_depth \
        == 0
    assert repr(dut) == "Upsample2D(input_shape=(3, 4, 2), size=(2, 3), shape=unsigned(5))"


@pytest.mark.parametrize("params,error,message", [
    (dict(input_shape=(3, 4), size=(2, 2)), TypeError,
     "Input shape must be a tuple of 3 integers, not (3, 4)"),
    (dict(input_shape=(3, 0, 2), size=(2, 2)), ValueError,
     "Input shape must hold positive integers, not (3, 0, 2)"),
    (dict(input_shape=(3, 4, 2), size=2), TypeError,
     "Size must be a tuple of 2 integers, not 2"),
    (dict(input_shape=(3, 4, 2), size=(2, 0)), ValueError,
     "Size must hold positive integers, not (2, 0)"),
])
def test_errors(params, error, message, recwarn):
    gc.collect()
    recwarn.clear()
    with pytest.raises(error) as info:
        Upsample2D(shape=signed(8), **params)
    assert str(info.value) == message
    gc.collect()
    assert not recwarn.list
