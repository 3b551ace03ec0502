import numpy as np
import pytest

from nnfab.fixed import Overflow
from nnfab.hdl.dense_rom import DenseRomEngine, rom_reuse_factors
from nnfab.sim.golden.dense import dense

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
