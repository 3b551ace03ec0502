"""Verification: the generated RTL on Verilator against the golden model, code for code."""

import concurrent.futures
import contextlib
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnfab.casts import quantize, to_float
from nnfab.errors import SimulationError
from nnfab.packing import pack, packed_width, unpack
from nnfab.sim.golden.network import run_network
from nnfab.sim.harness import choose_optimize, run_harness
from nnfab.sim.runner import allow_processes, default_cache_dir, stop_active_processes

from .emit import verilog_name
from .verify_debug import debug_mismatch

__all__ = ["VerifyResult", "verify", "pack_transfers", "unpack_transfers"]

_GOLDEN_BLOCK = 2048
# Elements of the largest tensor of one golden block (8 bytes each): image models get fewer
# vectors per block (a 256x256x32 tensor is 2 M elements per vector).
_GOLDEN_BLOCK_ELEMENTS = 1 << 24


def golden_block(model):
    """Vectors per block of the golden model's run: :data:`_GOLDEN_BLOCK`, fewer when a tensor
    of ``model`` would exceed :data:`_GOLDEN_BLOCK_ELEMENTS` elements (at least one)."""
    largest = max([math.prod(model.input_shape)]
                  + [math.prod(layer.output_shape) for layer in model.layers])
    return max(1, min(_GOLDEN_BLOCK, _GOLDEN_BLOCK_ELEMENTS // largest))


def pack_transfers(codes, shape, fmt):
    """Packed stream words of a batch of tensors: one word per position of the leading axes,
    the last axis as lanes (see the manifest's ``packing``)."""
    lanes = shape[-1]
    rows = np.asarray(codes).reshape(-1, lanes)
    formats = [fmt] * lanes
    return [pack(row, formats) for row in rows.tolist()]


def unpack_transfers(words, shape, fmt):
    """Inverse of :func:`pack_transfers`: ``(batch, *shape)`` codes from packed words."""
    formats = [fmt] * shape[-1]
    codes = np.array([unpack(word, formats) for word in words], dtype=np.int64)
    return codes.reshape(-1, *shape)


@dataclass
class VerifyResult:
    """What ``nnfab verify`` prints: counts, the first mismatches, accuracies, measured
    latency and initiation interval, and seconds per phase."""

    n_vectors: int
    n_mismatches: int
    first_mismatches: list
    latency: int
    initiation_interval: int
    measured_latency: int | None
    measured_initiation_interval: int | None
    accuracy: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    build_cached: bool = False
    #: Whether the Verilog came from the cache or a build folder (no conversion).
    verilog_cached: bool = False
    #: On a mismatch: the traced rerun of the first mismatching vector
    #: (:class:`~nnfab.gen.verify_debug.MismatchReport`), naming the first layer that differs.
    debug: object = None
    cocotb_tests: tuple = (0, 0, 0)
    #: The RTL's output codes, shape (n, *output_shape) (fewer rows if it stopped early).
    rtl_outputs: np.ndarray | None = field(default=None, repr=False)
    #: Whether ``initiation_interval`` is exact and so must be measured: for networks of
    #: whole vectors it is; for pixel streams it is the slowest engine's cycles per
    #: inference, a lower bound that engines waiting on each other can exceed.
    initiation_interval_exact: bool = True

    @property
    def passed(self):
        ii_ok = (self.measured_initiation_interval in (None, self.initiation_interval)
                 if self.initiation_interval_exact else True)
        return (self.n_mismatches == 0 and self.cocotb_tests[0] == self.cocotb_tests[1] > 0
                and self.measured_latency == self.latency and ii_ok)


def _accuracy(outputs, labels):
    classes = outputs[:, 0] if outputs.shape[-1] == 1 else np.argmax(outputs, axis=-1)
    return float(np.mean(classes.reshape(-1) == labels))


def verify(model, x, *, labels=None, float_model=None, seed=0, p_stall=0.1, warmup=64,
           multiplier_threshold=3, progress=None, cache_dir=None, input_cast="nearest",
           verilog=None, timing=None, p_idle=None, use_cache=True, debug=True, jobs=1,
           optimize=None):
    """Stream ``x`` through the RTL of ``model`` on Verilator and compare every output code
    with the golden model.

    Parameters
    ----------
    model : nnfab.ir.Model
    x : ndarray of float, shape (n, *model.input_shape)
        Inputs as values; they are cast into the input format, and the golden model, the
        RTL and the float model all see those same values.
    input_cast : ``"nearest"`` or ``"format"``
        How inputs become codes: rounded to nearest and saturated (the default), or with the
        input format's own rounding and overflow modes (as hls4ml's C simulation does).
    labels : ndarray of int, shape (n,), optional
        Classes, for accuracies (float model, golden, RTL).
    float_model : FloatModel, optional
        The float reference for the accuracy report.
    p_stall : float, 0 <= p_stall < 1
        Share of cycles in which the output is not ready; stalls come in bursts of 1 to
        ``2 * latency + 2`` cycles. The first ``min(warmup, n)`` vectors are streamed at full
        rate first (to measure latency and initiation interval), then all ``n`` vectors again
        with idle cycles and back-pressure, so every vector is checked under stalls, however
        few there are.
    p_idle : float, optional
        Share of cycles in which no input is offered after the warm-up, in bursts like the
        stalls; ``p_stall`` by default.
    verilog : str, optional
        Verilog text of the design to simulate (a build folder's), whose top module is named
        after the model; by default the model is elaborated and converted here.
    timing : (int, int), optional
        The expected latency and initiation interval of ``verilog`` (a build folder's
        manifest records them); required with ``verilog``.
    cache_dir : str or os.PathLike, optional
        Root of the caches (:func:`nnfab.sim.runner.default_cache_dir` by default): the
        Verilator builds, keyed by the Verilog text, and in its ``verilog`` folder the
        converted Verilog, keyed by the model, ``multiplier_threshold`` and nnfab's source
        (see :mod:`nnfab.gen.verilog_cache`), so an unchanged model is neither converted nor
        compiled again.
    use_cache : bool
        False bypasses both caches: the model is converted, and built in a temporary
        folder that is deleted afterwards.
    jobs : int, >= 1
        Simulator processes: the vectors are split into this many contiguous shards, each
        simulated by a process of its own (the same compiled model; shard ``k`` with its own
        warm-up and stall seed ``seed + k``), and the results merged in order. Latency and
        initiation interval are those measured by the first shard.
    optimize : bool, optional
        Compile the simulator's per-cycle code at ``-O1`` (True: simulates about ten times
        faster) or ``-O0`` (False: builds about three times faster). By default (None) as
        :func:`nnfab.sim.harness.worth_optimizing` judges the longest shard, unless only the other level's build is
        cached (:func:`nnfab.sim.harness.choose_optimize`). Both builds are cached apart.
    debug : bool
        On a mismatch, run the first mismatching vector again alone with FST tracing and
        find the first layer whose output differs (:func:`nnfab.gen.verify_debug.debug_mismatch`;
        a traced build of its own); the result's ``debug`` holds the report. With
        ``use_cache=False`` the trace is still kept (in a temporary folder it names).

    Returns
    -------
    VerifyResult

    Raises
    ------
    SimulationError
        If the RTL could not be built or the simulation did not finish.
    ValueError
        If ``x`` holds no vectors or ``p_stall`` is outside [0, 1).
    """
    say = progress or (lambda text: None)
    seconds = {}
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("No input vectors to verify")
    if not 0 <= p_stall < 1:
        raise ValueError(f"Stall chance must be at least 0 and below 1, not {p_stall!r}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"Jobs must be a positive integer, not {jobs!r}")
    if input_cast not in ("nearest", "format"):
        raise ValueError(f"Input cast must be 'nearest' or 'format', not {input_cast!r}")
    codes = quantize(x, model.input_format if input_cast == "format" else
                     model.input_format.replace(rounding="RND_CONV", overflow="SAT"))

    say(f"golden model on {len(x)} vectors")
    started = time.perf_counter()
    # In blocks of rows: the golden model is vectorized over a batch, and blocks keep its
    # working arrays in the CPU cache (several times faster than one batch of 10,000).
    block = golden_block(model)
    golden = np.concatenate([run_network(model, codes[i:i + block])
                             for i in range(0, len(codes), block)])
    seconds["golden"] = time.perf_counter() - started

    if verilog is not None and timing is None:
        raise TypeError("Verify of given Verilog needs its timing (latency, initiation "
                        "interval)")
    with contextlib.ExitStack() as stack:
        if not use_cache:
            cache_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="nnfab-build-"))
        cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
        return _verify(model, x, codes, golden, seconds, say, labels=labels,
                       float_model=float_model, seed=seed, p_stall=p_stall, p_idle=p_idle,
                       warmup=warmup, multiplier_threshold=multiplier_threshold,
                       cache_dir=cache_dir, verilog=verilog, timing=timing,
                       use_cache=use_cache, debug=debug, jobs=jobs, optimize=optimize)


def _verify(model, x, codes, golden, seconds, say, *, labels, float_model, seed, p_stall,
            p_idle, warmup, multiplier_threshold, cache_dir, verilog, timing, use_cache, debug,
            jobs, optimize):
    started = time.perf_counter()
    verilog_cached = verilog is not None
    if verilog is None:
        # Imported here: a cached run needs neither Amaranth nor the engines.
        from .timing import network_verilog

        converted = network_verilog(model, name=verilog_name(model.name),
                                    multiplier_threshold=multiplier_threshold,
                                    cache_dir=cache_dir, use_cache=use_cache, say=say)
        verilog, verilog_cached = converted.verilog, converted.hit
        timing = (converted.details["latency"], converted.details["initiation_interval"])
    seconds["elaborate"] = time.perf_counter() - started

    golden = np.asarray(golden, dtype=np.int64).reshape(-1, *model.output_shape)
    shards = [part for part in np.array_split(np.arange(len(x)), min(jobs, len(x))) if len(part)]
    say("building with Verilator (cached when unchanged) and simulating"
        + (f" in {len(shards)} processes" if len(shards) > 1 else ""))
    started = time.perf_counter()

    # One compiler optimization level for every shard, so that they share one build: the
    # longest shard's cycles at the design's initiation interval, slowed by the stalls.
    p_idle_run = p_stall if p_idle is None else p_idle
    cycles_per_vector = max(model.n_inputs // model.input_shape[-1], timing[1] or 1)
    cycles = ((min(warmup, len(x)) + max(len(part) for part in shards)) * cycles_per_vector
              / ((1 - p_idle_run) * (1 - p_stall)))
    if optimize is None:
        optimize = choose_optimize(verilog, cycles, toplevel=verilog_name(model.name),
                                   cache_dir=cache_dir, **_payload_widths(model))

    def run_shard(k):
        first_vector, end_vector = int(shards[k][0]), int(shards[k][-1]) + 1
        return _run_shard(model, verilog, timing, codes[first_vector:end_vector],
                          golden[first_vector:end_vector], first_vector, warmup=warmup,
                          seed=seed + k, p_stall=p_stall, p_idle=p_idle_run,
                          cache_dir=cache_dir, optimize=optimize)

    if len(shards) == 1:
        runs = [run_shard(0)]
    else:
        # Threads, each waiting on a simulator process of its own; the first to take the
        # build lock builds, the others wait for it and reuse the build.
        # Worker threads install no signal handlers: on Ctrl-C or SIGTERM (raised here, in
        # the main thread) their simulators are ended, so nothing is left running.
        pool = concurrent.futures.ThreadPoolExecutor(len(shards))
        try:
            runs = list(pool.map(run_shard, range(len(shards))))
        except BaseException:
            stop_active_processes()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            allow_processes()
    seconds["verilator_build"] = max(run["results"].build_seconds for run in runs)
    seconds["simulation"] = max(run["results"].run_seconds for run in runs)
    seconds["rtl_total"] = time.perf_counter() - started
    measured = runs[0]["measured"]
    streamed = np.concatenate([run["streamed"] for run in runs])
    expected = np.concatenate([run["expected"] for run in runs])
    vector_of = np.concatenate([run["vector_of"] for run in runs])
    differs = np.concatenate([run["differs"] for run in runs])
    wrong = set().union(*(run["wrong"] for run in runs))
    n_mismatches = len(wrong)
    rtl = np.concatenate([run["rtl"] for run in runs])
    cocotb_tests = tuple(sum(getattr(run["results"], name) for run in runs)
                         for name in ("total", "passed", "failed"))
    built = any(run["results"].built for run in runs)
    first = []
    for position in np.flatnonzero(differs)[:5]:
        i = int(vector_of[position])
        first.append((i, expected[position].reshape(-1).tolist(),
                      streamed[position].reshape(-1).tolist()))
    report = None
    if wrong and debug:
        say(f"tracing vector {min(wrong)}, the first that mismatched")
        started = time.perf_counter()
        report = debug_mismatch(model, verilog, codes, min(wrong), cache_dir=cache_dir)
        seconds["debug_trace"] = time.perf_counter() - started
    accuracy = {}
    if labels is not None:
        labels = np.asarray(labels)
        if float_model is not None:
            reference = float_model.forward(to_float(codes, model.input_format))
            accuracy["float"] = _accuracy(reference, labels)
        accuracy["golden"] = _accuracy(golden, labels)
        accuracy["rtl"] = _accuracy(rtl, labels[:len(rtl)])
    return VerifyResult(
        n_vectors=len(x), n_mismatches=n_mismatches, first_mismatches=first,
        latency=timing[0], initiation_interval=timing[1],
        initiation_interval_exact=not any(len(layer.input_shape) == 3
                                          for layer in model.layers),
        measured_latency=measured.get("latency"),
        measured_initiation_interval=measured.get("initiation_interval"),
        accuracy=accuracy, seconds=seconds, build_cached=not built,
        verilog_cached=verilog_cached, debug=report,
        cocotb_tests=cocotb_tests, rtl_outputs=rtl)


def _payload_widths(model):
    return {"in_width": packed_width([model.input_format] * model.input_shape[-1]),
            "out_width": packed_width([model.output_format] * model.output_shape[-1])}


def _run_shard(model, verilog, timing, codes, golden, offset, *, warmup, seed, p_stall, p_idle,
               cache_dir, optimize):
    """One simulator process on ``codes`` (vectors ``offset`` on): the first ``warmup`` at full
    rate (latency, II), then all of them under random stalls; outputs compared with
    ``golden``."""
    n_warm = min(warmup, len(codes))
    stream_codes = np.concatenate([codes[:n_warm], codes])
    words_in = pack_transfers(stream_codes, model.input_shape, model.input_format)
    outputs_per_vector = model.n_outputs // model.output_shape[-1]
    n_out = len(stream_codes) * outputs_per_vector
    transfers_per_vector = len(words_in) // len(stream_codes)
    run = run_harness(
        verilog, toplevel=verilog_name(model.name), words_in=words_in, n_out=n_out,
        warmup_in=n_warm * transfers_per_vector, warmup_out=n_warm * outputs_per_vector,
        seed=seed, p_idle=p_idle, p_stall=p_stall, burst=2 * timing[0] + 2, cache_dir=cache_dir,
        optimize=optimize,
        transfers_per_vector=transfers_per_vector, initiation_interval=timing[1],
        **_payload_widths(model))
    if run.timed_out:
        c = run.counters
        raise SimulationError(f"The simulation of {model.name!r} timed out: after {c['cycle']} "
                              f"cycles {c['n_in']} of {len(words_in)} inputs were accepted and "
                              f"{c['n_out']} of {n_out} outputs produced")
    words_out = run.words_out[:len(run.words_out) - len(run.words_out) % outputs_per_vector]
    streamed = unpack_transfers(words_out, model.output_shape, model.output_format)
    expected = np.concatenate([golden[:n_warm], golden])
    vector_of = offset + np.concatenate([np.arange(n_warm), np.arange(len(codes))])
    n = min(len(streamed), len(expected))
    differs = np.any((streamed[:n] != expected[:n]).reshape(n, -1), axis=1)
    return {
        "results": run.results,
        "measured": {"latency": run.latency, "initiation_interval": run.initiation_interval},
        "streamed": streamed[:n], "expected": expected[:n], "vector_of": vector_of[:n],
        "differs": differs,
        "wrong": set(vector_of[:n][differs].tolist()) | set(vector_of[n:].tolist()),
        "rtl": streamed[n_warm:],  # the stalled pass: one output per vector, in order
    }
