"""TFLite's output stage in hardware against its golden model, under back-pressure, on edge
values: INT32_MIN and INT32_MAX accumulators, rounding ties, shifts 0, 31 and left shifts."""

import numpy as np
import pytest

from nnfab.hdl.output_stage import OutputStageEngine
from nnfab.output_stage import OutputStage
from nnfab.requantize import INT32_MAX, INT32_MIN
from nnfab.sim.golden.output_stage import output_stage
from tests.streams import check_stalls

HALF = 1 << 30
#: Per-channel multipliers and shifts: ties are exact with m = 2**30 (x * 0.5), right shifts 0
#: to 31, left shifts 1 and 3, the largest multiplier and a flushed (zero) one.
MULTIPLIERS = (HALF, HALF, HALF, 1_518_500_250, INT32_MAX, 1_234_567_890, HALF + 1, 0)
SHIFTS = (0, -1, -31, -9, -31, 1, 3, -4)


def _edge_inputs(rng, n_random):
    lanes = len(MULTIPLIERS)
    rows = [[INT32_MIN] * lanes, [INT32_MAX] * lanes, [0] * lanes, [-1] * lanes, [1] * lanes]
    # Ties of the rounding divide: with m = 2**30 the high multiply is x / 2 exactly for even x,
    # so x = +-2 * (2k + 1) * 2**(r - 1) lands on k + 1/2 after the shift by r.
    for k in (0, 1, 5):
        row = []
        for m, e in zip(MULTIPLIERS, SHIFTS):
            r = max(-e, 0)
            row.append(2 * (2 * k + 1) * (1 << (r - 1)) if r and 2 * (2 * k + 1) << (r - 1) <= INT32_MAX
                       else 2 * k + 1)
        rows += [row, [-v for v in row]]
    # Ties of the high multiply (x * 2**30 / 2**31 = x / 2 for odd x: +0.5 up, -0.5 up too).
    rows += [[3] * lanes, [-3] * lanes]
    rows += rng.integers(INT32_MIN, INT32_MAX, (n_random, lanes), endpoint=True).tolist()
    rows += rng.integers(-4096, 4096, (n_random, lanes)).tolist()
    return np.array(rows, dtype=np.int64)


@pytest.mark.parametrize("zero_point, low, high", [(0, -128, 127), (-128, -128, 127),
                                                   (89, 89, 127), (-5, -20, 30)])
def test_engine_matches_golden_under_stalls(zero_point, low, high):
    stage = OutputStage(MULTIPLIERS, SHIFTS, zero_point=zero_point, low=low, high=high)
    x = _edge_inputs(np.random.default_rng(zero_point & 0xFF), 60)
    want = output_stage(x, stage)
    assert want.min() >= low and want.max() <= high
    check_stalls(lambda: OutputStageEngine(stage, lanes=len(MULTIPLIERS)), x.tolist(),
                 want.tolist(), seed=11, latency=3)


# -- time-shared lanes: reuse_factor R, ceil(C / R) lanes, II ceil(C / lanes) ------------------

def _check_timing(engine, n_inputs, lanes):
    """The engine's latency and II, measured at full rate with the output always ready (a
    ``hold_input`` engine takes each vector with its last chunk, II - 1 cycles after it is
    first offered, which is where its latency counts from)."""
    from tests.streams import run_stream
    run = run_stream(engine, [[0] * lanes] * n_inputs)
    gaps = {b - a for a, b in zip(run.accepted_at, run.accepted_at[1:])}
    held = engine.initiation_interval - 1 if engine.hold_input else 0
    assert run.first_latency == engine.latency - held
    assert run.accepted_at[0] == held
    assert gaps == {engine.initiation_interval}


@pytest.mark.parametrize("hold_input", [False, True])
@pytest.mark.parametrize("reuse, n_lanes, ii", [(2, 4, 2), (3, 3, 3), (5, 2, 4), (8, 1, 8)])
def test_time_shared_engine_matches_golden_under_stalls(reuse, n_lanes, ii, hold_input):
    # 8 channels on 3 lanes (reuse 3) or 2 lanes (reuse 5: II 4): the last chunk is partial.
    # hold_input: the chunks are read from the offered vector, no register holds them.
    stage = OutputStage(MULTIPLIERS, SHIFTS, zero_point=-5, low=-20, high=30)
    x = _edge_inputs(np.random.default_rng(reuse), 30)
    make = lambda: OutputStageEngine(stage, lanes=len(MULTIPLIERS), reuse_factor=reuse,  # noqa: E731
                                     hold_input=hold_input)
    engine = make()
    assert (engine.n_lanes, engine.initiation_interval, engine.latency) == (n_lanes, ii, ii + 2)
    assert engine.n_multipliers == n_lanes
    check_stalls(make, x.tolist(), output_stage(x, stage).tolist(), seed=reuse,
                 latency=engine.latency)
    _check_timing(make(), 6, len(MULTIPLIERS))
    registers = _register_bits(make())
    if hold_input and ii > 1:
        # The held channels' registers are gone, (8 - n_lanes) x 32 bits, and the busy flag.
        unheld = _register_bits(OutputStageEngine(stage, lanes=len(MULTIPLIERS),
                                                  reuse_factor=reuse))
        assert registers == unheld - (len(MULTIPLIERS) - n_lanes) * 32 - 1


def _register_bits(engine):
    """Flip-flop bits of ``engine``'s RTLIL (its ``$dff``-like cells' widths)."""
    import re

    from amaranth.back import rtlil

    text = rtlil.convert(engine, emit_src=False)
    return sum(int(width) for width in re.findall(
        r"cell \$\w*dff\w* [^\n]*\n(?:\s+parameter [^\n]*\n)*?\s+parameter \\WIDTH (\d+)",
        text))


def test_time_shared_half_away_and_per_tensor():
    fitted = OutputStage.fit_real(FC_FACTORS, zero_point=89, low=89, high=127)
    stage = OutputStage(fitted.multipliers + ((1 << 53) - 1, 1, 3),
                        fitted.shifts + (-60, 30, 33),
                        zero_point=-7, low=-128, high=127, rounding="half_away")
    rng = np.random.default_rng(6)
    x = rng.integers(-300_000, 300_000, (40, stage.channels))
    x[:6] = [[INT32_MIN], [INT32_MAX], [0], [-1], [1], [3]]
    make = lambda: OutputStageEngine(stage, lanes=stage.channels, reuse_factor=3)  # noqa: E731
    check_stalls(make, x.tolist(), output_stage(x, stage).tolist(), seed=6, latency=5)
    # A per-tensor stage (one multiplier) keeps constant multipliers on its shared lanes.
    single = OutputStage((1_700_000_000,), (-12,), zero_point=3)
    engine = OutputStageEngine(single, lanes=5, in_width=20, reuse_factor=2)
    assert (engine.n_lanes, engine.n_multipliers, engine.initiation_interval) == (3, 3, 2)
    x = rng.integers(-(1 << 19), 1 << 19, (30, 5))
    check_stalls(lambda: OutputStageEngine(single, lanes=5, in_width=20, reuse_factor=2),
                 x.tolist(), output_stage(x, single).tolist(), seed=7, latency=4)
    clamp = OutputStage((1,), (31,), low=-100, high=100, rounding="half_away")
    assert OutputStageEngine(clamp, lanes=64, reuse_factor=16).n_multipliers == 0


def test_per_tensor_stage_on_narrow_accumulator():
    stage = OutputStage((1_700_000_000,), (-12,), zero_point=3)
    rng = np.random.default_rng(5)
    x = rng.integers(-(1 << 19), 1 << 19, (80, 4))
    x[0], x[1] = -(1 << 19), (1 << 19) - 1
    check_stalls(lambda: OutputStageEngine(stage, lanes=4, in_width=20), x.tolist(),
                 output_stage(x, stage).tolist(), seed=3, latency=3)


def test_golden_ties_and_clamp():
    stage = OutputStage((HALF,), (-1,), zero_point=0, low=-128, high=127)
    # x * 0.5 / 2 = x / 4: 2 -> 0.5 -> 1 (away from zero), -2 -> -0.5 -> -1, 6 -> 1.5 -> 2.
    assert output_stage([2, -2, 6, -6, 1000, -1000], stage).tolist() == [1, -1, 2, -2, 127, -128]


def test_from_scales_and_errors():
    stage = OutputStage.from_scales([0.5, 1.0], zero_point=-1)
    assert stage.multipliers == (HALF, HALF) and stage.shifts == (0, 1) and stage.channels == 2
    with pytest.raises(ValueError, match=r"^Output stage shift 0 must be from -31 to 30, not 31$"):
        OutputStage((HALF,), (31,))
    with pytest.raises(ValueError, match=r"^Output stage multiplier 1 must be from 0 to "
                                         r"2147483647, not -1$"):
        OutputStage((HALF, -1), (0, 0))
    with pytest.raises(ValueError, match=r"^Output stage zero point must be an integer from "
                                         r"-128 to 127, not 128$"):
        OutputStage((HALF,), (0,), zero_point=128)
    with pytest.raises(ValueError, match=r"^Output stage clamp must have low <= high, "
                                         r"not \[5, 4\]$"):
        OutputStage((HALF,), (0,), low=5, high=4)
    with pytest.raises(ValueError, match=r"^Output stage has 2 channels; a vector of 3 lanes "
                                         r"needs 3 or 1 \(per-tensor\)$"):
        OutputStageEngine(stage, lanes=3)
    with pytest.raises(ValueError, match=r"^Accumulator width must be an integer from 2 to 32, "
                                         r"not 33$"):
        OutputStageEngine(stage, lanes=2, in_width=33)
    with pytest.raises(ValueError, match=r"^Reuse factor must be an integer from 1 to 2 \(the "
                                         r"lanes\), not 3$"):
        OutputStageEngine(stage, lanes=2, reuse_factor=3)


# -- rounding="half_away": TFLite's fully connected rescale, round(double(acc) * M) ----------

#: Effective scales of the FULLY_CONNECTED layers of the MLPerf Tiny models (ad01's first and
#: last, KWS's, ResNet-8's), as read from the files.
FC_FACTORS = (0.002979507770665836, 0.0013301224037636943, 0.004650142442058647,
              0.022592034071161442, 0.1379545234452955)


def test_fit_real_equals_the_double_rescale_on_every_int32():
    from nnfab.requantize import multiply_by_real
    stage = OutputStage.fit_real(FC_FACTORS, zero_point=-3, low=-128, high=100)
    assert stage.rounding == "half_away"
    assert all(m.bit_length() <= 32 for m in stage.multipliers)
    rng = np.random.default_rng(8)
    acc = rng.integers(INT32_MIN, INT32_MAX, (20_000, len(FC_FACTORS)), endpoint=True)
    acc[:2] = [[INT32_MIN], [INT32_MAX]]
    acc[2:10_002] = rng.integers(-200_000, 200_000, (10_000, len(FC_FACTORS)))
    want = np.clip(multiply_by_real(acc, np.array(FC_FACTORS)) - 3, -128, 100)
    assert np.array_equal(output_stage(acc, stage), want)


def test_fit_real_uses_more_bits_where_fewer_differ():
    # The fewest bits: one bit less gives another code for some accumulator in the clamp range.
    from nnfab.output_stage import half_away_rescale
    from nnfab.requantize import multiply_by_real
    stage = OutputStage.fit_real([FC_FACTORS[1]], zero_point=5)
    m, e = stage.multipliers[0], stage.shifts[0]
    acc = np.arange(-200_000, 200_000)
    want = np.clip(multiply_by_real(acc, FC_FACTORS[1]) + 5, -128, 127)
    fewer = np.clip(half_away_rescale(acc, (m + 1) >> 1, e - 1) + 5, -128, 127)
    assert not np.array_equal(fewer, want)
    # The gemmlowp multiplier of the same factor (double rounding) differs from TFLite's
    # fully connected reference, which is why these layers need their own form.
    gemmlowp = OutputStage.from_scales([FC_FACTORS[1]], zero_point=5)
    assert not np.array_equal(output_stage(acc, gemmlowp), want)


def test_half_away_engine_matches_golden_under_stalls():
    fitted = OutputStage.fit_real(FC_FACTORS[:3], zero_point=89, low=89, high=127)
    # Plus hand-made lanes: a 53-bit multiplier, exact ties (x * 2**-1), a left shift.
    stage = OutputStage(fitted.multipliers + ((1 << 53) - 1, 1, 3),
                        fitted.shifts + (-60, 30, 33),
                        zero_point=-7, low=-128, high=127, rounding="half_away")
    rng = np.random.default_rng(4)
    x = rng.integers(-300_000, 300_000, (120, stage.channels))
    x[:6] = [[INT32_MIN], [INT32_MAX], [0], [-1], [1], [3]]
    x[6:40] = rng.integers(-300, 300, (34, stage.channels))
    want = output_stage(x, stage)
    assert output_stage([[1, -1, 3, -3]], OutputStage((1,), (30,), rounding="half_away")) \
        .tolist() == [[1, -1, 2, -2]]          # x / 2: ties away from zero
    check_stalls(lambda: OutputStageEngine(stage, lanes=stage.channels), x.tolist(),
                 want.tolist(), seed=9, latency=3)


def test_half_away_errors():
    with pytest.raises(ValueError, match=r"^Output stage rounding must be one of gemmlowp, "
                                         r"half_away, half_even, float32, floor, not 'double'$"):
        OutputStage((HALF,), (0,), rounding="double")
    with pytest.raises(ValueError, match=r"^Output stage multiplier 0 must be from 0 to "
                                         r"9007199254740991, not 9007199254740992$"):
        OutputStage((1 << 53,), (0,), rounding="half_away")
    with pytest.raises(ValueError, match=r"^Output stage factor 1 must be a finite number > 0, "
                                         r"not -0.5$"):
        OutputStage.fit_real([0.5, -0.5])


def _check_engine(stage, x, reuse_factor, *, seed):
    """The engine on all of ``stage``'s channels at ``reuse_factor`` against the golden model,
    under every stall pattern; latency ``2 + reuse_factor``."""
    check_stalls(lambda: OutputStageEngine(stage, lanes=stage.channels,
                                           reuse_factor=reuse_factor),
                 x.tolist(), output_stage(x, stage).tolist(), seed=seed + reuse_factor,
                 latency=2 + reuse_factor)


# -- rounding="half_even": onnxruntime's rescale, nearbyint(float(acc) * scale) in float32 ----

#: float32 output scales ``s_x * s_w[c] / s_y`` of onnxruntime-quantized layers, plus 0.5 and
#: 0.75 (exact ties on odd accumulators) and one of 2**-6.
ORT_SCALES = (0.0031466894, 0.0007153102, 0.011845227, 0.5, 0.75, 0.015625)


def test_fit_float32_equals_the_float32_rescale_on_every_int32():
    from nnfab.requantize import multiply_by_float32
    stage = OutputStage.fit_float32(np.float32(ORT_SCALES), zero_point=-3, low=-128, high=100)
    assert stage.rounding == "half_even"
    rng = np.random.default_rng(18)
    acc = rng.integers(INT32_MIN, INT32_MAX, (20_000, len(ORT_SCALES)), endpoint=True)
    acc[:2] = [[INT32_MIN], [INT32_MAX]]
    acc[2:10_002] = rng.integers(-300, 300, (10_000, len(ORT_SCALES)))
    acc[10_002:] = rng.integers(-(1 << 24), 1 << 24, (9_998, len(ORT_SCALES)))
    want = np.clip(multiply_by_float32(acc, np.float32(ORT_SCALES)) - 3, -128, 100)
    assert np.array_equal(output_stage(acc, stage), want)
    # Ties go to even, on both signs: x * 0.5 for x = 1, -1, 3, -3, 5, -5.
    tie = OutputStage((1,), (30,), rounding="half_even")
    assert output_stage([[1, -1, 3, -3, 5, -5]], tie).tolist() == [[0, 0, 2, -2, 2, -2]]
    assert multiply_by_float32([1, -1, 3, -3, 5, -5], np.float32(0.5)).tolist() == \
        [0, 0, 2, -2, 2, -2]
    # Half away from zero is another function on these ties, so the forms are not exchangeable.
    away = OutputStage((1,), (30,), rounding="half_away")
    assert output_stage([[1, -1, 3]], away).tolist() == [[1, -1, 2]]


@pytest.mark.parametrize("reuse_factor", [1, 3])
def test_half_even_engine_matches_golden_under_stalls(reuse_factor):
    fitted = OutputStage.fit_float32(np.float32(ORT_SCALES[:4]), zero_point=5, low=-128,
                                     high=127)
    # Plus hand-made lanes: a 53-bit multiplier, exact ties (x * 2**-1), a left shift.
    stage = OutputStage(fitted.multipliers + ((1 << 53) - 1, 1, 3),
                        fitted.shifts + (-60, 30, 33),
                        zero_point=5, low=-128, high=127, rounding="half_even")
    rng = np.random.default_rng(19)
    x = rng.integers(-300_000, 300_000, (120, stage.channels))
    x[:8] = [[INT32_MIN], [INT32_MAX], [0], [-1], [1], [3], [-3], [5]]
    x[8:60] = rng.integers(-300, 300, (52, stage.channels))
    _check_engine(stage, x, reuse_factor, seed=19)


def test_fit_float32_takes_the_float32_form_where_no_multiplier_is_exact():
    # 0.0037 rounds some products onto a tie in float32: no multiplier gives the half-even form
    # of the reference, so the stage rounds the product to 24 significant bits first.
    from nnfab.output_stage import float32_rescale, half_even_rescale, round_significant
    from nnfab.requantize import multiply_by_float32
    scales = np.float32([0.0037, 0.0031466894])
    stage = OutputStage.fit_float32(scales, zero_point=-9, low=-128, high=127)
    assert stage.rounding == "float32"
    assert all(m.bit_length() == 24 for m in stage.multipliers)
    rng = np.random.default_rng(20)
    acc = rng.integers(-(1 << 24), 1 << 24, (30_000, 2))
    acc[:10_000] = rng.integers(-40_000, 40_000, (10_000, 2))
    want = np.clip(multiply_by_float32(acc, scales) - 9, -128, 127)
    assert np.array_equal(output_stage(acc, stage), want)
    m, e = stage.multipliers[0], stage.shifts[0]
    near = np.arange(-40_000, 40_000)
    assert not np.array_equal(half_even_rescale(near, m, e), multiply_by_float32(near, scales[0]))
    assert np.array_equal(float32_rescale(near, m, e), multiply_by_float32(near, scales[0]))
    # Rounding to 24 significant bits, ties to even, on both signs, is the float32 cast's.
    v = rng.integers(-(1 << 55), 1 << 55, 50_000)
    v[:6] = [0, 1, -1, (1 << 24) + 1, (1 << 25) + 2, -((1 << 25) + 6)]
    assert np.array_equal(round_significant(v, 24),
                          v.astype(np.float32).astype(np.float64).astype(np.int64))


def test_fit_float32_refuses_a_scale_whose_float32_rescale_is_not_affine():
    # Beyond 2**24 an accumulator is rounded to 24 bits before the multiplication: with 7e-6
    # the unclamped range (about 3.3e7 to 3.6e7) holds accumulators neither form reproduces.
    with pytest.raises(ValueError, match=r"^Output stage factor 1 \(7.0000\d+e-06\) has no "
                                         r"integer form of up to 24 bits equal to the float32 "
                                         r"rescale; accumulator 3\d{7} differs$"):
        OutputStage.fit_float32(np.float32([0.5, 7e-6]), zero_point=-128, low=100, high=127)
    # A range too long to compare one by one is refused before it is made.
    with pytest.raises(ValueError, match=r"^Output stage factor 0 \(5.3000\d+e-07\) leaves "
                                         r"484,905,644 accumulators unclamped, more than the "
                                         r"33,554,432 nnfab compares one by one$"):
        OutputStage.fit_float32(np.float32([5.3e-7]))


@pytest.mark.parametrize("reuse_factor", [1, 4])
def test_float32_engine_matches_golden_under_stalls(reuse_factor):
    scales = np.float32([0.0037, 0.0031466894, 0.0007153102, 0.011845227])
    fitted = OutputStage.fit_float32(scales, zero_point=-9, low=-128, high=127)
    # Plus hand-made lanes: x / 2**18 (multiplier 1), a left shift, a right shift of 0. On the
    # first, 2**25 + 2**17 + 2 and 2**25 + 3 * 2**17 - 2 are ties at 24 significant bits whose
    # rounding (to even: down, then up) decides the tie after it (128.5 -> 128, 129.5 -> 130).
    stage = OutputStage(fitted.multipliers + (1, 3, 1),
                        fitted.shifts + (13, 33, 31), zero_point=-9, low=-128, high=127,
                        rounding="float32")
    ties = [(1 << 25) + (1 << 17) + 2, (1 << 25) + 3 * (1 << 17) - 2]
    assert output_stage([[0, 0, 0, 0, t, 0, 0] for t in ties], stage)[:, 4].tolist() == \
        [128 - 9, 130 - 9]
    rng = np.random.default_rng(22)
    x = rng.integers(-300_000, 300_000, (120, stage.channels))
    x[:8] = [[INT32_MIN], [INT32_MAX], [0], [-1], [1], [(1 << 24) + 1], [-(1 << 24) - 3], [7]]
    x[8:12] = [[ties[0]], [ties[1]], [-ties[0]], [-ties[1]]]
    x[12:60] = rng.integers(-40_000, 40_000, (48, stage.channels))
    _check_engine(stage, x, reuse_factor, seed=30)


# -- rounding="floor": the fixed-point form of thresholds, (acc * m + b) >> s ----------------

def _affine_thresholds(alpha, beta, low, high, bits):
    """Thresholds of ``clip(floor(alpha * acc + beta + 1/2), 0, 2**bits - 1)`` on low..high."""
    acc = np.arange(low, high + 1)
    codes = np.clip(np.floor(alpha * acc + beta + 0.5), 0, (1 << bits) - 1).astype(np.int64)
    return acc, codes, np.searchsorted(codes, np.arange(1, 1 << bits), side="left") + low


def test_fit_thresholds_gives_the_thresholds_codes_on_the_whole_range():
    rows, channels = [], [(0.0123, 3.3), (0.007, -100.5), (1 / 64, 0.5), (0.0031, 2047.5)]
    for alpha, beta in channels:
        acc, codes, thresholds = _affine_thresholds(alpha, beta, -300_000, 300_000, 12)
        rows.append(thresholds)
    stage = OutputStage.fit_thresholds(np.array(rows), [-300_000] * 4, [300_000] * 4, base=0)
    assert (stage.rounding, stage.low, stage.high, stage.width) == ("floor", 0, 4095, 14)
    for c, (alpha, beta) in enumerate(channels):
        acc, codes, _ = _affine_thresholds(alpha, beta, -300_000, 300_000, 12)
        got = output_stage(np.broadcast_to(acc[:, None], (acc.size, 4)), stage)[:, c]
        assert np.array_equal(got, codes)
    # floor(x / 64 + 1/2 + 1/2): multiplier 1, shift 6, offset 64, as a person writes it.
    assert (stage.multipliers[2], 31 - stage.shifts[2], stage.offsets[2]) == (1, 6, 64)


def test_fit_thresholds_refuses_codes_that_are_no_rounded_affine_map():
    thresholds = np.sort(np.random.default_rng(40).integers(-5_000, 5_000, (1, 300)), axis=1)
    with pytest.raises(ValueError, match=r"^Output stage channel 0: no multiplier and offset "
                                         r"with a shift of up to 62 bits give its 300 thresholds "
                                         r"on accumulators -6000 to 6000$"):
        OutputStage.fit_thresholds(thresholds, [-6000], [6000], base=-150)
    with pytest.raises(ValueError, match=r"^Output stage offsets are one per multiplier with "
                                         r"rounding 'floor', not 1 with 1 multipliers and "
                                         r"rounding 'half_even'$"):
        OutputStage((1,), (31,), rounding="half_even", offsets=(3,))


@pytest.mark.parametrize("reuse_factor", [1, 3])
def test_floor_engine_matches_golden_under_stalls(reuse_factor):
    rows = [_affine_thresholds(a, b, -300_000, 300_000, 12)[2]
            for a, b in [(0.0123, 3.3), (0.007, -100.5), (1 / 64, 0.5), (0.0031, 2047.5)]]
    fitted = OutputStage.fit_thresholds(np.array(rows), [-300_000] * 4, [300_000] * 4, base=0)
    # Plus a left shift and a negative offset.
    stage = OutputStage(fitted.multipliers + (3, 5), fitted.shifts + (33, 20),
                        low=0, high=4095, width=14, rounding="floor",
                        offsets=fitted.offsets + (-7, -(1 << 40)))
    rng = np.random.default_rng(41)
    x = rng.integers(-300_000, 300_000, (100, stage.channels))
    x[:6] = [[INT32_MIN], [INT32_MAX], [0], [-1], [1], [300_000]]
    _check_engine(stage, x, reuse_factor, seed=42)
