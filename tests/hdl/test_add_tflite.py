"""TFLite's int8 ADD in hardware against :func:`nnfab.sim.golden.tflite.add_int8`, code for
code: the parameters of ResNet-8's three ADDs (read with read_tflite) and synthetic ones (a
narrow clamp, a left shift on the output that wraps int32), edge codes on both inputs (-128,
127, the zero points and their neighbours) and seeded random codes; full rate (latency 6,
II 1), then every stall pattern with each input idling at its own rate and skew."""

import gc
import itertools

import numpy as np
import pytest

from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.hdl.add_tflite import AddTfliteEngine
from nnfab.sim.golden.tflite import add_int8, add_params
from nnfab.tflite_ops import AddParams

from ..vectors import shared_dir
from .test_merge import assert_transfers, run_ports, stall_runs

RESNET = shared_dir() / "models" / "mlperf-tiny" / "pretrainedResnet_quant.tflite"
LANES = 4


def resnet_add_params():
    """AddParams of ResNet-8's ADD operators, by operator index."""
    if not RESNET.exists():
        pytest.fail(f"{RESNET} is not available: shared/ must be beside the repository")
    model = read_tflite(RESNET)
    params = {}
    for op in model.operators:
        if op.opcode == "ADD":
            t_1, t_2, t_out = (model.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
            params[op.index] = add_params(t_1, t_2, t_out, op.options["fused_activation"])
    return params


SYNTHETIC = {
    # A narrow clamp on both sides, inputs of very different scales.
    "narrow_clamp": AddParams.from_scales((0.5, 0.02, 0.03), (3, -7, 10), -20, 30),
    # Output factor 4 (shift 3): (s_1 + s_2) << 3 wraps int32 as C does, in both models.
    "output_left_shift": AddParams.from_scales((1.0, 0.25, 2.0 / (1 << 22)), (-128, 127, 0)),
}


def add_inputs(params, n_random, seed):
    """``(a, b)``, shape ``(n, LANES)``: every pair of edge codes, then seeded random codes."""
    z1, z2, _ = params.zero_points
    edges = sorted({-128, -127, -1, 0, 1, 126, 127} |
                   {min(max(z + d, -128), 127) for z in (z1, z2) for d in (-1, 0, 1)})
    pairs = np.array(list(itertools.product(edges, edges)))
    rng = np.random.default_rng(seed)
    flat = np.concatenate([pairs, rng.integers(-128, 128, (n_random * LANES, 2))])
    flat = np.concatenate([flat, rng.integers(-128, 128, (-len(flat) % LANES, 2))])
    return flat[:, 0].reshape(-1, LANES), flat[:, 1].reshape(-1, LANES)


def check_add(params, seed, n_random=60):
    a, b = add_inputs(params, n_random, seed)
    expected = add_int8(a, b, params)
    # The edges reach the clamp at both ends unless the parameters cannot.
    assert expected.max() == params.high or params.low == -128
    n = len(expected)
    dut = AddTfliteEngine(params, lanes=LANES)
    sources = [(port, x.tolist(), None, 0, 0) for port, x in zip(dut.inputs, (a, b))]
    acc, outs, prod, extra = run_ports(dut, sources, [(dut.o, n, itertools.repeat(True))],
                                       max_cycles=10 * n + 50)
    assert_transfers(outs[0], extra[0], expected.tolist(), f"seed {seed}, full rate")
    assert acc[0] == acc[1] == list(range(n))                                  # II 1
    assert prod[0] == list(range(dut.latency, dut.latency + n))                 # latency 6
    for kind, rng, (ready,) in stall_runs(seed, 1, hold=dut.latency):
        dut = AddTfliteEngine(params, lanes=LANES)
        sources = [(port, x.tolist(), rng, p_idle, skew)
                   for port, x, p_idle, skew in zip(dut.inputs, (a, b), (0.1, 0.5), (0, 7))]
        acc, outs, _, extra = run_ports(dut, sources, [(dut.o, n, ready)], max_cycles=40 * n)
        assert_transfers(outs[0], extra[0], expected.tolist(), f"seed {seed}, {kind} stalls")
        assert acc[0] == acc[1] and len(acc[0]) == n, "inputs not consumed together"
    return expected


def test_resnet_add_params():
    params = resnet_add_params()
    assert sorted(params) == [3, 7, 11]
    # Input 2's scale is the larger in each: its multiplier is 1/2 exactly; output shifts -17
    # and -18; RELU with output zero point -128 leaves the int8 range.
    assert [p.pairs()[1] for p in params.values()] == [(1 << 30, 0)] * 3
    assert [p.shifts[2] for p in params.values()] == [-17, -17, -18]
    assert {(p.low, p.high) for p in params.values()} == {(-128, 127)}


@pytest.mark.parametrize("index", [3, 7, 11])
def test_resnet_add_matches_golden(index):
    check_add(resnet_add_params()[index], seed=index)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_add_matches_golden(name):
    params = SYNTHETIC[name]
    expected = check_add(params, seed=40 + sorted(SYNTHETIC).index(name))
    if name == "narrow_clamp":
        assert expected.min() == -20 and expected.max() == 30
    else:
        assert params.shifts[2] == 3


def test_members_and_repr():
    params = SYNTHETIC["narrow_clamp"]
    dut = AddTfliteEngine(params, lanes=2)
    assert dut.inputs == (dut.i0, dut.i1) and dut.params is params and dut.lanes == 2
    assert (dut.latency, dut.initiation_interval) == (6, 1)
    assert dut.o.payload.shape().length == 2 and dut.i1.payload.shape().elem_shape.width == 8
    assert repr(dut).startswith("AddTfliteEngine(AddParams(zero_points=(3, -7, 10), ")
    assert repr(dut).endswith(", low=-20, high=30, left_shift=20), lanes=2)")


@pytest.mark.parametrize("make,error,message", [
    (lambda: AddTfliteEngine((1, 2, 3), lanes=1), TypeError,
     "Add parameters must be an AddParams, not (1, 2, 3)"),
    (lambda: AddTfliteEngine(SYNTHETIC["narrow_clamp"], lanes=0), ValueError,
     "Lanes must be at least 1, not 0"),
    (lambda: AddParams((0, 0, 128), (1, 1, 1), (0, 0, 0)), ValueError,
     "Add output zero point must be an integer from -128 to 127, not 128"),
    (lambda: AddParams((0, 0), (1, 1, 1), (0, 0, 0)), ValueError,
     "Add zero points must be 3 values (input 1, input 2, output), not (0, 0)"),
    (lambda: AddParams((0, 0, 0), (1, -1, 1), (0, 0, 0)), ValueError,
     "Add input 2 multiplier must be from 0 to 2147483647, not -1"),
    (lambda: AddParams((0, 0, 0), (1, 1, 1), (-32, 0, 0)), ValueError,
     "Add input 1 shift must be from -31 to 30, not -32"),
    (lambda: AddParams((0, 0, 0), (1, 1, 1), (0, 0, 0), low=5, high=4), ValueError,
     "Add clamp must have low <= high, not [5, 4]"),
    (lambda: AddParams((0, 0, 0), (1, 1, 1), (0, 0, 0), left_shift=23), ValueError,
     "Add left shift must be an integer from 0 to 22, not 23"),
])
def test_errors(make, error, message, recwarn):
    gc.collect()
    recwarn.clear()
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message
    gc.collect()
    assert not recwarn.list
