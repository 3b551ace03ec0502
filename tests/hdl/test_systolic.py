import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from nnfab.fixed import FixedFormat
from nnfab.hdl.systolic import SystolicMatVec
from nnfab.layers import DenseSpec
from nnfab.sim.golden.dense import dense, dense_accumulate

from ..streams import receive, send


def golden(weights, x, dut_formats):
    input_format, weight_format, accumulator_format, output_format = dut_formats
    spec = DenseSpec(weights, None, input_format, weight_format,
                     output_format or FixedFormat(8, 3), accumulator_format=accumulator_format)
    return dense(x, spec) if output_format else dense_accumulate(x, spec)


def run_loads(dut, loads, *, seed, p_idle=0.3, p_stall=0.3):
    """For each (weights, x) in ``loads``: load the weights, then stream the vectors.

    Weights and vectors are offered at the same time, from separate processes, so the load
    priority is exercised: a vector may only see the weights of its own load.
    """
    rng = random.Random(seed)
    outputs, accepted, produced = [], [], []
    n_vectors = sum(len(x) for _, x in loads)
    loaded = [0]

    async def weights_process(ctx):
        for index, (weights, x) in enumerate(loads):
            # Wait until the previous load's vectors have all come out.
            while len(outputs) < sum(len(xx) for _, xx in loads[:index]):
                await ctx.tick()
            await send(ctx, dut.w, [int(w) for w in weights.flat], rng=rng, p_idle=p_idle)
            loaded[0] = index + 1

    async def vectors_process(ctx):
        cycle = 0
        for index, (weights, x) in enumerate(loads):
            while loaded[0] <= index:
                await ctx.tick()
                cycle += 1
            cycle = await send(ctx, dut.i, [[int(v) for v in row] for row in x], rng=rng,
                               p_idle=p_idle, accepted_at=accepted, cycle=cycle)

    async def output_process(ctx):
        await receive(ctx, dut.o, n_vectors, rng=rng, p_stall=p_stall, outputs=outputs,
                      produced_at=produced)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for process in (weights_process, vectors_process, output_process):
        sim.add_testbench(process)
    sim.run()
    n_out = dut.o.payload.shape().length
    return np.array([[out[j] for j in range(n_out)] for out in outputs]), accepted, produced


@pytest.mark.parametrize("n_in,n_out,accumulator,output", [
    (4, 3, None, "fixed<8,3,RND_CONV,SAT>"),
    (1, 1, None, None),
    (6, 2, "fixed<10,3,RND,SAT>", "fixed<6,2,RND,WRAP>"),
    (3, 5, "fixed<9,4>", None),
])
def test_matches_golden_across_loads(n_in, n_out, accumulator, output):
    seed = n_in * 10 + n_out
    rng = np.random.default_rng(seed)
    formats = (FixedFormat(8, 3), FixedFormat(6, 1),
               FixedFormat.parse(accumulator) if accumulator else None,
               FixedFormat.parse(output) if output else None)
    dut = SystolicMatVec(n_in=n_in, n_out=n_out, input_format=formats[0],
                         weight_format=formats[1], accumulator_format=formats[2],
                         output_format=formats[3])
    loads = []
    for _ in range(3):
        weights = rng.integers(-32, 32, (n_out, n_in))
        x = rng.integers(-128, 128, (15, n_in))
        x[0] = -128
        loads.append((weights, x))
    got, _, _ = run_loads(dut, loads, seed=seed)
    expected = np.concatenate([golden(w, x, formats) for w, x in loads])
    assert got.tolist() == expected.tolist(), f"seed {seed}"


def test_latency_and_initiation_interval():
    fmt = FixedFormat(8, 3)
    dut = SystolicMatVec(n_in=5, n_out=4, input_format=fmt, weight_format=fmt)
    rng = np.random.default_rng(5)
    weights, x = rng.integers(-128, 128, (4, 5)), rng.integers(-128, 128, (20, 5))
    got, accepted, produced = run_loads(dut, [(weights, x)], seed=0, p_idle=0, p_stall=0)
    assert got.tolist() == golden(weights, x, (fmt, fmt, None, None)).tolist()
    assert produced[0] - accepted[0] == dut.latency == 9
    assert set(np.diff(accepted)) == {dut.initiation_interval} == {1}


@pytest.mark.parametrize("kwargs,error,message", [
    ({"n_in": 0}, ValueError, "N in must be a positive integer, not 0"),
    ({"n_out": 2.5}, TypeError, "N out must be an integer, not 2.5"),
    ({"weight_format": None}, TypeError, "Weight format must be a FixedFormat, not None"),
])
def test_bad_parameters(kwargs, error, message):
    params = dict(n_in=2, n_out=2, input_format=FixedFormat(8, 3),
                  weight_format=FixedFormat(8, 3))
    params.update(kwargs)
    with pytest.raises(error) as info:
        SystolicMatVec(**params)
    assert str(info.value) == message
