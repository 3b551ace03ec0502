"""MLPerf Tiny's TFLite convolutions on Verilator: KWS operators 0 to 8 (and ResNet-8's runs of
convolutions) through ``nnfab verify``, as JSON.

    python bench/tflite_convs.py [--models kws resnet] [--vectors 20] [--seed 0]

For each run of operators (:func:`nnfab.gen.importers.tflite.load_tflite` with
``operators=range(...)``), the inputs are the reference interpreter's (``BUILTIN_REF``) values
of the run's input tensor on the model's real input (KWS: ``kws_sample_input.npy``) and seeded
int8 inputs (the first two all -128 and all 127). The golden model is first checked against
the interpreter at every operator's output, then the RTL against the golden model under 10%
idle cycles and back-pressure. Printed per run: layers, reuse factors, vectors, golden and RTL
mismatches, latency and initiation interval (expected and measured, cycles), and seconds per
phase (elaboration, Verilator build, simulation).

Needs ``shared/`` beside the repository (or ``$NNFAB_SHARED_DIR``) and ``ai-edge-litert``.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from nnfab.gen.importers.tflite import load_tflite
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.gen.verify import verify
from nnfab.sim.golden.network import trace_network
from nnfab.sim.tflite_reference import reference_tensors

SHARED = Path(os.environ.get("NNFAB_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
MODELS = SHARED / "models" / "mlperf-tiny"
#: Runs of convolutions, by model (every operator of both models is built now; the whole models'
#: RTL waits for time-shared output stages: each conv's stage is 64 full-rate lanes today).
RUNS = {"kws": ("kws_ref_model.tflite", "kws_sample_input.npy", (range(0, 9),)),
        "resnet": ("pretrainedResnet_quant.tflite", None,
                   (range(0, 3), range(4, 6), range(6, 7), range(8, 10), range(10, 11)))}


def bench_run(path, run, inputs, seed):
    description = read_tflite(path)
    ops = [description.operators[k] for k in run]
    first = ops[0].inputs[0]
    reference = reference_tensors(path, inputs, sorted({first} | {op.outputs[0] for op in ops}))
    start = time.perf_counter()
    model = load_tflite(path, operators=run)
    load_seconds = time.perf_counter() - start
    x = reference[first].reshape((len(inputs),) + model.input_shape)
    trace = trace_network(model, x)
    golden_mismatches = sum(
        int(np.count_nonzero(np.asarray(trace[f"{op.opcode.lower()}_{op.index}_requantize"])
                             .reshape(len(inputs), -1) != reference[op.outputs[0]]
                             .reshape(len(inputs), -1)))
        for op in ops)
    result = verify(model, x.astype(np.float64), seed=seed, p_stall=0.1, warmup=2)
    return {"model": path.name, "operators": [run.start, run.stop - 1],
            "layers": len(model.layers),
            "reuse_factors": [layer.reuse_factor for layer in model.layers
                              if hasattr(layer, "reuse_factor")],
            "vectors": len(inputs), "golden_mismatches": golden_mismatches,
            "rtl_mismatches": result.n_mismatches, "passed": bool(result.passed),
            "latency": [result.latency, result.measured_latency],
            "initiation_interval": [result.initiation_interval,
                                    result.measured_initiation_interval],
            "seconds": {"load": round(load_seconds, 2),
                        **{k: round(v, 2) for k, v in result.seconds.items()}}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(RUNS), default=["kws"])
    parser.add_argument("--vectors", type=int, default=20, help="seeded inputs per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = []
    for name in args.models:
        file, sample, runs = RUNS[name]
        path = MODELS / file
        shape = read_tflite(path).tensors[read_tflite(path).inputs[0]].shape[1:]
        rng = np.random.default_rng(args.seed)
        inputs = rng.integers(-128, 128, (args.vectors,) + tuple(shape), dtype=np.int8)
        inputs[0], inputs[1] = -128, 127
        if sample:
            inputs = np.concatenate([np.load(MODELS / sample), inputs])
        for run in runs:
            results.append(bench_run(path, run, inputs, args.seed))
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
