"""Hls4mlSoftmax in Amaranth's simulator against the golden model, with idle cycles and
back-pressure; latency, II, interface and errors."""

import gc
import random

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from nnfab.hdl.softmax_hls4ml import Hls4mlSoftmax
from nnfab.sim.golden.softmax_hls4ml import softmax_hls4ml

from ..sim.golden.test_softmax_hls4ml import CASES, CSIM_ROWS, stimulus
from ..streams import run_stream


def outputs_array(run):
    return [[int(v) for v in out] for out in run.outputs]


@pytest.mark.parametrize("name,count", [("default", 100), ("n1", 100), ("n2_wrap", 100),
                                        ("n3_unsigned", 100), ("n5_sat", 150),
                                        ("n10_wrap", 100), ("n10_sat_zero", 100), ("wide", 60)])
def test_stream_matches_golden(name, count):
    spec, _ = CASES[name]
    seed = list(CASES).index(name)
    rng = random.Random(seed)
    rows = stimulus(spec, rng, count)
    run = run_stream(Hls4mlSoftmax(spec), rows, rng=rng, p_idle=0.3, p_stall=0.3)
    expected = softmax_hls4ml(np.array(rows, dtype=object), spec).tolist()
    assert outputs_array(run) == expected, f"seed {seed}"


def test_hls4ml_default_and_csim_rows():
    """hls4ml's default softmax (1024-entry tables) on rows of hls4ml's C simulation."""
    spec, _ = CASES["default"]
    rows = [x for x, _ in CSIM_ROWS]
    run = run_stream(Hls4mlSoftmax(spec), rows, rng=random.Random(1), p_idle=0.2, p_stall=0.2)
    assert outputs_array(run) == [y for _, y in CSIM_ROWS]


@pytest.mark.parametrize("name", ["n1", "n10_wrap"])
def test_latency_and_ii(name):
    spec, _ = CASES[name]
    dut = Hls4mlSoftmax(spec)
    rows = stimulus(spec, random.Random(3), 30)
    run = run_stream(dut, rows)
    assert run.first_latency == dut.latency == 6
    assert set(np.diff(run.accepted_at)) == {dut.initiation_interval} == {1}
    assert set(np.diff(run.produced_at)) == {1}
    assert all(p - a == dut.latency for a, p in zip(run.accepted_at, run.produced_at))
    assert outputs_array(run) == softmax_hls4ml(np.array(rows), spec).tolist()


def test_interface_and_repr():
    spec, _ = CASES["n3_unsigned"]
    dut = Hls4mlSoftmax(spec)
    assert dut.i.payload.shape().elem_shape == unsigned(8)
    assert dut.o.payload.shape().elem_shape == unsigned(10)
    assert dut.o.payload.shape().length == dut.n == 3
    assert dut.spec is spec
    assert repr(dut) == f"Hls4mlSoftmax({spec!r})"
    assert repr(dut).startswith("Hls4mlSoftmax(Hls4mlSoftmaxSpec(n=3, "
                                "input_format=FixedFormat.parse('ufixed<8,4>'), ")
    assert Hls4mlSoftmax(CASES["wide"][0]).i.payload.shape().elem_shape == signed(40)


def test_error_message(recwarn):
    gc.collect()  # warnings of earlier tests' objects are not this test's
    recwarn.clear()
    with pytest.raises(TypeError) as info:
        Hls4mlSoftmax(3)
    assert str(info.value) == "Softmax spec must be an Hls4mlSoftmaxSpec, not 3"
    gc.collect()
    assert not [w for w in recwarn if "UnusedElaboratable" in str(w.category)]
