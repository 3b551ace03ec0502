"""Verification: the generated RTL on Verilator against the golden model, code for code."""

import time
from dataclasses import dataclass, field

import numpy as np

from nnfab.errors import SimulationError
from nnfab.packing import pack, unpack
from nnfab.sim.golden.cast import quantize, to_float
from nnfab.sim.golden.network import run_network
from nnfab.sim.harness import run_harness

from .assemble import Network
from .emit import verilog_name

__all__ = ["VerifyResult", "verify", "pack_transfers", "unpack_transfers"]


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
    cocotb_tests: tuple = (0, 0, 0)
    #: The RTL's output codes, shape (n, *output_shape) (fewer rows if it stopped early).
    rtl_outputs: np.ndarray | None = field(default=None, repr=False)

    @property
    def passed(self):
        return (self.n_mismatches == 0 and self.cocotb_tests[0] == self.cocotb_tests[1] > 0
                and self.measured_latency == self.latency)


def _accuracy(outputs, labels):
    classes = outputs[:, 0] if outputs.shape[-1] == 1 else np.argmax(outputs, axis=-1)
    return float(np.mean(classes.reshape(-1) == labels))


def verify(model, x, *, labels=None, float_model=None, seed=0, p_stall=0.1, warmup=64,
           multiplier_threshold=3, progress=None, cache_dir=None, input_cast="nearest",
           p_idle=None):
    """Stream ``x`` through the RTL of ``model`` on Verilator and compare every output code
    with the golden model.

    Parameters
    ----------
    model : nnfab.gen.ir.Model
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
    p_stall : float
        Share of cycles in which the output is not ready, after the warm-up at full rate;
        stalls come in bursts of 1 to ``2 * latency + 2`` cycles.
    p_idle : float, optional
        Share of cycles in which no input is offered after the warm-up, in bursts like the
        stalls; ``p_stall`` by default.
    warmup : int
        Vectors streamed first at full rate (no idle, no stall) to measure the latency and
        initiation interval; at most half the vectors (at least one), so that every run has
        idle cycles and back-pressure.

    Returns
    -------
    VerifyResult

    Raises
    ------
    SimulationError
        If the RTL could not be built or the simulation did not finish.
    """
    say = progress or (lambda text: None)
    seconds = {}
    x = np.asarray(x, dtype=np.float64)
    if input_cast not in ("nearest", "format"):
        raise ValueError(f"Input cast must be 'nearest' or 'format', not {input_cast!r}")
    codes = quantize(x, model.input_format if input_cast == "format" else
                     model.input_format.replace(rounding="RND_CONV", overflow="SAT"))

    say(f"golden model on {len(x)} vectors")
    started = time.perf_counter()
    golden = run_network(model, codes)
    seconds["golden"] = time.perf_counter() - started

    say("elaborating and converting to Verilog")
    started = time.perf_counter()
    network = Network(model, multiplier_threshold=multiplier_threshold)
    seconds["elaborate"] = time.perf_counter() - started

    words_in = pack_transfers(codes, model.input_shape, model.input_format)
    n_out = len(x) * (model.n_outputs // model.output_shape[-1])
    transfers_per_vector = len(words_in) // len(x)
    n_warm = min(warmup, max(1, len(x) // 2))
    say("building with Verilator (cached when unchanged) and simulating")
    started = time.perf_counter()
    run = run_harness(network, toplevel=verilog_name(model.name), words_in=words_in,
                      n_out=n_out, warmup_in=n_warm * transfers_per_vector,
                      warmup_out=n_warm * (n_out // len(x)), seed=seed,
                      p_idle=p_stall if p_idle is None else p_idle, p_stall=p_stall,
                      burst=2 * network.latency + 2, cache_dir=cache_dir)
    results = run.results
    seconds["verilator_build"] = results.build_seconds
    seconds["simulation"] = results.run_seconds
    seconds["rtl_total"] = time.perf_counter() - started
    if run.timed_out:
        c = run.counters
        raise SimulationError(f"The simulation of {model.name!r} timed out: after {c['cycle']} "
                              f"cycles {c['n_in']} of {len(words_in)} inputs were accepted and "
                              f"{c['n_out']} of {n_out} outputs produced")
    measured = {"words_out": run.words_out, "latency": run.latency,
                "initiation_interval": run.initiation_interval}
    rtl = unpack_transfers(measured["words_out"], model.output_shape,
                           model.output_format)
    golden = np.asarray(golden, dtype=np.int64).reshape(-1, *model.output_shape)
    n = min(len(rtl), len(golden))
    differs = np.flatnonzero(np.any((rtl[:n] != golden[:n]).reshape(n, -1), axis=1))
    n_mismatches = int(differs.size) + abs(len(golden) - len(rtl))
    first = [(int(i), golden[i].reshape(-1).tolist(), rtl[i].reshape(-1).tolist())
             for i in differs[:5]]
    accuracy = {}
    if labels is not None:
        labels = np.asarray(labels)
        if float_model is not None:
            reference = float_model.forward(to_float(codes, model.input_format))
            accuracy["float"] = _accuracy(reference, labels)
        accuracy["golden"] = _accuracy(golden, labels)
        accuracy["rtl"] = _accuracy(rtl[:n], labels[:n])
    return VerifyResult(
        n_vectors=len(x), n_mismatches=n_mismatches, first_mismatches=first,
        latency=network.latency, initiation_interval=network.initiation_interval,
        measured_latency=measured.get("latency"),
        measured_initiation_interval=measured.get("initiation_interval"),
        accuracy=accuracy, seconds=seconds, build_cached=not results.built,
        cocotb_tests=(results.total, results.passed, results.failed), rtl_outputs=rtl)
