"""The ``activation`` layer kind: an elementwise activation function."""

from dataclasses import dataclass, field
from typing import ClassVar

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat

from .model import Layer

__all__ = ['ActivationLayer']


@dataclass(frozen=True)
class ActivationLayer(Layer):
    """An elementwise activation ``function`` (one of :data:`nnfab.tables.ACTIVATION_KINDS`,
    parameters as :func:`nnfab.tables.check_activation` takes them) over tensors of ``shape``."""

    kind: ClassVar[str] = "activation"
    function: str = "linear"
    shape: tuple = ()
    fin: FixedFormat = None
    fout: FixedFormat = None
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        from nnfab.tables import check_activation

        try:
            check_activation(self.function, fin=self.fin, fout=self.fout, **dict(self.params))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"Layer {self.name!r}: {exc}") from None

    @property
    def input_shape(self):
        return tuple(self.shape)

    @property
    def output_shape(self):
        return tuple(self.shape)

    @property
    def input_format(self):
        return self.fin

    @property
    def output_format(self):
        return self.fout

    def describe(self):
        return f"{self.function}, out {self.fout}"
