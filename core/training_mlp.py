"""The trainable multi-layer perceptron specification: 2 to 4 dense layers with ReLU between
them, trained on chip by backpropagation (:mod:`nnfab.hdl.trainable_mlp`,
:mod:`nnfab.sim.golden.backprop`). Plain data shared by the hardware and the golden model.
"""

from dataclasses import dataclass

import numpy as np

from .fixed import FixedFormat
from .training import (LOSS_KINDS, OptimizerSpec, _check_batch_and_loss, _check_format,
                       _check_positive, difference_format)

__all__ = ["TrainableMLPSpec", "MIN_LAYERS", "MAX_LAYERS"]

MIN_LAYERS, MAX_LAYERS = 2, 4


@dataclass(frozen=True, eq=False)
class TrainableMLPSpec:
    """A multi-layer perceptron ``a_0 = x``, ``z_l = cast(W_l [a_{l-1}, 1], F_l)``,
    ``a_l = max(z_l, 0)`` for the hidden layers ``l < L`` (``F_l`` = ``activation_format``),
    ``y = z_L`` (``F_L`` = ``output_format``, no activation), trained on chip.

    Layer ``l`` (1-based) has ``n_l * (n_{l-1} + 1)`` parameter codes of
    ``optimizer.weight_format``, shape ``(n_l, n_{l-1} + 1)``, row ``o`` holding the weights of
    output ``o`` then its bias (the bias multiplies an input fixed at 1.0, so ``input_format``
    and ``activation_format`` must hold 1.0).

    Per sample (integer codes, exact sums and products, each cast written ``cast``: the
    rounding and overflow of the destination format, as :func:`nnfab.casts.cast`):

    - forward as above, the activations kept;
    - output error ``e_L`` as :class:`~nnfab.training.TrainableDenseSpec`: ``cast(y - target,
      error_format)`` (``mse``) or ``cast(p - onehot(label), error_format)`` with ``p`` the
      table softmax of ``y`` in ``probability_format``;
    - backward, ``l = L .. 2``: ``e_{l-1}[i] = cast(sum_o W_l[o, i] e_l[o], error_format)`` if
      ``a_{l-1}[i] > 0`` (the ReLU derivative: ``z > 0``), else 0, with the weights before
      this batch's update;
    - gradient sums ``S_l[o, i] += e_l[o] a_{l-1}[i]`` (``a[n] = 1.0`` for the bias), exact.

    After ``batch_size`` samples (or the sample flagged last in its epoch), every layer's
    ``g = cast(S * 2**-log2(batch_size), gradient_format)``, and all parameters, layer 1 first,
    row-major, go through the optimizer as one vector of :attr:`n_params` (one optimizer state
    and LFSR; step ``t`` counting updates from 1).

    Parameters
    ----------
    layer_sizes : tuple of int
        ``(n_0, n_1, ..., n_L)``, ``L`` from 2 to 4 dense layers.
    loss : str
        One of :data:`~nnfab.training.LOSS_KINDS`.
    optimizer : OptimizerSpec
        Weight, gradient and optimizer state formats and the algorithm, for every layer.
    input_format, activation_format, output_format, error_format : FixedFormat
        Signed formats of ``x``, of the hidden ``z``/``a``, of ``y`` and of every ``e``.
    batch_size : int
        A power of two.
    initial_weights : sequence of ndarray of int
        ``L`` arrays of codes, shapes ``(n_l, n_{l-1} + 1)``.
    probability_format : FixedFormat, optional
        Unsigned, the softmax output (default ``ufixed<16,1,RND,SAT>``).
    reciprocal_table_size : int
        Entries of the softmax's reciprocal table (:attr:`reciprocal_table`). The default
        table (1024 entries over ``[0, 16)`` for 10 classes) gives a confident ``p`` of 0.992
        instead of 1: a bias in every error that Adam turns into ever-growing weights (digits
        64-32-10 falls from 97 % to 89 % between epochs 3 and 10); 8192 entries keep it 96.7 %.
    reuse_factor : int, optional
        hls4ml's reuse factor ``R`` of a dense layer: the multiplications each multiplier does
        in one of layer ``l``'s products (forward ``W_l a``, backward ``W_l^T e`` and gradient
        ``e a^T``, ``n_l c_l`` multiplications each, ``c_l = n_{l-1} + 1`` columns). Layer
        ``l`` gets the fewest :meth:`lanes` ``k_l`` (multipliers per product) with
        ``n_l ceil(c_l / k_l) <= R``, i.e. ``k_l = ceil(c_l / floor(R / n_l))``; a row then
        takes :meth:`row_cycles` ``ceil(c_l / k_l)`` cycles and a product ``n_l`` times that.
        From ``max(n_l)`` (one cycle per row); None (default) is the largest, one lane per
        layer (``R`` = the layer's parameter count). The arithmetic (exact sums) is the same
        at every ``R``.

    Raises
    ------
    TypeError, ValueError
        For wrong kinds or inconsistent values, e.g. *"Layer sizes must list 3 to 5 sizes (2 to
        4 dense layers), not (4, 2)"*.
    """

    layer_sizes: tuple
    loss: str
    optimizer: OptimizerSpec
    input_format: FixedFormat
    activation_format: FixedFormat
    output_format: FixedFormat
    error_format: FixedFormat
    batch_size: int
    initial_weights: tuple
    probability_format: FixedFormat = None
    reciprocal_table_size: int = 8192
    reuse_factor: int = None

    def __post_init__(self):
        sizes = self.layer_sizes
        if not isinstance(sizes, (tuple, list)):
            raise TypeError(f"Layer sizes must be a tuple of integers, not {sizes!r}")
        sizes = tuple(sizes)
        if not MIN_LAYERS + 1 <= len(sizes) <= MAX_LAYERS + 1:
            raise ValueError(f"Layer sizes must list {MIN_LAYERS + 1} to {MAX_LAYERS + 1} sizes "
                             f"({MIN_LAYERS} to {MAX_LAYERS} dense layers), not {sizes!r}")
        for n in sizes:
            _check_positive(n, "Layer size")
        object.__setattr__(self, "layer_sizes", sizes)
        if self.loss not in LOSS_KINDS:
            accepted = ", ".join(repr(k) for k in LOSS_KINDS)
            raise ValueError(f"Loss must be one of {accepted}, not {self.loss!r}")
        if not isinstance(self.optimizer, OptimizerSpec):
            raise TypeError(f"Optimizer must be an OptimizerSpec, not {self.optimizer!r}")
        for fmt, what in ((self.input_format, "Input format"),
                          (self.activation_format, "Activation format"),
                          (self.output_format, "Output format"),
                          (self.error_format, "Error format")):
            _check_format(fmt, what, signed=True)
        for fmt, what in ((self.input_format, "Input format"),
                          (self.activation_format, "Activation format")):
            if fmt.max_value < 1:
                raise ValueError(f"{what} must hold 1.0 for the bias, not {fmt}")
        _check_batch_and_loss(self)
        _check_positive(self.reciprocal_table_size, "Reciprocal table size")
        r, least = self.reuse_factor, max(sizes[1:])
        if r is not None and (not isinstance(r, (int, np.integer)) or isinstance(r, bool)
                              or r < least):
            raise ValueError(f"Reuse factor must be None or an integer from {least} (the "
                             f"largest layer's {least} rows, one cycle per row), not {r!r}")
        weights = self.initial_weights
        if not isinstance(weights, (tuple, list)):
            raise TypeError(f"Initial weights must be a tuple of arrays, one per layer, not "
                            f"{weights!r}")
        if len(weights) != self.n_layers:
            raise ValueError(f"Initial weights must be {self.n_layers} arrays, one per layer, "
                             f"not {len(weights)}")
        fmt = self.optimizer.weight_format
        checked = []
        for l, w in enumerate(weights, start=1):
            w = np.asarray(w)
            if not np.issubdtype(w.dtype, np.integer):
                raise TypeError(f"Initial weights of layer {l} must be integer codes, not "
                                f"{w.dtype}")
            if w.shape != self.weight_shape(l):
                raise ValueError(f"Initial weights of layer {l} must have shape "
                                 f"{self.weight_shape(l)}, not {w.shape}")
            if w.min() < fmt.min_code or w.max() > fmt.max_code:
                raise ValueError(f"Initial weights of layer {l} must be codes of {fmt}")
            checked.append(w.astype(np.int64))
        object.__setattr__(self, "initial_weights", tuple(checked))

    # -- shapes ----------------------------------------------------------------------------------

    @property
    def n_layers(self):
        return len(self.layer_sizes) - 1

    @property
    def n_in(self):
        return self.layer_sizes[0]

    @property
    def n_out(self):
        return self.layer_sizes[-1]

    def weight_shape(self, layer):
        """``(n_l, n_{l-1} + 1)`` of layer ``layer`` (1-based)."""
        return self.layer_sizes[layer], self.layer_sizes[layer - 1] + 1

    def layer_params(self, layer):
        rows, cols = self.weight_shape(layer)
        return rows * cols

    def lanes(self, layer):
        """Multiply-accumulates per cycle of layer ``layer``'s products (see ``reuse_factor``)."""
        rows, cols = self.weight_shape(layer)
        if self.reuse_factor is None:
            return 1
        return -(-cols // min(cols, self.reuse_factor // rows))

    def row_cycles(self, layer):
        """Cycles of one row of layer ``layer`` (``ceil(c_l / lanes)``); lane ``k`` holds the
        columns ``g lanes + k``, ``g`` below this count (the last group padded)."""
        cols = self.weight_shape(layer)[1]
        return -(-cols // self.lanes(layer))

    @property
    def n_params(self):
        return sum(self.layer_params(l) for l in range(1, self.n_layers + 1))

    @property
    def label_width(self):
        return max(1, (self.n_out - 1).bit_length())

    @property
    def batch_log2(self):
        return self.batch_size.bit_length() - 1

    # -- formats ---------------------------------------------------------------------------------

    def layer_input_format(self, layer):
        """Format of ``a_{l-1}``: the input format for layer 1, else the activation format."""
        return self.input_format if layer == 1 else self.activation_format

    def layer_output_format(self, layer):
        return self.output_format if layer == self.n_layers else self.activation_format

    def one_code(self, layer):
        """Code of the bias input 1.0 of layer ``layer``."""
        return 1 << self.layer_input_format(layer).fraction_width

    def forward_format(self, layer):
        """Exact format of a row's sum of products."""
        rows, cols = self.weight_shape(layer)
        return self.optimizer.weight_format.mul_format(
            self.layer_input_format(layer)).sum_format(cols)

    def backward_format(self, layer):
        """Exact format of ``sum_o W_l[o, i] e_l[o]`` (``layer >= 2``)."""
        return self.optimizer.weight_format.mul_format(self.error_format).sum_format(
            self.layer_sizes[layer])

    def accumulator_format(self, layer):
        """Exact format of layer ``layer``'s gradient sum over a batch."""
        return self.error_format.mul_format(self.layer_input_format(layer)).sum_format(
            self.batch_size)

    def mean_format(self, layer):
        """The accumulator's codes read as the batch mean (``log2(batch_size)`` more fraction
        bits), cast to the gradient format."""
        acc = self.accumulator_format(layer)
        return FixedFormat(acc.width, acc.integer_width - self.batch_log2)

    @property
    def reciprocal_table(self):
        """The softmax's reciprocal table: :func:`nnfab.tables.reciprocal_table` with
        :attr:`reciprocal_table_size` entries over ``[0, R)``, ``R`` the smallest power of two
        at least ``n_out`` (None for ``mse``)."""
        if self.loss == "mse":
            return None
        from .tables import reciprocal_table
        return reciprocal_table(table_size=self.reciprocal_table_size,
                                input_range=1 << (self.n_out - 1).bit_length())

    @property
    def difference_format(self):
        """Exact format of ``y - target`` or ``p - onehot``, before the cast to the error."""
        return difference_format(self.loss, self.output_format, self.probability_format)
