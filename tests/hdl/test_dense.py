import random

import numpy as np
import pytest

from nnfab.fixed import FixedFormat, Overflow
from nnfab.hdl.dense import DenseEngine
from nnfab.hdl.pipeline import skid_depth
from nnfab.hdl.unused import discard
from nnfab.layers import DenseSpec
from nnfab.sim.golden.dense import dense

from ..streams import run_stream

WIDTHS = {4: (FixedFormat(4, 2), FixedFormat(4, 1), FixedFormat(4, 2)),
          8: (FixedFormat(8, 3), FixedFormat(8, 1), FixedFormat(8, 3)),
          16: (FixedFormat(16, 6), FixedFormat(16, 2), FixedFormat(16, 6))}


def random_spec(rng, n_in, n_out, width, *, overflow="SAT", rounding="RND_CONV",
                sparsity=0.5, accumulator_format=None, bias=True):
    in_fmt, w_fmt, out_fmt = WIDTHS[width]
    weights = rng.integers(w_fmt.min_code, w_fmt.max_code + 1, (n_out, n_in))
    weights[rng.random(weights.shape) < sparsity] = 0
    weights[0, 0] = w_fmt.min_code
    biases = rng.integers(in_fmt.min_code, in_fmt.max_code + 1, n_out) if bias else None
    return DenseSpec(weights, biases, in_fmt, w_fmt,
                     out_fmt.replace(overflow=overflow, rounding=rounding),
                     bias_format=in_fmt if bias else None,
                     accumulator_format=accumulator_format)


def edge_inputs(rng, spec, n_random):
    fmt = spec.input_format
    rows = [np.full(spec.n_in, fmt.min_code), np.full(spec.n_in, fmt.max_code),
            np.zeros(spec.n_in, dtype=np.int64), np.full(spec.n_in, -1)]
    rows += list(rng.integers(fmt.min_code, fmt.max_code + 1, (n_random, spec.n_in)))
    return np.array(rows, dtype=np.int64)


def run_engine(dut, x, *, seed=None, p_idle=0.0, p_stall=0.0):
    rng = random.Random(seed) if seed is not None else None
    # run_stream's default bound (20 cycles per transfer) is too short at large R.
    run = run_stream(dut, [[int(v) for v in row] for row in x], rng=rng, p_idle=p_idle,
                     p_stall=p_stall, max_cycles=20 * (len(x) + 50) * dut.initiation_interval)
    n_out = dut.spec.n_out
    return np.array([[out[j] for j in range(n_out)] for out in run.outputs]), run


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("reuse_factor", [1, 2, 4, 12])
def test_matches_golden(reuse_factor, width, overflow):
    seed = reuse_factor * 1000 + width * 10 + list(Overflow).index(overflow)
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, 12, 6, width, overflow=overflow)
    x = edge_inputs(rng, spec, 40)
    got, _ = run_engine(DenseEngine(spec, reuse_factor=reuse_factor), x, seed=seed,
                        p_idle=0.3, p_stall=0.4)
    expected = dense(x, spec)
    assert got.tolist() == expected.tolist(), f"seed {seed}"


@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("reuse_factor", [24, 36, 72])
def test_reuse_factors_above_n_in_match_golden(reuse_factor, width):
    """Above n_in 12 the 6 outputs come in 2, 3 and 6 groups; the output cast (its modes are
    covered above) is the same, so each case takes another overflow mode."""
    overflow = list(Overflow)[(reuse_factor + width) % len(Overflow)]
    seed = reuse_factor * 1000 + width * 10 + 7
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, 12, 6, width, overflow=overflow)
    x = edge_inputs(rng, spec, 40)
    got, _ = run_engine(DenseEngine(spec, reuse_factor=reuse_factor), x, seed=seed,
                        p_idle=0.3, p_stall=0.4)
    assert got.tolist() == dense(x, spec).tolist(), f"seed {seed}"


@pytest.mark.parametrize("threshold", [0, 1, 2, 8])
def test_shift_add_and_multipliers_agree(threshold):
    rng = np.random.default_rng(threshold)
    spec = random_spec(rng, 10, 5, 8, sparsity=0.3)
    dut = DenseEngine(spec, multiplier_threshold=threshold)
    x = edge_inputs(rng, spec, 30)
    got, _ = run_engine(dut, x, seed=threshold, p_idle=0.2, p_stall=0.2)
    assert got.tolist() == dense(x, spec).tolist()
    if threshold == 0:
        assert dut.n_shift_add_terms == 0
        assert dut.n_multipliers == spec.n_nonzero_weights
    if threshold == 8:
        assert dut.n_multipliers == 0


@pytest.mark.parametrize("fabric", ["all", "half"])
@pytest.mark.parametrize("width,unsigned_input", [(4, False), (8, True), (16, False)])
@pytest.mark.parametrize("reuse_factor", [1, 3, 24])
def test_fabric_multipliers_match_golden(reuse_factor, width, unsigned_input, fabric):
    """Multipliers built from LUTs (fabric_product) beside ``*`` ones give the golden model's
    codes: most negative inputs and weights, unsigned (ReLU) inputs, and stalls."""
    seed = 500 + reuse_factor * 10 + width + unsigned_input
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, 12, 6, width, sparsity=0.2)
    if unsigned_input:
        fmt = spec.input_format.replace(signed=False)
        spec = DenseSpec(spec.weights, spec.biases, fmt, spec.weight_format, spec.output_format,
                         bias_format=spec.bias_format)
    plain = DenseEngine(spec, reuse_factor=reuse_factor, multiplier_threshold=0)
    count = plain.n_multipliers if fabric == "all" else plain.n_multipliers // 2
    discard(plain)
    dut = DenseEngine(spec, reuse_factor=reuse_factor, multiplier_threshold=0,
                      fabric_multipliers=count)
    assert (dut.n_multipliers, dut.n_fabric_multipliers) == (plain.n_multipliers, count)
    x = edge_inputs(rng, spec, 40)
    if unsigned_input:
        x &= spec.input_format.max_code  # -1 becomes the largest code
    got, _ = run_engine(dut, x, seed=seed, p_idle=0.3, p_stall=0.4)
    assert got.tolist() == dense(x, spec).tolist(), f"seed {seed}"


@pytest.mark.parametrize("reuse_factor", [1, 3, 18])
@pytest.mark.parametrize("accumulator", ["fixed<10,3>", "fixed<10,3,RND,SAT>", "fixed<7,4,RND_CONV>"])
def test_explicit_accumulator_wraps_like_accum_t(reuse_factor, accumulator):
    rng = np.random.default_rng(7)
    spec = random_spec(rng, 9, 4, 8, sparsity=0.1,
                       accumulator_format=FixedFormat.parse(accumulator))
    x = edge_inputs(rng, spec, 40)
    got, _ = run_engine(DenseEngine(spec, reuse_factor=reuse_factor), x, seed=1,
                        p_idle=0.2, p_stall=0.2)
    assert got.tolist() == dense(x, spec).tolist()


def test_no_bias_and_all_zero_rows():
    rng = np.random.default_rng(3)
    spec = random_spec(rng, 6, 4, 8, bias=False)
    weights = spec.weights.copy()
    weights[1] = 0
    spec = DenseSpec(weights, None, spec.input_format, spec.weight_format, spec.output_format)
    x = edge_inputs(rng, spec, 10)
    for reuse_factor in (1, 2, 12):
        got, _ = run_engine(DenseEngine(spec, reuse_factor=reuse_factor), x)
        assert got.tolist() == dense(x, spec).tolist()
        assert (got[:, 1] == 0).all()


@pytest.mark.parametrize("levels_per_stage", [1, 2, 3])
@pytest.mark.parametrize("reuse_factor", [1, 2, 4, 16, 32, 128])
def test_latency_and_initiation_interval(reuse_factor, levels_per_stage):
    rng = np.random.default_rng(11)
    spec = random_spec(rng, 16, 8, 8)
    dut = DenseEngine(spec, reuse_factor=reuse_factor, adder_levels_per_stage=levels_per_stage)
    x = edge_inputs(rng, spec, 20)
    got, run = run_engine(dut, x)
    assert got.tolist() == dense(x, spec).tolist()
    assert run.first_latency == dut.latency
    assert set(np.diff(run.accepted_at)) == {dut.initiation_interval} == {reuse_factor}
    assert set(np.diff(run.produced_at)) == {reuse_factor}


@pytest.mark.parametrize("clock_mhz", [20, 100, 300])
@pytest.mark.parametrize("reuse_factor", [1, 2, 16])
def test_registers_placed_for_a_clock(reuse_factor, clock_mhz):
    """By default the adder trees are registered where the ECP5 delay model runs out of the
    clock period: at 20 MHz after the last level only, at 300 MHz after every level, and the
    engine keeps its reported latency and II under full rate, results equal under stalls."""
    rng = np.random.default_rng(17)
    spec = random_spec(rng, 64, 6, 8)
    dut = DenseEngine(spec, reuse_factor=reuse_factor, clock_mhz=clock_mhz)
    every = DenseEngine(spec, reuse_factor=reuse_factor, adder_levels_per_stage=1)
    assert dut.clock_mhz == clock_mhz and every.clock_mhz is None
    assert dut.tree_levels == every.tree_levels == every.tree_depth
    if clock_mhz == 100:  # a product and an addition, then three additions per stage
        assert dut.tree_depth == {1: 3, 2: 3, 16: 2}[reuse_factor]
    else:
        assert dut.tree_depth == {20: 1, 300: dut.tree_levels}[clock_mhz]
    assert dut.latency == every.latency - (every.tree_depth - dut.tree_depth)
    x = edge_inputs(rng, spec, 30)
    got, run = run_engine(dut, x)
    assert got.tolist() == dense(x, spec).tolist()
    assert run.first_latency == dut.latency
    assert set(np.diff(run.accepted_at)) == {reuse_factor}
    got, _ = run_engine(DenseEngine(spec, reuse_factor=reuse_factor, clock_mhz=clock_mhz), x,
                        seed=clock_mhz, p_idle=0.3, p_stall=0.4)
    assert got.tolist() == dense(x, spec).tolist(), f"seed {clock_mhz}"


def test_default_clock_and_unregistered_adders_kept():
    """Without a clock the family's default (100 MHz on ECP5); a sum between registers is a
    wire of its own that synthesis keeps (each adder a carry chain)."""
    from amaranth.back import verilog

    spec = random_spec(np.random.default_rng(3), 64, 2, 8)
    dut = DenseEngine(spec, reuse_factor=2)
    assert dut.clock_mhz == 100.0 and "clock_mhz=100.0" in repr(dut)
    assert dut.tree_depth < dut.tree_levels
    text = verilog.convert(dut, name="dense", emit_src=False)
    assert "(* keep = 1'h1 *)" in text and "_sum" in text


def test_pruning_counts():
    weights = np.array([[0, 3, 0, 0], [0, 0, 0, 0], [5, 0, 0, 7]])
    fmt = FixedFormat(8, 3)
    spec = DenseSpec(weights, None, fmt, fmt, fmt)
    assert DenseEngine(spec, multiplier_threshold=0).n_multipliers == 3
    # Reuse factor 2: chunk positions 0 and 1, weights by beat (w[k], w[k+2]).
    assert DenseEngine(spec, reuse_factor=2).n_multipliers == 3
    dut = DenseEngine(spec, multiplier_threshold=2)
    assert (dut.n_multipliers, dut.n_shift_add_terms) == (0, 6)  # 3 = 4-1, 5 = 4+1, 7 = 8-1
    # Reuse factor 12 = 4 n_in: the 3 outputs in 3 groups, on one multiplier per input.
    assert DenseEngine(spec, reuse_factor=12).n_multipliers == 1
    # With 6 outputs, R = 8 puts rows (0, 3), (1, 4), (2, 5) on one element each: the all-zero
    # pair (1, 4) is pruned.
    spec = DenseSpec(np.vstack([weights, weights]), None, fmt, fmt, fmt)
    assert DenseEngine(spec, reuse_factor=8).n_multipliers == 2


@pytest.mark.parametrize("kwargs,error,message", [
    ({"reuse_factor": 3}, ValueError,
     "Reuse factor must divide n_in 16 or be n_in times a divisor of n_out 4 (one of 1, 2, 4, "
     "8, 16, 32, 64), not 3"),
    ({"reuse_factor": 0}, ValueError,
     "Reuse factor must divide n_in 16 or be n_in times a divisor of n_out 4 (one of 1, 2, 4, "
     "8, 16, 32, 64), not 0"),
    ({"reuse_factor": 48}, ValueError,
     "Reuse factor must divide n_in 16 or be n_in times a divisor of n_out 4 (one of 1, 2, 4, "
     "8, 16, 32, 64), not 48"),
    ({"reuse_factor": 2.0}, TypeError, "Reuse factor must be an integer, not 2.0"),
    ({"multiplier_threshold": -1}, ValueError,
     "Multiplier threshold must be a non-negative integer, not -1"),
    ({"adder_levels_per_stage": 0}, ValueError,
     "Adder levels per stage must be a positive integer, not 0"),
    ({"fabric_multipliers": -1}, ValueError,
     "Fabric multipliers must be between 0 and the layer's 4 multipliers, not -1"),
    ({"fabric_multipliers": 5, "multiplier_threshold": 8, "reuse_factor": 16}, ValueError,
     "Fabric multipliers must be between 0 and the layer's 4 multipliers, not 5"),
    ({"fabric_multipliers": True}, TypeError, "Fabric multipliers must be an integer, not True"),
    ({"adder_levels_per_stage": 2, "clock_mhz": 100}, ValueError,
     "Give a clock or adder levels per stage, not both: 100 MHz and 2 levels"),
])
def test_bad_parameters(kwargs, error, message):
    spec = random_spec(np.random.default_rng(0), 16, 4, 8)
    with pytest.raises(error) as info:
        DenseEngine(spec, **kwargs)
    assert str(info.value) == message


def test_spec_is_checked():
    with pytest.raises(TypeError) as info:
        DenseEngine("dense")
    assert str(info.value) == "Layer must be a DenseSpec, not 'dense'"


@pytest.mark.parametrize("signed_weights", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_unsigned_inputs_and_negative_digits(signed_weights, bias):
    """Negative CSD digits enter the tree as inverted inputs with the constant in the bias;
    unsigned inputs are widened first (a ReLU output feeding the next layer)."""
    rng = np.random.default_rng(11 + 2 * signed_weights + bias)
    in_fmt = FixedFormat(8, 3, signed=False)
    w_fmt = FixedFormat(8, 1) if signed_weights else FixedFormat(8, 1, signed=False)
    weights = rng.integers(w_fmt.min_code, w_fmt.max_code + 1, (5, 10))
    weights[:, 0] = w_fmt.min_code  # -1 (signed) or 0
    weights[:, 1] = 0b1110111 if signed_weights else 0b11110111  # digits -, + and one -
    biases = rng.integers(-128, 128, 5) if bias else None
    spec = DenseSpec(weights, biases, in_fmt, w_fmt, FixedFormat(12, 6, overflow="SAT"),
                     bias_format=FixedFormat(8, 3) if bias else None)
    x = np.concatenate([np.array([[0] * 10, [255] * 10, [1] * 10]),
                        rng.integers(0, 256, (40, 10))])
    dut = DenseEngine(spec, multiplier_threshold=8)
    got, _ = run_engine(dut, x, seed=5, p_idle=0.2, p_stall=0.2)
    assert dut.n_multipliers == 0
    assert got.tolist() == dense(x, spec).tolist()


def _rom_engine(spec, reuse_factor, **options):
    from nnfab.hdl.dense_rom import DenseRomEngine

    return DenseRomEngine(spec, reuse_factor=reuse_factor, **options)


def _rom_engine_split_cast(spec, reuse_factor):
    dut = _rom_engine(spec, reuse_factor, clock_mhz=200, family="ice40")
    assert dut.split_cast
    return dut


# Both folded dense engines: the weights in logic, and in a ROM (board builds), there also
# with the output cast in two stages (a clock the cast does not fit).
ENGINES = pytest.mark.parametrize(
    "engine", [lambda spec, r: DenseEngine(spec, reuse_factor=r), _rom_engine,
               _rom_engine_split_cast],
    ids=["DenseEngine", "DenseRomEngine", "DenseRomEngine-split-cast"])


@ENGINES
@pytest.mark.parametrize("reuse_factor", [1, 3, 12, 60])
def test_every_reuse_factor_runs_free_under_a_long_stall(engine, reuse_factor):
    # The pipeline never stops: under a stall longer than the latency it takes the transfers
    # its skid FIFO and output register hold, floor(latency / R) + 1 (latency + 1 at R = 1),
    # then loses and repeats nothing. (At R > 1 both engines stalled as a whole before.)
    from .test_shift_add import accepted_while_stalled

    rng = np.random.default_rng(41)
    spec = random_spec(rng, 12, 5, 8)
    dut = engine(spec, reuse_factor)
    x = edge_inputs(rng, spec, 30)
    n_accepted, got = accepted_while_stalled(dut, x, stall_cycles=3 * dut.latency + 7)
    assert n_accepted == skid_depth(dut.latency, reuse_factor) == \
        dut.latency // reuse_factor + 1
    assert got.tolist() == dense(x, spec).tolist(), "seed 41"


@ENGINES
@pytest.mark.parametrize("reuse_factor", [1, 4, 24])
def test_input_ready_does_not_follow_output_ready_within_a_cycle(engine, reuse_factor):
    """i.ready comes from registers: toggling o.ready within a cycle, at every cycle of a
    run with idle and back-pressure, never changes it (a combinational path from o.ready to
    i.ready chains through every engine of a network; KERAS_3layer at R = 8 lost 22 ns of its
    50 MHz period to one through four layers, the iCEBreaker digits MLP 33.5 ns to one through
    its two ROM layers and the UART)."""
    from amaranth.sim import Simulator

    rng = np.random.default_rng(43)
    spec = random_spec(rng, 12, 6, 8)
    dut = engine(spec, reuse_factor)
    x = edge_inputs(rng, spec, 12)
    pick = random.Random(43)
    checked = []

    async def bench(ctx):
        k, taken = 0, 0
        for cycle in range(40 * reuse_factor + 200):
            ctx.set(dut.i.valid, k < len(x) and pick.random() < 0.7)
            if k < len(x):
                ctx.set(dut.i.payload, [int(v) for v in x[k]])
            ready = pick.random() < 0.4
            for level in (not ready, ready):
                ctx.set(dut.o.ready, level)
                checked.append(ctx.get(dut.i.ready))
            assert checked[-1] == checked[-2], f"cycle {cycle}"
            i_ok, i_valid, o_ok, o_valid = ctx.get(dut.i.ready), ctx.get(dut.i.valid), \
                ready, ctx.get(dut.o.valid)
            await ctx.tick()
            k += bool(i_ok and i_valid)
            taken += bool(o_ok and o_valid)
        assert taken == len(x)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert any(checked) and not all(checked)
