"""On-chip training: optimizer specifications, their shared tables, and the trainable dense layer
specification. Plain data shared by the hardware (:mod:`nnfab.hdl.optim`,
:mod:`nnfab.hdl.trainable_dense`) and the golden models (:mod:`nnfab.sim.golden.optim`,
:mod:`nnfab.sim.golden.training`); neither recomputes a table.

Integer primitives (every optimizer is written with these only; ``>>`` is an arithmetic shift,
rounding toward minus infinity):

- ``rs(x, k)``: round half up, ``(x + 2**(k-1)) >> k`` for ``k > 0``, ``x`` for ``k == 0``,
  ``x << -k`` for ``k < 0``;
- ``sr(x, k, r)``: stochastic rounding (Gupta et al., "Deep learning with limited numerical
  precision", ICML 2015), ``(x + ((r << k) >> 32)) >> k`` with ``r`` the 32-bit state of the
  Galois LFSR :data:`LFSR_TAPS` (one step per update; ``r`` before the step);
- ``sat(x, F)``: clamp to ``F.min_code .. F.max_code`` (weights and state saturate, whatever
  the formats' own overflow modes say);
- ``rsqrt(x)`` for an integer code ``x >= 1`` with fraction width ``Fa``: ``p =
  x.bit_length() - 1``, ``e = p - Fa``, ``q = e mod 2``, ``h = (e - q) / 2``, ``j`` the
  ``b = rsqrt_bits`` bits below the leading one (``(x >> (p - b))`` or ``(x << (b - p))``, masked),
  ``r = RSQRT[q * 2**b + j]``; then ``1/sqrt(x * 2**-Fa) ~= r * 2**-Fr * 2**-h``. The table
  (:func:`rsqrt_table`) samples ``1/sqrt(m)`` at bin centres of the normalised mantissa
  ``m = (1 + (j + 1/2) / 2**b) * 2**q`` in ``[1, 4)``; no Newton step (relative error below
  ``2**-(b+2)``).

Optimizers (``w`` weight code, fraction ``Fw``; ``g`` gradient code, ``Fg``; first state ``m``
signed, ``Fm``; second state ``a`` unsigned, ``Fa``; learning rate ``2**-s``; ``R`` the final
rounding, ``rs`` or ``sr``):

=========== ==================================================================================
``sgd``     ``w' = sat(w - R(g, s + Fg - Fw), W)``
``momentum`` ``m' = sat(m - rs(m, k) + rs(g, Fg - Fm), M)`` (momentum ``1 - 2**-k``, Polyak
            1964, in the form of Sutskever et al. 2013 / PyTorch without dampening);
            ``w' = sat(w - R(m', s + Fm - Fw), W)``
``adagrad`` ``a' = sat(a + rs(g*g, 2Fg - Fa), A)``; ``r, h = rsqrt(a' + eps)``;
            ``w' = sat(w - R(g * r, s + Fg + Fr + h - Fw), W)`` (Duchi, Hazan and Singer,
            JMLR 2011, with epsilon under the square root)
``adam``    ``m' = sat(m - rs(m, k1) + rs(g, Fg + k1 - Fm), M)``;
            ``a' = sat(a - rs(a, k2) + rs(g*g, 2Fg + k2 - Fa), A)``; ``r, h = rsqrt(a' + eps)``;
            ``c = CORR[t - 1]`` (1.0 for ``t`` beyond the table);
            ``w' = sat(w - R(m' * c * r, s + Fc + Fm + Fr + h - Fw), W)`` (Kingma and Ba, ICLR
            2015, Algorithm 1 with the step size ``alpha_t = alpha sqrt(1 - b2**t) / (1 - b1**t)``
            of their section 2; betas ``1 - 2**-k1``, ``1 - 2**-k2``; epsilon under the root)
=========== ==================================================================================

``eps`` is :attr:`OptimizerSpec.epsilon_code`, a code of the second-state format.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .fixed import FixedFormat

__all__ = [
    "OPTIMIZER_KINDS", "LOSS_KINDS", "LFSR_TAPS", "LFSR_WIDTH", "lfsr_step",
    "OptimizerSpec", "sgd", "momentum", "adagrad", "adam", "rsqrt_table", "correction_table",
    "TrainableDenseSpec", "difference_format",
]

OPTIMIZER_KINDS = ("sgd", "momentum", "adagrad", "adam")
LOSS_KINDS = ("mse", "softmax_cross_entropy")
#: Galois LFSR, 32 bits, taps 32, 22, 2, 1 (Xilinx XAPP052): ``r = (r >> 1) ^ (TAPS if r & 1)``.
LFSR_TAPS = 0x80200003
LFSR_WIDTH = 32


def lfsr_step(r):
    """The LFSR state after ``r``."""
    return (r >> 1) ^ (LFSR_TAPS if r & 1 else 0)


def _check_int(value, what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")


def _check_shift(value, what):
    _check_int(value, what)
    if value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")


def _check_positive(value, what):
    _check_int(value, what)
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")

def _check_batch_and_loss(spec):
    """Checks shared by the trainer specs: a power-of-two batch size, at least 2 outputs for
    softmax cross-entropy, and its probability format (``ufixed<16,1>`` by default)."""
    _check_positive(spec.batch_size, "Batch size")
    if spec.batch_size & (spec.batch_size - 1):
        raise ValueError(f"Batch size must be a power of two, not {spec.batch_size!r}")
    if spec.loss == "softmax_cross_entropy":
        if spec.n_out < 2:
            raise ValueError(f"Softmax cross-entropy needs at least 2 outputs, not "
                             f"{spec.n_out!r}")
        if spec.probability_format is None:
            object.__setattr__(spec, "probability_format",
                               FixedFormat(16, 1, signed=False, rounding="RND", overflow="SAT"))
        _check_format(spec.probability_format, "Probability format", signed=False)



def _check_format(fmt, what, *, signed):
    if not isinstance(fmt, FixedFormat):
        raise TypeError(f"{what} must be a FixedFormat, not {fmt!r}")
    if fmt.signed != signed:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"{what} must be {kind}, not {fmt}")


def rsqrt_table(bits, fraction_width):
    """``2 * 2**bits`` codes: entry ``q * 2**bits + j`` is ``1/sqrt((1 + (j + 1/2) / 2**bits) *
    2**q)`` rounded half up to ``fraction_width`` fraction bits (unsigned, at most ``2**Fr``)."""
    n = 1 << bits
    return tuple(math.floor((1 << fraction_width) / math.sqrt((1 + (j + 0.5) / n) * (1 << q))
                            + 0.5) for q in range(2) for j in range(n))


def correction_table(beta1_shift, beta2_shift, depth, fraction_width):
    """Adam's bias correction ``sqrt(1 - b2**t) / (1 - b1**t)`` for ``t = 1 .. depth``, with
    ``b = 1 - 2**-k``, rounded half up to ``fraction_width`` fraction bits (unsigned codes)."""
    b1, b2 = 1 - 2.0 ** -beta1_shift, 1 - 2.0 ** -beta2_shift
    return tuple(math.floor(math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * (1 << fraction_width) + 0.5)
                 for t in range(1, depth + 1))


@dataclass(frozen=True)
class OptimizerSpec:
    """A fixed-point optimizer (see the module docstring for the exact algorithms).

    Build one with :func:`sgd`, :func:`momentum`, :func:`adagrad` or :func:`adam`.

    Attributes
    ----------
    kind : str
        One of :data:`OPTIMIZER_KINDS`.
    weight_format, gradient_format : FixedFormat
        Signed formats of weights ``W`` and gradients ``G``.
    state_format : FixedFormat or None
        Signed first state ``M`` (momentum buffer, Adam's first moment).
    square_format : FixedFormat or None
        Unsigned second state ``A`` (Adagrad's sum of squares, Adam's second moment).
    lr_shift : int
        ``s``, learning rate ``2**-s``.
    momentum_shift, beta1_shift, beta2_shift : int
        ``k``, ``k1``, ``k2``: momentum and betas ``1 - 2**-k``.
    epsilon_code : int
        Added to the second state before the reciprocal square root (code of ``A``).
    rsqrt_bits, rsqrt_fraction_width : int
        ``b`` mantissa bits indexing the table, ``Fr`` fraction bits of its entries.
    correction_depth, correction_fraction_width : int
        Steps covered by Adam's bias-correction table, ``Fc`` fraction bits of its entries.
    stochastic_rounding : bool
        Round the weight step with :func:`lfsr_step` bits instead of half up.
    lfsr_seed : int
        Non-zero initial LFSR state.
    """

    kind: str
    weight_format: FixedFormat
    gradient_format: FixedFormat
    lr_shift: int
    state_format: FixedFormat = None
    square_format: FixedFormat = None
    momentum_shift: int = 0
    beta1_shift: int = 0
    beta2_shift: int = 0
    epsilon_code: int = 1
    rsqrt_bits: int = 6
    rsqrt_fraction_width: int = 10
    correction_depth: int = 1024
    correction_fraction_width: int = 12
    stochastic_rounding: bool = False
    lfsr_seed: int = 1
    rsqrt_codes: tuple = field(init=False, repr=False, compare=False)
    correction_codes: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in OPTIMIZER_KINDS:
            accepted = ", ".join(repr(k) for k in OPTIMIZER_KINDS)
            raise ValueError(f"Optimizer kind must be one of {accepted}, not {self.kind!r}")
        _check_format(self.weight_format, "Weight format", signed=True)
        _check_format(self.gradient_format, "Gradient format", signed=True)
        _check_shift(self.lr_shift, "Learning rate shift")
        if self.kind in ("momentum", "adam"):
            _check_format(self.state_format, "State format", signed=True)
        if self.kind in ("adagrad", "adam"):
            _check_format(self.square_format, "Square format", signed=False)
            _check_positive(self.epsilon_code, "Epsilon code")
            self.square_format.check_code(self.epsilon_code)
            _check_positive(self.rsqrt_bits, "Reciprocal square root bits")
            _check_positive(self.rsqrt_fraction_width, "Reciprocal square root fraction width")
        if self.kind == "momentum":
            _check_positive(self.momentum_shift, "Momentum shift")
        if self.kind == "adam":
            _check_positive(self.beta1_shift, "Beta1 shift")
            _check_positive(self.beta2_shift, "Beta2 shift")
            _check_positive(self.correction_depth, "Correction depth")
            _check_shift(self.correction_fraction_width, "Correction fraction width")
        if not isinstance(self.stochastic_rounding, bool):
            raise TypeError(f"Stochastic rounding must be a bool, not "
                            f"{self.stochastic_rounding!r}")
        _check_positive(self.lfsr_seed, "LFSR seed")
        if self.lfsr_seed >> LFSR_WIDTH:
            raise ValueError(f"LFSR seed must fit in {LFSR_WIDTH} bits, not {self.lfsr_seed!r}")
        rsqrt = correction = ()
        if self.kind in ("adagrad", "adam"):
            rsqrt = rsqrt_table(self.rsqrt_bits, self.rsqrt_fraction_width)
        if self.kind == "adam":
            correction = correction_table(self.beta1_shift, self.beta2_shift,
                                          self.correction_depth, self.correction_fraction_width)
        object.__setattr__(self, "rsqrt_codes", rsqrt)
        object.__setattr__(self, "correction_codes", correction)
        if self.kind in ("adagrad", "adam") and self.min_step_shift < 0:
            raise ValueError(f"Formats give a negative weight step shift "
                             f"{self.min_step_shift!r}; raise the learning rate shift or the "
                             f"fraction widths")

    # -- derived constants ----------------------------------------------------------------------

    @property
    def has_state(self):
        return self.kind in ("momentum", "adam")

    @property
    def has_square(self):
        return self.kind in ("adagrad", "adam")

    @property
    def h_range(self):
        """(min, max) of the exponent ``h`` of :func:`rsqrt` over every ``a' + eps``."""
        fa = self.square_format.fraction_width
        p_max = self.square_format.width  # a' + eps may need one bit more than A
        return (-fa) // 2, (p_max - fa) // 2

    @property
    def step_shift_base(self):
        """The constant part of the weight step shift (the variable ``h`` is added)."""
        s = self.lr_shift
        fw, fg = self.weight_format.fraction_width, self.gradient_format.fraction_width
        if self.kind == "sgd":
            return s + fg - fw
        if self.kind == "momentum":
            return s + self.state_format.fraction_width - fw
        if self.kind == "adagrad":
            return s + fg + self.rsqrt_fraction_width - fw
        return (s + self.correction_fraction_width + self.state_format.fraction_width
                + self.rsqrt_fraction_width - fw)

    @property
    def min_step_shift(self):
        return self.step_shift_base + (self.h_range[0] if self.has_square else 0)

    @property
    def max_step_shift(self):
        return self.step_shift_base + (self.h_range[1] if self.has_square else 0)

    @property
    def correction_one(self):
        """Code of 1.0 in the correction table's format (the entry beyond the table)."""
        return 1 << self.correction_fraction_width


def sgd(*, weight_format, gradient_format, lr_shift, stochastic_rounding=False, lfsr_seed=1):
    """Plain SGD, ``w -= 2**-lr_shift * g``.

    Raises
    ------
    TypeError, ValueError
        As :class:`OptimizerSpec`, e.g. *"Learning rate shift must be a non-negative integer,
        not -1"*.
    """
    return OptimizerSpec("sgd", weight_format, gradient_format, lr_shift,
                         stochastic_rounding=stochastic_rounding, lfsr_seed=lfsr_seed)


def momentum(*, weight_format, gradient_format, state_format, lr_shift, momentum_shift,
             stochastic_rounding=False, lfsr_seed=1):
    """SGD with momentum ``1 - 2**-momentum_shift``. Raises as :class:`OptimizerSpec`."""
    return OptimizerSpec("momentum", weight_format, gradient_format, lr_shift,
                         state_format=state_format, momentum_shift=momentum_shift,
                         stochastic_rounding=stochastic_rounding, lfsr_seed=lfsr_seed)


def adagrad(*, weight_format, gradient_format, square_format, lr_shift, epsilon_code=1,
            rsqrt_bits=6, rsqrt_fraction_width=10, stochastic_rounding=False, lfsr_seed=1):
    """Adagrad. Raises as :class:`OptimizerSpec`."""
    return OptimizerSpec("adagrad", weight_format, gradient_format, lr_shift,
                         square_format=square_format, epsilon_code=epsilon_code,
                         rsqrt_bits=rsqrt_bits, rsqrt_fraction_width=rsqrt_fraction_width,
                         stochastic_rounding=stochastic_rounding, lfsr_seed=lfsr_seed)


def adam(*, weight_format, gradient_format, state_format, square_format, lr_shift,
         beta1_shift=3, beta2_shift=10, epsilon_code=1, rsqrt_bits=6, rsqrt_fraction_width=10,
         correction_depth=1024, correction_fraction_width=12, stochastic_rounding=False,
         lfsr_seed=1):
    """Adam; the defaults ``beta1 = 1 - 2**-3 = 0.875``, ``beta2 = 1 - 2**-10 ~= 0.999``.
    Raises as :class:`OptimizerSpec`."""
    return OptimizerSpec("adam", weight_format, gradient_format, lr_shift,
                         state_format=state_format, square_format=square_format,
                         beta1_shift=beta1_shift, beta2_shift=beta2_shift,
                         epsilon_code=epsilon_code, rsqrt_bits=rsqrt_bits,
                         rsqrt_fraction_width=rsqrt_fraction_width,
                         correction_depth=correction_depth,
                         correction_fraction_width=correction_fraction_width,
                         stochastic_rounding=stochastic_rounding, lfsr_seed=lfsr_seed)


def difference_format(loss, output_format, probability_format):
    """Exact format of the output error before its cast: ``y - target`` (``mse``, codes of
    ``output_format``) or ``p - onehot`` (``softmax_cross_entropy``, ``p`` in
    ``probability_format``)."""
    if loss == "mse":
        return output_format.sub_format(output_format)
    return FixedFormat(probability_format.width + 2, probability_format.integer_width + 2)


# -- trainable dense layer ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TrainableDenseSpec:
    """A dense layer ``y = cast(W x + b, output_format)`` trained on chip.

    Parameters are ``n_out * (n_in + 1)`` codes of ``optimizer.weight_format``, row ``o`` holding
    the ``n_in`` weights of output ``o`` then its bias (the bias multiplies an input fixed at
    1.0, so ``input_format`` must hold 1.0); parameter index ``o * (n_in + 1) + i``.

    Per sample: ``y`` exact sum cast to ``output_format``; error ``d`` cast to
    ``error_format`` from the exact ``y - target`` (``mse``) or ``p - onehot(label)`` with ``p``
    the table softmax of ``y`` in ``probability_format`` (``softmax_cross_entropy``);
    gradient sum ``S += d[o] * x[i]`` exact. After ``batch_size`` samples (or the sample flagged
    last in its epoch), ``g = cast(S * 2**-log2(batch_size), gradient_format)`` and every
    parameter goes through the optimizer, with step ``t`` counting updates from 1.

    Raises
    ------
    TypeError, ValueError
        For wrong kinds or inconsistent values, e.g. *"Batch size must be a power of two, not
        3"*.
    """

    n_in: int
    n_out: int
    loss: str
    optimizer: OptimizerSpec
    input_format: FixedFormat
    output_format: FixedFormat
    error_format: FixedFormat
    batch_size: int
    initial_weights: np.ndarray
    probability_format: FixedFormat = None

    def __post_init__(self):
        _check_positive(self.n_in, "Number of inputs")
        _check_positive(self.n_out, "Number of outputs")
        if self.loss not in LOSS_KINDS:
            accepted = ", ".join(repr(k) for k in LOSS_KINDS)
            raise ValueError(f"Loss must be one of {accepted}, not {self.loss!r}")
        if not isinstance(self.optimizer, OptimizerSpec):
            raise TypeError(f"Optimizer must be an OptimizerSpec, not {self.optimizer!r}")
        for fmt, what in ((self.input_format, "Input format"),
                          (self.output_format, "Output format"),
                          (self.error_format, "Error format")):
            _check_format(fmt, what, signed=True)
        if self.input_format.max_value < 1:
            raise ValueError(f"Input format must hold 1.0 for the bias, not "
                             f"{self.input_format}")
        _check_batch_and_loss(self)
        w = np.asarray(self.initial_weights)
        if not np.issubdtype(w.dtype, np.integer):
            raise TypeError(f"Initial weights must be integer codes, not {w.dtype}")
        if w.shape != (self.n_out, self.n_in + 1):
            raise ValueError(f"Initial weights must have shape {(self.n_out, self.n_in + 1)}, "
                             f"not {w.shape}")
        fmt = self.optimizer.weight_format
        if w.min() < fmt.min_code or w.max() > fmt.max_code:
            raise ValueError(f"Initial weights must be codes of {fmt}")
        object.__setattr__(self, "initial_weights", w.astype(np.int64))

    # -- derived formats -------------------------------------------------------------------------

    @property
    def n_params(self):
        return self.n_out * (self.n_in + 1)

    @property
    def one_code(self):
        """Code of the bias input 1.0 in ``input_format``."""
        return 1 << self.input_format.fraction_width

    @property
    def batch_log2(self):
        return self.batch_size.bit_length() - 1

    @property
    def forward_format(self):
        """Exact format of a row's sum of products."""
        return self.optimizer.weight_format.mul_format(self.input_format).sum_format(
            self.n_in + 1)

    @property
    def accumulator_format(self):
        """Exact format of the gradient sum over a batch (fraction ``Fd + Fx``)."""
        return self.error_format.mul_format(self.input_format).sum_format(self.batch_size)

    @property
    def mean_format(self):
        """The accumulator's codes read as the batch mean: ``log2(batch_size)`` more fraction
        bits, then cast to the gradient format."""
        acc = self.accumulator_format
        return FixedFormat(acc.width, acc.integer_width - self.batch_log2)

    @property
    def difference_format(self):
        """Exact format of ``y - target`` or ``p - onehot``, before the cast to the error."""
        return difference_format(self.loss, self.output_format, self.probability_format)

    @property
    def label_width(self):
        return max(1, (self.n_out - 1).bit_length())

    @property
    def reciprocal_table(self):
        """The softmax's reciprocal table: None, the default of
        :func:`nnfab.activation_params.check_softmax`."""
        return None
