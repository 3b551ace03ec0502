"""Simulation speed of ``nnfab verify``: Python stream drivers against the HDL harness, as JSON.

    python bench/verify_speed.py [--cases digits-mlp digits-cnn jet-tagger mnist-cnn]
                                 [--vectors 10000] [--images 40]

For each case the same stimulus runs through the same network twice on Verilator: first with
the Python drivers of :mod:`nnfab.sim.network_tb` (cocotb wakes every cycle; how ``verify``
ran before), then in the HDL harness of :mod:`nnfab.sim.harness` (Python wakes at start and
end). Builds are cached (``~/.cache/nnfab/verilator``); a simulation that followed a cold build
is run again so that its figures are those of a cached run. Per run: simulated cycles (cocotb's
simulated time over the 10 ns period), the wall seconds of the simulator process, of the test
alone (cocotb's figure, without Python start-up), the CPU seconds of the simulator process
(user + system, which a loaded machine does not inflate) and simulated cycles per second on
each. Cases: the bundled digits MLP and CNN on the 360 held-out digits, and the hls4ml jet
tagger ``KERAS_3layer.json`` (PTQ as the CLI does it) on ``--vectors`` seeded random vectors;
on request (``--cases mnist-cnn``) the QKeras MNIST CNN (``qkeras_mnist_cnn.json``, 28x28, at
the CLI's defaults) on ``--images`` seeded random images.

The harness build is ``-O1`` (``--optimize run``) unless asked otherwise: the targets are
about simulation speed. ``nnfab verify`` builds short runs at ``-O0`` by default, faster to
build and slower to simulate (``bench/verilator_opt.py``).

Targets (issue 16): 10,000 jet-tagger vectors simulate in at most 2 s; at least 20 times the
cycles per second of the Python drivers on the 8x8 digits CNN and on the MNIST CNN.

``--reverify`` (case ``cached-reverify``) times the whole ``nnfab verify`` process, as a user
runs it, on the hls4ml ``keras-config.yml`` jet tagger (16-bit, R=1) and ``--vectors`` seeded
random vectors: once to fill the caches (Verilog and Verilator build), then again; the second
run, which neither converts nor compiles, must take at most 5 s end to end (issue 16).
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Shape

from nnfab.casts import quantize
from nnfab.gen.assemble import Network
from nnfab.cli.commands import _load, verify_command
from nnfab.gen.datasets import load_dataset
from nnfab.gen.emit import verilog_name
from nnfab.gen.verify import pack_transfers, unpack_transfers
from nnfab.sim.golden.network import run_network
from nnfab.sim.harness import run_harness
from nnfab.sim.runner import run_cocotb

PERIOD_NS = 10
JET_TAGGER = Path("/work/shared/models/hls4ml-example-models/keras/KERAS_3layer.json")
MNIST_CNN = JET_TAGGER.parent / "qkeras_mnist_cnn.json"


def _loaded(cli_args):
    """The model as ``nnfab verify <cli_args>`` loads it (same defaults)."""
    params = verify_command.make_context("verify", list(cli_args)).params
    names = ("model", "example", "weights", "reuse_factor", "max_multipliers", "precision",
             "input_format", "hls4ml_config", "fuse", "lut_adder_width")
    return _load(*(params[name] for name in names))


def _case(name, n_vectors, n_images):
    if name == "jet-tagger":
        loaded = _loaded([str(JET_TAGGER)])
        x = np.random.default_rng(0).normal(0.0, 1.5, (n_vectors, *loaded.model.input_shape))
    elif name == "mnist-cnn":
        # Seeded images in the inputs' range [0, 1): the CLI's defaults, as a user verifies it.
        loaded = _loaded([str(MNIST_CNN)])
        x = np.random.default_rng(0).uniform(0.0, 1.0, (n_images, *loaded.model.input_shape))
    else:
        loaded = _loaded(["--example", name])
        x, _ = load_dataset("digits", "test", image=len(loaded.model.input_shape) == 3)
    model = loaded.model
    cast = model.input_format if loaded.input_cast == "format" else \
        model.input_format.replace(rounding="RND_CONV", overflow="SAT")
    return model, quantize(x, cast)


def _child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _figures(results, cpu_seconds):
    case = next(ET.parse(results.results_file).iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    cycles = round(float(props["sim_time_duration"]) / PERIOD_NS)
    test_seconds = float(case.get("time"))
    return {
        "cycles": cycles,
        "process_seconds": round(results.run_seconds, 3),
        "test_seconds": round(test_seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "cycles_per_second_process": round(cycles / results.run_seconds),
        "cycles_per_second_test": round(cycles / test_seconds),
        "cycles_per_second_cpu": round(cycles / cpu_seconds),
        "cocotb_passed": f"{results.passed}/{results.total}",
    }


def _timed(run):
    """``run()`` twice when the first call built the simulator; figures of the last call:
    its outcome, the simulator's CPU seconds, the build seconds, the cocotb results and the
    call's wall seconds."""
    build_seconds = None
    for _ in range(2):
        cpu, started = _child_cpu_seconds(), time.perf_counter()
        outcome = run()
        cpu, wall = _child_cpu_seconds() - cpu, time.perf_counter() - started
        results = getattr(outcome, "results", outcome)  # HarnessRun or CocotbResults
        if not results.built:
            break
        build_seconds = round(results.build_seconds, 1)
    return outcome, cpu, build_seconds, results, wall


def _earlier_python_drivers(path):
    """``python_drivers`` figures by case from the output of an earlier run of this bench."""
    found = {}
    for line in Path(path).read_text().splitlines():
        try:
            report = json.loads(line)
        except json.JSONDecodeError:
            continue
        report = report.get("partial", report) if isinstance(report, dict) else {}
        if "python_drivers" in report:
            found[report["case"]] = report["python_drivers"]
    return found


def _python_drivers(design, toplevel, words_in, n_out, n, p_stall, seed, cache_dir,
                    mismatches):
    """Figures of the Python-driver testbench (how ``verify`` simulated before the harness)
    on ``n`` vectors."""
    per_vector = len(words_in) // n
    with tempfile.TemporaryDirectory(prefix="nnfab-bench-") as tmp:
        data, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
        data.write_text(json.dumps({
            "words_in": [hex(w) for w in words_in], "n_out": n_out,
            "warmup": min(64, n) * per_vector, "p_stall": p_stall, "seed": seed}))

        def python_drivers():
            return run_cocotb(design, toplevel=toplevel, test_module="nnfab.sim.network_tb",
                              extra_env={"NNFAB_TB_DATA": str(data), "NNFAB_TB_OUT": str(out)},
                              seed=seed, cache_dir=cache_dir)

        results, cpu, build, _, _ = _timed(python_drivers)
        before = _figures(results, cpu)
        before["build_seconds"] = build
        before["mismatches"] = mismatches([int(w, 16)
                                           for w in json.loads(out.read_text())["words_out"]])
        return before


def bench(name, n_vectors, p_stall, seed, cache_dir, earlier=None, n_images=40,
          optimize=True):
    model, codes = _case(name, n_vectors, n_images)
    n = len(codes)
    golden = np.asarray(run_network(model, codes), dtype=np.int64).reshape(-1, *model.output_shape)
    network = Network(model)
    toplevel = verilog_name(model.name)
    # Converted once, as run_cocotb would: the timed calls then hold only the simulation (and
    # the CPU seconds of child processes only the simulator's).
    started = time.perf_counter()
    design = verilog.convert(network, name=toplevel, emit_src=False)
    convert_seconds = time.perf_counter() - started
    widths = {name: Shape.cast(network.signature.members[name].signature.members["payload"]
                               .shape).width for name in ("i", "o")}
    words_in = pack_transfers(codes, model.input_shape, model.input_format)
    n_out = n * (model.n_outputs // model.output_shape[-1])
    per_vector = len(words_in) // n
    report = {"case": name, "vectors": n, "input_transfers": len(words_in),
              "latency": network.latency, "verilog_convert_seconds": round(convert_seconds, 1)}

    def mismatches(words):
        rtl = unpack_transfers(words, model.output_shape, model.output_format)
        m = min(len(rtl), len(golden))
        return int(np.sum(np.any((rtl[:m] != golden[:m]).reshape(m, -1), axis=1))) + \
            abs(len(rtl) - len(golden))

    if earlier is not None:
        report["python_drivers"] = dict(earlier, reused_from_earlier_run=True)
    else:
        report["python_drivers"] = _python_drivers(design, toplevel, words_in, n_out, n,
                                                   p_stall, seed, cache_dir, mismatches)
        print(json.dumps({"partial": report}), file=sys.stderr, flush=True)
    before = report["python_drivers"]

    n_warm = min(64, max(1, n // 2))

    def harness():
        return run_harness(design, toplevel=toplevel, words_in=words_in, n_out=n_out,
                           warmup_in=n_warm * per_vector, warmup_out=n_warm * (n_out // n),
                           seed=seed, p_idle=p_stall, p_stall=p_stall,
                           burst=2 * network.latency + 2, cache_dir=cache_dir,
                           in_width=widths["i"], out_width=widths["o"], optimize=optimize)

    run, cpu, build, results, wall = _timed(harness)
    after = _figures(results, cpu)
    after["build_seconds"] = build
    after["mismatches"] = mismatches(run.words_out)
    after["latency"] = run.latency
    after["counters"] = {k: run.counters[k] for k in ("stall_cycles", "idle_cycles",
                                                      "longest_stall", "longest_idle")}
    # What verify spends on the simulation: stimulus file, simulator, reading the outputs.
    after["run_harness_seconds"] = round(wall, 3)
    # Targets of issue 16, judged on wall seconds (inflated on a loaded machine) and on CPU.
    if name == "jet-tagger" and n >= 10_000:
        report["target_2_s"] = {"process": after["process_seconds"] <= 2.0,
                                "cpu": after["cpu_seconds"] <= 2.0}
    if name in ("digits-cnn", "mnist-cnn"):
        report["target_20x"] = {
            kind: after[f"cycles_per_second_{kind}"] >= 20 * before[f"cycles_per_second_{kind}"]
            for kind in ("test", "cpu")}
    report["harness"] = after
    report["optimize"] = {True: "run (-O1)", False: "build (-O0)", None: "auto"}[optimize]
    report["speedup_cycles_per_second_cpu"] = round(
        after["cycles_per_second_cpu"] / before["cycles_per_second_cpu"], 1)
    report["speedup_cycles_per_second_test"] = round(
        after["cycles_per_second_test"] / before["cycles_per_second_test"], 1)
    return report


HLS4ML_CONFIG = JET_TAGGER.parent.parent / "keras-config.yml"


def cached_reverify(n_vectors, cache_dir=None):
    """Wall seconds of ``nnfab verify --hls4ml-config keras-config.yml --random N`` as a
    process: a first run (fills the caches), then a cached one."""
    nnfab = Path(sys.executable).parent / "nnfab"
    command = [str(nnfab), "verify", "--hls4ml-config", str(HLS4ML_CONFIG),
               "--random", str(n_vectors)]
    env = dict(os.environ, **({"NNFAB_CACHE_DIR": str(cache_dir)} if cache_dir else {}))
    report = {"case": "cached-reverify", "command": " ".join(["nnfab"] + command[1:]),
              "vectors": n_vectors}
    for name in ("first_run", "cached_run"):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        phases = re.search(r"^seconds: (.*)$", done.stdout, re.M)
        report[name] = {
            "wall_seconds": round(wall, 2), "exit_code": done.returncode,
            "phases": phases[1] if phases else None,
            "mismatches": int(m[1]) if (m := re.search(r"^(\d+) mismatches$", done.stdout,
                                                       re.M)) else None}
    cached = report["cached_run"]
    report["cached_verilog_and_build"] = "(cached build) (cached Verilog)" in (
        cached["phases"] or "")
    report["target_5_s"] = cached["wall_seconds"] <= 5.0 and cached["exit_code"] == 0
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["digits-mlp", "digits-cnn", "jet-tagger"],
                        choices=["digits-mlp", "digits-cnn", "jet-tagger", "mnist-cnn",
                                 "none"])
    parser.add_argument("--reverify", action="store_true",
                        help="also time a cached re-verify of the jet tagger through the CLI")
    parser.add_argument("--vectors", type=int, default=10_000,
                        help="random vectors for the jet tagger")
    parser.add_argument("--images", type=int, default=40,
                        help="seeded random images for the QKeras MNIST CNN (case mnist-cnn; "
                             "its Python-driver run takes about 1.5 s per image)")
    parser.add_argument("--stall", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--optimize", choices=["auto", "build", "run"], default="run",
                        help="the harness build's level, as nnfab verify --optimize; 'run' "
                             "(-O1, the simulation speed the targets are about) by default")
    parser.add_argument("--python-drivers-from", type=Path, default=None,
                        help="reuse the Python-driver figures of an earlier run's output "
                             "(they take minutes)")
    args = parser.parse_args(argv)
    earlier = {} if args.python_drivers_from is None else \
        _earlier_python_drivers(args.python_drivers_from)
    reports = []
    for name in args.cases:
        if name == "none":
            continue
        reports.append(bench(name, args.vectors, args.stall, args.seed, args.cache_dir,
                             earlier.get(name), args.images,
                             {"auto": None, "build": False, "run": True}[args.optimize]))
        print(json.dumps(reports[-1]), flush=True)
    if args.reverify:
        reports.append(cached_reverify(args.vectors, args.cache_dir))
        print(json.dumps(reports[-1]), flush=True)
    print(json.dumps({"benchmark": "verify_speed", "cases": reports}, indent=2))


if __name__ == "__main__":
    main()
