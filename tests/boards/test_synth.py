"""Out-of-context synthesis options: multipliers on MULT18X18D blocks or in LUTs, and the
classic ABC mapper alone."""

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
