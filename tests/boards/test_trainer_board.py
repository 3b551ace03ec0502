import json

import numpy as np
import pytest

from nnfab.boards.flow import FlowResult, board_figures
from nnfab.boards.targets import target
from nnfab.boards.trainer_board import build_trainer_for_board, trainer_top
from nnfab.errors import BoardError
from nnfab.gen.train import make_problem

from ..hdl.test_trainable_mlp import random_problem


def test_trainer_board_plan_for_ulx3s():
    """The digits trainer (64-32-10, Adam, R = 288) behind the streaming link on the ULX3S:
    the platform's build plan (no tool runs) has the trainer's memories, the UART pins and the
    25 MHz oscillator as the clock (no PLL)."""
    spec = make_problem("digits", optimizer="adam", layers=(64, 32, 10), reuse_factor=288).spec
    t = target("ulx3s-85f")
    top = trainer_top(spec, t, 25)
    assert (top.link.input_bytes, top.link.output_bytes) == (97, 2)
    plan = t.platform().build(top, name="top", do_build=False)
    rtlil = plan.files["top.il"]
    assert "EHXPLLL" not in rtlil and "$memwr_v2" in rtlil and "top.link.component" in rtlil
    assert "uart_0__rx" in plan.files["top.lpf"]


def test_trainer_board_errors(tmp_path):
    spec = make_problem("digits", optimizer="adam", layers=(64, 32, 10), reuse_factor=288).spec
    with pytest.raises(BoardError, match=r"^Unknown board 'nope'; boards: icebreaker, "
                                         r"ulx3s-85f$"):
        build_trainer_for_board(spec, tmp_path / "x", "nope")
    with pytest.raises(BoardError, match=r"^Clock must be a positive frequency in MHz, "
                                         r"not -1$"):
        build_trainer_for_board(spec, tmp_path / "x", "ulx3s-85f", clock_mhz=-1)
    with pytest.raises(BoardError, match=r"^Clock 500 MHz is out of the ECP5 PLL's range "
                                         r"\(3\.125 to 400 MHz\)$"):
        build_trainer_for_board(spec, tmp_path / "x", "ulx3s-85f", clock_mhz=500)
    assert not (tmp_path / "x").exists()
    with pytest.raises(TypeError, match=r"^Specification must be a TrainableMLPSpec, not 3$"):
        build_trainer_for_board(3, tmp_path / "x", "ulx3s-85f")


@pytest.mark.slow
def test_tiny_trainer_bitstream(tmp_path):
    """A 4-3-2 trainer through the whole flow on the iCEBreaker (yosys, nextpnr, icepack)."""
    spec, _, _ = random_problem(np.random.default_rng(0), "softmax_cross_entropy", "sgd",
                                sizes=(4, 3, 2), n=1, batch_size=2)
    result = build_trainer_for_board(spec, tmp_path / "tiny", "icebreaker")
    report = json.loads((tmp_path / "tiny" / "report.json").read_text())
    print(json.dumps({k: report[k] for k in ("resources", "clock", "tool_seconds")}))
    assert result.bitstream.stat().st_size == report["bitstream_bytes"] > 10_000
    assert 12 < report["clock"]["fmax_mhz"] < 100  # the design's clock, not a constant net
    assert (tmp_path / "tiny" / "report.md").read_text().startswith("# Trainer 4-3-2 on ")


def test_board_figures_time_the_design_clock():
    """nextpnr's iCE40 report also times the constant nets as a clock (hundreds of MHz); the
    figures take the PLL's output, else the slowest real clock."""
    fmax = {"$PACKER_GND_NET_$glb_clk": {"achieved": 256.08, "constraint": 12},
            "cd_sync.clk": {"achieved": 28.14, "constraint": 12}}
    flow = FlowResult("abc9", {"SB_LUT4": 10}, {"flip_flops": 5},
                      {"luts": 10, "dsps": 1, "block_rams": 2}, fmax, {"synthesis_s": 1.0})

    class Top:
        f_clock_mhz = 12.0

    figures = board_figures(target("icebreaker"), Top, flow, 12)
    assert figures["clock"] == {"requested_mhz": 12, "generated_mhz": 12.0, "pll": False,
                                "fmax_mhz": 28.14, "meets_timing": True, "slack_mhz": 16.14}
    assert figures["resources"]["luts"] == {"used": 10, "available": 5280, "percent": 0.2}
    fmax["clk_out"] = {"achieved": 40.0, "constraint": 24}
    assert board_figures(target("icebreaker"), Top, flow, 12)["clock"]["fmax_mhz"] == 40.0
