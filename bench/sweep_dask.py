"""``nnfab sweep`` on Dask: wall time of a grid on a 2-worker LocalCluster against one worker
(serial), the same grid against a scheduler and two workers started by hand on localhost
(``dask scheduler``, ``dask worker tcp://127.0.0.1:8786``, as a user runs a real cluster), the
results of all three compared, and the time of a rerun from the store, as JSON. In the
scheduler run, once half the grid is in its store, the process of one hand-started worker is
killed (SIGKILL; its ``dask worker`` nanny starts a new one), and the report says whether every
point is still a row exactly once and how many tasks Dask ran again.

Each run has a cache folder of its own (``NNFAB_CACHE_DIR``), so neither the store nor the
Verilog cache of one run serves another. The default grid is the float KERAS_3layer jet tagger
(PTQ) at reuse factors 4, 8, 16 and 6 or 8 bits, without synthesis; ``--synth`` adds yosys and
nextpnr per point (minutes to an hour each). With ``--work DIR`` the caches and each run's
output folder (results, report, Pareto plots) are kept there; a run that finds points in its
store (an interrupted run, resumed) says so (``reused``); its ``wall_seconds`` is then the sum
of its invocations' active time (``segments``, from ``DIR/RUN-segments.json``, written every
30 s), and ``last_segment_seconds`` the last one's. Each finished run is written to
``DIR/RUN-run.json``, so a later invocation with the same ``--work`` (after the machine
stopped, say) runs only the runs not finished yet and reports all of them.

    python bench/sweep_dask.py [--reuse-factor 4,8,16] [--bits 6,8] [--clock-mhz 100]
        [--synth] [--runs local_2_workers,local_1_worker,scheduler,rerun_from_store]
        [--work DIR] [--out FILE]
"""

import argparse
import json
import os
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODEL = "models/hls4ml-example-models/keras/KERAS_3layer.json"
RUNS = ("local_2_workers", "local_1_worker", "scheduler", "rerun_from_store")
_VOLATILE = {"seconds", "reused", "key", "worker_losses", "tools", "synthesis_seconds",
             "place_and_route_seconds"}
SCHEDULER = "tcp://127.0.0.1:8786"


def shared_dir():
    """``$NNFAB_SHARED_DIR``, or ``shared/`` beside the repository."""
    if "NNFAB_SHARED_DIR" in os.environ:
        return Path(os.environ["NNFAB_SHARED_DIR"])
    return Path(__file__).resolve().parents[2] / "shared"


def _tool(name):
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def sweep(args, cache, out, log):
    """Run ``nnfab sweep`` and return its wall time and results.json."""
    started = time.perf_counter()
    subprocess.run([_tool("nnfab"), "sweep", *args, "-o", str(out)],
                   env=dict(os.environ, NNFAB_CACHE_DIR=str(cache)), check=True,
                   stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    return round(seconds, 1), json.loads((out / "results.json").read_text())


def _wait_for_port(host, port, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Dask scheduler did not listen on {host}:{port} in {seconds} s")


def hand_started_cluster(n_workers, log):
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes (one thread each), as
    a user starts them; returns the processes."""
    processes = [subprocess.Popen([_tool("dask"), "scheduler", "--no-dashboard"],
                                  stdout=log, stderr=subprocess.STDOUT)]
    _wait_for_port("127.0.0.1", 8786)
    for _ in range(n_workers):
        processes.append(subprocess.Popen(
            [_tool("dask"), "worker", SCHEDULER, "--nthreads", "1", "--no-dashboard"],
            stdout=log, stderr=subprocess.STDOUT))
    time.sleep(5)  # the workers register
    return processes


def kill_a_worker_midway(nanny, store, n_points, stop):
    """Start a thread that SIGKILLs the worker process under ``nanny`` (a ``dask worker``
    Popen) once ``store`` holds half of ``n_points`` points; returns a dict that gets
    ``killed_at_points_stored`` (and the pid) when it did."""
    import psutil  # a dependency of distributed

    done = {}

    def watch():
        while not stop.is_set():
            stored = len(list(store.glob("*/*.json"))) if store.exists() else 0
            children = [child for child in psutil.Process(nanny.pid).children()
                        if "spawn_main" in " ".join(child.cmdline())]  # not its tracker
            if stored >= n_points // 2 and children:
                os.kill(children[0].pid, signal.SIGKILL)
                done.update(killed_at_points_stored=stored, pid=children[0].pid)
                print(f"[sweep_dask] killed worker process {children[0].pid} with {stored} "
                      f"points stored ({time.strftime('%H:%M:%S')})", file=sys.stderr,
                      flush=True)
                return
            stop.wait(2.0)

    threading.Thread(target=watch, daemon=True).start()
    return done


class RunClock:
    """The active time of one run over the invocations it took: ``path``
    (``WORK/RUN-segments.json``) holds one segment per invocation, rewritten every 30 s while it
    runs, so a run cut short by the machine stopping counts its time up to the last write (the
    points it was computing are lost and computed again: their time counts twice)."""

    def __init__(self, path, grid):
        self.path, self.grid = path, grid
        earlier = json.loads(path.read_text()) if path.exists() else {}
        self.segments = earlier.get("segments", []) if earlier.get("grid") == grid else []
        self.segments.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": 0.0})
        self._started, self._stop = time.perf_counter(), threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self):
        while not self._stop.wait(30.0):
            self._write()

    def _write(self):
        self.segments[-1]["seconds"] = round(time.perf_counter() - self._started, 1)
        self.path.write_text(json.dumps({"grid": self.grid, "segments": self.segments},
                                        indent=1) + "\n")

    def close(self):
        """Stop; returns ``(seconds over all segments, number of segments)``."""
        self._stop.set()
        self._write()
        return round(sum(s["seconds"] for s in self.segments), 1), len(self.segments)


def _rows(result):
    return [{k: v for k, v in row.items() if k not in _VOLATILE} for row in result["rows"]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-factor", default="4,8,16")
    parser.add_argument("--bits", default="6,8")
    parser.add_argument("--clock-mhz")
    parser.add_argument("--synth", action="store_true")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--work", type=Path, help="keep caches and outputs here")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = args.runs.split(",")
    from nnfab.boards.sweep_spec import make_grid, parse_flag

    n_points = len(make_grid({axis: parse_flag(axis, text) for axis, text in
                              (("reuse_factor", args.reuse_factor), ("bits", args.bits),
                               ("clock_mhz", args.clock_mhz)) if text}))
    grid = [str(shared_dir() / MODEL), "--reuse-factor", args.reuse_factor, "--bits",
            args.bits, *(["--clock-mhz", args.clock_mhz] if args.clock_mhz else []),
            *(["--synth"] if args.synth else [])]
    report = {"benchmark": "sweep_dask", "model": MODEL, "grid": grid[1:], "cores":
              os.cpu_count(), "runs": {}}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log = open(work / "sweep_dask.log", "a")
        for name in RUNS:
            finished = work / f"{name}-run.json"
            if finished.exists():
                earlier = json.loads(finished.read_text())
                if earlier["grid"] == grid[1:]:
                    report["runs"][name] = dict(earlier["run"], finished=earlier["finished"])
                    rows[name] = earlier["rows"]
        for name in runs:
            if name in report["runs"]:
                print(f"[sweep_dask] {name}: finished on {report['runs'][name]['finished']}",
                      file=sys.stderr, flush=True)
                continue
            print(f"[sweep_dask] {name} ({time.strftime('%H:%M:%S')})", file=sys.stderr,
                  flush=True)
            cache, out = work / f"{name}-cache", work / f"{name}-out"
            cluster, kill, stop = [], None, threading.Event()
            if name == "local_2_workers":
                extra = ["--workers", "2"]
            elif name == "local_1_worker":
                extra = ["--workers", "1"]
            elif name == "scheduler":
                extra = ["--scheduler", SCHEDULER]
                cluster = hand_started_cluster(2, log)
                kill = kill_a_worker_midway(cluster[1], cache / "sweep", n_points, stop)
            else:  # the finished 2-worker run's store again: nothing computed
                extra, cache = ["--workers", "2"], work / "local_2_workers-cache"
            clock = RunClock(work / f"{name}-segments.json", grid[1:])
            try:
                seconds, result = sweep([*grid, *extra], cache, out, log)
            finally:
                stop.set()
                total, segments = clock.close()
                for process in reversed(cluster):
                    process.terminate()
                    process.wait(timeout=60)
            report["runs"][name] = {"wall_seconds": total if segments > 1 else seconds,
                                    "segments": segments, "computed": result["computed"],
                                    "reused": result["reused"], "failed": result["failed"],
                                    "worker_losses": result.get("worker_losses", 0)}
            if segments > 1:
                # The run's own store: the points its earlier invocations computed.
                report["runs"][name]["last_segment_seconds"] = seconds
            labels = [row["label"] for row in result["rows"]]
            report["runs"][name]["every_point_once"] = (len(labels) == n_points
                                                        == len(set(labels)))
            if kill is not None:
                report["runs"][name]["killed_worker"] = kill or "not killed (ended first)"
            rows[name] = _rows(result)
            report["runs"][name]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            (work / f"{name}-run.json").write_text(json.dumps(
                {"grid": grid[1:], "finished": report["runs"][name]["finished"],
                 "run": report["runs"][name], "rows": rows[name]}, indent=1) + "\n")
            if args.work is None:
                shutil.rmtree(out, ignore_errors=True)
    computed = [name for name in rows if name != "rerun_from_store"]
    report["identical_results"] = {name: rows[name] == rows[computed[0]]
                                   for name in computed[1:]}
    if {"local_1_worker", "local_2_workers"} <= report["runs"].keys():
        report["speedup"] = round(report["runs"]["local_1_worker"]["wall_seconds"]
                                  / report["runs"]["local_2_workers"]["wall_seconds"], 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
