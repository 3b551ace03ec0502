"""Float models: a network's architecture and float64 weights, before quantization.

Importers of float models (Keras, ONNX, the native format without formats) produce a
:class:`FloatModel`; :mod:`nnfab.gen.ptq` turns it into the quantized IR. ``forward`` is the
float64 reference the reports compare against.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError, ShapeError
from nnfab.tables import SELU_ALPHA, SELU_SCALE

from nnfab.ir import INPUT, consumers_of, resolve_graph, rewire_removed

__all__ = ["FloatLayer", "FloatDense", "FloatActivation", "FloatBatchNorm", "FloatSoftmax",
           "FloatArgmax", "FloatConv2D", "FloatPool", "FloatGlobalPool", "FloatZeroPad",
           "FloatFlatten", "FloatAdd", "FloatConcatenate", "FloatUpsample", "FloatModel",
           "FLOAT_ACTIVATIONS"]

FLOAT_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
}


def _float_array(values, name, what, ndim):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim or array.size == 0:
        raise ShapeError(f"Layer {name!r}: {what} must be a non-empty {ndim}-dimensional "
                         f"array, not of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = float(array[~np.isfinite(array)].flat[0])
        raise ModelError(f"Layer {name!r}: {what} contain {bad!r}; every value must be finite")
    return array


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """Base of the float layers: the tensors they read (``inputs``, see
    :mod:`nnfab.ir.graph`). A layer's ``output_shape`` and ``forward`` take one argument per
    input."""

    inputs: tuple = field(default=(), kw_only=True)


@dataclass(frozen=True, eq=False)
class FloatDense(FloatLayer):
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
class FloatActivation(FloatLayer):
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
class FloatBatchNorm(FloatLayer):
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
            if getattr(self, what).shape != self.gamma.shape:
                raise ShapeError(f"Layer {self.name!r}: {what} must have shape "
                                 f"{self.gamma.shape} as gamma, not {getattr(self, what).shape}")
        if np.any(self.variance + self.epsilon <= 0):
            raise ModelError(f"Layer {self.name!r}: variance + epsilon must be positive, not "
                             f"{float(np.min(self.variance + self.epsilon))!r}")

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
class FloatSoftmax(FloatLayer):
    kind: ClassVar[str] = "softmax"
    name: str

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, eq=False)
class FloatArgmax(FloatLayer):
    kind: ClassVar[str] = "argmax"
    name: str

    def output_shape(self, input_shape):
        return (1,)

    def forward(self, x):
        return np.argmax(x, axis=-1)[:, None].astype(np.float64)


def _same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(shape, kernel, strides, padding):
    if padding == "valid":
        return (0, 0), (0, 0)
    return _same_pads(shape[0], kernel[0], strides[0]), _same_pads(shape[1], kernel[1],
                                                                   strides[1])


def _windows(x, kernel, strides, pads, pad_value=0.0):
    """(batch, Ho, Wo, kh, kw, C) windows of channels-last frames."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
    win = win[:, ::strides[0], ::strides[1]]  # (batch, Ho, Wo, C, kh, kw)
    return np.moveaxis(win, 3, -1)


@dataclass(frozen=True, eq=False)
class FloatConv2D(FloatLayer):
    """2-D convolution, channels-last; ``weights`` of shape (n_filters, kh, kw, C_in)."""

    kind: ClassVar[str] = "conv2d"
    name: str
    weights: np.ndarray
    biases: np.ndarray | None = None
    strides: tuple = (1, 1)
    padding: str = "valid"

    def __post_init__(self):
        object.__setattr__(self, "weights", _float_array(self.weights, self.name, "weights", 4))
        if self.biases is not None:
            biases = _float_array(self.biases, self.name, "biases", 1)
            if biases.shape != (self.weights.shape[0],):
                raise ShapeError(f"Layer {self.name!r}: biases must have shape "
                                 f"({self.weights.shape[0]},), not {biases.shape}")
            object.__setattr__(self, "biases", biases)
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.padding not in ("valid", "same"):
            raise ModelError(f"Layer {self.name!r}: padding must be 'valid' or 'same', not "
                             f"{self.padding!r}")

    @property
    def kernel(self):
        return self.weights.shape[1:3]

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] != self.weights.shape[3]:
            raise ShapeError(f"Layer {self.name!r}: expects (H, W, {self.weights.shape[3]}) "
                             f"frames, not {tuple(input_shape)}")
        pads = _pads(input_shape, self.kernel, self.strides, self.padding)
        h = (input_shape[0] + sum(pads[0]) - self.kernel[0]) // self.strides[0] + 1
        w = (input_shape[1] + sum(pads[1]) - self.kernel[1]) // self.strides[1] + 1
        if h < 1 or w < 1:
            raise ShapeError(f"Layer {self.name!r}: kernel {self.kernel} is larger than the "
                             f"padded input {tuple(input_shape)}")
        return (h, w, self.weights.shape[0])

    def forward(self, x):
        pads = _pads(x.shape[1:], self.kernel, self.strides, self.padding)
        win = _windows(x, self.kernel, self.strides, pads)
        y = np.einsum("bhwijc,fijc->bhwf", win, self.weights)
        return y + self.biases if self.biases is not None else y


@dataclass(frozen=True, eq=False)
class FloatPool(FloatLayer):
    """Max or average pooling, channels-last."""

    kind: ClassVar[str] = "pool"
    name: str
    pool: str = "max"
    pool_size: tuple = (2, 2)
    strides: tuple | None = None
    padding: str = "valid"

    def __post_init__(self):
        object.__setattr__(self, "pool_size", tuple(self.pool_size))
        object.__setattr__(self, "strides", tuple(self.strides or self.pool_size))
        if self.pool not in ("max", "average"):
            raise ModelError(f"Layer {self.name!r}: pool must be 'max' or 'average', not "
                             f"{self.pool!r}")
        if self.padding not in ("valid", "same"):
            raise ModelError(f"Layer {self.name!r}: padding must be 'valid' or 'same', not "
                             f"{self.padding!r}")

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: pools (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        pads = _pads(input_shape, self.pool_size, self.strides, self.padding)
        h = (input_shape[0] + sum(pads[0]) - self.pool_size[0]) // self.strides[0] + 1
        w = (input_shape[1] + sum(pads[1]) - self.pool_size[1]) // self.strides[1] + 1
        if h < 1 or w < 1:
            raise ShapeError(f"Layer {self.name!r}: pool size {self.pool_size} is larger than "
                             f"the padded input {tuple(input_shape)}")
        return (h, w, input_shape[2])

    def forward(self, x):
        pads = _pads(x.shape[1:], self.pool_size, self.strides, self.padding)
        win = _windows(x, self.pool_size, self.strides, pads,
                       pad_value=-np.inf if self.pool == "max" else 0.0)
        return win.max(axis=(3, 4)) if self.pool == "max" else win.mean(axis=(3, 4))


@dataclass(frozen=True, eq=False)
class FloatFlatten(FloatLayer):
    kind: ClassVar[str] = "flatten"
    name: str

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True, eq=False)
class FloatGlobalPool(FloatLayer):
    """Global max or average pooling: ``(H, W, C)`` frames to ``(C,)`` vectors."""

    kind: ClassVar[str] = "global_pool"
    name: str
    pool: str = "average"

    def __post_init__(self):
        if self.pool not in ("max", "average"):
            raise ModelError(f"Layer {self.name!r}: pool must be 'max' or 'average', not "
                             f"{self.pool!r}")

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: pools (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        return (input_shape[2],)

    def forward(self, x):
        return x.max(axis=(1, 2)) if self.pool == "max" else x.mean(axis=(1, 2))


@dataclass(frozen=True, eq=False)
class FloatZeroPad(FloatLayer):
    """Zero padding of ``(H, W, C)`` frames by ``((top, bottom), (left, right))``."""

    kind: ClassVar[str] = "zero_pad"
    name: str
    padding: tuple = ((0, 0), (0, 0))

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: pads (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        (t, b), (l, r) = self.padding
        return (input_shape[0] + t + b, input_shape[1] + l + r, input_shape[2])

    def forward(self, x):
        return np.pad(x, ((0, 0), *map(tuple, self.padding), (0, 0)))


@dataclass(frozen=True, eq=False)
class FloatAdd(FloatLayer):
    """Element-wise sum of two or more tensors of one shape."""

    kind: ClassVar[str] = "add"
    name: str

    def output_shape(self, *input_shapes):
        if len(input_shapes) < 2 or any(tuple(s) != tuple(input_shapes[0])
                                        for s in input_shapes):
            raise ShapeError(f"Layer {self.name!r}: adds 2 or more tensors of one shape, not "
                             f"{[tuple(s) for s in input_shapes]}")
        return tuple(input_shapes[0])

    def forward(self, *xs):
        return sum(xs[1:], xs[0])


@dataclass(frozen=True, eq=False)
class FloatConcatenate(FloatLayer):
    """Tensors joined along the last axis."""

    kind: ClassVar[str] = "concatenate"
    name: str

    def output_shape(self, *input_shapes):
        if len(input_shapes) < 2 or any(tuple(s)[:-1] != tuple(input_shapes[0])[:-1]
                                        for s in input_shapes):
            raise ShapeError(f"Layer {self.name!r}: concatenates 2 or more tensors that agree "
                             f"on all axes but the last, not "
                             f"{[tuple(s) for s in input_shapes]}")
        return tuple(input_shapes[0])[:-1] + (sum(s[-1] for s in input_shapes),)

    def forward(self, *xs):
        return np.concatenate(xs, axis=-1)


@dataclass(frozen=True, eq=False)
class FloatUpsample(FloatLayer):
    """Nearest-neighbour upsampling of ``(H, W, C)`` frames by integer ``size``."""

    kind: ClassVar[str] = "upsample"
    name: str
    size: tuple = (2, 2)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"Layer {self.name!r}: upsamples (H, W, C) frames, not shape "
                             f"{tuple(input_shape)}")
        return (input_shape[0] * self.size[0], input_shape[1] * self.size[1], input_shape[2])

    def forward(self, x):
        return x.repeat(self.size[0], axis=1).repeat(self.size[1], axis=2)


@dataclass(frozen=True, eq=False)
class FloatModel:
    """A float network: input shape and a graph of float layers (:mod:`nnfab.ir.graph`),
    kept in topological order with explicit ``inputs``; the last layer is the output.

    Raises
    ------
    ModelError
        If there is no layer, two layers share a name, an input names no tensor, the graph has
        a cycle or a layer feeds nothing.
    ShapeError
        If a layer does not take the shapes of the tensors it reads.
    """

    name: str
    input_shape: tuple
    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        object.__setattr__(self, "layers", resolve_graph(self.name, self.layers))
        self.shapes()

    def shapes(self):
        """Output shape of every layer, in order."""
        tensors = {INPUT: self.input_shape}
        for layer in self.layers:
            tensors[layer.name] = tuple(layer.output_shape(*(tensors[t] for t in layer.inputs)))
        return [tensors[layer.name] for layer in self.layers]

    def consumers(self):
        """Map from each tensor name (``"input"`` and every layer's) to its readers' names."""
        return consumers_of(self.layers)

    def forward(self, x, *, trace=False):
        """float64 forward pass over a batch ``(batch, *input_shape)``; with ``trace``, a dict of
        every layer's output."""
        tensors = {INPUT: np.asarray(x, dtype=np.float64)}
        for layer in self.layers:
            tensors[layer.name] = layer.forward(*(tensors[t] for t in layer.inputs))
        del tensors[INPUT]
        return tensors if trace else tensors[self.layers[-1].name]

    def replace_layers(self, layers):
        return FloatModel(self.name, self.input_shape, tuple(rewire_removed(self.layers, layers)))
