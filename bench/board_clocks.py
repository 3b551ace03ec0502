"""Board builds of a bundled example at chosen clocks, as a user runs them (``nnfab build
--example NAME --board BOARD --clock-mhz F``), as JSON: one line per build with the report's
resources, requested and achieved clock (nextpnr's Fmax, whether it meets timing), latency,
initiation interval, reuse factors and tool seconds.

    python bench/board_clocks.py [--example digits-mlp] [--builds icebreaker:24 ulx3s-85f:50]
        [--out FILE]

Issue 22's board targets: the digits MLP meets 50 MHz on the ULX3S-85F and at least 24 MHz on
the iCEBreaker (17.4 MHz at most before). Measured (session 21, ea058d2, while two
synthesis runs shared the 2 cores): iCEBreaker at 24 MHz (PLL): Fmax 26.97 MHz, meets timing,
3,281 LUT4, 2,476 FF, 5 of 8 multipliers, 6 EBR, 70 s; ULX3S-85F at 50 MHz (PLL): Fmax
66.57 MHz, meets timing, 3,974 LUT4, 2,977 FF, 20 MULT18X18D, 5 DP16KD, 116 s. The ULX3S's
slowest path is a ROM read into a multiplier (DP16KD clock-to-output 5.6 ns, 9.5 ns of logic and
5.5 ns of routing); the iCEBreaker's is the stream handshake from dense_2 back through dense_1
to the UART receive FIFO (36 ns, mostly routing).
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
