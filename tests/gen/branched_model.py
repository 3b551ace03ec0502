"""The QONNX branched model of hls4ml's examples, and the same graph at a smaller frame.

``branched_model_ch_last.onnx`` has a fixed 256x256x3 input. :func:`at_frame` rebuilds its
IR with every spatial size scaled to another input frame: the same layers, weights, formats,
kernels, strides, paddings, pooling and upsampling factors, so every output pixel is computed
by the same arithmetic and only the frame (and with it the borders' share) is smaller. Used by
the RTL test of a cropped frame and by ``bench/branched_full_image.py``.
"""

import dataclasses

from nnfab.ir import INPUT, Model

from .importers.conftest import SHARED, need

PATH = SHARED / "models" / "hls4ml-example-models" / "onnx" / "branched_model_ch_last.onnx"


def load_branched(max_multipliers=None):
    """The imported model, with reuse factors for ``max_multipliers`` when given."""
    from nnfab.gen.importers.qonnx import load_qonnx
    from nnfab.gen.passes.reuse import ChooseReuseFactors

    model = load_qonnx(need(PATH))  # a missing shared file fails, never skips
    if max_multipliers is not None:
        model, _ = ChooseReuseFactors(max_multipliers=max_multipliers).apply(model)
    return model


def at_frame(model, frame):
    """``model`` with input frame ``(H, W)``: each layer rebuilt for its inputs' new shapes.

    Handles the kinds of the branched model (``conv2d``, ``activation``, ``pool``,
    ``upsample``, ``concatenate``); ``H`` and ``W`` must survive its pooling."""
    shapes = {INPUT: (*frame, model.input_shape[-1])}
    layers = []
    for layer in model.layers:
        new = [shapes[t] for t in layer.inputs]
        if layer.kind in ("conv2d", "pool"):
            layer = dataclasses.replace(
                layer, spec=dataclasses.replace(layer.spec, input_shape=new[0]))
        elif layer.kind in ("activation", "upsample"):
            layer = dataclasses.replace(layer, shape=new[0])
        elif layer.kind == "concatenate":
            layer = dataclasses.replace(layer, shapes=tuple(new))
        else:
            raise ValueError(f"Layer {layer.name!r}: kind {layer.kind!r} is not handled")
        layers.append(layer)
        shapes[layer.name] = tuple(layer.output_shape)
    return Model(model.name, shapes[INPUT], model.input_format, layers)


def up_to(model, name):
    """The model's layers up to ``name`` (included), ``name`` as its output: the join alone,
    without what follows it (whose back-pressure a full-rate simulation would measure)."""
    layers = model.layers[:[layer.name for layer in model.layers].index(name) + 1]
    return Model(model.name, model.input_shape, model.input_format, layers)


def run_rtl(model, verilog, x, *, seed, stall, burst, cache_dir):
    """``x`` (values, shape ``(n, *input_shape)``) through ``verilog`` (of ``model``) in the
    HDL harness on Verilator: once at full rate (the warm-up), then with random idle cycles
    at the input and random back-pressure at the output (share ``stall``, bursts of 1 to
    ``burst`` cycles); outputs compared with the golden model code for code. Returns a dict
    of figures (seconds, cycles, mismatches)."""
    import math
    import time

    import numpy as np

    from nnfab.casts import quantize
    from nnfab.gen.emit import verilog_name
    from nnfab.gen.verify import pack_transfers, unpack_transfers
    from nnfab.packing import packed_width
    from nnfab.sim.golden.network import run_network
    from nnfab.sim.harness import run_harness

    out = {}
    codes = quantize(x, model.input_format.replace(rounding="RND_CONV", overflow="SAT"))
    started = time.perf_counter()
    golden = np.asarray(run_network(model, codes), dtype=np.int64)
    out["golden_s"] = round(time.perf_counter() - started, 1)
    stream = np.concatenate([codes, codes])  # warm-up at full rate, then under stalls
    words_in = pack_transfers(stream, model.input_shape, model.input_format)
    per_image = len(words_in) // len(stream)
    outputs_per_image = math.prod(model.output_shape[:-1])
    started = time.perf_counter()
    run = run_harness(
        verilog, toplevel=verilog_name(model.name), words_in=words_in,
        n_out=len(stream) * outputs_per_image, warmup_in=len(codes) * per_image,
        warmup_out=len(codes) * outputs_per_image, seed=seed, p_idle=stall, p_stall=stall,
        burst=burst, cache_dir=cache_dir,
        in_width=packed_width([model.input_format] * model.input_shape[-1]),
        out_width=packed_width([model.output_format] * model.output_shape[-1]),
        transfers_per_vector=per_image)
    out["harness_s"] = round(time.perf_counter() - started, 1)
    out["verilator_build_s"] = round(run.results.build_seconds, 1)
    out["built"] = bool(run.results.built)
    out["sim_s"] = round(run.results.run_seconds, 1)
    out["cocotb_tests"] = [run.results.total, run.results.passed]
    out["timed_out"] = run.timed_out
    out["cycles"] = run.counters["cycle"]
    out["cycles_per_s"] = round(run.counters["cycle"] / max(run.results.run_seconds, 1e-9))
    out["measured_latency"] = run.latency
    out["warmup_cycles"] = run.cycles
    out["stall_cycles"] = run.counters["stall_cycles"]
    out["idle_cycles"] = run.counters["idle_cycles"]
    got = unpack_transfers(run.words_out, model.output_shape, model.output_format)
    want = np.concatenate([golden, golden])
    out["outputs"] = len(run.words_out)
    out["outputs_expected"] = len(stream) * outputs_per_image
    n = min(len(got), len(want))
    out["mismatched_codes"] = int(np.sum(got[:n] != want[:n])) + int(want[n:].size)
    out["mismatched_pixels"] = int(np.sum(np.any(
        (got[:n] != want[:n]).reshape(n, -1, model.output_shape[-1]), axis=-1)))
    return out
