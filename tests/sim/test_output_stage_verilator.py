"""TFLite's output stages (gemmlowp multiplier; fully connected's exact half-away form) and
onnxruntime's (exact half-even and float32 forms) and the fixed-point form of thresholds
(floor with offsets) on Verilator (the Verilog Amaranth writes, through the HDL harness):
the edge-value and random accumulators of the Amaranth test, with random idle cycles and
back-pressure at both ends, against the golden model code for code."""

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.output_stage import OutputStageEngine
from nnfab.output_stage import OutputStage
from nnfab.packing import pack, unpack
from nnfab.sim.golden.output_stage import output_stage
from nnfab.sim.harness import run_harness

from ..hdl.test_output_stage import (FC_FACTORS, MULTIPLIERS, ORT_SCALES, SHIFTS,
                                     _affine_thresholds, _edge_inputs)


def _exact_stage(rounding):
    # Five channels: 0.0037 has no half-even form, so it makes the stage a float32 one.
    scales = np.float32(ORT_SCALES[:4] + ((0.0037,) if rounding == "float32" else
                                          ORT_SCALES[4:5]))
    fitted = (OutputStage.fit_real(FC_FACTORS, zero_point=-7, low=-100, high=120)
              if rounding == "half_away" else
              OutputStage.fit_float32(scales, zero_point=-7, low=-100, high=120))
    assert fitted.rounding == rounding
    return OutputStage(fitted.multipliers + ((1 << 53) - 1, 1, 3),
                       fitted.shifts + (-60, 30, 33), zero_point=-7, low=-100, high=120,
                       rounding=rounding)


def _floor_stage():
    fitted = OutputStage.fit_thresholds(
        np.array([_affine_thresholds(a, b, -300_000, 300_000, 12)[2]
                  for a, b in [(0.0123, 3.3), (0.007, -100.5), (1 / 64, 0.5), (0.0031, 2047.5),
                               (0.25, -1000.0)]]), [-300_000] * 5, [300_000] * 5, base=0)
    return OutputStage(fitted.multipliers + ((1 << 53) - 1, 1, 3),
                       fitted.shifts + (-60, 30, 33), low=0, high=4095, width=14,
                       rounding="floor", offsets=fitted.offsets + (5, -(1 << 50), -1))


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ["gemmlowp", "half_away", "half_even", "float32", "floor"])
def test_output_stage_on_verilator(rounding):
    stage = (OutputStage(MULTIPLIERS, SHIFTS, zero_point=-7, low=-100, high=120)
             if rounding == "gemmlowp" else _floor_stage() if rounding == "floor" else
             _exact_stage(rounding))
    assert stage.channels == len(MULTIPLIERS)
    x = _edge_inputs(np.random.default_rng(21), 2000)
    want = output_stage(x, stage)
    lanes = len(MULTIPLIERS)
    acc, out = [FixedFormat(32, 32)] * lanes, [FixedFormat(stage.width, stage.width)] * lanes
    run = run_harness(OutputStageEngine(stage, lanes=lanes), toplevel=f"output_stage_{rounding}",
                      words_in=[pack([int(v) for v in row], acc) for row in x],
                      n_out=len(x), warmup_in=16, warmup_out=16, seed=5, p_idle=0.3,
                      p_stall=0.3, burst=4)
    assert not run.timed_out
    got = np.array([unpack(word, out) for word in run.words_out])
    assert got.shape == want.shape and np.array_equal(got, want)
    assert run.latency == 3 and run.initiation_interval == 1
