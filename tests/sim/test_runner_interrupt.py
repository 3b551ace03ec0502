"""Ctrl-C and SIGTERM while a tool runs: the whole process group ends, the caller gets
:class:`~nnfab.errors.Interrupted`, and the CLI prints one line and exits 130 (issue 14,
item 10); old run folders of the build cache are pruned (item 13)."""

import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner

from nnfab.errors import Interrupted
from nnfab.cli import main
from nnfab.sim import build_cache, runner


class _Runner(runner._CachedVerilator):
    """Only the process machinery of the cached Verilator runner."""

    def __init__(self, work_dir):
        self.work_dir = str(work_dir)
        self.env = dict(os.environ)
        self._lines = []
        self._log_file = None
        self.process = None
        import logging
        self.logger = logging.getLogger("test")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_whole_process_group(tmp_path, sig):
    pids = tmp_path / "pids"
    # A parent (like make) with a child (like g++) that both run for a minute.
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"
    run = _Runner(tmp_path)
    before = signal.getsignal(sig)
    threading.Timer(1.0, os.kill, (os.getpid(), sig)).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match=signal.Signals(sig).name):
        run.execute([["sh", "-c", script]])
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), pid
    assert signal.getsignal(sig) == before  # the runner's handler is gone again


def test_failing_command_raises_system_exit_with_its_output_kept(tmp_path):
    run = _Runner(tmp_path)
    with pytest.raises(SystemExit, match="terminated with error 3"):
        run.execute([["sh", "-c", "echo one; echo two >&2; exit 3"]])
    assert run.output_tail() == "one\ntwo"


def test_cli_prints_one_line_and_exits_130(monkeypatch):
    import nnfab.gen.verify as verify_module

    def interrupted(*args, **kwargs):
        raise Interrupted("SIGTERM")

    monkeypatch.setattr(verify_module, "verify", interrupted)
    result = CliRunner().invoke(main, ["verify", "--example", "digits-mlp", "--count", "2"])
    assert result.exit_code == 130
    assert result.output.splitlines()[-1] == "Interrupted (SIGTERM): stopped, nothing written"
    assert "Traceback" not in result.output


def test_old_run_folders_are_pruned(tmp_path):
    for i in range(6):
        folder = tmp_path / f"run-{i}"
        folder.mkdir()
        age = 7200 if i < 4 else 10
        os.utime(folder, (time.time() - age - i, time.time() - age - i))
    build_cache.prune_runs(tmp_path, keep=3, min_age_s=3600)
    # The 3 newest stay; of the others only those older than an hour go.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-0", "run-4", "run-5"]
