"""A residual block on Verilator: input -> fork -> (skip FIFO of the least depth that cannot
deadlock | 3x3 "same" convolution) -> add, against the golden model, many frames at full rate
(latency measured), then with random idle cycles, back-pressure and gaps between frames."""

import pytest

from nnfab.hdl.cast import fixed_shape

from ..hdl.test_merge import CONV_OUT, FRAME, PIXEL, SAFE_DEPTH, SUM_OUT, Residual, \
    residual_vectors
from .verilator import run_stream_test

N_FRAMES = 40


@pytest.mark.slow
def test_residual_block_on_verilator():
    seed = 40
    spec, inputs, want = residual_vectors(seed, N_FRAMES)
    dut = Residual(spec, SAFE_DEPTH)
    assert dut.add.i0.payload.shape().elem_shape == fixed_shape(PIXEL)
    run = run_stream_test(dut, toplevel="residual", inputs=inputs,
                          input_formats=[PIXEL] * FRAME[2], expected=want,
                          output_formats=[SUM_OUT] * FRAME[2], seed=seed,
                          frame_size=FRAME[0] * FRAME[1])
    assert run.results.total == run.results.passed == 1
    assert CONV_OUT != SUM_OUT                     # the join really mixes formats
