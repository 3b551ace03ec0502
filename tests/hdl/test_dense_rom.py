import numpy as np
import pytest

from nnfab.fixed import Overflow
from nnfab.hdl.dense_rom import DenseRomEngine, rom_reuse_factors
from nnfab.sim.golden.dense import dense

from ..streams import check_stalls
from .test_dense import edge_inputs, random_spec, run_engine


@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("reuse_factor", [1, 2, 12, 24, 72])
def test_matches_golden(reuse_factor, width):
    seed = reuse_factor * 100 + width
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, 12, 6, width, overflow="SAT")
    x = edge_inputs(rng, spec, 12)
    dut = DenseRomEngine(spec, reuse_factor=reuse_factor)
    got, _ = run_engine(dut, x, seed=seed, p_idle=0.3, p_stall=0.4)
    assert got.tolist() == dense(x, spec).tolist(), f"seed {seed}"


@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "RND_ZERO", "TRN_ZERO"])
@pytest.mark.parametrize("overflow", ["SAT", "SAT_SYM", "SAT_ZERO"])
@pytest.mark.parametrize("reuse_factor", [1, 3, 12])
def test_split_cast_matches_golden(reuse_factor, overflow, rounding):
    """The output cast in two stages (rounded accumulators registered, then saturated): the
    same codes, rounding ties and saturation boundaries included, one cycle more latency,
    the same interval."""
    seed = reuse_factor * 10 + len(overflow) + len(rounding)
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, 12, 6, 8, overflow=overflow, rounding=rounding, sparsity=0.2)
    x = edge_inputs(rng, spec, 30)
    dut = DenseRomEngine(spec, reuse_factor=reuse_factor, clock_mhz=200, family="ice40")
    one_stage = DenseRomEngine(spec, reuse_factor=reuse_factor)
    assert dut.split_cast and not one_stage.split_cast
    assert dut.latency == one_stage.latency + 1
    got, run = run_engine(dut, x, seed=seed, p_idle=0.3, p_stall=0.4)
    assert got.tolist() == dense(x, spec).tolist(), f"seed {seed}"
    _, free = run_engine(dut, x)
    assert free.first_latency == dut.latency
    assert set(np.diff(free.accepted_at)) == {reuse_factor}


def test_the_delay_model_splits_the_cast_only_where_the_clock_needs_it():
    """The digits MLP's dense_1 (fixed<20,10> to fixed<10,4,RND_CONV,SAT>, 25.8 ns with its
    registers on iCE40): one stage for the iCEBreaker at 24 MHz, two at 40 MHz (round 17.5 ns,
    saturate 12.6); a cast that only truncates or wraps is never split."""
    from nnfab.fixed import FixedFormat
    from nnfab.hdl.timing_model import delay_model

    from .test_timing_model import digits_layer

    spec = digits_layer("dense_1")
    assert not DenseRomEngine(spec, reuse_factor=512, clock_mhz=24, family="ice40").split_cast
    fast = DenseRomEngine(spec, reuse_factor=512, clock_mhz=40, family="ice40")
    assert fast.split_cast and fast.latency == 512 + 0 + 4 + 1
    stages = fast.stage_delays_ns(delay_model("ice40"))
    assert "cast" not in stages and stages["round"] < 25 and stages["saturate"] < 25
    assert not DenseRomEngine(spec, reuse_factor=128, clock_mhz=50, family="ecp5").split_cast
    wraps = spec.__class__(spec.weights, spec.biases, spec.input_format, spec.weight_format,
                           FixedFormat(10, 4), bias_format=spec.bias_format)
    assert not DenseRomEngine(wraps, reuse_factor=512, clock_mhz=400, family="ice40").split_cast
    with pytest.raises(ValueError, match="Clock must be a positive frequency"):
        DenseRomEngine(spec, reuse_factor=512, clock_mhz=-1, family="ice40")
    with pytest.raises(ValueError, match="FPGA family must be one of"):
        DenseRomEngine(spec, reuse_factor=512, clock_mhz=40, family="xc7")


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
def test_overflow_modes(overflow):
    rng = np.random.default_rng(5)
    spec = random_spec(rng, 8, 4, 8, overflow=overflow, sparsity=0.0)
    x = edge_inputs(rng, spec, 20)
    got, _ = run_engine(DenseRomEngine(spec, reuse_factor=8), x, seed=5, p_stall=0.3)
    assert got.tolist() == dense(x, spec).tolist()


@pytest.mark.parametrize("reuse_factor", [1, 6])
@pytest.mark.parametrize("accumulator", ["fixed<10,3>", "fixed<10,3,RND,SAT>"])
def test_explicit_accumulator(reuse_factor, accumulator):
    from nnfab.fixed import FixedFormat

    rng = np.random.default_rng(7)
    spec = random_spec(rng, 6, 4, 8, sparsity=0.1,
                       accumulator_format=FixedFormat.parse(accumulator))
    x = edge_inputs(rng, spec, 20)
    got, _ = run_engine(DenseRomEngine(spec, reuse_factor=reuse_factor), x, seed=7,
                        p_idle=0.2, p_stall=0.2)
    assert got.tolist() == dense(x, spec).tolist()


def test_no_bias():
    rng = np.random.default_rng(3)
    spec = random_spec(rng, 6, 4, 8, bias=False)
    x = edge_inputs(rng, spec, 10)
    got, _ = run_engine(DenseRomEngine(spec, reuse_factor=8), x, seed=3, p_stall=0.2)
    assert got.tolist() == dense(x, spec).tolist()


@pytest.mark.parametrize("reuse_factor", [1, 4, 12, 48])
def test_latency_and_initiation_interval(reuse_factor):
    rng = np.random.default_rng(1)
    spec = random_spec(rng, 12, 8, 8)
    dut = DenseRomEngine(spec, reuse_factor=reuse_factor)
    x = edge_inputs(rng, spec, 6)
    got, run = run_engine(dut, x)
    assert got.tolist() == dense(x, spec).tolist()
    assert run.first_latency == dut.latency
    gaps = set(np.diff(run.accepted_at))
    assert gaps == {dut.initiation_interval}
    assert dut.n_multipliers * reuse_factor == 12 * 8
    assert dut.rom_depth == reuse_factor and dut.rom_width == dut.n_multipliers * 8


def test_structure():
    rng = np.random.default_rng(0)
    spec = random_spec(rng, 64, 32, 8)
    dut = DenseRomEngine(spec, reuse_factor=256)
    assert (dut.n_chunks, dut.outputs_per_pe, dut.chunk_size, dut.n_pe) == (64, 4, 1, 8)
    assert dut.n_multipliers == 8
    dut = DenseRomEngine(spec, reuse_factor=16)
    assert (dut.n_chunks, dut.outputs_per_pe, dut.n_multipliers) == (16, 1, 128)
    assert repr(dut) == ("DenseRomEngine(n_in=64, n_out=32, reuse_factor=16, "
                         "adder_levels_per_stage=2)")
    assert rom_reuse_factors(4, 3) == [1, 2, 3, 4, 6, 12]


def test_errors():
    rng = np.random.default_rng(0)
    spec = random_spec(rng, 4, 3, 8)
    with pytest.raises(TypeError, match=r"^Layer must be a DenseSpec, not 3$"):
        DenseRomEngine(3)
    with pytest.raises(TypeError, match=r"^Reuse factor must be an integer, not 2\.0$"):
        DenseRomEngine(spec, reuse_factor=2.0)
    with pytest.raises(ValueError, match=r"^Reuse factor must be a divisor of n_in 4 times a "
                                         r"divisor of n_out 3 \(one of 1, 2, 3, 4, 6, 12\), "
                                         r"not 5$"):
        DenseRomEngine(spec, reuse_factor=5)
    with pytest.raises(ValueError, match=r"^Reuse factor must be a divisor .*, not 0$"):
        DenseRomEngine(spec, reuse_factor=0)
    with pytest.raises(ValueError, match=r"^Adder levels per stage must be a positive "
                                         r"integer, not 0$"):
        DenseRomEngine(spec, adder_levels_per_stage=0)


def int8_spec(rng, n_in, n_out):
    """A TFLite-style int8 layer: int8 inputs and weights (the most negative code included),
    a wide bias, exact accumulation into its own integer format."""
    from nnfab.fixed import FixedFormat
    from nnfab.layers import DenseSpec

    int8, bias_format = FixedFormat(8, 8), FixedFormat(20, 20)
    weights = rng.integers(-128, 128, (n_out, n_in))
    weights[0, 0] = -128
    biases = rng.integers(-(1 << 19), 1 << 19, n_out)
    acc = DenseSpec(weights, biases, int8, int8, int8, bias_format=bias_format).accumulator
    return DenseSpec(weights, biases, int8, int8, acc, bias_format=bias_format)


def stages(n_out):
    """Output stages of both roundings: per channel (a power of two, shift 0, left and right
    shifts, a clamp that bites) and per tensor."""
    from nnfab.output_stage import OutputStage

    rng = np.random.default_rng(n_out)
    multipliers = [1 << 30] + [int(v) for v in rng.integers(1 << 30, 1 << 31, n_out - 1)]
    shifts = [0] + [int(v) for v in rng.integers(-14, 3, n_out - 1)]
    reals = list(rng.uniform(1e-5, 3e-3, n_out))
    return {
        "gemmlowp": OutputStage(multipliers, shifts, zero_point=-5, low=-100, high=90),
        "half_away": OutputStage.fit_real(reals, zero_point=7),
        "per_tensor": OutputStage((1_700_000_000,), (-9,), zero_point=3),
    }


@pytest.mark.parametrize("stage_kind", ["gemmlowp", "half_away", "per_tensor"])
@pytest.mark.parametrize("reuse_factor", [12, 24, 48])
def test_output_stage_in_place_matches_golden(reuse_factor, stage_kind):
    """The requantizer lane inside the ROM layer gives the codes of the dense golden model
    followed by the output stage's, under random idle and back-pressure, and keeps the layer's
    latency formula and II."""
    from nnfab.sim.golden.output_stage import output_stage

    seed = reuse_factor + len(stage_kind)
    rng = np.random.default_rng(seed)
    spec = int8_spec(rng, 12, 4)
    stage = stages(4)[stage_kind]
    x = edge_inputs(rng, spec, 30)
    want = output_stage(dense(x, spec), stage)
    dut = DenseRomEngine(spec, reuse_factor=reuse_factor, output_stage=stage)
    run = check_stalls(lambda: DenseRomEngine(spec, reuse_factor=reuse_factor,
                                              output_stage=stage),
                       x.tolist(), want.tolist(), seed=seed)
    assert run.first_latency == dut.latency == reuse_factor + dut.tree_depth + 4 + dut.n_pe + 2
    assert set(np.diff(run.accepted_at)) == {reuse_factor}
    assert dut.n_multipliers == dut.n_pe * dut.chunk_size + 1


def test_output_stage_in_place_many_slots():
    """Many outputs per processing element and several PEs (channel ``p * ops + slot``), as
    ad01's 128-to-640 layer is folded (16 PEs of 40 outputs there)."""
    from nnfab.sim.golden.output_stage import output_stage

    rng = np.random.default_rng(11)
    spec = int8_spec(rng, 8, 12)
    stage = stages(12)["gemmlowp"]
    dut = DenseRomEngine(spec, reuse_factor=24, output_stage=stage)
    assert (dut.n_chunks, dut.outputs_per_pe, dut.n_pe) == (8, 3, 4)
    x = edge_inputs(rng, spec, 16)
    check_stalls(lambda: DenseRomEngine(spec, reuse_factor=24, output_stage=stage), x.tolist(),
                 output_stage(dense(x, spec), stage).tolist(), seed=11)


@pytest.mark.parametrize("n_in, n_out, reuse_factor, credit", [
    (12, 4, 12, 2), (12, 4, 24, 2), (5, 2, 5, 3)])
def test_output_stage_in_place_runs_free_under_a_long_stall(n_in, n_out, reuse_factor, credit):
    # The requantizer lane's results go through the same skid: under a stall longer than the
    # latency the layer takes floor(latency / R) + 1 vectors, then loses and repeats nothing;
    # with a credit of two the second waits in place, with more in a skid FIFO.
    from nnfab.hdl.pipeline import skid_depth
    from nnfab.sim.golden.output_stage import output_stage

    from .test_shift_add import accepted_while_stalled

    rng = np.random.default_rng(19)
    spec = int8_spec(rng, n_in, n_out)
    stage = stages(n_out)["gemmlowp"]
    dut = DenseRomEngine(spec, reuse_factor=reuse_factor, output_stage=stage)
    x = edge_inputs(rng, spec, 12)
    n_accepted, got = accepted_while_stalled(dut, x, stall_cycles=3 * dut.latency + 7)
    assert n_accepted == skid_depth(dut.latency, reuse_factor) == credit
    assert got.tolist() == output_stage(dense(x, spec), stage).tolist(), "seed 19"


def test_output_stage_in_place_errors():
    from nnfab.output_stage import OutputStage

    rng = np.random.default_rng(2)
    spec = int8_spec(rng, 12, 4)
    stage = stages(4)["gemmlowp"]
    with pytest.raises(ValueError, match=r"^Output stage in a ROM layer needs n_pe \+ 3 <= "
                                         r"n_chunks, not 4 \+ 3 > 6 at reuse factor 6$"):
        DenseRomEngine(spec, reuse_factor=6, output_stage=stage)
    with pytest.raises(ValueError, match=r"^Output stage has 3 channels; a layer of 4 outputs "
                                         r"needs 4 or 1 \(per-tensor\)$"):
        DenseRomEngine(spec, reuse_factor=12, output_stage=OutputStage((1, 2, 3), (0, 0, 0)))
    with pytest.raises(TypeError, match=r"^Output stage must be an OutputStage, not 'x'$"):
        DenseRomEngine(spec, reuse_factor=12, output_stage="x")
    fixed = random_spec(rng, 12, 4, 8)
    with pytest.raises(ValueError, match=r"^Output stage input must be a signed integer format "
                                         r"of at most 32 bits \(fixed<W,W>\), not fixed<8,3"):
        DenseRomEngine(fixed, reuse_factor=12, output_stage=stage)
