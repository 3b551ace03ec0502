"""A failure you can debug: the first mismatching vector again, traced, down to the layer.

When ``nnfab verify`` finds a mismatch, :func:`debug_mismatch` runs that one vector again in the
HDL harness with FST tracing (no idle cycles, no back-pressure), reads every engine's output
stream from the trace, compares each layer's transfers with the golden model's per-layer trace
(:func:`nnfab.sim.golden.network.trace_network`) and names the first layer whose output differs,
with the signal names to look at in the trace and the Verilog. The engines are submodules of
the network named after their layers, so a layer ``fc1`` is the instance
``nnfab_harness.dut.fc1`` of the trace, with the stream ports ``o__valid``, ``o__ready`` and
``o__payload``.
"""

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnfab.errors import NnfabError
from nnfab.packing import packed_width, unpack
from nnfab.sim.golden.network import trace_network
from nnfab.sim.harness import HARNESS_MODULE, run_harness

from .emit import verilog_name

__all__ = ["MismatchReport", "debug_mismatch", "layer_outputs_from_trace"]

_PERIOD_PS = 10_000  # the harness's clock, nnfab.sim.harness_tb.PERIOD_NS, in the trace's unit


@dataclass(frozen=True)
class MismatchReport:
    """Where the first mismatching vector first goes wrong.

    Attributes
    ----------
    vector : int
        Index of the vector (in the inputs given to verify).
    trace_path : pathlib.Path
        The FST trace of that vector alone, at full rate.
    layer : str or None
        The first layer whose RTL output differs from the golden model's; None when every
        traced layer agrees (then the difference is in the harness or comes from stalls).
    expected, got : list of int or None
        That layer's output codes, golden and RTL (``got`` is None when the RTL produced no
        output for it).
    signals : tuple of str
        The layer's output stream in the trace (``nnfab_harness.dut.<layer>.o__payload``, ...).
    verilog_module : str or None
        The Verilog module of that layer's engine.
    """

    vector: int
    trace_path: Path
    layer: str | None
    expected: list | None
    got: list | None
    signals: tuple
    verilog_module: str | None

    def lines(self):
        """The report as lines of text."""
        out = [f"first mismatching vector {self.vector} traced: {self.trace_path}"]
        if self.layer is None:
            out.append("every layer's output matches the golden model when traced alone")
            return out
        out.append(f"first layer that differs: {self.layer!r}")
        out.append(f"  expected {self.expected}")
        out.append(f"  got      {self.got}")
        out.append(f"  signals: {', '.join(self.signals)}")
        if self.verilog_module:
            out.append(f"  Verilog module: {self.verilog_module}")
        return out


def _instance(layer_name):
    return f"{HARNESS_MODULE}.dut.{layer_name}"


def layer_outputs_from_trace(trace_path, model):
    """Every layer's output transfers in an FST or VCD trace of the harness.

    Parameters
    ----------
    trace_path : str or os.PathLike
    model : nnfab.ir.Model
        The model the traced design was built from: its layer names, output shapes and
        formats say where the streams are and how to unpack their payloads.

    Returns
    -------
    dict of str to list of list of int
        For each layer whose output stream is in the trace, its transfers in order, each as
        the lane codes of one transfer.
    """
    import pywellen

    wave = pywellen.Waveform(str(trace_path))
    variables = {var.full_name: var for var in wave.all_vars()}
    edges = []
    clock = variables.get(f"{HARNESS_MODULE}.clk")
    if clock is None:
        raise NnfabError(f"Trace {str(trace_path)!r} has no {HARNESS_MODULE}.clk")
    wave.stream_changes(lambda time, signal, value: edges.append(time) if value == 1 else None,
                        [clock])
    outputs = {}
    for layer in model.layers:
        base = _instance(layer.name)
        names = [f"{base}.o__{port}" for port in ("valid", "ready", "payload")]
        if not all(name in variables for name in names):
            continue
        valid, ready, payload = (variables[name].signal for name in names)
        formats = [layer.output_format] * layer.output_shape[-1]
        transfers = []
        for edge in edges:
            before = edge - 1  # the values the rising edge samples
            if valid.value_at(before) == 1 and ready.value_at(before) == 1:
                transfers.append(unpack(int(payload.value_at(before)), formats))
        outputs[layer.name] = transfers
    return outputs


def _verilog_module(verilog, model_name, layer_name):
    name = f"{verilog_name(model_name)}.{layer_name}"
    return f"\\{name}" if f"module \\{name} " in verilog or f"module \\{name}(" in verilog \
        else None


def debug_mismatch(model, verilog, codes, vector, *, cache_dir, out_dir=None):
    """Trace vector ``vector`` of ``codes`` alone through ``verilog`` and find the first layer
    whose output differs from the golden model.

    Parameters
    ----------
    model : nnfab.ir.Model
    verilog : str
        The design that mismatched (its top module named after the model).
    codes : ndarray of int, shape (n, *model.input_shape)
        The input codes verify streamed.
    vector : int
        The first mismatching vector.
    cache_dir : str or os.PathLike
        As for verify (the traced simulator is a build of its own, cached like the others).
    out_dir : str or os.PathLike, optional
        Folder for the trace; a new temporary folder (kept) by default.

    Returns
    -------
    MismatchReport
    """
    from .verify import pack_transfers

    one = np.asarray(codes)[vector:vector + 1]
    words = pack_transfers(one, model.input_shape, model.input_format)
    per_vector = model.n_outputs // model.output_shape[-1]
    toplevel = verilog_name(model.name)
    run = run_harness(
        verilog, toplevel=toplevel, words_in=words, n_out=per_vector, warmup_in=len(words),
        warmup_out=per_vector, p_idle=0, p_stall=0, cache_dir=cache_dir, waves="fst",
        in_width=packed_width([model.input_format] * model.input_shape[-1]),
        out_width=packed_width([model.output_format] * model.output_shape[-1]),
        transfers_per_vector=len(words))
    folder = Path(out_dir) if out_dir is not None else Path(
        tempfile.mkdtemp(prefix=f"nnfab-mismatch-{toplevel}-"))
    folder.mkdir(parents=True, exist_ok=True)
    trace_path = folder / f"{toplevel}-vector{vector}.fst"
    source = run.results.results_file.parent / "dump.fst"
    if not source.is_file():
        raise NnfabError(f"The traced run of vector {vector} wrote no trace (log in "
                         f"{str(run.results.results_file.parent)!r})")
    shutil.copyfile(source, trace_path)
    rtl = layer_outputs_from_trace(trace_path, model)
    golden = trace_network(model, one)
    for layer in model.layers:
        if layer.name not in rtl:
            continue
        expected = np.asarray(golden[layer.name]).reshape(-1).tolist()
        transfers = math.prod(layer.output_shape[:-1])
        got_transfers = rtl[layer.name][:transfers]
        got = [code for transfer in got_transfers for code in transfer] or None
        if got != expected:
            base = _instance(layer.name)
            return MismatchReport(
                vector=vector, trace_path=trace_path, layer=layer.name, expected=expected,
                got=got, signals=tuple(f"{base}.o__{p}" for p in ("payload", "valid", "ready")),
                verilog_module=_verilog_module(verilog, model.name, layer.name))
    return MismatchReport(vector=vector, trace_path=trace_path, layer=None, expected=None,
                          got=None, signals=(), verilog_module=None)
