"""``nnfab train``: a dense layer trained in RTL simulation against its references
(:func:`nnfab.gen.train.train`)."""

import click
import numpy as np

from nnfab.gen.train import DATASETS, OPTIMIZERS, train

__all__ = ["train_command"]


@click.command("train")
@click.option("--dataset", type=click.Choice(DATASETS), default="breast-cancer", show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Power of two; 4 for regression, 16 for classification by default.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--png", type=click.Path(dir_okay=False), default=None,
              help="Write the loss curves to this PNG.")
@click.option("--no-sim", is_flag=True, help="Only the NumPy references, no RTL run.")
def train_command(dataset, optimizer, epochs, batch_size, seed, png, no_sim):
    """Train a dense layer in RTL simulation and compare it with the references."""
    result = train(dataset, optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                   png=png, simulate=not no_sim)
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
