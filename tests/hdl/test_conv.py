import random

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.hdl._mem import MemoryInstance

from nnfab.conv_layers import Conv1DSpec, Conv2DSpec, DepthwiseConv2DSpec
from nnfab.fixed import FixedFormat
from nnfab.hdl.conv import ConvEngine
from nnfab.sim.golden.conv import conv1d, conv2d

from ..streams import run_stream

FX = FixedFormat(8, 3)
W4 = FixedFormat(4, 1)
OUT = FixedFormat(8, 4, rounding="RND_CONV", overflow="SAT")


def random_conv(rng, shape, n_filters, k, **kwargs):
    k = (k, k) if isinstance(k, int) else k
    weights = rng.integers(W4.min_code, W4.max_code + 1, (n_filters,) + k + (shape[2],))
    weights[rng.random(weights.shape) < 0.3] = 0
    return Conv2DSpec(weights, rng.integers(-64, 64, n_filters), shape, FX, W4, OUT,
                      bias_format=FX, **kwargs)


def run_frames(dut, x, *, seed=None, p_idle=0.0, p_stall=0.0):
    """Stream frames ``x`` (n, H, W, C) through ``dut``; outputs as (n_outputs, C_out)."""
    rng = random.Random(seed) if seed is not None else None
    spec = dut.spec
    h_out, w_out, c_out = spec.output_shape
    n_out = len(x) * h_out * w_out
    pixels = x.reshape(-1, x.shape[-1]).tolist()
    run = run_stream(dut, pixels, rng=rng, p_idle=p_idle, p_stall=p_stall, n_outputs=n_out,
                     max_cycles=20 * (len(pixels) + 50) + 10 * n_out * dut.reuse_factor)
    got = np.array([[o[j] for j in range(c_out)] for o in run.outputs])
    return got.reshape((len(x), h_out, w_out, c_out)), run


def assert_full_rate_schedule(dut, run):
    """At full rate every input and output transfer of ``run`` (three frames) happens at the
    cycle ``dut.schedule`` gives, and the first output after ``dut.latency`` cycles."""
    inputs, outputs = dut.schedule(3)
    assert [t - run.accepted_at[0] for t in run.accepted_at] == [t - inputs[0] for t in inputs]
    assert [t - run.accepted_at[0] for t in run.produced_at] == [t - inputs[0] for t in outputs]
    assert run.first_latency == dut.latency


GRID = [(k, s, pad) for k in (1, 3, 5) for s in (1, 2) for pad in ("valid", "same")]


@pytest.mark.parametrize("k,stride,padding", GRID, ids=[f"k{k}-s{s}-{p}" for k, s, p in GRID])
def test_grid_matches_golden(k, stride, padding):
    seed = k * 100 + stride * 10 + (padding == "same")
    rng = np.random.default_rng(seed)
    c_in = [1, 3, 2][k // 2]
    shape = (int(rng.integers(max(k, 3), 8)), int(rng.integers(max(k, 3), 9)), c_in)
    spec = random_conv(rng, shape, 3, k, strides=stride, padding=padding)
    reuse = [1, k * k * c_in][seed % 2]
    x = rng.integers(FX.min_code, FX.max_code + 1, (3,) + shape)
    x[0] = FX.min_code  # an edge frame
    got, _ = run_frames(ConvEngine(spec, reuse_factor=reuse), x, seed=seed,
                        p_idle=0.3, p_stall=0.4)
    assert got.tolist() == conv2d(x, spec).tolist(), f"seed {seed}"


@pytest.mark.parametrize("reuse_factor", [1, 2, 3, 6])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_schedule_latency_and_cycles_per_frame(reuse_factor, padding):
    """At full rate every input and output transfer happens at the documented cycle."""
    rng = np.random.default_rng(reuse_factor)
    spec = random_conv(rng, (6, 7, 2), 4, 3, strides=(1, 2), padding=padding)
    dut = ConvEngine(spec, reuse_factor=reuse_factor)
    x = rng.integers(FX.min_code, FX.max_code + 1, (3,) + spec.input_shape)
    got, run = run_frames(dut, x)
    assert got.tolist() == conv2d(x, spec).tolist()
    assert_full_rate_schedule(dut, run)
    n = 6 * 7
    assert run.accepted_at[2 * n] - run.accepted_at[n] == dut.cycles_per_frame
    if reuse_factor == 1:
        hp, wp = spec.padded_shape
        assert dut.cycles_per_frame == hp * wp


@pytest.mark.parametrize("reuse_factor,cycles", [(1, 900), (3, 2412)])
def test_28x28x1_3x3_16_cycles_per_frame(reuse_factor, cycles):
    rng = np.random.default_rng(28)
    spec = random_conv(rng, (28, 28, 1), 16, 3, padding="same")
    dut = ConvEngine(spec, reuse_factor=reuse_factor)
    x = rng.integers(FX.min_code, FX.max_code + 1, (2,) + spec.input_shape)
    got, run = run_frames(dut, x)
    assert got.tolist() == conv2d(x, spec).tolist()
    measured = run.accepted_at[784] - run.accepted_at[0]
    assert measured == dut.cycles_per_frame == cycles
    assert run.first_latency == dut.latency


def test_conv1d_matches_golden():
    rng = np.random.default_rng(1)
    for padding, stride, k in (("same", 2, 3), ("valid", 1, 5), ("same", 1, 1)):
        spec = Conv1DSpec(rng.integers(-8, 8, (5, k, 3)), rng.integers(-20, 20, 5), (17, 3),
                          FX, W4, OUT, strides=stride, padding=padding, bias_format=FX)
        x = rng.integers(-128, 128, (2, 17, 3))
        got, _ = run_frames(ConvEngine(spec), x[:, None], seed=k, p_idle=0.2, p_stall=0.2)
        assert got[:, 0].tolist() == conv1d(x, spec).tolist(), f"{padding} {stride} {k}"


@pytest.mark.parametrize("reuse_factor", [3, 9])
def test_fabric_multipliers_match_golden(reuse_factor):
    """A convolution whose window products are built from LUTs (all but one multiplier) gives
    the golden model's codes under stalls, with an edge frame of the most negative code."""
    rng = np.random.default_rng(40 + reuse_factor)
    spec = random_conv(rng, (6, 7, 3), 4, 3, padding="same")
    count = ConvEngine(spec, reuse_factor=reuse_factor, fabric_multipliers=0).n_multipliers
    dut = ConvEngine(spec, reuse_factor=reuse_factor, fabric_multipliers=count - 1)
    assert (dut.n_multipliers, dut.n_fabric_multipliers) == (count, count - 1)
    x = rng.integers(FX.min_code, FX.max_code + 1, (3, 6, 7, 3))
    x[0] = FX.min_code
    got, _ = run_frames(dut, x, seed=reuse_factor, p_idle=0.3, p_stall=0.4)
    assert got.tolist() == conv2d(x, spec).tolist(), f"seed {40 + reuse_factor}"


@pytest.mark.parametrize("reuse_factor", [1, 3, 9])
def test_depthwise_matches_golden(reuse_factor):
    rng = np.random.default_rng(reuse_factor)
    spec = DepthwiseConv2DSpec(rng.integers(-8, 8, (3, 3, 4)), rng.integers(-64, 64, 4),
                               (7, 6, 4), FX, W4, OUT, padding="same", bias_format=FX)
    dut = ConvEngine(spec, reuse_factor=reuse_factor)
    x = rng.integers(-128, 128, (2, 7, 6, 4))
    got, _ = run_frames(dut, x, seed=reuse_factor, p_idle=0.2, p_stall=0.3)
    assert got.tolist() == conv2d(x, spec).tolist(), f"seed {reuse_factor}"
    assert dut.n_multipliers <= 9 * 4  # the block-sparse zero weights are pruned


@pytest.mark.parametrize("accumulator", [None, "fixed<10,4,RND,WRAP>"])
def test_activation_and_accumulator(accumulator):
    rng = np.random.default_rng(3)
    acc = FixedFormat.parse(accumulator) if accumulator else None
    spec = random_conv(rng, (6, 6, 3), 4, 3, padding="same", accumulator_format=acc,
                       activation="relu", activation_format=FixedFormat(5, 2, signed=False))
    x = rng.integers(-128, 128, (2, 6, 6, 3))
    got, run = run_frames(ConvEngine(spec, reuse_factor=3), x, seed=3, p_idle=0.1,
                          p_stall=0.3)
    assert got.tolist() == conv2d(x, spec).tolist()


def memories(dut):
    found = []

    def walk(fragment):
        if isinstance(fragment, MemoryInstance):
            found.append(fragment._data)
        for sub, name, _ in fragment.subfragments:
            if name != "skid_fifo":  # the output FIFO of a free-running pipeline
                walk(sub)
    walk(Fragment.get(dut, None))
    return found


@pytest.mark.parametrize("shape,k,padding", [((8, 9, 3), 3, "same"), ((10, 10, 2), 5, "valid"),
                                              ((6, 6, 4), 1, "same"), ((1, 12, 2), (1, 3), "same")])
def test_line_buffer_memory_formula(shape, k, padding):
    spec = random_conv(np.random.default_rng(0), shape, 2, k, padding=padding)
    dut = ConvEngine(spec)
    kh = spec.kernel_size[0]
    wp = shape[1] + sum(spec.pads[1])
    found = memories(dut)
    if kh == 1:
        assert found == [] and dut.line_buffer_width == 0
        return
    assert [(m.depth, m.shape.width) for m in found] == [(wp, (kh - 1) * shape[2] * FX.width)]
    assert (dut.line_buffer_depth, dut.line_buffer_width) == (wp, (kh - 1) * shape[2] * 8)


def test_bad_engine_parameters():
    spec = random_conv(np.random.default_rng(0), (6, 6, 2), 2, 3)
    with pytest.raises(ValueError) as info:
        ConvEngine(spec, reuse_factor=4)
    assert str(info.value) == "Reuse factor must divide n_in 18 (one of 1, 2, 3, 6, 9, 18), not 4"
    with pytest.raises(TypeError) as info:
        ConvEngine("conv")
    assert str(info.value) == "Layer must be a Conv2DSpec, not 'conv'"


# -- the window product as one adder graph (FuseShiftAdd's convolutions) -----------------------

ADDER_GRAPH = {"clock_mhz": 100.0, "family": "ecp5"}
GRAPH_CASES = [  # (k, stride, padding, activation, accumulator, depthwise)
    (3, 1, "same", None, None, False),
    (3, 2, "valid", "relu", None, False),
    (1, 1, "valid", None, "fixed<10,4,RND,WRAP>", False),
    (5, 1, "same", "relu", "fixed<12,5,RND_CONV,SAT>", False),
    (3, 1, "same", None, None, True),
]


@pytest.mark.parametrize("k,stride,padding,act,accumulator,depthwise", GRAPH_CASES,
                         ids=[f"k{c[0]}-s{c[1]}-{c[2]}-{c[3]}-{c[4]}-{'dw' if c[5] else 'full'}"
                              for c in GRAPH_CASES])
def test_adder_graph_window_matches_golden_under_stalls(k, stride, padding, act, accumulator,
                                                        depthwise):
    seed = 700 + k * 10 + stride + 2 * depthwise
    rng = np.random.default_rng(seed)
    acc = FixedFormat.parse(accumulator) if accumulator else None
    kwargs = dict(strides=stride, padding=padding, accumulator_format=acc, bias_format=FX)
    if act:
        kwargs.update(activation=act, activation_format=FixedFormat(5, 2, signed=False))
    if depthwise:
        spec = DepthwiseConv2DSpec(rng.integers(-8, 8, (k, k, 3)), rng.integers(-64, 64, 3),
                                   (6, 7, 3), FX, W4, OUT, **kwargs)
    else:
        weights = rng.integers(W4.min_code, W4.max_code + 1, (4, k, k, 2))
        weights[rng.random(weights.shape) < 0.3] = 0
        weights[0, 0, 0, 0] = W4.min_code  # the most negative weight code
        kwargs.pop("bias_format")
        spec = Conv2DSpec(weights, rng.integers(-64, 64, 4), (6, 7, 2), FX, W4, OUT,
                          bias_format=FX, **kwargs)
    x = rng.integers(FX.min_code, FX.max_code + 1, (3,) + spec.input_shape)
    x[0] = FX.min_code  # an edge frame: every product at its most negative
    x[1, ::2] = FX.max_code
    dut = ConvEngine(spec, adder_graph=ADDER_GRAPH)
    assert dut.adder_graph and dut.dense.initiation_interval == 1
    reference = ConvEngine(spec)
    # The activation is inside the graph: no stage of its own after it.
    assert dut.latency - dut.dense.latency == reference.latency - reference.dense.latency - \
        (1 if act else 0)
    got, run = run_frames(dut, x, seed=seed, p_idle=0.3, p_stall=0.4)
    assert got.tolist() == conv2d(x, spec).tolist(), f"seed {seed}"
    # At full rate every transfer happens at the cycle the engine's schedule gives.
    dut = ConvEngine(spec, adder_graph=ADDER_GRAPH)
    full, run = run_frames(dut, x)
    assert full.tolist() == conv2d(x, spec).tolist()
    assert_full_rate_schedule(dut, run)


def test_adder_graph_window_needs_reuse_factor_1_and_a_signed_accumulator():
    spec = random_conv(np.random.default_rng(0), (6, 6, 2), 2, 3)
    with pytest.raises(ValueError) as info:
        ConvEngine(spec, reuse_factor=2, adder_graph=ADDER_GRAPH)
    assert str(info.value) == "An adder-graph convolution needs reuse factor 1, not 2"
    unsigned = random_conv(np.random.default_rng(0), (6, 6, 2), 2, 3,
                           accumulator_format=FixedFormat(12, 6, signed=False))
    with pytest.raises(ValueError, match="need a signed accumulator format"):
        ConvEngine(unsigned, adder_graph=ADDER_GRAPH)
