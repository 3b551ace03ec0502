"""Board builds of a bundled example at chosen clocks, as a user runs them (``nnfab build
--example NAME --board BOARD --clock-mhz F``), as JSON: one line per build with the report's
resources, requested and achieved clock (nextpnr's Fmax, whether it meets timing), latency,
initiation interval, reuse factors and tool seconds.

    python bench/board_clocks.py [--example digits-mlp] [--builds icebreaker:24 ulx3s-85f:50]
        [--out FILE]

Issue 22's board targets: the digits MLP meets 50 MHz on the ULX3S-85F and at least 24 MHz on
the iCEBreaker (17.4 MHz at most before). Measured (session 23, e4faf7a, DenseRomEngine
running free, beside the must-show sweep): iCEBreaker at 24 MHz (PLL): Fmax 32.17 MHz, meets
timing, 3,595 logic cells, 2,782 FF, 5 of 8 multipliers, 6 EBR; ULX3S-85F at 50 MHz (PLL):
Fmax 68.52 MHz, meets timing, 4,601 LUT4 (yosys's classic ABC: ABC9 fails on this design),
3,223 FF, 20 MULT18X18D, 5 DP16KD.

Before (bc73631, the ROM layers stalling as a whole, built side by side): iCEBreaker 26.97 MHz,
3,281 logic cells, 2,476 FF (ABC9 both); ULX3S 69.08 MHz, 4,967 LUT4, 2,977 FF with the
classic mapper (66.57 MHz, 3,974 LUT4 with ABC9). The iCEBreaker's slowest path was the stream
handshake from dense_2 back through dense_1 to the UART receive FIFO (36 ns, mostly routing);
now it is dense_1's accumulator through its convergent-rounding, saturating cast into the
held outputs (31.1 ns, 18.5 of them routing). The ULX3S's is a ROM read into a multiplier in
both (DP16KD clock-to-output 5.6 ns, 14.6 ns in all).

Session 24: the report's ``estimated_f_max_mhz`` covers the ROM layers (the delay model's
stages, ``DenseRomEngine.stage_delays_ns``), and the ROM engines' last-beat flag is a register.
Default builds (``--builds icebreaker:24 icebreaker:40 ulx3s-85f:50``):
- iCEBreaker at 24 MHz: 31.99 MHz, 3,579 logic cells, 2,784 FF; estimated 38.8 MHz (dense_1's
  cast, nextpnr's critical path too: the model's nets are shorter than a 68 %-full device's).
- iCEBreaker at 40 MHz: the cast does not fit 25 ns, so the ROM engines register the rounded
  accumulators (``split_cast``, latency 846 -> 848): 42.05 MHz, meets timing, 3,607 logic
  cells, 2,881 FF; estimated 57.1 MHz (dense_1's rounding), the critical path now the UART
  receive FIFO. The same build with one-stage casts and the old compare of the beat counter:
  32.46 MHz (the cast); split casts alone: 36.93 MHz (the beat compare into i.ready and the
  UART).
- ULX3S-85F at 50 MHz: 69.27 MHz, 4,594 LUT4 (classic ABC), 3,225 FF; estimated 68.7 MHz
  (dense_1's ROM read into a multiplier, nextpnr's critical path too).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from mlperf_tiny import board_figures
from nnfab.cli import main as nnfab


def build(example, board, clock_mhz, out_dir):
    """``nnfab build --example EXAMPLE --board BOARD --clock-mhz CLOCK_MHZ``: the report's
    figures, or the error when the build fails."""
    args = ["build", "--example", example, "--board", board, "--clock-mhz", str(clock_mhz),
            "-o", str(out_dir)]
    result = CliRunner().invoke(nnfab, args)
    row = {"example": example, "board": board, "clock_mhz": clock_mhz,
           "command": "nnfab " + " ".join(args[:-2])}
    if result.exit_code != 0:
        return {**row, "error": result.output.strip().splitlines()[-1]}
    return {**row, **board_figures(out_dir)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="digits-mlp")
    parser.add_argument("--builds", nargs="+", default=["icebreaker:24", "ulx3s-85f:50"],
                        metavar="BOARD:MHZ")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for spec in args.builds:
            board, _, mhz = spec.partition(":")
            row = build(args.example, board, float(mhz), Path(work) / spec.replace(":", "-"))
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "board_clocks", "results": rows},
                                       indent=1) + "\n")
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
