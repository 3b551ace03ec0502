"""The QONNX branched model (hls4ml's ``branched_model_ch_last.onnx``, 256x256x3) as RTL on
one full seeded image, through the HDL-side harness on Verilator: prints JSON.

Reuse factors come from a multiplier budget per layer (``--max-multipliers``, as ``nnfab
build``); skip-FIFO depths are the analytic ones (:mod:`nnfab.gen.skip_fifos`; a 256x256
frame is beyond the simulated limit). The image runs twice: once at full rate (the harness's
warm-up, which measures latency), then with random idle cycles at the input and random
back-pressure at the output (``--stall``). Outputs are compared with the golden model code for
code. ``--frame H W`` builds the same graph at a smaller frame (:func:`at_frame`).

Measured here (2 shared cores, load ~10; ``--max-multipliers 64``: reuse factors 1 to 32,
1,092 multipliers): 7.6 MB of Verilog converted in 97 s, a Verilator build of 586 s, and
4.47 M cycles for the two passes of one image in 253 s (17.7 k cycles/s); the full-rate pass
takes 2,132,850 cycles, the slowest engine's 2,097,152 (65,536 pixels x reuse factor 32)
plus the latency (42,411); 0 mismatches of 131,072 output pixels for seed 0 (normal) and seed
1 (saturating). Skip FIFOs 556 and 2,460 transfers of 128 bits (one frame would be 65,538).

Usage: python bench/branched_full_image.py [--max-multipliers 64] [--seed 0]
       [--kind normal|saturating] [--stall 0.1] [--frame 256 256] [--cache DIR]
       [--simulated]
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gen.branched_model import at_frame, load_branched, run_rtl  # noqa: E402


def image(seed, kind, shape):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(0, 0.5, (1, *shape))
    return rng.uniform(-1.5, 1.5, (1, *shape))  # beyond the input range: saturation


def path_latency(model, network):
    """Sum of engine latencies along the slowest path: an estimate of the network's latency
    in cycles (for the harness's burst lengths; the warm-up measures the real one)."""
    engine = {layer.name: e for layer, e in network.engines}
    done = {"input": 0}
    for layer in model.layers:
        done[layer.name] = max(done[t] for t in layer.inputs) + math.ceil(
            engine[layer.name].latency)
    return done[model.layers[-1].name]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-multipliers", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=("normal", "saturating"), default="normal")
    parser.add_argument("--stall", type=float, default=0.1)
    parser.add_argument("--frame", type=int, nargs=2, default=None)
    parser.add_argument("--cache", default="/tmp/nnfab-branched-bench")
    parser.add_argument("--simulated", action="store_true",
                        help="also simulate the skip-FIFO depths (small frames only)")
    args = parser.parse_args(argv)

    from amaranth.back import verilog as amaranth_verilog

    from nnfab.gen.assemble import CONSTANT_WEIGHTS, Network, skip_fifo_depths_of
    from nnfab.gen.emit import verilog_name
    from nnfab.gen.skip_fifos import analytic_skip_fifo_depths

    out = {"max_multipliers": args.max_multipliers, "seed": args.seed, "kind": args.kind,
           "stall": args.stall}
    model = load_branched(args.max_multipliers)
    if args.frame:
        model = at_frame(model, tuple(args.frame))
    out["input_shape"] = list(model.input_shape)
    started = time.perf_counter()
    depths = analytic_skip_fifo_depths(model, CONSTANT_WEIGHTS.engine)
    out["skip_fifo_depths_analytic"] = {f"{n}[{k}]": d for (n, k), d in depths.items()}
    out["analytic_s"] = round(time.perf_counter() - started, 2)
    out["skip_fifo_depth_one_frame"] = math.prod(model.input_shape[:2]) + 2
    if args.simulated:
        started = time.perf_counter()
        simulated = skip_fifo_depths_of(model)
        out["skip_fifo_depths_simulated"] = {f"{n}[{k}]": d for (n, k), d in simulated.items()}
        out["simulated_depths_s"] = round(time.perf_counter() - started, 1)

    network = Network(model, skip_fifo_depths=depths)
    out["reuse_factors"] = {layer.name: layer.reuse_factor for layer in model.layers
                            if layer.kind == "conv2d"}
    out["multipliers"] = sum(getattr(e, "n_multipliers", 0) for _, e in network.engines)
    out["initiation_interval"] = network.initiation_interval
    latency = path_latency(model, network)
    out["latency_estimate"] = latency
    started = time.perf_counter()
    top = verilog_name(model.name)
    text = amaranth_verilog.convert(network, name=top, emit_src=False)
    out["convert_s"] = round(time.perf_counter() - started, 1)
    out["verilog_bytes"] = len(text)
    print(json.dumps(out), file=sys.stderr, flush=True)

    x = image(args.seed, args.kind, model.input_shape)
    out.update(run_rtl(model, text, x, seed=args.seed, stall=args.stall,
                       burst=2 * latency + 2, cache_dir=args.cache))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
