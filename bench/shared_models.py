"""Every model in ``shared/models`` through the command line at its defaults, as a new user runs
it (issue 14): ``nnfab build MODEL -o DIR``, then ``nnfab verify DIR --random N`` (the folder's
own Verilog on Verilator, seeded N(0, 1.5) inputs, the default random idle and back-pressure
after a full-rate warm-up). Prints one JSON row per model on stderr as it finishes and the
whole table on stdout.

    python bench/shared_models.py [--models NAME ...] [--skip NAME ...] [--vectors 200]
                                  [--work DIR] [--out results.json]

Per model: the build's exit code and wall time, Verilog bytes, latency and II from the
manifest (and where the latency comes from), the reuse factors the default fit raised; the
verify's exit code, vectors, mismatches, measured against expected latency, and wall time.
Needs ``NNFAB_SHARED_DIR`` (or shared/ beside the repository) and Verilator.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _shared():
    shared = os.environ.get("NNFAB_SHARED_DIR")
    return Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"


def models(shared):
    """``name -> nnfab build arguments`` for every model file and config in ``shared``."""
    m = shared / "models"
    hls, zoo, tiny = m / "hls4ml-example-models", m / "qonnx-model-zoo", m / "mlperf-tiny"
    return {
        "KERAS_3layer": [hls / "keras/KERAS_3layer.json"],
        "KERAS_3layer_pruned": [hls / "keras/KERAS_3layer.json", "--weights",
                                hls / "keras/KERAS_3layer_70pruned_retrained_weights.h5"],
        "KERAS_3layer_batch_norm": [hls / "keras/KERAS_3layer_batch_norm.json"],
        "qkeras_3layer": [hls / "keras/qkeras_3layer.json"],
        "qkeras_v3_3layer": [hls / "keras3/qkeras-v3_3layer.keras"],
        "qkeras_mnist_dense": [hls / "keras/qkeras_mnist_dense.json"],
        "qkeras_mnist_cnn": [hls / "keras/qkeras_mnist_cnn.json"],
        "hgq_jet_classifier": [hls / "keras/hgq_jet_classifier.h5"],
        "three_layer_keras": [hls / "onnx/three_layer_keras.onnx"],
        "three_layer_pytorch": [hls / "onnx/three_layer_pytorch.onnx"],
        "conv2d_small_keras": [hls / "onnx/conv2d_small_keras.onnx"],
        "conv2d_small_mp_keras": [hls / "onnx/conv2d_small_mp_keras.onnx"],
        "branched_model_ch_last": [hls / "onnx/branched_model_ch_last.onnx"],
        "hls4ml_keras_config": ["--hls4ml-config", hls / "keras-config.yml"],
        "hls4ml_onnx_config": ["--hls4ml-config", hls / "onnx-config.yml"],
        "qkeras_3layer_config": ["--hls4ml-config", hls / "config-files/qkeras_3layer_config.yml"],
        "qkeras_mnist_dense_config": ["--hls4ml-config",
                                      hls / "config-files/qkeras_mnist_dense_config.yml"],
        "qkeras_mnist_cnn_config": ["--hls4ml-config",
                                    hls / "config-files/qkeras_mnist_cnn_config.yml"],
        "qkeras_jettagging": [zoo / "qkeras_jettagging.onnx"],
        "TFC_2W2A": [zoo / "TFC_2W2A.onnx"],
        "unsw_nb15_mlp_w2a2": [zoo / "unsw_nb15-mlp-w2a2.onnx"],
        "kwsmlp_w3a3": [zoo / "kwsmlp_w3a3.onnx"],
        "ad01_int8": [tiny / "ad01_int8.tflite"],
        "kws_ref_model": [tiny / "kws_ref_model.tflite"],
        "pretrainedResnet_quant": [tiny / "pretrainedResnet_quant.tflite"],
    }


def _nnfab(*args):
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", "from nnfab.cli import main; main()",
                          *map(str, args)], capture_output=True, text=True)
    return run, round(time.perf_counter() - started, 1)


def run_model(args, out_dir, vectors, seed):
    """Build and verify one model; a row of figures (and the last output lines on failure)."""
    row = {}
    run, row["build_seconds"] = _nnfab("build", *args, "-o", out_dir)
    row["build_exit"] = run.returncode
    if run.returncode:
        row["build_error"] = (run.stdout + run.stderr).strip().splitlines()[-3:]
        return row
    manifest = json.loads((out_dir / "manifest.json").read_text())
    row.update(verilog_bytes=(out_dir / manifest["verilog"]).stat().st_size,
               latency=manifest["latency"], latency_source=manifest["latency_source"],
               initiation_interval=manifest["initiation_interval"],
               fit_changed=manifest.get("fit", {}).get("changed", {}),
               fits=manifest.get("fit", {}).get("fits"))
    if not vectors:
        return row
    run, row["verify_seconds"] = _nnfab("verify", out_dir, "--random", vectors, "--seed", seed)
    row["verify_exit"] = run.returncode
    text = run.stdout
    found = re.search(r": (\d+) vectors tried\n(\d+) mismatches", text)
    if found:
        row["verify_vectors"], row["verify_mismatches"] = map(int, found.groups())
    found = re.search(r"latency: (\d+) cycles measured, (\d+) expected", text)
    if found:
        row["measured_latency"], row["expected_latency"] = map(int, found.groups())
    row["verify_result"] = text.strip().splitlines()[-1] if text.strip() else None
    if run.returncode:
        row["verify_error"] = (run.stdout + run.stderr).strip().splitlines()[-3:]
    return row


def main(argv=None):
    table = models(_shared())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(table), default=list(table))
    parser.add_argument("--skip", nargs="+", choices=list(table), default=[])
    parser.add_argument("--vectors", type=int, default=200, help="0: build only")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--work", type=Path, help="build folders (default: a temporary one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="nnfab-shared-models-"))
    rows = []
    for name in args.models:
        if name in args.skip:
            continue
        row = {"model": name, **run_model(table[name], work / name, args.vectors, args.seed)}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    text = json.dumps({"benchmark": "shared_models", "vectors": args.vectors,
                       "seed": args.seed, "work": str(work), "rows": rows}, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
