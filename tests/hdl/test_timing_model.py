"""The delay model (``hdl/timing_model.py``) against what nextpnr measured: the cast of an
accumulator, and the ROM engine's stages, calibrated on the digits MLP's board builds (the
iCEBreaker's critical path is dense_1's cast, 31.1 ns; the ULX3S-85F's the ROM read through
a MULT18X18D, 14.6 ns)."""

import pytest

from nnfab.fixed import FixedFormat as F
from nnfab.gen.examples import example
from nnfab.gen.native import load_native
from nnfab.hdl.dense_rom import DenseRomEngine
from nnfab.hdl.timing_model import delay_model, lut_tree_levels

ACC = F(20, 10)


def out(rounding, overflow, width=10, integer=4):
    return F(width, integer, rounding=rounding, overflow=overflow)


@pytest.mark.parametrize("n, levels", [(1, 1), (4, 1), (5, 2), (16, 2), (17, 3), (64, 3)])
def test_lut_tree_levels(n, levels):
    assert lut_tree_levels(n) == levels


def test_cast_delay_counts_the_rounding_and_the_saturation():
    ice40 = delay_model("ice40")
    # The digits MLP's output cast: increment logic over 5 bits (2 LUT levels), a 17-bit
    # incrementer, the compare of 8 bits and the select (3 LUT levels).
    assert round(ice40.cast_ns(ACC, out("RND_CONV", "SAT")), 3) == 21.5
    assert round(ice40.cast_ns(ACC, out("RND_CONV", "SAT")) + ice40.register_ns, 3) == 25.8
    # Dropping or wrapping bits is wiring.
    assert ice40.cast_ns(ACC, out("TRN", "WRAP")) == 0
    # RND's increment is the half bit itself: the incrementer only.
    assert ice40.cast_ns(ACC, out("RND", "WRAP")) == sum(ice40.adder_ns(17))
    assert ice40.cast_ns(ACC, out("RND", "WRAP")) < ice40.cast_ns(ACC, out("RND_CONV", "WRAP"))
    # Saturation costs only when the value can overflow, and more the more bits it compares.
    assert ice40.cast_ns(ACC, out("TRN", "SAT", 24, 14)) == 0
    assert 0 < ice40.cast_ns(ACC, out("TRN", "SAT", 12, 8)) < \
        ice40.cast_ns(ACC, out("TRN", "SAT", 4, 2))
    for model in (ice40, delay_model("ecp5")):
        for rounding in ("RND", "RND_CONV", "RND_ZERO", "TRN_ZERO"):
            assert model.cast_ns(ACC, out(rounding, "SAT")) > \
                model.cast_ns(ACC, out(rounding, "WRAP")) > 0


def digits_layer(name):
    model = load_native(example("digits-mlp").path)
    return next(layer for layer in model.layers if layer.name == name).spec


def test_rom_engine_stages_on_the_digits_board_builds():
    """At the board builds' reuse factors the estimate is 38.8 MHz on the iCEBreaker (nextpnr:
    32.2 MHz, the same cast on its critical path) and 68.7 MHz on the ULX3S-85F (nextpnr:
    68.5 MHz, the same ROM-to-multiplier stage)."""
    ice40, ecp5 = delay_model("ice40"), delay_model("ecp5")
    icebreaker = DenseRomEngine(digits_layer("dense_1"), reuse_factor=512)
    stages = icebreaker.stage_delays_ns(ice40)
    assert set(stages) == {"rom_multiply", "accumulate", "cast"}  # one product per PE
    assert max(stages, key=stages.get) == "cast" and stages["cast"] == 25.8
    assert round(icebreaker.estimate_f_max_hz(ice40) / 1e6, 1) == 38.8
    ulx3s = DenseRomEngine(digits_layer("dense_1"), reuse_factor=128)
    stages = ulx3s.stage_delays_ns(ecp5)
    assert max(stages, key=stages.get) == "rom_multiply" and stages["rom_multiply"] == 14.56
    assert round(ulx3s.estimate_f_max_hz(ecp5) / 1e6, 1) == 68.7


def test_rom_engine_adder_tree_stages_follow_its_registers():
    """Each group of ``adder_levels_per_stage`` levels is a stage; the trees of 32 products (R
    = 2) have 5 levels: 3 stages at 2 levels, 5 at 1; fewer levels a stage, shorter stages."""
    spec, ecp5 = digits_layer("dense_1"), delay_model("ecp5")
    two = DenseRomEngine(spec, reuse_factor=2).stage_delays_ns(ecp5)
    one = DenseRomEngine(spec, reuse_factor=2, adder_levels_per_stage=1).stage_delays_ns(ecp5)
    assert [key for key in two if key.startswith("adder_tree")] == [
        f"adder_tree_{n}" for n in range(3)]
    assert [key for key in one if key.startswith("adder_tree")] == [
        f"adder_tree_{n}" for n in range(5)]
    assert max(one[f"adder_tree_{n}"] for n in range(5)) < \
        min(two[f"adder_tree_{n}"] for n in range(2))
