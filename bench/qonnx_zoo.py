"""The QONNX zoo models with any scales (issue 18), as JSON: import and proof per layer, the
golden model against qonnx's ``execute_onnx`` on every quantizer's codes, and the Verilog.

    NNFAB_SHARED_DIR=/work/shared python bench/qonnx_zoo.py [--inputs 10000]

One JSON line per model: import seconds; per multithreshold layer its thresholds per channel,
channels, flipped channels, near ties and proof; the comparison with qonnx (mismatches per
quantizer, inputs, seconds). The Verilog comes from ``nnfab build`` (sizes in the report of
branch anyscale). Inputs as in tests/gen/importers/test_qonnx_thresholds.py (seeded):
MNIST pixels in [0, 1] (TFC), KWS features in [-110, 110] (kwsmlp), bipolar bits (UNSW-NB15,
input format fixed<2,2>).

Measured here (10,000 inputs each, 2 shared cores under load): TFC import 3.7 s, compare 3.4 s,
0 mismatches; UNSW-NB15 import 0.9 s, compare 3.6 s, 0 mismatches; kwsmlp import 16.6 s
(54.7 M accumulator values of its first layer evaluated), compare 4.4 s, 1 mismatch in
2,560,000 codes of Quant_5 (input 7540, channel 195: accumulator 187, one of the 11 near ties
the proof flags). There the exact value is 2.4999934 quantizer steps, so code 2 (nnfab); the
float graph's float32 MatMul sum is 10.36911 instead of the exact 10.3690735 (about 30 ulps
off), which lifts it past 2.5 to code 3. No threshold on the accumulator alone can follow
that: another input with the same accumulator can sum to a different float32 value.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gen.importers.test_qonnx_thresholds import MODELS, _path  # noqa: E402


def run(name, n_inputs):
    from nnfab.gen.importers.qonnx_reference import compare_with_qonnx
    from nnfab.gen.importers.qonnx_thresholds import import_qonnx_thresholds

    inputs, input_format, _, _ = MODELS[name]
    start = time.perf_counter()
    imported = import_qonnx_thresholds(_path(name), input_format=input_format)
    row = dict(model=name, import_s=round(time.perf_counter() - start, 2), layers=[])
    for layer in imported.model.layers:
        entry = dict(name=layer.name, kind=layer.kind, output_format=str(layer.output_format))
        if layer.kind == "multithreshold":
            entry.update(thresholds_per_channel=layer.n_thresholds,
                         channels=layer.shape[-1], proof=layer.proof)
        row["layers"].append(entry)
    rng = np.random.default_rng(sorted(MODELS).index(name))
    start = time.perf_counter()
    result = compare_with_qonnx(imported, inputs(rng, n_inputs))
    row.update(inputs=n_inputs, mismatches=result.compared,
               compare_s=round(time.perf_counter() - start, 2))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in args.models:
        print(json.dumps(run(name, args.inputs)), flush=True)


if __name__ == "__main__":
    main()
