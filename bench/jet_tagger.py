"""The float Keras jet tagger (16→64→32→32→5, PTQ to 16-bit formats) end to end, as JSON:
seconds to build Verilog, seconds to verify 10,000 vectors on Verilator (build and simulation
apart, cold and with a cached build), and golden-model inferences per second on one core.

    python bench/jet_tagger.py [--shared ../shared] [--reuse-factor 1]

Targets (issue 5): Verilog in under 5 s; golden model over 1,000,000 inferences/s on one core;
a cached re-verify of 10,000 vectors in under 10 s.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from nnfab.casts import quantize
from nnfab.fixed import FixedFormat
from nnfab.gen.emit import build_outputs
from nnfab.gen.load import load_model
from nnfab.gen.passes import ChooseReuseFactors
from nnfab.gen.ptq import PTQConfig
from nnfab.gen.verify import verify
from nnfab.sim.golden.network import run_network


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--reuse-factor", type=int, default=1)
    parser.add_argument("--vectors", type=int, default=10_000)
    args = parser.parse_args(argv)
    path = args.shared / "models/hls4ml-example-models/keras/KERAS_3layer.json"
    bits = PTQConfig(weight_bits=16, bias_bits=16, activation_bits=16)
    loaded = load_model(path, ptq_config=bits, input_format=FixedFormat(16, 6))
    model, _ = ChooseReuseFactors(reuse_factor=args.reuse_factor).apply(loaded.model)
    report = {"benchmark": "jet_tagger", "model": "KERAS_3layer, PTQ 16-bit",
              "reuse_factor": args.reuse_factor}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = build_outputs(model, Path(tmp) / "out")
        report["verilog_seconds"] = round(time.perf_counter() - started, 2)
        report["verilog_bytes"] = result.verilog_path.stat().st_size
        x = np.random.default_rng(0).normal(0.0, 1.5, (args.vectors, *model.input_shape))
        for label in ("cold", "cached"):
            started = time.perf_counter()
            outcome = verify(model, x, cache_dir=Path(tmp) / "cache")
            report[f"verify_{label}"] = {
                "total_seconds": round(time.perf_counter() - started, 2),
                "verilator_build_seconds": round(outcome.seconds["verilator_build"], 2),
                "simulation_seconds": round(outcome.seconds["simulation"], 2),
                "mismatches": outcome.n_mismatches, "vectors": outcome.n_vectors,
                "cached_build": outcome.build_cached}
    codes = quantize(np.random.default_rng(1).normal(0.0, 1.5, (200_000, 16)),
                     model.input_format.replace(rounding="RND_CONV", overflow="SAT"))
    with threadpool_limits(limits=1):
        run_network(model, codes[:1000])  # warm caches
        started = time.perf_counter()
        run_network(model, codes)
        seconds = time.perf_counter() - started
    report["golden_inferences_per_second_one_core"] = round(len(codes) / seconds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
