"""The tool processes nnfab runs (Verilator, make, simulators): each in a process group of
its own, tracked so that an interrupt ends them all, with their children, from any thread."""

import os
import signal
import subprocess
import threading

from ..errors import Interrupted

__all__ = ["start", "finish", "stop_group", "stop_active_processes", "allow_processes"]

# Tool processes running now (in any thread): stop_active_processes ends them, and while
# _BLOCKED is set no new one starts.
_ACTIVE = set()
_ACTIVE_LOCK = threading.Lock()
_BLOCKED = threading.Event()


def stop_active_processes():
    """End every Verilator, make or simulator process that :func:`nnfab.sim.runner.run_cocotb` calls in this
    process are running, with their process groups, and start no new one (those calls raise
    :class:`~nnfab.errors.Interrupted`) until :func:`allow_processes`.

    Runs in worker threads install no signal handlers (only the main thread can), so a
    caller that runs :func:`nnfab.sim.runner.run_cocotb` in threads calls this when it is interrupted, waits
    for its threads, then calls :func:`allow_processes`.
    """
    with _ACTIVE_LOCK:
        _BLOCKED.set()
        processes = list(_ACTIVE)
    for process in processes:
        stop_group(process)


def allow_processes():
    """Undo the block of :func:`stop_active_processes`."""
    _BLOCKED.clear()


def stop_group(process):
    """End ``process`` and every process of its group: SIGTERM, then SIGKILL after 2 s."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            if sig == signal.SIGTERM:
                # The leader is gone; its group may not be: make's compilers.
                os.killpg(process.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue



def start(cmd, **popen_kwargs):
    """``subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)``, tracked until
    :func:`finish`.

    Raises
    ------
    Interrupted
        While :func:`stop_active_processes` blocks new processes.
    """
    with _ACTIVE_LOCK:
        if _BLOCKED.is_set():
            raise Interrupted("stopped")
        process = subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)
        _ACTIVE.add(process)
    return process


def finish(process):
    """Stop tracking ``process`` (it has ended)."""
    with _ACTIVE_LOCK:
        _ACTIVE.discard(process)
