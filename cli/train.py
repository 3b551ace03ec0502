"""``nnfab train``: a dense layer, or with ``--layers`` a multi-layer perceptron, trained in
RTL simulation against its references (:func:`nnfab.gen.train.train`)."""

import click
import numpy as np

from nnfab.gen.train import DATASETS, OPTIMIZERS, train

__all__ = ["train_command"]


def _layers(ctx, param, value):
    if value is None:
        return None
    try:
        sizes = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"Layers must be comma-separated integers such as 64,32,10, "
                                 f"not {value!r}") from None
    if any(n < 1 for n in sizes):
        raise click.BadParameter(f"Layer sizes must be positive integers, not {value!r}")
    return sizes


@click.command("train")
@click.option("--dataset", type=click.Choice(DATASETS), default="breast-cancer", show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Power of two; 4 for regression, 16 for classification by default.")
@click.option("--layers", callback=_layers, default=None,
              help="Sizes n_0,...,n_L of a multi-layer perceptron with ReLU between its 2 to 4 "
                   "dense layers, e.g. 64,32,10 for digits (default: one dense layer).")
@click.option("--reuse-factor", type=click.IntRange(min=1), default=None,
              help="With --layers: multiplications per multiplier in each layer's forward, "
                   "backward and gradient products (hls4ml's reuse factor; at least the largest "
                   "layer's size). Default: one multiply-accumulate per cycle.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Write the loss curves to this PNG.")
@click.option("--export", type=click.Path(file_okay=False), default=None,
              help="With --layers: write the learned weights (RTL's, or the fixed-point "
                   "reference's with --no-sim) as the native quantized model DIR/trained-mlp.json "
                   "for nnfab build/verify, and the test split as DIR/test_inputs.npy and "
                   "DIR/test_labels.npy (for verify --inputs/--labels).")
@click.option("--no-sim", is_flag=True, help="Only the NumPy references, no RTL run.")
def train_command(dataset, optimizer, epochs, batch_size, layers, reuse_factor, seed, png, export,
                  no_sim):
    """Train a dense layer or a multi-layer perceptron in RTL simulation and compare it with
    the references."""
    for given, option in ((export, "--export"), (reuse_factor, "--reuse-factor")):
        if given is not None and layers is None:
            raise click.UsageError(f"{option} needs --layers")
    try:
        result = train(dataset, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                       seed=seed, png=png, simulate=not no_sim, layers=layers,
                       reuse_factor=reuse_factor)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for e in range(epochs):
        rtl = f"{result.losses_rtl[e]:.5f}" if result.losses_rtl else "-"
        click.echo(f"epoch {e + 1}: loss RTL {rtl}, fixed {result.losses_fixed[e]:.5f}, "
                   f"float {result.losses_float[e]:.5f}")
    if result.weights_rtl:
        same = all(np.array_equal(a, b) for a, b in zip(result.weights_rtl, result.weights_fixed))
        click.echo(f"RTL weights equal the fixed-point reference after every epoch: {same}")
        click.echo(f"cycles per sample: {result.cycles_per_sample:.1f}")
    if result.accuracy_rtl is not None:
        click.echo(f"test accuracy: RTL {result.accuracy_rtl:.4f}, float "
                   f"{result.accuracy_float:.4f}")
    if png:
        click.echo(f"loss curves: {png}")
    if export is not None:
        from pathlib import Path

        from nnfab.gen.train_mlp import export_native

        problem = result.problem
        weights = (result.weights_rtl or result.weights_fixed)[-1]
        path = export_native(problem.spec, weights, export)
        np.save(Path(export) / "test_inputs.npy", problem.x_test)
        np.save(Path(export) / "test_labels.npy", np.asarray(problem.y_test))
        click.echo(f"exported model: {path}")
