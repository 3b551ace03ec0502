"""Analytic skip-FIFO depths (:mod:`nnfab.gen.skip_fifos`): never below the depths measured
in Amaranth's simulator, not wildly above; the deadlock-free part alone equals the least depth
that a sweep found; networks built with them stream correctly under every stall pattern; the
branched QONNX model at its full 256x256 frame gets depths of a few rows, not a frame."""

import numpy as np
import pytest

from nnfab.gen.assemble import CONSTANT_WEIGHTS, Network, skip_fifo_depths_of
from nnfab.gen.skip_fifos import analytic_skip_fifo_depths
from nnfab.gen.timing import simulate_timing
from nnfab.ir import AddLayer, Conv2DLayer, Model
from nnfab.sim.golden.network import run_network

from ..hdl.test_merge import (CONV_OUT, DEADLOCK_DEPTH, FRAME, FULL_RATE_DEPTH, PIXEL,
                              SAFE_DEPTH, SUM_OUT, residual_spec)
from ..streams import check_stalls
from .branched_model import at_frame, load_branched, up_to
from .test_graph import residual_cnn, upsample_concat


def analytic(model, **kwargs):
    return analytic_skip_fifo_depths(model, CONSTANT_WEIGHTS.engine, **kwargs)


def merge_residual(seed=31):
    """The fork -> (skip FIFO | 3x3 convolution) -> add of tests/hdl/test_merge.py as a
    model graph."""
    conv = Conv2DLayer("conv", spec=residual_spec(seed))
    add = AddLayer("add", shape=FRAME, fins=(PIXEL, CONV_OUT), fout=SUM_OUT,
                   inputs=("input", "conv"))
    return Model("residual", FRAME, PIXEL, (conv, add))


def small_branched(frame=(8, 8), max_multipliers=64):
    return at_frame(load_branched(max_multipliers), frame)


def test_deadlock_free_part_is_the_least_depth_a_sweep_found():
    """tests/hdl/test_merge.py found by a sweep that 6 entries deadlock and 7 do not: the
    dataflow bound alone (no slack, no full-rate term) is exactly 7; with the full-rate term
    it is at least the 15 that full rate needs."""
    model = merge_residual()
    assert analytic(model, slack=0, full_rate=False) == {("add", 0): SAFE_DEPTH}
    assert DEADLOCK_DEPTH == SAFE_DEPTH - 1
    assert analytic(model, slack=0)[("add", 0)] >= FULL_RATE_DEPTH


def test_one_below_the_deadlock_free_depth_deadlocks():
    model = merge_residual()
    depth = analytic(model, slack=0, full_rate=False)[("add", 0)]
    n = 2 * FRAME[0] * FRAME[1]
    with pytest.raises(RuntimeError, match=rf"^Only 0 of {n} outputs after 2001 cycles$"):
        simulate_timing(Network(model, skip_fifo_depths={("add", 0): depth - 1}),
                        input_transfers=n, output_transfers=n, max_cycles=2000)
    simulate_timing(Network(model, skip_fifo_depths={("add", 0): depth}),
                    input_transfers=n, output_transfers=n, max_cycles=2000)


# Analytic and simulated depths (slack 2 in both), pinned: the analytic figure is a bound, so
# a change to an engine's schedule that it misses shows up here first. The branched graph is
# cut after its Concat (``up_to``): a full-rate simulation of the whole graph also measures
# how far the branches run ahead of the slower convolutions after the join, which no FIFO
# needs (the network runs at the slowest engine's rate either way).
def branched_8x8():
    return up_to(small_branched((8, 8)), "Concat_3")


CASES = [
    pytest.param(merge_residual, {("add", 0): 17, ("add", 1): 5},
                 {("add", 0): 15, ("add", 1): 4}, id="merge_residual"),
    pytest.param(residual_cnn, {("add", 0): 5, ("add", 1): 31},
                 {("add", 0): 4, ("add", 1): 28}, id="residual_cnn"),
    pytest.param(upsample_concat, {("cat", 0): 23, ("cat", 1): 18},
                 {("cat", 0): 4, ("cat", 1): 8}, id="upsample_concat"),
    pytest.param(branched_8x8, {("Concat_3", 0): 56, ("Concat_3", 1): 320},
                 {("Concat_3", 0): 4, ("Concat_3", 1): 75}, id="branched_8x8",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("make,want_analytic,want_simulated", CASES)
def test_analytic_is_at_least_the_simulated_depth_and_not_wildly_more(make, want_analytic,
                                                                       want_simulated):
    model = make()
    got = analytic(model)
    simulated = skip_fifo_depths_of(model)
    assert (got, simulated) == (want_analytic, want_simulated)
    assert set(simulated) <= set(got)
    for key, depth in simulated.items():
        assert depth <= got[key] <= 5 * depth + 60, f"{key}: {got[key]} vs {depth}"


@pytest.mark.parametrize("make,seed", [(merge_residual, 3), (residual_cnn, 4),
                                       (upsample_concat, 5)])
def test_networks_with_analytic_depths_under_stalls(make, seed):
    model = make()
    depths = analytic(model)
    rng = np.random.default_rng(seed)
    x = rng.integers(PIXEL.min_code, PIXEL.max_code + 1, (3, *model.input_shape))
    want = np.asarray(run_network(model, x)).reshape(-1, model.output_shape[-1])
    check_stalls(lambda: Network(model, skip_fifo_depths=depths),
                 x.reshape(-1, model.input_shape[-1]).tolist(), want.tolist(), seed=seed)


def test_branched_model_full_frame_depths():
    """At 256x256 (beyond the simulated limit) the skip path of the branched model's Concat
    holds what the pooled branch takes before it answers: a few rows of 256 pixels, where a
    whole frame is 65,538 entries."""
    model = load_branched()
    depths = skip_fifo_depths_of(model)
    assert depths == analytic(model)
    assert depths == {("Concat_3", 0): 564, ("Concat_3", 1): 2518}
    assert Network(model, skip_fifo_depths=depths).skip_fifo_depths == depths


@pytest.mark.parametrize("make", [merge_residual, residual_cnn])
def test_timing_comes_from_the_run_that_measured_the_depths(make, monkeypatch):
    import nnfab.gen.timing as timing_module

    model = make()
    runs = []
    simulate = timing_module.simulate_timing
    monkeypatch.setattr(timing_module, "simulate_timing",
                        lambda *args, **kwargs: runs.append(1) or simulate(*args, **kwargs))
    network = Network(model)
    timing = network.timing
    assert len(runs) == 2               # one inference, then several: no third run
    rebuilt = Network(model, skip_fifo_depths=network.skip_fifo_depths)
    transfers = [int(np.prod(s[:-1])) for s in (model.input_shape, model.output_shape)]
    assert simulate(rebuilt, input_transfers=transfers[0],
                    output_transfers=transfers[1]) == timing
