"""``nnfab sweep`` on Dask: wall time of a grid on a 2-worker LocalCluster against one worker,
the same results from both, and the time of a rerun from the store, as JSON.

Each run gets a fresh cache folder (``NNFAB_CACHE_DIR``), so neither the store nor the Verilog
cache of one run serves another. The default grid is the float KERAS_3layer jet tagger (PTQ)
at reuse factors 4, 8, 16 and 6 or 8 bits, without synthesis; ``--synth`` adds yosys and
nextpnr per point (minutes each).

    python bench/sweep_dask.py [--reuse-factor 4,8,16] [--bits 6,8] [--synth] [--out FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "models/hls4ml-example-models/keras/KERAS_3layer.json"
_VOLATILE = {"seconds", "reused", "key", "worker_losses", "tools"}


def shared_dir():
    """``$NNFAB_SHARED_DIR``, or ``shared/`` beside the repository."""
    if "NNFAB_SHARED_DIR" in os.environ:
        return Path(os.environ["NNFAB_SHARED_DIR"])
    return Path(__file__).resolve().parents[2] / "shared"


def sweep(args, cache, out):
    """Run ``nnfab sweep`` and return its wall time and results.json."""
    started = time.perf_counter()
    beside = Path(sys.executable).with_name("nnfab")
    subprocess.run([str(beside) if beside.exists() else "nnfab", "sweep", *args, "-o", str(out)],
                   env=dict(os.environ, NNFAB_CACHE_DIR=str(cache)), check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    return round(seconds, 1), json.loads((out / "results.json").read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-factor", default="4,8,16")
    parser.add_argument("--bits", default="6,8")
    parser.add_argument("--synth", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    grid = [str(shared_dir() / MODEL), "--reuse-factor", args.reuse_factor, "--bits",
            args.bits, *(["--synth"] if args.synth else [])]
    report = {"benchmark": "sweep_dask", "model": MODEL, "grid": grid[1:], "runs": {}}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, workers in (("local_2_workers", 2), ("local_1_worker", 1)):
            print(f"[sweep_dask] {name}", file=sys.stderr, flush=True)
            seconds, result = sweep([*grid, "--workers", str(workers)], tmp / name,
                                    tmp / f"{name}-out")
            report["runs"][name] = {"wall_seconds": seconds, "computed": result["computed"],
                                    "failed": result["failed"]}
            rows[name] = [{k: v for k, v in row.items() if k not in _VOLATILE}
                          for row in result["rows"]]
        seconds, result = sweep([*grid, "--workers", "2"], tmp / "local_2_workers",
                                tmp / "rerun-out")
        report["runs"]["rerun_from_store"] = {"wall_seconds": seconds,
                                              "computed": result["computed"],
                                              "reused": result["reused"]}
    report["identical_results"] = rows["local_2_workers"] == rows["local_1_worker"]
    report["speedup"] = round(report["runs"]["local_1_worker"]["wall_seconds"]
                              / report["runs"]["local_2_workers"]["wall_seconds"], 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
