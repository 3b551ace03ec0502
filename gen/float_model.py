"""Float models: a network's architecture and float64 weights, before quantization.

Importers of float models (Keras, ONNX, the native format without formats) produce a
:class:`FloatModel`; :mod:`nnfab.gen.ptq` turns it into the quantized IR. ``forward`` is the
float64 reference the reports compare against.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError, ShapeError

__all__ = ["FloatDense", "FloatActivation", "FloatBatchNorm", "FloatSoftmax", "FloatArgmax",
           "FloatModel", "FLOAT_ACTIVATIONS"]

FLOAT_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
}


def _float_array(values, name, what, ndim):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim or array.size == 0:
        raise ShapeError(f"Layer {name!r}: {what} must be a non-empty {ndim}-dimensional "
                         f"array, not of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)].flat[0]
        raise ModelError(f"Layer {name!r}: {what} contain {bad!r}; every value must be finite")
    return array


@dataclass(frozen=True, eq=False)
class FloatDense:
    """``y = W @ x + b``; ``weights`` of shape (n_out, n_in)."""

    kind: ClassVar[str] = "dense"
    name: str
    weights: np.ndarray
    biases: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "weights", _float_array(self.weights, self.name, "weights", 2))
        if self.biases is not None:
            biases = _float_array(self.biases, self.name, "biases", 1)
            if biases.shape != (self.weights.shape[0],):
                raise ShapeError(f"Layer {self.name!r}: biases must have shape "
                                 f"({self.weights.shape[0]},), not {biases.shape}")
            object.__setattr__(self, "biases", biases)

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.weights.shape[1],):
            raise ShapeError(f"Layer {self.name!r}: expects {self.weights.shape[1]} inputs, "
                             f"not shape {tuple(input_shape)}")
        return (self.weights.shape[0],)

    def forward(self, x):
        y = x @ self.weights.T
        return y + self.biases if self.biases is not None else y


@dataclass(frozen=True, eq=False)
class FloatActivation:
    kind: ClassVar[str] = "activation"
    name: str
    function: str

    def __post_init__(self):
        if self.function not in FLOAT_ACTIVATIONS:
            from nnfab.errors import UnsupportedLayerError
            raise UnsupportedLayerError(
                f"Layer {self.name!r}: activation {self.function!r} is not supported; use one "
                f"of {', '.join(sorted(FLOAT_ACTIVATIONS))}")

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        return FLOAT_ACTIVATIONS[self.function](x)


@dataclass(frozen=True, eq=False)
class FloatBatchNorm:
    """``y = gamma * (x - mean) / sqrt(variance + epsilon) + beta`` over the last axis."""

    kind: ClassVar[str] = "batchnorm"
    name: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    epsilon: float = 1e-3

    def __post_init__(self):
        for what in ("gamma", "beta", "mean", "variance"):
            object.__setattr__(self, what, _float_array(getattr(self, what), self.name, what, 1))

    @property
    def scale(self):
        return self.gamma / np.sqrt(self.variance + self.epsilon)

    @property
    def shift(self):
        return self.beta - self.mean * self.scale

    def output_shape(self, input_shape):
        if input_shape[-1] != self.gamma.shape[0]:
            raise ShapeError(f"Layer {self.name!r}: normalizes {self.gamma.shape[0]} channels, "
                             f"not {input_shape[-1]}")
        return tuple(input_shape)

    def forward(self, x):
        return x * self.scale + self.shift


@dataclass(frozen=True, eq=False)
class FloatSoftmax:
    kind: ClassVar[str] = "softmax"
    name: str

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, eq=False)
class FloatArgmax:
    kind: ClassVar[str] = "argmax"
    name: str

    def output_shape(self, input_shape):
        return (1,)

    def forward(self, x):
        return np.argmax(x, axis=-1)[:, None].astype(np.float64)


@dataclass(frozen=True, eq=False)
class FloatModel:
    """A float network: input shape and an ordered chain of float layers.

    Raises
    ------
    ModelError
        If there is no layer or two layers share a name.
    ShapeError
        If consecutive layers' shapes do not agree.
    """

    name: str
    input_shape: tuple
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ModelError(f"Model {self.name!r} has no layers")
        names = [layer.name for layer in self.layers]
        for name in names:
            if names.count(name) > 1:
                raise ModelError(f"Model {self.name!r}: two layers are named {name!r}")
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)

    def shapes(self):
        """Output shape of every layer, in order."""
        shapes, shape = [], self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
            shapes.append(shape)
        return shapes

    def forward(self, x, *, trace=False):
        """float64 forward pass over a batch ``(batch, *input_shape)``; with ``trace``, a dict of
        every layer's output."""
        x = np.asarray(x, dtype=np.float64)
        outputs = {}
        for layer in self.layers:
            x = layer.forward(x)
            outputs[layer.name] = x
        return outputs if trace else x

    def replace_layers(self, layers):
        return FloatModel(self.name, self.input_shape, tuple(layers))
