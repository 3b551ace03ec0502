"""The HDL harness (:mod:`nnfab.sim.harness`) on Verilator: a tiny network proven bit-exact
with idle cycles and back-pressure at both ends, a broken network caught, the watchdog, and the
argument checks."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.errors import SimulationError
from nnfab.gen.assemble import Network
from nnfab.gen.native import load_native
from nnfab.gen.verify import pack_transfers, unpack_transfers, verify
from nnfab.sim.golden.network import run_network
from nnfab.sim.harness import HARNESS_MODULE, harness_verilog, run_harness, worth_optimizing

from ..gen.conftest import tiny_mlp

SEED = 20261130


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One build cache for the module, so the tiny network is built once."""
    return tmp_path_factory.mktemp("verilator-cache")


def _tiny_model(tmp_path, arrays=None, name="tiny"):
    doc, default_arrays = tiny_mlp()
    doc["name"] = name
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    np.savez(tmp_path / f"{name}.npz", **(default_arrays if arrays is None else arrays))
    return load_native(path), default_arrays


def _harness_run(model, golden_model, n, cache, *, seed=SEED, **kwargs):
    """Run ``model``'s network in the harness on ``n`` random vectors; compare with
    ``golden_model``. Returns the run and the indices of mismatching vectors."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, (n, *model.input_shape))
    golden = np.asarray(run_network(golden_model, codes)).reshape(n, -1)
    network = Network(model)
    run = run_harness(network, toplevel=model.name,
                      words_in=pack_transfers(codes, model.input_shape, model.input_format),
                      n_out=n, warmup_in=min(64, n // 2), warmup_out=min(64, n // 2),
                      seed=seed, cache_dir=cache, **kwargs)
    rtl = unpack_transfers(run.words_out, model.output_shape, model.output_format)
    assert rtl.shape == golden.shape, f"seed {seed}"
    return run, network, np.flatnonzero(np.any(rtl != golden, axis=1))


@pytest.mark.slow
def test_tiny_network_bit_exact_with_idle_and_back_pressure(tmp_path, cache):
    model, _ = _tiny_model(tmp_path)
    network = Network(model)
    run, network, bad = _harness_run(model, model, 3000, cache, p_idle=0.3, p_stall=0.3,
                                     burst=2 * network.latency + 2)
    c = run.counters
    print(f"\nseed {SEED}: {c}")
    assert run.results.total == run.results.passed == 1
    assert bad.size == 0, f"seed {SEED}: vectors {bad[:10]} differ"
    assert not run.timed_out
    assert (run.latency, run.initiation_interval) == (network.latency, 1)
    assert run.cycles == 63 + network.latency + 1  # 64 warm-up vectors at II 1
    assert c["n_in"] == c["n_out"] == 3000
    # Back-pressure and idle at both ends, in bursts longer than the latency and in short
    # ones (ready toggling): many runs, and more stalled cycles than one run could hold.
    assert c["longest_stall"] > network.latency and c["longest_idle"] > network.latency
    assert c["stall_runs"] > 50 and c["idle_runs"] > 50
    assert c["stall_cycles"] > 2 * c["longest_stall"]
    # The shares are near what was asked (idle is counted only while an input may start).
    assert 0.15 < c["stall_cycles"] / c["cycle"] < 0.45


@pytest.mark.slow
def test_seeds_give_different_stall_patterns(tmp_path, cache):
    """Regression: the seed reached the harness clamped to one value, so every seed gave the
    same idle and back-pressure pattern."""
    model, _ = _tiny_model(tmp_path)
    counters = []
    for seed in (SEED, SEED + 1):
        run, _, bad = _harness_run(model, model, 400, cache, seed=seed, p_idle=0.3,
                                   p_stall=0.3, burst=4)
        assert bad.size == 0
        counters.append((run.counters["stall_cycles"], run.counters["idle_cycles"],
                         run.counters["cycle"]))
    assert counters[0] != counters[1]


@pytest.mark.slow
def test_verify_runs_the_harness(tmp_path, cache, monkeypatch):
    """``verify`` on a few vectors (fewer than the warm-up) still stalls and idles."""
    import nnfab.gen.verify as verify_module

    runs = []

    def spy(*args, **kwargs):
        runs.append(run_harness(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(verify_module, "run_harness", spy)
    model, _ = _tiny_model(tmp_path)
    x = np.random.default_rng(SEED).normal(0, 2, (6, 4))
    result = verify(model, x, seed=SEED, cache_dir=cache)
    assert len(runs) == 1
    counters = runs[0].counters
    # The 6 vectors at full rate, then all 6 again with idle cycles and back-pressure.
    assert counters["n_in"] == counters["n_out"] == 12
    assert counters["stall_cycles"] >= 1 and counters["idle_cycles"] >= 1
    assert result.passed
    assert result.n_mismatches == 0
    assert result.cocotb_tests == (1, 1, 0)
    assert result.measured_latency == result.latency
    assert result.measured_initiation_interval == 1


def test_worth_optimizing_scales_with_the_design():
    megabyte = "x" * 1_000_000
    # A small design: -O1 when the run repays its build (30,000 cycles per MB).
    assert not worth_optimizing(megabyte[:100_000], 2_999)
    assert worth_optimizing(megabyte[:100_000], 3_000)
    # A large one: -O1 when -O0 would simulate for over 2 s (70 us per cycle per MB).
    assert not worth_optimizing(megabyte * 4, 7_142)
    assert worth_optimizing(megabyte * 4, 7_143)
    assert not worth_optimizing(megabyte, 28_571)
    assert worth_optimizing(megabyte, 28_572)


@pytest.mark.slow
def test_verify_shards_share_one_build_at_one_level(tmp_path, cache, monkeypatch):
    """Uneven shards (3, 2, 2 vectors) are one decision: every shard runs the same build.
    Asked for -O1, the build's make log shows the per-cycle code at -O1; by default a run
    this short is built at -O0."""
    import nnfab.gen.verify as verify_module

    runs = []

    def spy(*args, **kwargs):
        runs.append((kwargs["optimize"], run_harness(*args, **kwargs)))
        return runs[-1][1]

    monkeypatch.setattr(verify_module, "run_harness", spy)
    model, _ = _tiny_model(tmp_path, name="tiny_levels")
    x = np.random.default_rng(SEED).normal(0, 2, (7, 4))
    for optimize, level in ((None, "-O0"), (True, "-O1")):
        runs.clear()
        result = verify(model, x, seed=SEED, cache_dir=cache, jobs=3, optimize=optimize)
        assert result.passed and result.n_mismatches == 0
        assert [chosen for chosen, _ in runs] == [level == "-O1"] * 3
        assert sum(run.results.built for _, run in runs) == 1
        logs = [path.read_text() for path in cache.glob("tiny_levels-*/build.log")]
        # The design's per-cycle code: Vtop__ALL.cpp for a design this small (larger ones
        # are split into files compiled with the fast precompiled header).
        design_code = re.compile(
            rf"^c\+\+ {level} .*(Vtop__ALL\.cpp|-include Vtop__pch\.h\.fast)", re.M)
        assert any(design_code.search(log) for log in logs), logs
    # In a cache holding only the -O1 build (as after `nnfab build` timed a large network on
    # Verilator), the short run takes that build rather than compiling at -O0.
    only_o1 = tmp_path / "only-o1"
    verify(model, x, seed=SEED, cache_dir=only_o1, optimize=True)
    runs.clear()
    result = verify(model, x, seed=SEED, cache_dir=only_o1, jobs=2)
    assert result.passed and result.build_cached
    assert [chosen for chosen, _ in runs] == [True, True]


@pytest.mark.slow
def test_flipped_weight_bit_is_caught(tmp_path, cache):
    """The RTL is built from a model with one weight bit flipped; the golden model is not."""
    good, arrays = _tiny_model(tmp_path)
    broken_arrays = dict(arrays, **{"d1.w": arrays["d1.w"].copy()})
    broken_arrays["d1.w"][1, 2] ^= 4
    broken, _ = _tiny_model(tmp_path, broken_arrays, name="tiny_broken")
    run, _, bad = _harness_run(broken, good, 300, cache, p_idle=0.2, p_stall=0.2, burst=8)
    assert run.results.total == run.results.passed == 1  # the harness ran; the data differ
    assert bad.size > 30, f"seed {SEED}: only vectors {bad} differ"


class _NeverOutputs(wiring.Component):
    """Takes every input and never produces an output."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += self.o.payload.eq(self.i.payload)
        return m


def test_watchdog_ends_a_hung_design(cache):
    run = run_harness(_NeverOutputs(), toplevel="never_outputs", words_in=list(range(100)),
                      n_out=100, warmup_in=10, warmup_out=10, max_cycles=5000,
                      cache_dir=cache)
    assert run.timed_out
    assert run.words_out == []
    assert (run.results.total, run.results.failed) == (1, 1)
    assert run.counters["cycle"] == 5000
    assert run.latency is None and run.cycles is None
    failure = next(ET.parse(run.results.results_file).iter("failure"))
    assert "Watchdog: after 5000 cycles 10 of 100 inputs were accepted and 0 of 100 outputs " \
           "produced" in failure.get("message")


def test_harness_verilog_depends_only_on_names_and_widths():
    text = harness_verilog(top="net", in_width=320, out_width=4)
    assert re.search(rf"^module {HARNESS_MODULE} \(", text, re.M)
    assert "reg [319:0] i_payload;" in text and "wire [3:0] o_payload;" in text
    assert re.search(r"^  net dut \(", text, re.M)
    assert text == harness_verilog(top="net", in_width=320, out_width=4)


@pytest.mark.parametrize("kwargs,message", [
    ({"top": "1net"}, "Top module must be a Verilog identifier, not '1net'"),
    ({"in_width": 0}, "Input width must be a positive integer, not 0"),
    ({"out_width": 2.0}, "Output width must be a positive integer, not 2.0"),
])
def test_harness_verilog_errors(kwargs, message):
    args = {"top": "net", "in_width": 8, "out_width": 8, **kwargs}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        harness_verilog(**args)


@pytest.mark.parametrize("kwargs,message", [
    ({"p_idle": 1.0}, "Idle probability must be at least 0 and below 1, not 1.0"),
    ({"p_stall": -0.1}, "Stall probability must be at least 0 and below 1, not -0.1"),
    ({"burst": 0}, "Burst must be an integer from 1 to 4294967295, not 0"),
    ({"words_in": []}, "A harness run needs inputs and outputs, not 0 inputs and 4 outputs"),
    ({"warmup_in": 5}, "Warm-up must be 1 to 4 inputs and 1 to 4 outputs, not 5 and 2"),
    ({"warmup_out": 0}, "Warm-up must be 1 to 4 inputs and 1 to 4 outputs, not 2 and 0"),
])
def test_run_harness_errors(kwargs, message):
    args = {"toplevel": "net", "words_in": [1, 2, 3, 4], "n_out": 4, "warmup_in": 2,
            "warmup_out": 2, **kwargs}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        run_harness("module net(); endmodule", in_width=8, out_width=8, **args)


def test_simulation_error_without_results(tmp_path):
    """A design whose Verilog does not build is a SimulationError, not a hang."""
    with pytest.raises(SimulationError, match=r"^Verilator build of 'nnfab_harness' failed"):
        run_harness("module net(); syntax error endmodule\n", toplevel="net", in_width=8,
                    out_width=8, words_in=[1, 2], n_out=2, warmup_in=1, warmup_out=1,
                    cache_dir=tmp_path)
