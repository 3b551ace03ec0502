"""nnfab sweep against a scheduler whose worker dies mid-point: Dask runs the point again on
a fresh worker, every point is a row exactly once, and the re-runs are counted."""

import os
import signal
import threading
import time

from tests.boards.test_sweep import cache, float_model, results, run  # noqa: F401 (fixtures)


def _suspicious(dask_scheduler):
    """Worker losses the scheduler has charged to tasks (each one a re-run)."""
    return sum(task.suspicious for task in dask_scheduler.tasks.values())


def test_killed_worker_is_rerun_and_counted(float_model, cache, tmp_path):  # noqa: F811
    from distributed import Client, LocalCluster

    out = tmp_path / "sweep"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        outcome = {}
        sweep = threading.Thread(target=lambda: outcome.update(result=run(
            "sweep", float_model, "--reuse-factor", "1,2,3", "--bits", "4,6,8",
            "--random", 200, "--scheduler", cluster.scheduler_address, "-o", out)))
        sweep.start()
        # SIGKILL the process of a worker while it runs a point, until the scheduler has
        # charged a loss to a task (a kill can land just after a point finished).
        killed, deadline = 0, time.monotonic() + 240
        while sweep.is_alive() and time.monotonic() < deadline:
            if client.run_on_scheduler(_suspicious):
                break
            busy = [address for address, keys in client.processing().items()
                    if any(str(key).startswith("nnfab-point-") for key in keys)]
            nannies = [nanny for nanny in cluster.workers.values()
                       if nanny.worker_address in busy and nanny.process is not None
                       and nanny.process.pid is not None]
            if nannies:
                os.kill(nannies[0].process.pid, signal.SIGKILL)
                killed += 1
                time.sleep(1.0)
            time.sleep(0.02)
        sweep.join(timeout=300)
    assert not sweep.is_alive(), "the sweep did not finish after its worker was killed"
    assert killed >= 1
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    doc = results(out)
    rows = doc["rows"]
    assert sorted((r["reuse_factor"], r["bits"]["weights"]) for r in rows) == \
        [(r, b) for r in (1, 2, 3) for b in (4, 6, 8)]
    assert [r["status"] for r in rows] == ["ok"] * 9
    assert (doc["points"], doc["computed"], doc["reused"]) == (9, 9, 0)
    losses = sum(r["worker_losses"] for r in rows)
    assert losses >= 1 and doc["worker_losses"] == losses
    assert f"{losses} task re-run" in (out / "report.md").read_text()
