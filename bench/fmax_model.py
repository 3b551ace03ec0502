"""The delay model against nextpnr, as JSON: the HGQ jet classifier (``bench/hgq_jet_synth.py``,
ECP5-85F speed 6, out of context) built for several target clocks, each with the delay
model's estimated Fmax, nextpnr's Fmax, the latency and LUT4/CCU2C/FF, beside da4ml's.

    python bench/fmax_model.py [--clock-mhz 100 123 150] [--adder-levels-per-stage 3]
                               [--shared ../shared]

Each design takes a few minutes (synthesis, then place and route). Progress goes to stderr,
the JSON report to stdout.
"""

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hgq_jet_synth  # noqa: E402

KEYS = ("latency", "estimated_f_max_mhz", "fmax_mhz", "lut4", "carry_ccu2c", "flip_flops")


def run(options, shared):
    """One HGQ build through ``hgq_jet_synth`` with ``options``; its figures in ``KEYS``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        with contextlib.redirect_stdout(io.StringIO()):
            hgq_jet_synth.main([*options, "--shared", str(shared), "--out", str(out)])
        report = json.loads(out.read_text())
    row = {key: report["nnfab"].get(key) for key in KEYS}
    row["layers"] = [{key: layer.get(key) for key in ("name", "latency",
                                                      "estimated_f_max_mhz")}
                     for layer in report["layers"]]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=hgq_jet_synth.default_shared_dir())
    parser.add_argument("--clock-mhz", type=float, nargs="*", default=[100.0, 123.0, 150.0])
    parser.add_argument("--adder-levels-per-stage", type=int, nargs="*", default=[],
                        help="also these fixed placements (the one before the delay model: 3)")
    args = parser.parse_args(argv)
    designs = [(f"clock {c:g} MHz", ["--clock-mhz", str(c)]) for c in args.clock_mhz]
    designs += [(f"{n} adder levels per stage", ["--adder-levels-per-stage", str(n)])
                for n in args.adder_levels_per_stage]
    rows = []
    for name, options in designs:
        print(f"[fmax_model] {name}", file=sys.stderr, flush=True)
        rows.append({"design": name, **run(options, args.shared)})
    print(json.dumps({"benchmark": "fmax_model_hgq_ecp5", "reference": hgq_jet_synth.REFERENCE,
                      "designs": rows}, indent=2))


if __name__ == "__main__":
    main()
