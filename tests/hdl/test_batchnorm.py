import random

import numpy as np
import pytest

from nnfab.conv_layers import BatchNormSpec
from nnfab.fixed import FixedFormat, Overflow
from nnfab.hdl.batchnorm import BatchNormEngine
from nnfab.sim.golden.batchnorm import batchnorm

from ..streams import run_stream

FX = FixedFormat(8, 3)


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
def test_batchnorm_matches_golden(overflow):
    seed = list(Overflow).index(overflow)
    rng = np.random.default_rng(seed)
    spec = BatchNormSpec(rng.integers(-16, 16, 5), rng.integers(-128, 128, 5), FX,
                         FixedFormat(5, 1), FixedFormat(8, 2),
                         FixedFormat(7, 3, rounding="RND_CONV", overflow=overflow))
    x = rng.integers(FX.min_code, FX.max_code + 1, (200, 5))
    x[0], x[1] = FX.min_code, FX.max_code
    dut = BatchNormEngine(spec)
    run = run_stream(dut, x.tolist(), rng=random.Random(seed), p_idle=0.3, p_stall=0.4)
    got = [[o[j] for j in range(5)] for o in run.outputs]
    assert got == batchnorm(x, spec).tolist(), f"seed {seed}"
    run = run_stream(BatchNormEngine(spec), x.tolist())
    assert run.first_latency == dut.latency == 2
    assert set(np.diff(run.accepted_at)) == {dut.initiation_interval}


def test_batchnorm_errors():
    with pytest.raises(TypeError) as info:
        BatchNormEngine("bn")
    assert str(info.value) == "Layer must be a BatchNormSpec, not 'bn'"
