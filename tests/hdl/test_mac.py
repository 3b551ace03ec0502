import random

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.mac import MacArray
from nnfab.sim.golden.mac import mac_array

from ..streams import run_stream


def run_mac(dut, a, b, *, seed=None, p_idle=0.0, p_stall=0.0):
    """Stream sums ``a[n]`` (beats, rows) x ``b[n]`` (beats, columns) through ``dut``."""
    beats = []
    for a_n, b_n in zip(a, b):
        for k in range(a_n.shape[0]):
            beats.append({"a": [int(v) for v in a_n[k]], "b": [int(v) for v in b_n[k]],
                          "last": int(k == a_n.shape[0] - 1)})
    rng = random.Random(seed) if seed is not None else None
    run = run_stream(dut, beats, rng=rng, p_idle=p_idle, p_stall=p_stall, n_outputs=len(a))
    size = a.shape[2] * b.shape[2]
    return np.array([[out[n] for n in range(size)] for out in run.outputs]), run


@pytest.mark.parametrize("rows,columns,beats,accumulator", [
    (2, 3, 5, None), (4, 4, 16, None), (1, 1, 1, None), (3, 2, 7, "fixed<10,4,RND,SAT>"),
    (2, 2, 9, "fixed<6,2>"),
])
def test_matches_golden(rows, columns, beats, accumulator):
    seed = rows * 100 + columns * 10 + beats
    rng = np.random.default_rng(seed)
    a_fmt, b_fmt = FixedFormat(8, 3), FixedFormat(6, 1, signed=False)
    acc = FixedFormat.parse(accumulator) if accumulator else None
    n = 12
    a = rng.integers(a_fmt.min_code, a_fmt.max_code + 1, (n, beats, rows))
    b = rng.integers(b_fmt.min_code, b_fmt.max_code + 1, (n, beats, columns))
    a[0], b[0] = a_fmt.min_code, b_fmt.max_code  # the largest-magnitude sum
    dut = MacArray(rows=rows, columns=columns, a_format=a_fmt, b_format=b_fmt,
                   max_terms=beats, accumulator_format=acc)
    got, _ = run_mac(dut, a, b, seed=seed, p_idle=0.3, p_stall=0.4)
    expected = mac_array(a, b, a_format=a_fmt, b_format=b_fmt, max_terms=beats,
                         accumulator_format=acc)
    assert got.tolist() == expected.reshape(n, -1).tolist(), f"seed {seed}"


def test_exact_accumulator_holds_the_extreme_sum():
    a_fmt = b_fmt = FixedFormat(4, 1)
    dut = MacArray(rows=1, columns=1, a_format=a_fmt, b_format=b_fmt, max_terms=8)
    assert dut.accumulator == FixedFormat(11, 5)
    a = np.full((1, 8, 1), -8)
    got, _ = run_mac(dut, a, a)
    assert got.tolist() == [[8 * 64]]


def test_latency():
    fmt = FixedFormat(8, 3)
    dut = MacArray(rows=2, columns=2, a_format=fmt, b_format=fmt, max_terms=1)
    a = np.arange(20).reshape(10, 1, 2) - 10
    got, run = run_mac(dut, a, a)
    assert got.tolist() == mac_array(a, a, a_format=fmt, b_format=fmt,
                                     max_terms=1).reshape(10, -1).tolist()
    assert run.first_latency == dut.latency == 3
    assert set(np.diff(run.produced_at)) == {dut.initiation_interval}


@pytest.mark.parametrize("kwargs,error,message", [
    ({"rows": 0}, ValueError, "Rows must be a positive integer, not 0"),
    ({"columns": "2"}, TypeError, "Columns must be an integer, not '2'"),
    ({"max_terms": -4}, ValueError, "Max terms must be a positive integer, not -4"),
    ({"a_format": "fixed<8,3>"}, TypeError, "A format must be a FixedFormat, not 'fixed<8,3>'"),
])
def test_bad_parameters(kwargs, error, message):
    params = dict(rows=2, columns=2, a_format=FixedFormat(8, 3), b_format=FixedFormat(8, 3),
                  max_terms=4)
    params.update(kwargs)
    with pytest.raises(error) as info:
        MacArray(**params)
    assert str(info.value) == message
