"""nnfab sweep against a scheduler whose workers die mid-point, one after the other: Dask runs
the points again on fresh workers, every point is a row exactly once, and the re-runs are
counted."""

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
            "sweep", float_model, "--reuse-factor", "1,2,3,4", "--bits", "4,6,8",
            "--random", 200, "--scheduler", cluster.scheduler_address, "-o", out)))
        sweep.start()
        # SIGKILL the process of each worker the sweep started with, one after the other, each
        # while it runs a point: once both are gone, no worker holds what the sweep gave the
        # cluster at its start (the model), so it must have been computed again.
        first = {name: nanny.process.pid for name, nanny in cluster.workers.items()}
        killed, deadline = [], time.monotonic() + 240
        while sweep.is_alive() and len(killed) < len(first) and time.monotonic() < deadline:
            busy = [address for address, keys in client.processing().items()
                    if any(str(key).startswith("nnfab-point-") for key in keys)]
            for name, nanny in cluster.workers.items():
                process = nanny.process
                if (nanny.worker_address in busy and process is not None
                        and process.pid == first[name] and name not in killed):
                    os.kill(process.pid, signal.SIGKILL)
                    killed.append(name)
                    time.sleep(1.0)
                    break
            time.sleep(0.02)
        sweep.join(timeout=300)
    assert not sweep.is_alive(), "the sweep did not finish after its worker was killed"
    assert sorted(killed) == sorted(first), "the sweep ended before both workers were killed"
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    doc = results(out)
    rows = doc["rows"]
    assert sorted((r["reuse_factor"], r["bits"]["weights"]) for r in rows) == \
        [(r, b) for r in (1, 2, 3, 4) for b in (4, 6, 8)]
    assert [r["status"] for r in rows] == ["ok"] * 12
    assert (doc["points"], doc["computed"], doc["reused"]) == (12, 12, 0)
    losses = sum(r["worker_losses"] for r in rows)
    assert losses >= 1 and doc["worker_losses"] == losses
    assert f"{losses} task re-run" in (out / "report.md").read_text()


def test_a_cluster_that_drops_the_sweep_is_an_error_and_a_rerun_resumes(float_model, cache,  # noqa: F811
                                                                          tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "sweep"
    args = ("sweep", float_model, "--reuse-factor", "1,2,3,4", "--bits", "4,6,8", "--random",
            200, "-o", out)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        outcome = {}
        sweep = threading.Thread(target=lambda: outcome.update(result=run(
            *args, "--scheduler", cluster.scheduler_address)))
        sweep.start()
        # Restarting the cluster (as `client.restart()` or a scheduler restart does) forgets
        # every task of every client, the sweep's included.
        deadline = time.monotonic() + 120
        while sweep.is_alive() and time.monotonic() < deadline:
            if any(str(key).startswith("nnfab-point-")
                   for keys in client.processing().values() for key in keys):
                # Not waiting for the fresh workers: on a loaded machine they take longer
                # to start than restart() waits, and the sweep does not need them.
                client.restart(wait_for_workers=False)
                break
            time.sleep(0.02)
        sweep.join(timeout=300)
        assert not sweep.is_alive()
        result = outcome["result"]
        assert result.exit_code == 1, result.output
        assert "dropped" in result.output and "run the same command again" in result.output
        assert not (out / "results.json").exists()
        again = run(*args, "--scheduler", cluster.scheduler_address)
    assert again.exit_code == 0, again.output
    doc = results(out)
    assert [r["status"] for r in doc["rows"]] == ["ok"] * 12
    assert doc["computed"] + doc["reused"] == 12
