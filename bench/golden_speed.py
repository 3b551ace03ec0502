"""Golden-model speed on one core, beside hls4ml's C simulation, as JSON.

    python bench/golden_speed.py [--vectors 100000] [--reference-commit 611ed40] [--no-hls4ml]

Cases: the native jet tagger (``KERAS_3layer.json``, PTQ to 16-bit formats, input
``fixed<16,6>``, as ``bench/jet_tagger.py`` builds it) and the hls4ml ``keras-config.yml``
jet tagger (``ap_fixed<16,6>``, R=1, hls4ml's ``accum_t`` per-product arithmetic). For each:
inferences per CPU second of :func:`nnfab.sim.golden.network.run_network`, called on blocks of
``--block`` vectors (it is vectorized over a batch; blocks keep the working arrays in the CPU
cache), with BLAS on one thread; and whether its outputs equal, code for code on every vector,
those of the golden model of ``--reference-commit`` (loaded from git: its ``sim/golden``
package, with today's ``nnfab`` core). The default, 611ed40, is the code before the third round
of kernels (bias inside the matrix product, two-pass relu, softmax on the transpose); f183c5d,
the code before any fast kernel, has no golden model of the hls4ml softmax, so that case is
reported as not comparable there. For the hls4ml config,
also hls4ml's own C simulation (``predict``, compiled once) on the same inputs: its
inferences per second and how many of its outputs equal the golden model's.

Targets (issue 16): native jet tagger >= 1,000,000 inferences/s; hls4ml arithmetic >= 10x
hls4ml's C simulation; all results equal to today's code on 100,000 vectors.
"""

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from nnfab.fixed import FixedFormat
from nnfab.gen.load import load_model
from nnfab.gen.passes import ChooseReuseFactors
from nnfab.gen.ptq import PTQConfig
from nnfab.casts import quantize, to_float
from nnfab.sim.golden.network import run_network

REPO = Path(__file__).resolve().parents[1]
MODELS = Path("/work/shared/models/hls4ml-example-models")


def native_jet_tagger(models):
    bits = PTQConfig(weight_bits=16, bias_bits=16, activation_bits=16)
    loaded = load_model(models / "keras/KERAS_3layer.json", ptq_config=bits,
                        input_format=FixedFormat(16, 6))
    model, _ = ChooseReuseFactors(reuse_factor=1).apply(loaded.model)
    return model


def hls4ml_jet_tagger(models):
    from nnfab.gen.hls4ml import load_hls4ml

    _, model = load_hls4ml(models / "keras-config.yml")
    return model


def reference_golden(commit):
    """The ``run_network`` of ``sim/golden`` at ``commit``, imported from git as a package
    of its own (it imports today's ``nnfab`` core)."""
    folder = Path(tempfile.mkdtemp(prefix="nnfab-golden-ref-")) / f"golden_{commit}"
    folder.mkdir()
    names = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", commit,
                            "sim/golden/"], check=True, capture_output=True,
                           text=True).stdout.split()
    for name in names:
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{name}"], check=True,
                              capture_output=True, text=True).stdout
        (folder / Path(name).name).write_text(text)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module(f"{folder.name}.network").run_network


def per_second(function, codes, block):
    """Inferences per CPU second of ``function`` over ``codes`` in blocks, and the outputs."""
    function(codes[:block])  # warm: weight conversions, tables
    started = time.process_time()
    outputs = [function(codes[i:i + block]) for i in range(0, len(codes), block)]
    seconds = time.process_time() - started
    return len(codes) / seconds, np.concatenate(outputs)


def bench_case(name, model, x, args, reference):
    input_cast = model.input_format if name == "hls4ml-jet-tagger" else \
        model.input_format.replace(rounding="RND_CONV", overflow="SAT")
    codes = quantize(x, input_cast)
    report = {"case": name, "vectors": len(codes), "block": args.block}
    with threadpool_limits(1):
        rate, outputs = per_second(lambda c: run_network(model, c), codes, args.block)
        report["golden_inferences_per_s"] = round(rate)
        started = time.process_time()
        try:
            expected = reference(model, codes)
        except NotImplementedError as exc:  # a layer kind the reference commit lacks
            report["equal_to_reference"] = None
            report["reference_error"] = str(exc)
            report["reference_commit"] = args.reference_commit
            return report, codes, outputs
        report["reference_seconds"] = round(time.process_time() - started, 2)
        report["reference_inferences_per_s"] = round(len(codes) / (time.process_time() -
                                                                    started))
    expected = np.asarray(expected)
    report["equal_to_reference"] = bool(outputs.dtype == np.int64 and outputs.shape ==
                                        expected.shape and np.array_equal(outputs, expected))
    report["reference_commit"] = args.reference_commit
    return report, codes, outputs


def hls4ml_csim(x, codes, outputs, model, block):
    from tests.gen.hls4ml.reference import hls4ml_model

    with tempfile.TemporaryDirectory(prefix="nnfab-hls4ml-") as tmp:
        started = time.perf_counter()
        hls = hls4ml_model(MODELS / "keras-config.yml", tmp)
        compile_seconds = time.perf_counter() - started
        values = np.ascontiguousarray(to_float(codes, model.input_format))
        hls.predict(values[:block])
        started = time.process_time()
        predicted = np.concatenate([np.asarray(hls.predict(values[i:i + block])).reshape(
            -1, *model.output_shape) for i in range(0, len(values), block)])
        seconds = time.process_time() - started
    hls_codes = quantize(predicted, model.output_format)
    golden_values = outputs.reshape(len(outputs), -1)
    return {"compile_seconds": round(compile_seconds, 1),
            "inferences_per_s": round(len(values) / seconds),
            "outputs_equal_to_golden": int(np.sum(np.all(
                hls_codes.reshape(len(outputs), -1) == golden_values, axis=1))),
            "vectors": len(values)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--reference-commit", default="611ed40")
    parser.add_argument("--no-hls4ml", action="store_true",
                        help="skip hls4ml's C simulation (it compiles for about a minute)")
    args = parser.parse_args(argv)
    reference = reference_golden(args.reference_commit)
    reports = []
    for name, make in (("native-jet-tagger", native_jet_tagger),
                       ("hls4ml-jet-tagger", hls4ml_jet_tagger)):
        model = make(args.models)
        x = np.random.default_rng(args.seed).normal(0.0, 1.5, (args.vectors, *model.input_shape))
        report, codes, outputs = bench_case(name, model, x, args, reference)
        if name == "native-jet-tagger":
            report["target_1M_per_s"] = report["golden_inferences_per_s"] >= 1_000_000
        elif not args.no_hls4ml:
            sys.path.insert(0, str(REPO))
            csim = hls4ml_csim(x, codes, outputs, model, args.block)
            report["hls4ml_csim"] = csim
            report["speedup_vs_hls4ml"] = round(
                report["golden_inferences_per_s"] / csim["inferences_per_s"], 1)
            report["target_10x_hls4ml"] = report["speedup_vs_hls4ml"] >= 10
        reports.append(report)
        print(json.dumps(report), flush=True)
    print(json.dumps({"benchmark": "golden_speed", "cases": reports}, indent=2))


if __name__ == "__main__":
    main()
