"""The ``dense`` layer kind: a fully connected layer."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError
from nnfab.layers import DenseSpec

from .model import Layer

__all__ = ['DenseLayer']


@dataclass(frozen=True)
class DenseLayer(Layer):
    """A fully connected layer (:class:`~nnfab.layers.DenseSpec`), built by
    :class:`~nnfab.hdl.dense.DenseEngine` with ``reuse_factor``."""

    kind: ClassVar[str] = "dense"
    spec: DenseSpec = None
    reuse_factor: int = 1

    def __post_init__(self):
        if not isinstance(self.spec, DenseSpec):
            raise ModelError(f"Layer {self.name!r}: dense layer needs a DenseSpec, "
                             f"not {self.spec!r}")
        if not isinstance(self.reuse_factor, int) or self.reuse_factor < 1 or \
                self.spec.n_in % self.reuse_factor:
            valid = [r for r in range(1, self.spec.n_in + 1) if self.spec.n_in % r == 0]
            raise ModelError(f"Layer {self.name!r}: reuse factor must divide n_in "
                             f"{self.spec.n_in} (one of {', '.join(map(str, valid))}), "
                             f"not {self.reuse_factor!r}")

    @property
    def input_shape(self):
        return (self.spec.n_in,)

    @property
    def output_shape(self):
        return (self.spec.n_out,)

    @property
    def input_format(self):
        return self.spec.input_format

    @property
    def output_format(self):
        return self.spec.output_format

    @property
    def n_multipliers(self):
        """Products per cycle after pruning zero weights: non-zero weights divided by the
        reuse factor (rounded up per output)."""
        nonzero = np.count_nonzero(self.spec.weights != 0, axis=1)
        return int(np.sum(-(-nonzero // self.reuse_factor)))

    def describe(self):
        s = self.spec
        return (f"{s.n_in}→{s.n_out}, w {s.weight_format}, acc {s.accumulator}, "
                f"{s.n_nonzero_weights}/{s.weights.size} non-zero weights, R={self.reuse_factor}")
