"""``nnfab build``, ``verify``, ``examples`` and ``report``: the generator's command line."""

import functools
import json
import signal
import threading
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from nnfab.errors import Interrupted, NnfabError
from nnfab.gen.datasets import DATASETS

from .options import Probability, ReuseFactorType
from .progress import progress

__all__ = ["build_command", "verify_command", "examples_command", "report_command"]

console = Console(highlight=False, soft_wrap=True)


def _fail(exc):
    raise click.ClickException(str(exc)) from None


def interruptible(function):
    """Ctrl-C or SIGTERM during a command: the running tool is ended (see
    :meth:`nnfab.sim.runner.run_cocotb`), clean-up runs, one line is printed and the command
    exits with 130."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        def terminate(signum, frame):
            raise Interrupted(signal.Signals(signum).name)

        main_thread = threading.current_thread() is threading.main_thread()
        saved = signal.signal(signal.SIGTERM, terminate) if main_thread else None
        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt as exc:
            name = exc.args[0] if isinstance(exc, Interrupted) and exc.args else "SIGINT"
            click.echo(f"Interrupted ({name}): stopped, nothing written", err=True)
            raise click.exceptions.Exit(130) from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, saved)

    return wrapper


def _model_options(function):
    """Options every command that takes a model shares."""
    options = [
        click.argument("model", required=False, type=click.Path(dir_okay=True)),
        click.option("--example", help="A bundled example instead of MODEL (see `nnfab "
                                       "examples`)."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False),
                     help="Weights file of a Keras .json model (default NAME_weights.h5)."),
        click.option("--reuse-factor", type=ReuseFactorType(), default=None,
                     help="Reuse factor of every dense, convolution and recurrent layer: the "
                          "largest one a layer can take up to it (a divisor of n_in or, as "
                          "in hls4ml, n_in times a divisor of n_out; convolutions: divisors "
                          "only); or NAME=R,... for the layers named, exactly. With --board: "
                          "the reuse factors of the dense layers with weights in block RAM "
                          "(a divisor of n_in times a divisor of n_out)."),
        click.option("--max-multipliers", type=click.IntRange(min=1), default=None,
                     help="Choose each layer's reuse factor to use at most this many "
                          "multipliers."),
        click.option("--precision", type=click.IntRange(min=2, max=32), default=None,
                     help="Bits of weights, biases and activations when quantizing a float "
                          "model (PTQ); default 8 (16 for the input)."),
        click.option("--input-format", default=None,
                     help="Input format for PTQ of a float model, e.g. 'fixed<16,6>'."),
        click.option("--fuse/--no-fuse", default=None,
                     help="Build each dense layer at reuse factor 1 with exact accumulation "
                          "or a signed accum_t (with --board: also every weight at most 3 "
                          "signed digits) with its requantizers and activation as one "
                          "shift-add adder graph, and so each convolution's window product "
                          "(not with --board) (default), or keep one engine per layer."),
        click.option("--lut-adder-width", type=click.IntRange(min=0), default=None,
                     help="In fused shift-add layers, build adders of at most this many bits "
                          "from LUTs instead of carry chains: fewer carry cells, more LUTs "
                          "(default 0)."),
        click.option("--fit", "fit", default=None, metavar="DEVICE|none",
                     help="Without --reuse-factor or --max-multipliers: raise reuse factors "
                          "until the resource estimate fits DEVICE (ECP5-85F, ECP5-45F, "
                          "ECP5-25F, iCE40UP5K; default ECP5-85F, none with --board or "
                          "--hls4ml-config). With any reuse factors, the multipliers beyond "
                          "DEVICE's DSP blocks are built from LUTs. 'none' keeps every layer "
                          "as the model gives it."),
        click.option("--hls4ml-config", type=click.Path(dir_okay=False),
                     help="An hls4ml project config (YAML) instead of MODEL: its model, built "
                          "with hls4ml's precisions and arithmetic (see docs/hls4ml.md)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


_FOLDER_FIXED = ("weights", "reuse_factor", "max_multipliers", "precision", "input_format",
                 "hls4ml_config", "fuse", "lut_adder_width", "fit")


def fit_device(fit, board=None, hls4ml_config=None):
    """The device of ``--fit``, or None for ``--fit none``. Without ``--fit``: ECP5-85F,
    except with a ``board`` (the board flow puts dense layers' weights in block RAM at reuse
    factors of its own, which the estimate does not model) or an ``hls4ml_config`` (its
    ``ReuseFactor`` entries are the user's choice): no fit then.

    Raises
    ------
    click.BadParameter
        If ``fit`` names no device.
    """
    from nnfab.boards.synth import device

    if fit is None and (board is not None or hls4ml_config is not None):
        return None
    if fit is not None and fit.lower() == "none":
        return None
    try:
        return device("ECP5-85F" if fit is None else fit)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}, or none", param_hint="'--fit'") from None


def _load(model, example, weights, reuse_factor, max_multipliers, precision, input_format,
          hls4ml_config=None, fuse=None, lut_adder_width=None, *, allow_build_folder=False,
          for_board=False, clock_mhz=None, family="ecp5", fit=None, board=None):
    """The model to build (a LoadedModel) from the command line's choices.

    With ``allow_build_folder``, MODEL may be a build folder: its files are checked against
    its manifest (:func:`~nnfab.gen.build_folder.open_build_folder`), and the LoadedModel
    carries it as ``build_folder`` so that the folder's own Verilog is simulated.
    """
    from nnfab.fixed import FixedFormat
    from nnfab.gen.build_folder import open_build_folder
    from nnfab.gen.examples import example as find_example
    from nnfab.gen.input_quantization import InputQuantization
    from nnfab.gen.load import LoadedModel, load_model, prepare_model
    from nnfab.gen.native import load_native
    from nnfab.gen.passes import Validate
    from nnfab.gen.ptq import PTQConfig
    from nnfab.gen.tensor_layout import manifest_layout

    if sum(v is not None for v in (model, example, hls4ml_config)) != 1:
        raise click.UsageError("Give a MODEL file, --example NAME or --hls4ml-config FILE "
                               "(one of them)")
    input_cast = "format" if hls4ml_config is not None else "nearest"
    quantized_source = None
    if model is not None and Path(model).is_dir():
        if not allow_build_folder:
            raise click.UsageError(f"MODEL {model!r} is a folder; give a model file (a build "
                                   f"folder is for nnfab verify and nnfab report)")
        given = {"weights": weights, "reuse_factor": reuse_factor,
                 "max_multipliers": max_multipliers, "precision": precision,
                 "input_format": input_format, "fuse": fuse,
                 "lut_adder_width": lut_adder_width, "clock_mhz": clock_mhz, "fit": fit}
        extra = [f"--{name.replace('_', '-')}" for name, value in given.items()
                 if value is not None]
        if extra:
            raise click.UsageError(f"{', '.join(extra)} cannot be used with a build folder: "
                                   f"it is verified as it was built")
        folder = open_build_folder(model)
        loaded = LoadedModel(load_native(folder.model_path), source=f"build folder {model}")
        loaded.build_folder = folder
        loaded.input_cast = folder.manifest.get("input_cast", "nearest")
        where = f"Build folder {model!r}: manifest.json"
        loaded.input_layout = manifest_layout(folder.manifest.get("input", {}), where)
        loaded.output_layout = manifest_layout(folder.manifest.get("output", {}), where)
        loaded.input_quantization = InputQuantization.from_manifest(
            folder.manifest.get("input", {}), where)
        Validate().apply(loaded.model)
        return loaded
    if hls4ml_config is not None:
        if precision or input_format or weights:
            raise click.UsageError("--precision, --input-format and --weights do not apply "
                                   "to --hls4ml-config: the config sets the precisions")
        from nnfab.gen.hls4ml import load_hls4ml

        config, quantized = load_hls4ml(hls4ml_config)
        loaded = LoadedModel(quantized, source=f"hls4ml config {hls4ml_config}",
                             notes=config.notes)
    elif example is not None:
        found = find_example(example)
        loaded = LoadedModel(load_native(found.path), load_native(found.float_path),
                             source=f"example {example}")
        quantized_source = f"example {example!r}"
    else:
        config = PTQConfig(weight_bits=precision, bias_bits=precision,
                           activation_bits=precision) if precision else None
        fmt = FixedFormat.parse(input_format) if input_format else None
        loaded = load_model(model, weights=weights, ptq_config=config, input_format=fmt)
        quantized_source = None if loaded.float_model is not None else repr(str(model))
    if hls4ml_config is None and quantized_source and (precision or input_format):
        raise click.UsageError(f"--precision and --input-format set post-training "
                               f"quantization of float models; {quantized_source} is "
                               f"quantized already")
    fuse = True if fuse is None else fuse
    lut_adder_width = lut_adder_width or 0
    fit_results, budget_results = [], []
    # Per-layer reuse factors on a board are the ROM layers' (the board flow takes them).
    per_layer = reuse_factor if isinstance(reuse_factor, dict) and not for_board else None
    loaded.model = prepare_model(loaded.model, max_multipliers=max_multipliers, fuse=fuse,
                                 reuse_factor=reuse_factor if isinstance(reuse_factor, int)
                                 else None, per_layer_reuse=per_layer,
                                 lut_adder_width=lut_adder_width, for_board=for_board,
                                 clock_mhz=clock_mhz, family=family,
                                 fit=fit_device(fit, board, hls4ml_config),
                                 fit_results=fit_results, fit_strict=fit is not None,
                                 budget_results=budget_results)
    loaded.fit = fit_results[0] if fit_results else None
    for line in [*(loaded.fit.lines() if loaded.fit else ()),
                 *(line for budget in budget_results for line in budget.lines())]:
        console.print(line, markup=False)
    loaded.input_cast = input_cast
    loaded.shift_add_fusion = fuse
    loaded.lut_adder_width = lut_adder_width
    loaded.build_folder = None
    return loaded


def _clock_target(board, clock_mhz):
    """The clock and FPGA family the fused engines' registers are placed for: the board's
    clock with ``--board`` (``--clock-mhz`` or its default), else ``--clock-mhz`` on ECP5
    (None: the delay model's default, 100 MHz)."""
    if board is None:
        return {"clock_mhz": clock_mhz}
    from nnfab.boards.targets import target

    found = target(board)
    return {"clock_mhz": found.default_clock_mhz if clock_mhz is None else clock_mhz,
            "family": found.family}


def _board_options(function):
    # The command line is where the layers meet: the board flow registers its own options.
    from .boards import board_options

    return board_options(function)


@click.command("build")
@_model_options
@click.option("-o", "--output", "output", type=click.Path(file_okay=False),
              help="Output folder (default: build/NAME). An existing folder is replaced only "
                   "if it is empty or an nnfab build folder.")
@_board_options
@click.option("--no-cache", is_flag=True,
              help="Convert to Verilog and time the design here, ignoring and leaving alone "
                   "the Verilog cache (described above).")
@interruptible
def build_command(model, example, weights, reuse_factor, max_multipliers, precision,
                  input_format, fuse, lut_adder_width, fit, hls4ml_config, output, board,
                  clock_mhz, pnr_timeout, no_cache):
    """Turn MODEL into Verilog, a manifest and a report; with --board, into a bitstream.

    The Verilog, latency and skip FIFO depths of a model converted before with the same
    options by the same nnfab version and source (by build or verify) come from the cache
    (~/.cache/nnfab/verilator/verilog, or under $NNFAB_CACHE_DIR or $XDG_CACHE_HOME): the
    files are the same as a conversion's. --no-cache converts again."""
    from nnfab.gen.build_folder import output_name
    from nnfab.gen.emit import build_outputs

    if pnr_timeout is not None and board is None:
        raise click.UsageError("--pnr-timeout limits a board build's place and route; it "
                               "needs --board")
    started = time.perf_counter()
    try:
        with progress(console) as say:
            say("loading model")
            loaded = _load(model, example, weights, reuse_factor, max_multipliers, precision,
                           input_format, hls4ml_config, fuse, lut_adder_width,
                           for_board=board is not None, fit=fit, board=board,
                           **_clock_target(board, clock_mhz))
            name = output_name(loaded.model.name)
            if board is not None:
                from .boards import board_build_from_cli

                out = Path(output) if output else Path("build") / f"{name}-{output_name(board)}"
                board_build_from_cli(loaded, out, board, clock_mhz, console, progress=say,
                                     max_multipliers=max_multipliers, pnr_timeout=pnr_timeout,
                                     reuse_factor=reuse_factor)
                return
            out = Path(output) if output else Path("build") / name
            result = build_outputs(loaded.model, out, progress=say,
                                   notes=loaded.notes, source=loaded.source,
                                   input_cast=loaded.input_cast,
                                   shift_add_fusion=loaded.shift_add_fusion,
                                   lut_adder_width=loaded.lut_adder_width,
                                   fit=loaded.fit.as_dict() if loaded.fit else None,
                                   input_layout=loaded.input_layout,
                                   output_layout=loaded.output_layout,
                                   input_quantization=loaded.input_quantization,
                                   use_cache=not no_cache)
    except (NnfabError, ValueError, TypeError) as exc:
        _fail(exc)
    manifest = result.manifest
    _print_layers(manifest)
    console.print(f"Wrote {result.verilog_path}, {out / 'manifest.json'}, {out / 'report.md'} "
                  f"in {time.perf_counter() - started:.1f} s")


def _layer_table(manifest):
    table = Table(title=f"{manifest['name']}: latency {manifest['latency']} cycles, II "
                        f"{manifest['initiation_interval']}")
    for column in ("layer", "kind", "out shape", "output format", "reuse", "multipliers",
                   "latency"):
        table.add_column(column)
    for row in manifest["layers"]:
        table.add_row(row["name"], row.get("function", row["kind"]), str(row["output_shape"]),
                      row["output_format"], str(row.get("reuse_factor", "")),
                      str(row["multipliers"]), str(row["latency"]))
    return table


def _print_layers(manifest):
    # A fixed width when not on a terminal, so that pipes, logs and tests see whole names.
    (console if console.is_terminal else Console(highlight=False, width=140)).print(
        _layer_table(manifest))


@click.command("verify")
@_model_options
@click.option("--inputs", type=click.Path(exists=True, dir_okay=False),
              help="Inputs as a .npy of values, shape (n, *input_shape).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False),
              help="Class labels for --inputs, a .npy of n integers.")
@click.option("--dataset", type=click.Choice(DATASETS),
              help="A bundled labelled data set (held-out split).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Use the first N inputs.")
@click.option("--clock-mhz", type=float, default=None,
              help="Clock the fused shift-add layers are pipelined for (default 100 MHz, "
                   "ECP5 delay model); it sets their latency.")
@click.option("--random", "n_random", type=click.IntRange(min=1), default=None,
              help="N seeded random inputs: N(0, 1.5) values, or for an int8 TFLite model "
                   "uniform int8 codes (default 1,000 when no inputs are given).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--stall", type=Probability(), default=0.1,
              show_default=True,
              help="Share of cycles in which the output is not ready, and in which no "
                   "input is offered, in random bursts (after a full-rate warm-up; every "
                   "vector also runs under it).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Simulator processes: the vectors are split into N shards simulated in "
                   "parallel by the same compiled model, results merged in order.")
@click.option("--optimize", type=click.Choice(["auto", "build", "run"]), default="auto",
              show_default=True,
              help="What the Verilator model is compiled for: 'build' (per-cycle code at "
                   "-O0, about 3x faster to build), 'run' (-O1, about 10x faster to "
                   "simulate); 'auto' picks 'run' for runs long enough to repay its slower "
                   "build or that would simulate for over about 2 s at -O0.")
@click.option("--no-cache", is_flag=True,
              help="Convert to Verilog and compile it again in a temporary folder, "
                   "ignoring and leaving alone the caches (see below).")
@interruptible
def verify_command(model, example, weights, reuse_factor, max_multipliers, precision,
                   input_format, fuse, lut_adder_width, fit, hls4ml_config, inputs, labels,
                   dataset, count, clock_mhz, n_random, seed, stall, jobs, optimize, no_cache):
    """Prove MODEL's Verilog bit-exact against the golden model on Verilator.

    MODEL may be a build folder: then its own Verilog is simulated, after checking that its
    files are those the build wrote.

    \b
    Caches, in $NNFAB_CACHE_DIR (default: $XDG_CACHE_HOME/nnfab/verilator or
    ~/.cache/nnfab/verilator):
      verilog/<key>.v  the model's Verilog, keyed by the model (every layer field and
                       weight code), the build options and nnfab's version and source;
                       the 32 most recently used are kept
      <top>-<key>/     the Verilator simulator built from that Verilog, keyed by its text
                       and the compile options; old run folders inside are pruned, the
                       builds are not (delete the folder to reclaim the space)
    An unchanged model is neither converted nor compiled again. --no-cache bypasses both."""
    from nnfab.gen.datasets import load_dataset
    from nnfab.gen.examples import EXAMPLES
    from nnfab.gen.verify import verify

    given = [name for name, value in (("--inputs", inputs), ("--dataset", dataset),
                                      ("--random", n_random)) if value is not None]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} cannot be used together: give one "
                               f"source of inputs")
    if labels is not None and inputs is None:
        raise click.UsageError("--labels needs --inputs")
    try:
        with progress(console) as say:
            say("loading model")
            loaded = _load(model, example, weights, reuse_factor, max_multipliers, precision,
                           input_format, hls4ml_config, fuse, lut_adder_width,
                           allow_build_folder=True, clock_mhz=clock_mhz, fit=fit)
            m = loaded.model
            y = None
            if dataset is None and inputs is None and example is not None and n_random is None:
                dataset = EXAMPLES[example].dataset
            if inputs is not None:
                x = load_inputs(inputs, m.input_shape, loaded.input_layout,
                                loaded.input_quantization)
                y = _load_labels(labels, len(x)) if labels else None
            elif dataset is not None:
                x, y = load_dataset(dataset, "test", image=len(m.input_shape) == 3)
            else:
                rng = np.random.default_rng(seed)
                x = random_inputs(rng, n_random or 1000, m.input_shape,
                                  loaded.input_quantization)
            if count is not None:
                x, y = x[:count], (y[:count] if y is not None else None)
            folder = loaded.build_folder
            result = verify(m, x, labels=y, float_model=loaded.float_model, seed=seed,
                            p_stall=stall, progress=say, input_cast=loaded.input_cast,
                            use_cache=not no_cache, jobs=jobs,
                            optimize={"auto": None, "build": False, "run": True}[optimize],
                            **({} if folder is None else {
                                "verilog": folder.verilog_path.read_text(encoding="utf-8"),
                                "timing": (folder.manifest["latency"],
                                           folder.manifest["initiation_interval"])}))
    except (NnfabError, ValueError, TypeError) as exc:
        _fail(exc)
    _print_verify(m, result)
    if not result.passed:
        raise SystemExit(1)


def _load_array(path, what):
    """A .npy file as a real, finite numeric array with at least one row."""
    not_npy = NnfabError(f"{what} file {path!r} is not a NumPy .npy array (numpy.save "
                         f"writes one)")
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
        if magic[:2] == b"PK":
            raise NnfabError(f"{what} file {path!r} is a .npz archive; give one array as a "
                             f".npy file (numpy.save)")
        if magic != b"\x93NUMPY":
            raise not_npy
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise NnfabError(f"{what} file {path!r} holds Python objects, which nnfab does not "
                             f"load; save a numeric array with numpy.save") from None
        raise not_npy from None
    except (OSError, EOFError):
        raise not_npy from None
    if not isinstance(array, np.ndarray):
        raise NnfabError(f"{what} file {path!r} is a .npz archive; give one array as a .npy "
                         f"file (numpy.save)")
    if array.dtype.kind not in "biuf":
        raise NnfabError(f"{what} file {path!r} holds {array.dtype} values; expected real "
                         f"numbers")
    if array.ndim == 0 or len(array) == 0:
        raise NnfabError(f"{what} file {path!r} holds no vectors (shape {array.shape})")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise NnfabError(f"{what} file {path!r} holds {bad} values that are NaN or infinite")
    return array


def load_inputs(path, shape, layout=None, quantization=None):
    """The ``--inputs`` file ``path`` in nnfab's layout: its array as :func:`_load_array`
    reads it, of shape ``(n, *shape)`` or, for a model file that declares another layout of
    its frames (``layout``, e.g. NCHW), ``(n, *layout.model_shape(shape))``, then transposed
    (:func:`nnfab.gen.tensor_layout.resolve_inputs`); a shape that fits both layouts is read
    in the model file's, and one line says so. For an int8 TFLite input (``quantization``, an
    :class:`~nnfab.gen.input_quantization.InputQuantization`), a float array holds real values
    and becomes codes as TFLite's ``QUANTIZE`` makes them (one line says so); an integer array
    holds the codes.

    Raises
    ------
    NnfabError
        As :func:`_load_array`, and for a shape that fits neither layout, naming the file, its
        shape and the accepted shapes.
    """
    from nnfab.gen.tensor_layout import resolve_inputs

    x, note = resolve_inputs(_load_array(path, "Inputs"), shape, layout,
                             name=f"Inputs file {str(path)!r}")
    if note is not None:
        console.print(note, markup=False)
    if quantization is not None and x.dtype.kind == "f":
        console.print(quantization.note(f"Inputs file {str(path)!r}"), markup=False)
        x = quantization.codes(x)
    return x


def random_inputs(rng, n, shape, quantization=None):
    """``n`` seeded random inputs of ``shape`` for ``--random``: N(0, 1.5) values, or for an
    int8 TFLite input (``quantization`` given) uniform int8 codes over all 256 (N(0, 1.5)
    would round to the 11 codes around 0), as integers."""
    if quantization is not None:
        return rng.integers(-128, 128, (n, *shape))
    return rng.normal(0.0, 1.5, (n, *shape))


def _load_labels(path, n):
    labels = _load_array(path, "Labels")
    if labels.ndim != 1 or len(labels) != n:
        raise NnfabError(f"Labels file {path!r} has shape {labels.shape}; expected ({n},), "
                         f"one class per input")
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        raise NnfabError(f"Labels file {path!r} holds non-integer values; expected class "
                         f"numbers")
    return labels.astype(np.int64)


def _print_verify(model, result):
    console.print(f"[bold]{model.name}[/bold]: {result.n_vectors} vectors tried")
    console.print(f"{result.n_mismatches} mismatches")
    for index, expected, got in result.first_mismatches:
        console.print(f"  vector {index}: expected {expected}, got {got}")
    if result.debug is not None:
        for line in result.debug.lines():
            console.print(line, markup=False)
    if result.accuracy:
        parts = [f"{name} {value:.2%}" for name, value in result.accuracy.items()]
        console.print("accuracy: " + ", ".join(parts))
    console.print(f"latency: {result.measured_latency} cycles measured, {result.latency} "
                  f"expected; initiation interval: {result.measured_initiation_interval} "
                  f"measured, {result.initiation_interval} "
                  f"{'expected' if result.initiation_interval_exact else 'at least (pixel streams)'}")
    console.print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items())
                  + (" (cached build)" if result.build_cached else "")
                  + (" (cached Verilog)" if result.verilog_cached else ""))
    total, passed, failed = result.cocotb_tests
    console.print(f"cocotb: {passed} passed, {failed} failed of {total}")
    console.print("[green]PASS[/green]" if result.passed else "[red]FAIL[/red]")


@click.command("examples")
def examples_command():
    """List the bundled example models."""
    from nnfab.gen.examples import EXAMPLES

    table = Table(title="nnfab examples")
    table.add_column("name")
    table.add_column("data set")
    table.add_column("model")
    for example in EXAMPLES.values():
        if example.path.exists():
            table.add_row(example.name, example.dataset, example.description)
    console.print(table)


@click.command("report")
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False))
def report_command(build_dir):
    """Show the report of a build folder."""
    from nnfab.gen.build_folder import read_manifest

    try:
        manifest = read_manifest(build_dir)
        table = _layer_table(manifest)
        lines = []
        for side in ("input", "output"):
            d = manifest[side]
            lines.append(f"{side}: {d['shape']} of {d['format']}, {d['payload_width']}-bit "
                         f"payload on {d['payload']}, {d['transfers_per_inference']} "
                         f"transfer(s) per inference")
    except NnfabError as exc:
        _fail(exc)
    except (KeyError, TypeError, AttributeError, IndexError):
        raise click.ClickException(f"Build folder {build_dir!r}: manifest.json is damaged (a "
                                   f"section or layer row lacks a field); build it again "
                                   f"with nnfab build") from None
    (console if console.is_terminal else Console(highlight=False, width=140)).print(table)
    for line in lines:
        console.print(line)
    board = Path(build_dir) / "report.json"
    if board.exists():
        try:
            console.print_json(data=json.loads(board.read_text(encoding="utf-8")))
        except (ValueError, OSError):
            raise click.ClickException(f"Build folder {build_dir!r}: report.json is not valid "
                                       f"JSON; build it again with nnfab build") from None
