"""Specifications of convolution, pooling and per-channel layers, shared by hardware and golden
model (as :class:`~nnfab.layers.DenseSpec` is for fully connected layers).

Tensors are channels-last: an image is ``(height, width, channels)``, a sequence
``(length, channels)``; a 1-D layer is the 2-D layer of height 1 (:meth:`Conv1DSpec.as_conv2d`).

Padding follows TensorFlow/Keras. ``"valid"``: no padding, ``out = (size - kernel) // stride + 1``.
``"same"``: ``out = ceil(size / stride)``, ``pad_total = max((out - 1) * stride + kernel - size,
0)``, ``pad_before = pad_total // 2`` and the rest after.

Arithmetic, as everywhere in nnfab: exact products and sums (or, with an explicit
``accumulator_format``, hls4ml ``accum_t`` behaviour), one cast to ``output_format``, then the
optional activation (``activation`` kind from
:data:`nnfab.activation_params.ACTIVATION_KINDS`, applied with ``fin = output_format``, ``fout =
activation_format``).
"""

from dataclasses import dataclass, field

import numpy as np

from .activation_params import check_activation
from .fixed import FixedFormat
from .layers import DenseSpec, check_accumulator, code_array, mac_accumulator_format

__all__ = ["same_padding", "output_size", "Conv2DSpec", "Conv1DSpec", "DepthwiseConv2DSpec",
           "PoolSpec", "GlobalPoolSpec", "BatchNormSpec"]

_PADDINGS = ("valid", "same")


def _check_int(value, what):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    return int(value)


def _positive(value, what):
    value = _check_int(value, what)
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def _pair(value, what):
    """An int or a pair of ints as a pair of positive ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise TypeError(f"{what} must be an integer or a pair of integers, not {value!r}")
        return tuple(_positive(v, what) for v in value)
    value = _positive(value, what)
    return (value, value)


def _check_format(value, what, optional=False):
    if value is None and optional:
        return
    if not isinstance(value, FixedFormat):
        extra = " or None" if optional else ""
        raise TypeError(f"{what} must be a FixedFormat{extra}, not {value!r}")


def _check_padding(padding):
    if not isinstance(padding, str):
        raise TypeError(f"Padding must be a string, not {padding!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"Padding must be 'valid' or 'same', not {padding!r}")
    return padding


def _check_shape(shape, n, what):
    if not isinstance(shape, (tuple, list)) or len(shape) != n:
        raise TypeError(f"{what} must be a tuple of {n} integers, not {shape!r}")
    return tuple(_positive(v, what) for v in shape)


def same_padding(size, kernel, stride):
    """``(pad_before, pad_after)`` of Keras ``"same"`` padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def output_size(size, kernel, stride, padding, axis="width"):
    """Output size along one axis; ValueError if the kernel is larger than the padded input."""
    pads = same_padding(size, kernel, stride) if padding == "same" else (0, 0)
    padded = size + sum(pads)
    if kernel > padded:
        raise ValueError(f"Kernel {axis} {kernel} is larger than the padded input {axis} "
                         f"{padded}")
    return (padded - kernel) // stride + 1


class _Window:
    """Geometry shared by convolution and pooling: ``input_shape`` (H, W, C), ``kernel_size``
    (kh, kw), ``strides`` (sh, sw), ``padding``."""

    def _check_geometry(self, dilation_rate=1):
        if dilation_rate not in (1, (1, 1)):
            raise ValueError(f"Dilation rate must be 1 (dilated convolution is not supported), "
                             f"not {dilation_rate!r}")
        _check_padding(self.padding)
        object.__setattr__(self, "strides", _pair(self.strides, "Stride"))
        for axis, size, k, s in zip(("height", "width"), self.input_shape[:2],
                                    self.kernel_size, self.strides):
            output_size(size, k, s, self.padding, axis)

    @property
    def pads(self):
        """``((top, bottom), (left, right))`` zero padding."""
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        return tuple(same_padding(n, k, s) for n, k, s in
                     zip(self.input_shape[:2], self.kernel_size, self.strides))

    @property
    def padded_shape(self):
        """``(H + top + bottom, W + left + right)``."""
        return tuple(n + sum(p) for n, p in zip(self.input_shape[:2], self.pads))

    @property
    def n_channels(self):
        return self.input_shape[2]

    def _output_hw(self):
        return tuple(output_size(n, k, s, self.padding) for n, k, s in
                     zip(self.input_shape[:2], self.kernel_size, self.strides))


def _check_activation(spec):
    if spec.activation is None:
        if spec.activation_format is not None:
            raise ValueError("Activation format must be None without an activation")
        object.__setattr__(spec, "activation_params", {})
        return
    if spec.activation_format is None:
        raise ValueError(f"Activation {spec.activation!r} needs an activation format")
    params = dict(spec.activation_params or {})
    check_activation(spec.activation, fin=spec.output_format, fout=spec.activation_format,
                     **params)
    object.__setattr__(spec, "activation_params", params)


@dataclass(frozen=True, eq=False)
class Conv2DSpec(_Window):
    """A 2-D convolution ``y = act(cast(conv(x, W) + b, output_format))``, channels-last.

    Parameters
    ----------
    weights : array_like of int, shape (n_filters, kh, kw, n_channels)
        Raw codes in ``weight_format`` (Keras' kernel ``(kh, kw, C_in, C_out)`` transposed).
    biases : array_like of int, shape (n_filters,), or None
    input_shape : (int, int, int)
        ``(H, W, C_in)`` of one frame.
    input_format, weight_format, output_format : FixedFormat
    strides : int or (int, int), >= 1
    padding : ``"valid"`` or ``"same"``
    bias_format, accumulator_format : FixedFormat or None
        As :class:`~nnfab.layers.DenseSpec`.
    dilation_rate : 1
        Any other value raises.
    activation : str or None
        Fused elementwise activation kind; ``activation_format`` is then its output format and
        ``activation_params`` its parameters (:func:`nnfab.activation_params.check_activation`).
    pad_code : int
        Code of ``input_format`` that ``"same"`` padding inserts (default 0, the real zero of a
        fixed-point format). TFLite pads with the input zero point, the real zero of its
        affine int8 codes; with the zero point folded into the bias, padding with it keeps
        every window sum exact (:mod:`nnfab.gen.importers.tflite_conv`).

    Raises
    ------
    TypeError
        For a value of the wrong kind (a format that is not a FixedFormat, a float stride, ...).
    ValueError
        For inconsistent values: a stride below 1, an unknown padding, a dilation rate other
        than 1, a kernel larger than the padded input, codes out of range (weights, biases,
        ``pad_code``), shapes that disagree.
    """

    weights: np.ndarray
    biases: np.ndarray | None
    input_shape: tuple
    input_format: FixedFormat
    weight_format: FixedFormat
    output_format: FixedFormat
    strides: int | tuple = 1
    padding: str = "valid"
    bias_format: FixedFormat | None = None
    accumulator_format: FixedFormat | None = None
    dilation_rate: int = 1
    activation: str | None = None
    activation_format: FixedFormat | None = None
    activation_params: dict = field(default=None)
    pad_code: int = 0

    _kernel_ndim = 4

    def __post_init__(self):
        for name in ("input_format", "weight_format", "output_format"):
            _check_format(getattr(self, name), name.replace("_", " ").capitalize())
        for name in ("bias_format", "accumulator_format", "activation_format"):
            _check_format(getattr(self, name), name.replace("_", " ").capitalize(), True)
        object.__setattr__(self, "input_shape",
                           _check_shape(self.input_shape, 3, "Input shape"))
        weights = np.asarray(self.weights)
        if weights.ndim != self._kernel_ndim or 0 in weights.shape:
            raise ValueError(f"Weights must be a non-empty array of {self._kernel_ndim} "
                             f"dimensions, not of shape {weights.shape}")
        if weights.shape[-1] != self.input_shape[2] and self._kernel_ndim == 4:
            raise ValueError(f"Weights have {weights.shape[-1]} input channels, the input "
                             f"{self.input_shape[2]}")
        object.__setattr__(self, "weights", code_array(weights, self.weight_format, "Weight",
                                                        weights.shape))
        if self.biases is not None:
            if self.bias_format is None:
                raise ValueError("Bias format must be given with biases")
            object.__setattr__(self, "biases", code_array(
                self.biases, self.bias_format, "Bias", (self.n_filters,)))
        self._check_geometry(self.dilation_rate)
        object.__setattr__(self, "pad_code", _check_int(self.pad_code, "Pad code"))
        if not self.input_format.min_code <= self.pad_code <= self.input_format.max_code:
            raise ValueError(f"Pad code must be a code of {self.input_format} (from "
                             f"{self.input_format.min_code} to {self.input_format.max_code}), "
                             f"not {self.pad_code!r}")
        _check_activation(self)
        check_accumulator(self.accumulator)

    @property
    def kernel_size(self):
        return tuple(self.weights.shape[1:3])

    @property
    def n_filters(self):
        return self.weights.shape[0]

    @property
    def output_shape(self):
        """``(H_out, W_out, n_filters)``."""
        return self._output_hw() + (self.n_filters,)

    @property
    def n_window(self):
        """Elements of one window: ``kh * kw * C_in``, the fan-in of one output."""
        kh, kw = self.kernel_size
        return kh * kw * self.n_channels

    @property
    def dense_weights(self):
        """Weights as the ``(n_filters, kh * kw * C_in)`` matrix over a window in (row, column,
        channel) order."""
        return self.weights.reshape(self.n_filters, self.n_window)

    @property
    def dense_spec(self):
        """The :class:`~nnfab.layers.DenseSpec` that maps one window to one output pixel."""
        return DenseSpec(self.dense_weights, self.biases, self.input_format, self.weight_format,
                         self.output_format, bias_format=self.bias_format,
                         accumulator_format=self.accumulator_format)

    @property
    def accumulator(self):
        """The format the sum is formed in (as :attr:`DenseSpec.accumulator`)."""
        if self.accumulator_format is not None:
            return self.accumulator_format
        total = mac_accumulator_format(self.input_format, self.weight_format,
                                       self.n_window_terms)
        if self.biases is not None:
            total = total.add_format(self.bias_format)
        return total

    @property
    def n_window_terms(self):
        return self.n_window

    @property
    def result_format(self):
        """Format of the layer's output codes: ``activation_format`` or ``output_format``."""
        return self.activation_format if self.activation else self.output_format


@dataclass(frozen=True, eq=False, init=False)
class DepthwiseConv2DSpec(Conv2DSpec):
    """Depthwise 2-D convolution (depth multiplier 1): channel ``c`` of the output is channel
    ``c`` of the input convolved with its own ``(kh, kw)`` kernel, plus bias ``c``.

    Parameters as :class:`Conv2DSpec`, except ``weights`` of shape ``(kh, kw, C)`` (Keras'
    ``depthwise_kernel`` without its depth multiplier axis) and ``biases`` of shape ``(C,)``.
    """

    _kernel_ndim = 3

    def __init__(self, weights, biases, input_shape, input_format, weight_format,
                 output_format, **kwargs):
        Conv2DSpec.__init__(self, weights, biases, input_shape, input_format, weight_format,
                            output_format, **kwargs)

    def __post_init__(self):
        weights = np.asarray(self.weights)
        if weights.ndim == 3 and isinstance(self.input_shape, (tuple, list)) and \
                len(self.input_shape) == 3 and weights.shape[-1] != self.input_shape[2]:
            raise ValueError(f"Weights have {weights.shape[-1]} channels, the input "
                             f"{self.input_shape[2]}")
        super().__post_init__()

    @property
    def kernel_size(self):
        return tuple(self.weights.shape[0:2])

    @property
    def n_filters(self):
        return self.n_channels

    @property
    def n_window_terms(self):
        kh, kw = self.kernel_size
        return kh * kw

    @property
    def dense_weights(self):
        """The block-sparse ``(C, kh * kw * C)`` matrix: output ``c`` sees only channel ``c``
        of the window; zero weights cost nothing in hardware."""
        kh, kw = self.kernel_size
        c = self.n_channels
        dense = np.zeros((c, kh, kw, c), dtype=object)
        for ch in range(c):
            dense[ch, :, :, ch] = self.weights[:, :, ch]
        return dense.reshape(c, kh * kw * c)


def Conv1DSpec(weights, biases, input_shape, input_format, weight_format, output_format, *,
               strides=1, padding="valid", **kwargs):
    """A 1-D convolution over ``(length, C_in)`` frames, as the :class:`Conv2DSpec` of height 1.

    Parameters
    ----------
    weights : array_like of int, shape (n_filters, k, C_in)
    input_shape : (int, int)
        ``(length, C_in)``.
    strides : int
    Other parameters as :class:`Conv2DSpec`.

    Returns
    -------
    Conv2DSpec
        With ``input_shape (1, length, C_in)``, weights ``(n_filters, 1, k, C_in)``, stride
        ``(1, strides)``; its output shape is ``(1, length_out, n_filters)``.
    """
    input_shape = _check_shape(input_shape, 2, "Input shape")
    weights = np.asarray(weights)
    if weights.ndim != 3:
        raise ValueError(f"Weights must be a non-empty array of 3 dimensions, not of shape "
                         f"{weights.shape}")
    if isinstance(strides, (tuple, list)):
        raise TypeError(f"Stride must be an integer, not {strides!r}")
    _positive(strides, "Stride")
    _check_padding(padding)
    output_size(input_shape[0], weights.shape[1], strides, padding, "length")
    return Conv2DSpec(weights[:, None], biases, (1,) + input_shape, input_format,
                      weight_format, output_format, strides=(1, strides), padding=padding,
                      **kwargs)


@dataclass(frozen=True, eq=False)
class PoolSpec(_Window):
    """Max or average pooling over ``pool_size`` windows, channels-last.

    ``"max"``: the largest code of the window, cast to ``output_format``. ``"same"`` padding
    pads with the input format's most negative code, so padded positions never win (Keras).

    ``"average"``: the exact sum of the window, divided by the window size ``n = ph * pw``
    and cast once to ``output_format`` with its rounding and overflow modes (the quotient
    is rounded as if it had infinitely many fraction bits: no intermediate truncation).
    Only ``"valid"`` padding (Keras divides by the number of unpadded elements, which varies).

    Parameters
    ----------
    kind : ``"max"`` or ``"average"``
    input_shape : (int, int, int)
        ``(H, W, C)``; a 1-D pool is ``(1, length, C)`` with pool size ``(1, p)``.
    pool_size : int or (int, int)
    input_format, output_format : FixedFormat
    strides : int, (int, int) or None
        None (the default) is ``pool_size``, as in Keras.
    padding : ``"valid"`` or ``"same"``

    Raises
    ------
    TypeError, ValueError
        As :class:`Conv2DSpec`; ValueError for an unknown kind or average pooling with
        ``"same"`` padding.
    """

    kind: str
    input_shape: tuple
    pool_size: int | tuple
    input_format: FixedFormat
    output_format: FixedFormat
    strides: int | tuple | None = None
    padding: str = "valid"

    def __post_init__(self):
        if self.kind not in ("max", "average"):
            raise ValueError(f"Pool kind must be 'max' or 'average', not {self.kind!r}")
        _check_format(self.input_format, "Input format")
        _check_format(self.output_format, "Output format")
        object.__setattr__(self, "input_shape",
                           _check_shape(self.input_shape, 3, "Input shape"))
        object.__setattr__(self, "pool_size", _pair(self.pool_size, "Pool size"))
        if self.strides is None:
            object.__setattr__(self, "strides", self.pool_size)
        self._check_geometry()
        if self.kind == "average" and self.padding == "same":
            raise ValueError("Average pooling supports padding 'valid' only, not 'same'")

    @property
    def kernel_size(self):
        return self.pool_size

    @property
    def n_window(self):
        return self.pool_size[0] * self.pool_size[1]

    @property
    def pad_code(self):
        """Code that padded positions hold: the input's most negative code for max pooling."""
        return self.input_format.min_code if self.kind == "max" else 0

    @property
    def output_shape(self):
        return self._output_hw() + (self.n_channels,)

    @property
    def sum_format(self):
        """Exact format of the sum of one window (average pooling)."""
        return self.input_format.sum_format(self.n_window)


@dataclass(frozen=True, eq=False)
class GlobalPoolSpec:
    """Global max or average pooling: one ``(C,)`` vector per ``(H, W, C)`` frame.

    Average: the exact sum of ``H * W`` codes divided by ``H * W`` and cast once to
    ``output_format`` (as :class:`PoolSpec`). Max: the largest code, cast.
    """

    kind: str
    input_shape: tuple
    input_format: FixedFormat
    output_format: FixedFormat

    def __post_init__(self):
        if self.kind not in ("max", "average"):
            raise ValueError(f"Pool kind must be 'max' or 'average', not {self.kind!r}")
        _check_format(self.input_format, "Input format")
        _check_format(self.output_format, "Output format")
        object.__setattr__(self, "input_shape",
                           _check_shape(self.input_shape, 3, "Input shape"))

    @property
    def n_channels(self):
        return self.input_shape[2]

    @property
    def n_pixels(self):
        return self.input_shape[0] * self.input_shape[1]

    @property
    def sum_format(self):
        return self.input_format.sum_format(self.n_pixels)


@dataclass(frozen=True, eq=False)
class BatchNormSpec:
    """Per-channel scale and shift: ``y[c] = cast(x[c] * scale[c] + shift[c], output_format)``,
    exact product and sum, one cast (BatchNormalization at inference, folded).

    Parameters
    ----------
    scale : array_like of int, shape (C,)
        Codes of ``scale_format``.
    shift : array_like of int, shape (C,)
        Codes of ``shift_format``.
    input_format, scale_format, shift_format, output_format : FixedFormat
    """

    scale: np.ndarray
    shift: np.ndarray
    input_format: FixedFormat
    scale_format: FixedFormat
    shift_format: FixedFormat
    output_format: FixedFormat

    def __post_init__(self):
        for name in ("input_format", "scale_format", "shift_format", "output_format"):
            _check_format(getattr(self, name), name.replace("_", " ").capitalize())
        scale = np.asarray(self.scale)
        if scale.ndim != 1 or scale.size == 0:
            raise ValueError(f"Scale must be a non-empty vector, not of shape {scale.shape}")
        object.__setattr__(self, "scale",
                           code_array(scale, self.scale_format, "Scale", scale.shape))
        object.__setattr__(self, "shift",
                           code_array(self.shift, self.shift_format, "Shift", scale.shape))
        check_accumulator(self.sum_format)

    @property
    def n_channels(self):
        return self.scale.shape[0]

    @property
    def product_format(self):
        return self.input_format.mul_format(self.scale_format)

    @property
    def sum_format(self):
        """Exact format of ``x * scale + shift``."""
        return self.product_format.add_format(self.shift_format)
