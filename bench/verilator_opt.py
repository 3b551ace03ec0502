"""Verilator build and simulation seconds with the per-cycle code at -O0 and at -O1, as JSON.

    python bench/verilator_opt.py [--cases three_layer_pytorch TFC_2W2A] [--vectors 100000]

The figures behind :func:`nnfab.sim.harness.worth_optimizing` (the default choice of
``nnfab verify --optimize auto``). Each case is built at the command line's defaults
(``nnfab build``), then its Verilog is built in the HDL harness once per level, each in an empty
cache of its own (Verilator's run-time library objects, which do not depend on the level, come
from the default cache when it has them), and simulated on ``--vectors`` random input transfers
under the default random stalls (10 % idle, 10 % back-pressure), after a cached run of 10
vectors. Per level: build seconds, simulation seconds (the simulator process) and cycles; per
case: the build seconds -O0 saves per MB of Verilog, the simulation seconds per million cycles
it costs, and the run length in cycles per MB of Verilog from which -O1 pays off. Needs
``NNFAB_SHARED_DIR`` (or shared/ beside the repository) and Verilator.
"""

import argparse
import json
import os
import random
import re
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from nnfab.cli import main
from nnfab.sim.harness import run_harness

MODELS = Path(os.environ.get("NNFAB_SHARED_DIR")
              or Path(__file__).resolve().parents[2] / "shared") / "models"
CASES = {
    "three_layer_pytorch": MODELS / "hls4ml-example-models" / "onnx" / "three_layer_pytorch.onnx",
    "TFC_2W2A": MODELS / "qonnx-model-zoo" / "TFC_2W2A.onnx",
}


def _widths(verilog):
    width = {}
    for port in ("i", "o"):
        found = re.search(rf"(?:input|output) (?:wire |reg )?\[(\d+):0\] {port}__payload", verilog)
        width[port] = int(found.group(1)) + 1
    return width["i"], width["o"]


def _run(verilog, top, n, cache_dir, optimize, seed=1):
    in_width, out_width = _widths(verilog)
    rng = random.Random(seed)
    words = [rng.getrandbits(in_width) for _ in range(n)]
    return run_harness(verilog, toplevel=top, words_in=words, n_out=n, warmup_in=1,
                       warmup_out=1, in_width=in_width, out_width=out_width,
                       cache_dir=cache_dir, optimize=optimize, seed=seed)


def measure(name, path, n_vectors):
    with tempfile.TemporaryDirectory(prefix="nnfab-bench-") as tmp:
        tmp = Path(tmp)
        result = CliRunner().invoke(main, ["build", str(path), "-o", str(tmp / "out")])
        if result.exit_code != 0:
            raise SystemExit(f"nnfab build {path} failed:\n{result.output}")
        manifest = json.loads((tmp / "out" / "manifest.json").read_text())
        verilog = (tmp / "out" / manifest["verilog"]).read_text()
        top = manifest["verilog"].removesuffix(".v")
        levels = {}
        for level, optimize in (("-O0", False), ("-O1", True)):
            cache = tmp / f"cache{level}"
            built = _run(verilog, top, 10, cache, optimize)
            run = _run(verilog, top, n_vectors, cache, optimize)
            levels[level] = {"build_s": round(built.results.build_seconds, 2),
                             "simulation_s": round(run.results.run_seconds, 2),
                             "cycles": run.counters["cycle"]}
        megabytes = len(verilog) / 1e6
        saved = levels["-O1"]["build_s"] - levels["-O0"]["build_s"]
        cost = levels["-O0"]["simulation_s"] - levels["-O1"]["simulation_s"]
        cycles = levels["-O1"]["cycles"]
        return {"case": name, "verilog_mb": round(megabytes, 3), "vectors": n_vectors,
                "levels": levels,
                "build_s_saved_per_mb_at_O0": round(saved / megabytes, 2),
                "simulation_s_per_million_cycles_lost_at_O0": round(cost / cycles * 1e6, 2),
                "O1_pays_off_from_cycles_per_mb": round(saved / cost * cycles / megabytes)
                if cost > 0 else None}


def main_():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=sorted(CASES), choices=sorted(CASES))
    parser.add_argument("--vectors", type=int, default=100_000)
    args = parser.parse_args()
    for name in args.cases:
        if not CASES[name].exists():
            sys.exit(f"{CASES[name]} is not available: shared/ must be beside the repository")
        print(json.dumps(measure(name, CASES[name], args.vectors)), flush=True)


if __name__ == "__main__":
    main_()
