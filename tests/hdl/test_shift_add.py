"""ShiftAddDense against the composition of the golden models it fuses, in Amaranth's simulator:
per-lane input requantize, exact dense sum, output cast, activation, per-lane output
requantize; full rate and with idle inputs and back-pressure; edge codes."""

import random

import numpy as np
import pytest
from amaranth.back import verilog

from nnfab.fixed import FixedFormat
from nnfab.ir.quantize import lanes_format
from nnfab.hdl.adder_graph import Lane, Leaf, plan_adders
from nnfab.hdl.csd import csd_digits
from nnfab.hdl.pipeline import skid_depth
from nnfab.hdl.shift_add import ShiftAddDense
from nnfab.hdl.timing_model import delay_model, schedule
from nnfab.layers import DenseSpec
from nnfab.sim.golden.activations import activation
from nnfab.sim.golden.dense import dense
from nnfab.sim.golden.quantize import quantize_lanes
from nnfab.tables import SELU_ALPHA, SELU_SCALE, elu_table

from ..streams import run_stream

F = FixedFormat


def csd_weights(rng, shape, fmt, *, max_digits=3, sparsity=0.4):
    """Random codes of ``fmt`` with at most ``max_digits`` signed digits (the most negative code
    included), a share of them zero."""
    codes = [c for c in range(fmt.min_code, fmt.max_code + 1)
             if len(csd_digits(c)) <= max_digits]
    w = rng.choice(codes, shape)
    w[rng.random(shape) < sparsity] = 0
    w.flat[0] = fmt.min_code
    return w


def golden(x, spec, *, fin, input_lanes, act, output_lanes, fout):
    if input_lanes is not None:
        x = quantize_lanes(x, fin=fin, formats=input_lanes, fout=spec.input_format)
    y, fmt = dense(x, spec), spec.output_format
    if act is not None:
        kind, act_out, params = act
        y, fmt = activation(kind, y, fin=fmt, fout=act_out, **params), act_out
    if output_lanes is not None:
        y = quantize_lanes(y, fin=fmt, formats=output_lanes, fout=fout)
    return y


def edge_rows(rng, fmt, n, n_random):
    rows = [np.full(n, fmt.min_code), np.full(n, fmt.max_code), np.zeros(n, dtype=np.int64),
            np.full(n, -1 if fmt.signed else 1), np.full(n, fmt.min_code + 1)]
    rows += list(rng.integers(fmt.min_code, fmt.max_code + 1, (n_random, n)))
    return np.array(rows, dtype=np.int64)


def run(dut, x, *, seed=None, p_idle=0.0, p_stall=0.0):
    rng = random.Random(seed) if seed is not None else None
    result = run_stream(dut, [[int(v) for v in row] for row in x], rng=rng, p_idle=p_idle,
                        p_stall=p_stall)
    n_out = dut.o.payload.shape().length
    return np.array([[out[j] for j in range(n_out)] for out in result.outputs]), result


FIN = F(12, 5)
INPUT_LANES = (F(6, 4), None, F(10, 4, rounding="RND_CONV", overflow="SAT"), F(5, 3, signed=False),
               F(8, 2, rounding="RND", overflow="SAT_SYM"), F(2, 3), F(12, 5), F(9, 4))

SELU = dict(table=elu_table(alpha=SELU_ALPHA, scale=SELU_SCALE, table_size=32,
                            table_format=F(10, 2, rounding="RND"), input_range=8),
            scale=(F(18, 1, signed=False, rounding="RND"), 137717))

CASES = {
    # HGQ's pattern: lanes in, wrapping cast, ReLU, lanes out
    "hgq": dict(input_lanes=INPUT_LANES, out=F(12, 7), act=("relu", F(11, 6, signed=False), {}),
                output_lanes=(F(8, 5, signed=False), None, F(7, 5, signed=False),
                              F(5, 7, signed=False), F(10, 6, signed=False), None)),
    # rounding and saturating output cast: no bits above the top can be dropped
    "sat_rnd": dict(input_lanes=None, out=F(10, 6, rounding="RND", overflow="SAT"), act=None,
                    output_lanes=None),
    # exact output (no cast), output lanes wrap: the sum is formed modulo the lanes' tops
    "exact_wrap_lanes": dict(input_lanes=INPUT_LANES, out=None, act=None,
                             output_lanes=(F(9, 4), F(10, 5), F(6, 2, rounding="RND"), None,
                                           F(10, 4), F(8, 6, overflow="SAT"))),
    # SELU after a rounding, saturating cast (conv2d_small_mp_keras' Gemm_9 + Selu2): a table
    "selu": dict(input_lanes=None, out=F(8, 4, rounding="RND_CONV", overflow="SAT"),
                 act=("elu", F(8, 4, rounding="RND_CONV", overflow="SAT"), SELU),
                 output_lanes=None),
    # leaky ReLU of an exact sum, unsigned input
    "leaky_unsigned": dict(input_lanes=None, fin=F(8, 3, signed=False), out=None,
                           act=("leaky_relu", F(10, 5, rounding="RND_CONV", overflow="SAT"),
                                {"alpha_format": F(8, 0, signed=False), "alpha_code": 77}),
                           output_lanes=None),
}


def make_case(name, seed, lut_adder_width=0, **options):
    case = CASES[name]
    rng = np.random.default_rng(seed)
    fin = case.get("fin", FIN)
    n_in = len(case["input_lanes"]) if case["input_lanes"] else 8
    lanes = case["input_lanes"]
    in_fmt = lanes_format(lanes) if lanes else fin
    w_fmt = F(10, 4)
    weights = csd_weights(rng, (6, n_in), w_fmt)
    biases = rng.integers(-100, 100, 6)
    b_fmt = F(8, 3)
    exact = DenseSpec(weights, biases, in_fmt, w_fmt, F(4, 4), bias_format=b_fmt).accumulator
    out = case["out"] or exact
    spec = DenseSpec(weights, biases, in_fmt, w_fmt, out, bias_format=b_fmt)
    act, output_lanes = case["act"], case["output_lanes"]
    fout = lanes_format(output_lanes) if output_lanes else None
    dut = ShiftAddDense(spec, fin=fin, input_lanes=lanes, activation=act,
                        output_lanes=output_lanes, fout=fout, lut_adder_width=lut_adder_width,
                        **options)
    x = edge_rows(rng, fin, n_in, 300)
    want = golden(x, spec, fin=fin, input_lanes=lanes, act=act, output_lanes=output_lanes,
                  fout=fout)
    return dut, x, want


@pytest.mark.parametrize("lut_adder_width", [0, 6])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden_at_full_rate(name, lut_adder_width):
    dut, x, want = make_case(name, seed=11, lut_adder_width=lut_adder_width)
    got, result = run(dut, x)
    assert np.array_equal(got, want), f"seed 11, case {name}"
    assert result.first_latency == dut.latency
    assert result.accepted_at[-1] - result.accepted_at[0] == len(x) - 1  # II 1


@pytest.mark.parametrize("lut_adder_width", [0, 6])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_golden_under_back_pressure(name, lut_adder_width):
    dut, x, want = make_case(name, seed=12, lut_adder_width=lut_adder_width)
    got, _ = run(dut, x, seed=5, p_idle=0.3, p_stall=0.4)
    assert np.array_equal(got, want), f"seed 12/5, case {name}"


@pytest.mark.parametrize("levels_per_stage", [1, 2, 100])
def test_latency_follows_adder_levels_per_stage(levels_per_stage):
    rng = np.random.default_rng(3)
    spec = DenseSpec(csd_weights(rng, (4, 16), F(8, 2)), None, F(8, 3), F(8, 2), F(12, 6))
    dut = ShiftAddDense(spec, adder_levels_per_stage=levels_per_stage)
    assert dut.latency == max(1, -(-dut.levels // levels_per_stage))
    x = edge_rows(rng, spec.input_format, 16, 100)
    got, result = run(dut, x)
    assert np.array_equal(got, dense(x, spec))
    assert result.first_latency == dut.latency
    assert np.array_equal(run(dut, x, seed=1, p_stall=0.2)[0], dense(x, spec))


def test_shared_subexpressions_cut_adders():
    rng = np.random.default_rng(4)
    spec = DenseSpec(csd_weights(rng, (16, 16), F(8, 2), sparsity=0.2), None, F(8, 3),
                     F(8, 2), F(12, 6))
    shared = ShiftAddDense(spec)
    plain = ShiftAddDense(spec, share_subexpressions=False)
    assert shared.n_shared_subexpressions > 0 and plain.n_shared_subexpressions == 0
    assert shared.n_adders < plain.n_adders
    assert shared.n_shift_add_terms == plain.n_shift_add_terms
    x = edge_rows(rng, spec.input_format, 16, 100)
    assert np.array_equal(run(shared, x)[0], dense(x, spec))


def _evaluate(node, values):
    if isinstance(node, Leaf):
        return node.sign * _lane_value(node.lane, values) * 2**node.e
    return _evaluate(node.a, values) + _evaluate(node.b, values)


def _lane_value(lane, values):
    if lane.constant is not None:
        return lane.constant
    if lane.parts is None:
        return values[lane.index]
    a, b, sa, sb, sign = lane.parts
    return (_lane_value(a, values) << sa) + sign * (_lane_value(b, values) << sb)


def test_plan_computes_the_matrix_product():
    rng = np.random.default_rng(6)
    w = csd_weights(rng, (12, 10), F(9, 3), sparsity=0.3)
    lanes = [Lane(k, -8, 7, index=k) for k in range(10)]
    terms = [[(lanes[k], shift, sign) for k in range(10) if w[j, k]
              for sign, shift in csd_digits(int(w[j, k]))] for j in range(12)]
    constants = [int(c) for c in rng.integers(-50, 50, 12)]
    plan = plan_adders(terms, constants=constants)
    assert plan.n_shared > 0
    assert plan_adders(terms, constants=constants, max_cse_pairs=10).n_shared == 0
    for x in rng.integers(-8, 8, (20, 10)):
        for j, root in enumerate(plan.roots):
            assert _evaluate(root, x) == int(w[j] @ x) + constants[j]
            assert root.lo <= _evaluate(root, x) // 2**root.e <= root.hi


@pytest.mark.parametrize("threshold", [None, 1])
@pytest.mark.parametrize("accumulator", ["fixed<10,3>", "fixed<10,3,RND,SAT>",
                                         "fixed<7,4,RND_CONV>"])
def test_explicit_accumulator_casts_every_product_and_wraps_like_accum_t(accumulator,
                                                                         threshold):
    rng = np.random.default_rng(9)
    w_fmt = F(8, 1)
    weights = csd_weights(rng, (5, 9), w_fmt, max_digits=4, sparsity=0.1)
    spec = DenseSpec(weights, rng.integers(-128, 128, 5), F(8, 3), w_fmt,
                     F(8, 3, rounding="RND", overflow="SAT"), bias_format=F(8, 3),
                     accumulator_format=F.parse(accumulator))
    dut = ShiftAddDense(spec, multiplier_threshold=threshold)
    x = edge_rows(rng, spec.input_format, 9, 300)
    got, _ = run(dut, x)
    assert np.array_equal(got, dense(x, spec)), f"seed 9, {accumulator}"
    got, _ = run(dut, x, seed=3, p_idle=0.3, p_stall=0.4)
    assert np.array_equal(got, dense(x, spec)), f"seed 9/3, {accumulator}"


def test_rejects_an_unsigned_explicit_accumulator():
    spec = DenseSpec([[1, 2]], None, F(8, 3), F(8, 2), F(8, 3),
                     accumulator_format=F(16, 6, signed=False))
    with pytest.raises(ValueError, match=r"^Shift-add dense layers need a signed accumulator "
                                         r"format, not ufixed<16,6>$"):
        ShiftAddDense(spec)


def test_rejects_lane_counts_and_levels():
    spec = DenseSpec([[1, 2]], None, F(8, 3), F(8, 2), F(8, 3))
    with pytest.raises(ValueError, match=r"^Input lanes must give 2 formats, not 1$"):
        ShiftAddDense(spec, input_lanes=[F(8, 3)])
    with pytest.raises(ValueError, match=r"^Adder levels per stage must be a positive "
                                         r"integer, not 0$"):
        ShiftAddDense(spec, adder_levels_per_stage=0)
    with pytest.raises(ValueError, match=r"^LUT adder width must be a non-negative integer, "
                                         r"not -1$"):
        ShiftAddDense(spec, lut_adder_width=-1)
    with pytest.raises(ValueError, match=r"^Lane 0 format fixed<8,6> does not fit the output "
                                         r"format fixed<8,3> exactly$"):
        ShiftAddDense(spec, input_lanes=[F(8, 6), None])


def test_rejects_a_clock_with_levels_and_a_bad_clock():
    spec = DenseSpec([[1, 2]], None, F(8, 3), F(8, 2), F(8, 3))
    with pytest.raises(ValueError, match=r"^Give a clock or adder levels per stage, not both: "
                                         r"100 MHz and 2 levels$"):
        ShiftAddDense(spec, clock_mhz=100, adder_levels_per_stage=2)
    with pytest.raises(ValueError, match=r"^Clock must be a positive frequency in MHz, not "
                                         r"-5$"):
        ShiftAddDense(spec, clock_mhz=-5)
    with pytest.raises(ValueError, match=r"^FPGA family must be one of 'ecp5', 'ice40', not "
                                         r"'gowin'$"):
        ShiftAddDense(spec, family="gowin")


def test_schedule_places_the_fewest_stages_that_fit_the_period():
    # A chain of five 1 ns nodes and 0.5 ns of output logic; ECP5's register stage costs
    # 1.72 ns: at 4.72 ns three nodes fit a stage, so two stages, the output logic in the last.
    model = delay_model("ecp5")
    nodes = [(k, (k - 1,) if k else (), 1.0, 0.0, 8, False) for k in range(5)]
    got = schedule(nodes, [(4, 0.5)], period_ns=4.72, model=model)
    assert got.latency == 2 and got.period_ns <= 4.72 + 1e-9
    assert [got.stages[k] for k in range(5)] == [0, 0, 0, 1, 1]
    # A shorter period takes more stages; one node longer than the period gets its own.
    assert schedule(nodes, [(4, 0.5)], period_ns=3.8, model=model).latency == 3
    long = schedule([(0, (), 9.0, 0.0, 4, False), (1, (0,), 1.0, 0.0, 4, False)], [(1, 0.0)],
                    period_ns=5.0, model=model)
    # A delay estimate in float nanoseconds (9.0 + the register's cost), not codes: approx.
    assert long.latency == 2 and long.period_ns == pytest.approx(9.0 + model.register_ns)


def test_the_budget_search_resolves_the_delay_grid(monkeypatch):
    """schedule() bisects the budget only to BISECT_NS: exact because every delay constant
    sits on DELAY_GRID_NS (so do all path sums) and BISECT_NS is finer. The same Verilog as a
    search to 1e-9 ns, at clocks from loose to tight."""
    import dataclasses

    import nnfab.hdl.timing_model as timing_model

    assert timing_model.BISECT_NS < timing_model.DELAY_GRID_NS
    for model in timing_model.DELAY_MODELS.values():
        for field in dataclasses.fields(model):
            value = getattr(model, field.name)
            if isinstance(value, float):
                steps = value / timing_model.DELAY_GRID_NS
                assert abs(steps - round(steps)) < 1e-6, (model.family, field.name, value)
    rng = np.random.default_rng(21)
    spec = DenseSpec(csd_weights(rng, (6, 10), F(8, 2), sparsity=0.2), None, F(8, 3),
                     F(8, 2), F(16, 8))
    for clock_mhz in (80, 150, 250, 400):
        coarse = verilog.convert(ShiftAddDense(spec, clock_mhz=clock_mhz), emit_src=False)
        monkeypatch.setattr(timing_model, "BISECT_NS", 1e-9)
        fine = verilog.convert(ShiftAddDense(spec, clock_mhz=clock_mhz), emit_src=False)
        monkeypatch.undo()
        assert coarse == fine, clock_mhz


@pytest.mark.parametrize("clock_mhz", [60, 400])
def test_registers_from_the_delay_model_meet_its_estimate(clock_mhz):
    # The placement meets the period it targets (by its own estimate) whenever the slowest
    # single adder does; a faster clock never takes fewer stages.
    rng = np.random.default_rng(8)
    spec = DenseSpec(csd_weights(rng, (4, 12), F(8, 2), sparsity=0.2), None, F(8, 3),
                     F(8, 2), F(14, 8))
    dut = ShiftAddDense(spec, clock_mhz=clock_mhz)
    slower = ShiftAddDense(spec, clock_mhz=clock_mhz / 2)
    assert dut.clock_mhz == clock_mhz
    assert dut.estimated_f_max_hz >= clock_mhz * 1e6 or dut.latency > dut.levels
    assert slower.latency <= dut.latency
    assert ShiftAddDense(spec, clock_mhz=1000).latency > ShiftAddDense(spec,
                                                                      clock_mhz=50).latency


@pytest.mark.parametrize("clock_mhz", [100, 300])
def test_latency_exact_and_golden_under_stalls_at_a_clock_target(clock_mhz):
    dut, x, want = make_case("hgq", seed=13, lut_adder_width=6, clock_mhz=clock_mhz)
    got, result = run(dut, x)
    assert np.array_equal(got, want), f"seed 13, {clock_mhz} MHz"
    assert result.first_latency == dut.latency
    got, _ = run(dut, x, seed=6, p_idle=0.3, p_stall=0.4)
    assert np.array_equal(got, want), f"seed 13/6, {clock_mhz} MHz"


def accepted_while_stalled(dut, x, stall_cycles):
    """Offer the rows of ``x`` back to back while ``o.ready`` is low for ``stall_cycles``, then
    high; returns the transfers accepted during the stall and all outputs, in order."""
    from amaranth.sim import Simulator

    n_out = dut.o.payload.shape().length
    accepted, outputs = [], []

    async def bench(ctx):
        cycle, k = 0, 0
        while len(outputs) < len(x):
            assert cycle < (10 + dut.initiation_interval) * len(x) + stall_cycles + 100, "stuck"
            ctx.set(dut.o.ready, cycle >= stall_cycles)
            ctx.set(dut.i.valid, k < len(x))
            if k < len(x):
                ctx.set(dut.i.payload, [int(v) for v in x[k]])
            _, _, i_ok, o_ok, o_valid, payload = await ctx.tick().sample(
                dut.i.ready, dut.o.ready, dut.o.valid, dut.o.payload)
            if i_ok and k < len(x):
                accepted.append(cycle)
                k += 1
            if o_ok and o_valid:
                outputs.append([payload[j] for j in range(n_out)])
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return sum(c < stall_cycles for c in accepted), np.array(outputs)


@pytest.mark.parametrize("levels_per_stage", [1, 3])
def test_free_running_pipeline_fills_its_skid_fifo_under_a_long_stall(levels_per_stage):
    # The pipeline never stops: under a stall longer than the latency it takes exactly the
    # transfers its skid FIFO holds (latency + 1), then loses and repeats nothing.
    rng = np.random.default_rng(21)
    spec = DenseSpec(csd_weights(rng, (4, 16), F(8, 2)), None, F(8, 3), F(8, 2), F(12, 6))
    dut = ShiftAddDense(spec, adder_levels_per_stage=levels_per_stage)
    x = edge_rows(rng, spec.input_format, 16, 30)
    n_accepted, got = accepted_while_stalled(dut, x, stall_cycles=3 * dut.latency + 5)
    assert n_accepted == skid_depth(dut.latency) == dut.latency + 1
    assert np.array_equal(got, dense(x, spec)), "seed 21"


@pytest.mark.parametrize("threshold", [0, 2, None])
def test_weights_of_any_digits_and_multiplier_leaves_match_golden(threshold):
    rng = np.random.default_rng(31)
    w_fmt = F(10, 4)
    weights = csd_weights(rng, (6, 8), w_fmt, max_digits=5, sparsity=0.2)
    weights[2, 3], weights[4, 3], weights[5, 3] = 87, -174, 87 * 4  # one odd part, shared
    spec = DenseSpec(weights, rng.integers(-100, 100, 6), F(9, 4), w_fmt,
                     F(12, 6, rounding="RND", overflow="SAT"), bias_format=F(8, 3))
    dut = ShiftAddDense(spec, multiplier_threshold=threshold)
    products = {(k, abs(int(w)) >> ((abs(int(w)) & -abs(int(w))).bit_length() - 1))
                for (j, k), w in np.ndenumerate(weights)
                if w and threshold is not None and len(csd_digits(int(w))) > threshold}
    assert dut.n_multipliers == len(products)
    assert dut.n_shift_add_terms == sum(
        len(csd_digits(int(w))) for w in weights.flat
        if w and (threshold is None or len(csd_digits(int(w))) <= threshold))
    assert max(len(csd_digits(int(w))) for w in weights.flat) == 5
    x = edge_rows(rng, spec.input_format, 8, 200)
    got, result = run(dut, x)
    assert np.array_equal(got, dense(x, spec)), f"seed 31, threshold {threshold}"
    assert result.first_latency == dut.latency
    got, _ = run(dut, x, seed=6, p_idle=0.3, p_stall=0.4)
    assert np.array_equal(got, dense(x, spec)), f"seed 31/6, threshold {threshold}"


def test_rejects_a_bad_multiplier_threshold():
    spec = DenseSpec([[1, 2]], None, F(8, 3), F(8, 2), F(8, 3))
    with pytest.raises(ValueError, match=r"^Multiplier threshold must be a non-negative "
                                         r"integer or None, not -2$"):
        ShiftAddDense(spec, multiplier_threshold=-2)


def test_an_activation_table_is_written_once_per_output():
    """Amaranth writes an expression out once per read: the ELU table entry, sign-extended by
    the cast, was 324 128-entry ``casez`` tables per output (20 MB of Verilog for an 18 -> 10
    layer). Each output's table is a signal now, one ``casez`` each."""
    dut, _, _ = make_case("selu", seed=11)
    text = verilog.convert(dut, name="top")
    assert text.count("casez") == dut.spec.n_out
    assert len(text) < 200_000
