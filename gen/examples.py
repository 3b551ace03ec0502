"""Bundled example models (package data in ``nnfab/gen/examples``), trained on scikit-learn's
digits or the seeded sine-frequency sequences (:mod:`nnfab.gen.datasets`) by the scripts in
``examples/`` of the repository and quantized by nnfab's PTQ."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nnfab.errors import ModelError

__all__ = ["Example", "EXAMPLES", "example"]


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    dataset: str
    image: bool

    @property
    def path(self):
        """The quantized model (native format)."""
        return Path(resources.files("nnfab.gen") / "examples" / f"{self.name}.json")

    @property
    def float_path(self):
        """The float model it was quantized from."""
        return Path(resources.files("nnfab.gen") / "examples" / f"{self.name}-float.json")


EXAMPLES = {
    "digits-mlp": Example("digits-mlp", "MLP 64→32→10 (ReLU, argmax) on 8x8 digits",
                          "digits", image=False),
    "digits-cnn": Example("digits-cnn", "CNN conv3x3(8)→ReLU→maxpool→dense 10 (argmax) on "
                          "8x8 digits", "digits", image=True),
    "sine-lstm": Example("sine-lstm", "LSTM 1→4 units over 16 steps→dense 2 (argmax): is a "
                         "noisy sine's frequency above 0.12 cycles per step?",
                         "sine-frequency", image=False),
}


def example(name):
    """The bundled example ``name``.

    Raises
    ------
    ModelError
        If there is no such example (the message lists them).
    """
    if name not in EXAMPLES or not EXAMPLES[name].path.exists():
        available = [n for n, e in EXAMPLES.items() if e.path.exists()]
        raise ModelError(f"Unknown example {name!r}; bundled examples: {', '.join(available)}")
    return EXAMPLES[name]
