"""TFLite's int8 softmax in hardware against the golden model (TFLite's reference kernel), code
for code, under back-pressure: seeded random rows, edge rows and the softmax parameters of the
MLPerf Tiny models."""

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from amaranth.hdl import Module
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.gemmlowp import ACCUMULATION_INTEGER_BITS, get_reciprocal, softmax_params
from nnfab.hdl.softmax_tflite import (RECIPROCAL_LATENCY, PipelineBuilder, TfliteSoftmax,
                                      get_reciprocal as reciprocal_pipeline)
from nnfab.hdl.vector_pipeline import VectorPipeline, vector_signature
from nnfab.sim.golden.tflite_softmax import softmax_int8
from tests.streams import check_stalls, run_stream

MODELS = Path("/work/shared/models/mlperf-tiny")


@cache
def model_softmax(name):
    """``(depth, input_scale, beta)`` of the ``SOFTMAX`` of a model of MODELS."""
    from nnfab.gen.importers.tflite_file import read_tflite
    model = read_tflite(MODELS / name)
    (op,) = [op for op in model.operators if op.opcode == "SOFTMAX"]
    tensor = model.tensors[op.inputs[0]]
    (scale,) = tensor.scales
    return tensor.shape[-1], scale, op.options["beta"]


def edge_rows(n, diff_min):
    """All equal, all -128, all 127, one 127 and the rest -128 (at every place), and rows whose
    differences to the maximum straddle ``diff_min``."""
    rows = [[5] * n, [-128] * n, [127] * n]
    for k in range(n):
        row = [-128] * n
        row[k] = 127
        rows.append(row)
    for edge in (-diff_min - 1, -diff_min, -diff_min + 1):
        if 0 <= edge <= 255:
            top = min(127, -128 + edge)
            rows.append([top - (edge + j) % 3 + 1 if j % 2 else top for j in range(n)])
            rows.append([top] + [top - edge] * (n - 1))
    return [[int(np.clip(v, -128, 127)) for v in row] for row in rows]


def rows_for(n, input_scale, beta, *, seed, n_random):
    """Edge rows, then seeded random rows: full-range ones and ones spread around
    ``diff_min`` below a random maximum."""
    _, _, diff_min = softmax_params(input_scale, beta)
    rng = np.random.default_rng(seed)
    rows = edge_rows(n, diff_min)
    rows += rng.integers(-128, 128, (n_random, n)).tolist()
    spread = min(max(-diff_min, 2), 255)
    peak = rng.integers(-128 + spread // 2, 128, (n_random, 1))
    near = peak - rng.integers(0, spread + 3, (n_random, n))
    rows += np.clip(near, -128, 127).tolist()
    return rows


def check(n, input_scale, beta, *, seed, n_random=40, patterns=("random", "long", "toggle")):
    rows = rows_for(n, input_scale, beta, seed=seed, n_random=n_random)
    want = softmax_int8(rows, input_scale, beta).tolist()
    full = check_stalls(lambda: TfliteSoftmax(n=n, input_scale=input_scale, beta=beta), rows,
                        want, seed=seed, patterns=patterns)
    return full


@pytest.mark.parametrize("model", ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite"])
def test_model_softmax_under_stalls(model):
    n, input_scale, beta = model_softmax(model)
    assert (n, softmax_params(input_scale, beta)[2]) in ((12, -124), (10, -124))
    full = check(n, input_scale, beta, seed=17 + n, n_random=60)
    latency = TfliteSoftmax(n=n, input_scale=input_scale, beta=beta).latency
    assert full.first_latency == latency == 21
    gaps = np.diff(full.accepted_at)
    assert gaps.max() == 1          # II = 1 at full rate


@pytest.mark.parametrize("n,input_scale,beta", [
    (1, 0.1, 1.0),          # one lane: always 127
    (5, 0.5, 2.0),          # diff_min = -15
    (7, 0.05, 0.7),
    (12, 1 / 256, 1.0),     # diff_min far below -255: every lane counts
    (3, 8.0, 1.0),          # diff_min = -1
    (4, 100.0, 1.0),        # the multiplier saturates: diff_min = 0, the left shift wraps
    (33, 0.02, 1.0),
])
def test_parameters_under_stalls(n, input_scale, beta):
    check(n, input_scale, beta, seed=n * 7 + 3, n_random=30, patterns=("random",))


@pytest.mark.slow
def test_largest_sum_uses_the_longest_shift():
    """256 equal lanes: the sum 2**27 needs the rounding shift of 31, the longest (sums up to
    511 * 2**19 share it; the reciprocal alone is tested on all of them)."""
    n = 256
    rows = [[0] * n, [127] * n, [-128] * (n - 1) + [127]]
    want = softmax_int8(rows, 0.1, 1.0).tolist()
    run = run_stream(TfliteSoftmax(n=n, input_scale=0.1, beta=1.0), rows)
    got = [[int(v) for v in row] for row in run.outputs]
    assert got == want


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(n=0, input_scale=0.1, beta=1.0), ValueError,
     "Softmax depth must be from 1 to 511, not 0"),
    (dict(n=512, input_scale=0.1, beta=1.0), ValueError,
     "Softmax depth must be from 1 to 511, not 512"),
    (dict(n=2.0, input_scale=0.1, beta=1.0), TypeError,
     "Softmax depth must be an integer, not 2.0"),
    (dict(n=4, input_scale="0.1", beta=1.0), TypeError, "Input scale must be a number, not '0.1'"),
    (dict(n=4, input_scale=0.0, beta=1.0), ValueError,
     "Input scale must be a finite number above 0, not 0.0"),
    (dict(n=4, input_scale=0.1, beta=float("nan")), ValueError,
     "Beta must be a finite number above 0, not nan"),
])
def test_errors(kwargs, error, message):
    with pytest.raises(error) as info:
        TfliteSoftmax(**kwargs)
    assert str(info.value) == message


def test_repr_and_figures():
    softmax = TfliteSoftmax(n=10, input_scale=0.25, beta=1.0)
    assert repr(softmax) == "TfliteSoftmax(n=10, input_scale=0.25, beta=1.0)"
    assert (softmax.latency, softmax.initiation_interval, softmax.n_multipliers) == (21, 1, 17)


class ReciprocalUnit(VectorPipeline):
    """The engine's GetReciprocal alone: a Q12.19 sum in, ``(1/sum in Q0.31,
    num_bits_over_unit)`` out; the sum registered, then the reciprocal pipeline, then an output
    register."""

    latency = RECIPROCAL_LATENCY + 2

    def __init__(self):
        super().__init__({"i": In(vector_signature(FixedFormat(29, 29), 1)),
                          "o": Out(vector_signature(FixedFormat(32, 32), 2))})

    def elaborate(self, platform):
        m = Module()
        advance, register = self._stages(m, self.latency)
        build = PipelineBuilder(m, register)
        total = register(self.i.payload[0].as_unsigned()[:28], "total")
        reciprocal, num_bits_over_unit = reciprocal_pipeline(build, total)
        num_bits_over_unit = build.delay(num_bits_over_unit, RECIPROCAL_LATENCY - 1, "nbou")
        with m.If(advance):
            m.d.sync += [self.o.payload[0].eq(reciprocal), self.o.payload[1].eq(num_bits_over_unit)]
        return m


def test_reciprocal_pipeline_alone():
    """Every sum of equal rows (k * 2**19, k = 1 to 511), the range ends, and seeded random
    sums from 2**19 to 2**28 - 1, against the golden GetReciprocal (Q0.31 and the shift)."""
    one = 1 << 19
    rng = np.random.default_rng(5)
    sums = [k * one for k in range(1, 512)] + [one + 1, one - 1 + one, (1 << 28) - 1]
    sums += rng.integers(one, 1 << 28, 1500).tolist()
    sums += [v + d for v in (1 << rng.integers(20, 28, 100)).tolist() for d in (-1, 0, 1)]
    reciprocal, num_bits_over_unit = get_reciprocal(sums, ACCUMULATION_INTEGER_BITS)
    want = np.stack([reciprocal, num_bits_over_unit], axis=1).tolist()
    full = check_stalls(ReciprocalUnit, [[v] for v in sums], want, seed=5, patterns=("random",))
    assert full.first_latency == 17
