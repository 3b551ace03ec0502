"""Sweeps on Dask distributed: every point of a grid is a pure task, keyed by its hash.

:func:`run_sweep` looks each point up in the :class:`~nnfab.boards.sweep_store.PointStore`,
submits the missing ones to a Dask cluster (an existing scheduler by address, or a
``LocalCluster`` with one single-threaded worker process per core), stores each row as it
arrives (so an interrupted sweep resumes) and returns every row in grid order. Dask runs a
task again elsewhere when its worker dies (up to ``distributed.scheduler.allowed-failures``
times, 3 by default); the rows count those re-runs (``worker_losses``), and a task that lost
more workers than that becomes a row with ``status`` ``"error"``. The model goes to the
cluster as a task of its own (not scattered data), so the scheduler computes it again when
every worker holding it has died; a cluster that drops the sweep's tasks all the same (its
scheduler restarted) ends the run with a :class:`~nnfab.errors.SweepError`, the finished points
kept in the store.
"""

import os
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field

from nnfab.errors import SweepError

from .sweep_point import evaluate_point
from .sweep_spec import point_label
from .sweep_store import PointStore

__all__ = ["SweepResult", "run_sweep"]


@dataclass
class SweepResult:
    """Rows in grid order and what the run did.

    Attributes
    ----------
    rows : list of dict
        One per point: the point's options (``reuse_factor``, ``bits``, ``clock_mhz``,
        ``fuse``, ``target``), ``label``, ``key``, ``reused`` (from the store) and the figures
        of :func:`~nnfab.boards.sweep_point.evaluate_point`.
    computed, reused, failed, worker_losses : int
        Points evaluated by this run, points taken from the store, rows whose status is not
        ``"ok"``, tasks Dask ran again after a worker died.
    seconds : float
        Wall time of the run.
    scheduler : str
        The scheduler's address (``"local"`` for a LocalCluster).
    n_workers : int
    """

    rows: list
    computed: int = 0
    reused: int = 0
    failed: int = 0
    worker_losses: int = 0
    seconds: float = 0.0
    scheduler: str = "local"
    n_workers: int = 0
    notes: list = field(default_factory=list)


def _losses(client, key):
    def suspicious(dask_scheduler, key=key):
        task = dask_scheduler.tasks.get(key)
        return 0 if task is None else task.suspicious

    try:
        return int(client.run_on_scheduler(suspicious))
    except Exception:  # the count is a report figure; a scheduler that cannot say is 0
        return 0


def _held(source):
    """The model as a task result: unlike scattered data, which is gone for good once the
    workers holding it die, the scheduler can compute a task again."""
    return source


def run_sweep(source, points, settings, *, store=None, scheduler=None, workers=None,
              processes=True, on_update=None):
    """Evaluate ``points`` of ``source`` on Dask; stored points are not computed again.

    Parameters
    ----------
    source : SweepSource
    points : list of dict
    settings : SweepSettings
    store : PointStore, optional
        Default: the store in nnfab's cache folder.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); by default a LocalCluster.
    workers : int, optional
        Workers of the LocalCluster (default: one per core), each with one thread.
    processes : bool
        LocalCluster workers as processes (True) or threads of this process.
    on_update : callable, optional
        Called as ``on_update(done=, running=, failed=, total=)`` when a point finishes and
        about once a second.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        If the scheduler at ``scheduler`` cannot be reached, or the cluster dropped the
        sweep's tasks (the points finished before are in the store: run again to resume).
    """
    started = time.perf_counter()
    store = store or PointStore()
    settings_key = settings.key()
    keys = [store.key(source.model_hash, point, settings_key) for point in points]
    rows = {}
    for key in keys:
        row = store.get(key)
        if row is not None:
            rows[key] = dict(row, reused=True)
    result = SweepResult(rows=[], reused=len(rows))
    todo = [(key, point) for key, point in zip(keys, points) if key not in rows]
    todo = list({key: (key, point) for key, point in todo}.values())  # duplicates once
    update = on_update or (lambda **counts: None)
    failed = sum(row["status"] != "ok" for row in rows.values())
    update(done=len(rows), running=0, failed=failed, total=len(keys))
    if todo:
        failed = _compute(todo, rows, source, settings, store, scheduler, workers, processes,
                          update, result, failed, len(keys))
    result.rows = []
    for key, point in zip(keys, points):
        row = dict(rows[key])
        row.update(point, label=point_label(point), key=key)
        result.rows.append(row)
    result.failed = sum(row["status"] != "ok" for row in result.rows)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _compute(todo, rows, source, settings, store, scheduler, workers, processes, update,
             result, failed, total):
    from distributed import Client, LocalCluster, wait

    if scheduler is not None:
        cluster = None
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"Cannot reach the Dask scheduler {scheduler!r} within 20 s "
                             f"({type(exc).__name__}); start one with `dask scheduler` "
                             f"and `dask worker ADDRESS`, or leave out --scheduler for a "
                             f"local cluster") from None
        result.scheduler = scheduler
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                               threads_per_worker=1, processes=processes,
                               dashboard_address=":0", silence_logs=40)
        client = Client(cluster)
    try:
        workers_info = client.scheduler_info(n_workers=-1)["workers"].values()
        result.n_workers = len(workers_info)
        # Tasks a worker holds beyond its threads wait in its queue: not running.
        threads = sum(info.get("nthreads", 1) for info in workers_info) or 1
        remote = client.submit(_held, source, pure=False)
        futures = {client.submit(evaluate_point, remote, point, settings,
                                 key=f"nnfab-point-{key}", pure=False): key
                   for key, point in todo}
        pending = set(futures)
        try:
            while pending:
                try:
                    done, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                for future in done:
                    key = futures[future]
                    losses = _losses(client, future.key)
                    if future.status == "finished":
                        row = future.result()
                    else:
                        exc = future.exception()
                        row = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                    row.update(worker_losses=losses, reused=False)
                    result.worker_losses += losses
                    if row["status"] != "error":
                        store.put(key, row)
                    rows[key] = row
                    result.computed += 1
                    failed += row["status"] != "ok"
                    future.release()
                try:
                    running = min(threads, sum(len(keys)
                                               for keys in client.processing().values()))
                except Exception:
                    running = 0
                update(done=len(rows), running=running, failed=failed, total=total)
        except CancelledError as exc:
            # A restarted scheduler or a cluster that lost what the points need cancels them
            # (raised by wait, or by a cancelled future's result).
            reasons = [line.split("reason:", 1)[1].strip(" .")
                       for line in str(exc).splitlines() if "reason:" in line]
            unfinished = sum(key not in rows for key in futures.values())
            stored = sum(row["status"] != "error" for row in rows.values())
            raise SweepError(
                f"The Dask cluster dropped {unfinished} unfinished points of the sweep "
                f"(cancelled: {'; '.join(reasons) or 'no reason given'}); the "
                f"{stored} finished ones are in the store {store.root}: run the same "
                f"command again to resume") from None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failed
