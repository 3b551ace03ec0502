"""Train a dense layer (:class:`~nnfab.hdl.trainable_dense.TrainableDense`) or a multi-layer
perceptron (:class:`~nnfab.hdl.trainable_mlp.TrainableMLP`) in RTL simulation: run it on
Verilator inside the HDL harness (:func:`nnfab.sim.harness.run_harness`; the first epoch at
full rate, the others under random idle and back-pressure) over a data set, and compare its
loss curve with the NumPy fixed-point reference (bit-exact) and a float64 reference.

Python API: :func:`train`, :func:`make_problem`, :func:`plot_losses`; command line:
:data:`nnfab.cli.train.train_command` (``nnfab train``).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnfab.errors import SimulationError
from nnfab.fixed import FixedFormat
from nnfab.training import TrainableDenseSpec, adagrad, adam, momentum, sgd
from nnfab.training_mlp import TrainableMLPSpec

__all__ = ["DATASETS", "OPTIMIZERS", "Problem", "TrainResult", "make_problem", "train",
           "plot_losses", "pack_samples"]

DATASETS = ("regression", "breast-cancer", "digits")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam")


@dataclass
class Problem:
    """A data set with its layer specification (codes and floats), ready to train."""

    spec: TrainableDenseSpec  # or TrainableMLPSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_codes: np.ndarray
    y_codes: np.ndarray
    lr: float


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    problem : Problem
    losses_rtl, losses_fixed, losses_float : list of float
        Per epoch, the mean training loss over the epoch's forward outputs (computed before
        each batch's update) of the RTL run, the fixed-point golden model and the float model.
    weights_rtl, weights_fixed : list of ndarray of int
        Parameter codes at the end of every epoch (``weights_rtl`` empty without simulation).
    weights_float : list of ndarray of float
    accuracy_rtl, accuracy_float : float or None
        Test accuracy (classification): RTL-trained parameters through the fixed-point forward
        pass, and the float model.
    cycles_per_sample : float or None
        Measured RTL cycles over the whole run divided by the samples streamed; for the
        multi-layer perceptron, over its first epoch, run at full rate inside the HDL harness
        (the later epochs run under random idle input and output back-pressure).
    """

    problem: Problem
    losses_rtl: list = field(default_factory=list)
    losses_fixed: list = field(default_factory=list)
    losses_float: list = field(default_factory=list)
    weights_rtl: list = field(default_factory=list)
    weights_fixed: list = field(default_factory=list)
    weights_float: list = field(default_factory=list)
    accuracy_rtl: float = None
    accuracy_float: float = None
    cycles_per_sample: float = None


def _optimizer(kind, lr_shift, wf, gf, *, state_format=None, square_format=None):
    if kind == "sgd":
        return sgd(weight_format=wf, gradient_format=gf, lr_shift=lr_shift)
    if kind == "momentum":
        return momentum(weight_format=wf, gradient_format=gf,
                        state_format=state_format or FixedFormat(20, 6),
                        lr_shift=lr_shift + 3, momentum_shift=3)
    square = square_format or FixedFormat(24, 6, signed=False)
    if kind == "adagrad":
        return adagrad(weight_format=wf, gradient_format=gf, square_format=square,
                       lr_shift=lr_shift)
    return adam(weight_format=wf, gradient_format=gf,
                state_format=state_format or FixedFormat(20, 4), square_format=square,
                lr_shift=lr_shift)


def make_problem(dataset, *, optimizer="adam", batch_size=None, seed=0, layers=None,
                 reuse_factor=None):
    """The data set ``dataset`` (one of :data:`DATASETS`) and a layer to train on it.

    ``regression``: 100 samples of ``y = 3x + 2 + N(0, 0.1)``, ``x ~ U(-1, 1)`` (seeded), MSE,
    no test split. ``breast-cancer`` / ``digits``: scikit-learn's sets, features standardised
    with the training split's statistics, stratified 80/20 split (``random_state=seed``),
    softmax cross-entropy. ``layers`` (sizes ``n_0, ..., n_L``): a
    :class:`~nnfab.training_mlp.TrainableMLPSpec` of :func:`nnfab.gen.train_mlp.mlp_problem`
    instead of the single layer, with the reuse factor ``reuse_factor`` of its products
    (:class:`~nnfab.training_mlp.TrainableMLPSpec`; None: one multiply-accumulate per cycle).
    Single-layer formats: inputs ``fixed<12,4,RND,SAT>``
    (``fixed<12,3>`` for the regression), weights ``fixed<16,4>``, gradients
    ``fixed<16,4>``; learning rates ``2**-3`` (SGD, Adagrad on the regression), ``2**-5``
    (Adam), ``2**-6`` on the classification sets.

    Raises
    ------
    ValueError
        If ``dataset`` or ``optimizer`` is unknown, if ``reuse_factor`` is given without
        ``layers``, or as :func:`~nnfab.gen.train_mlp.mlp_problem`.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Data set must be one of {', '.join(map(repr, DATASETS))}, "
                         f"not {dataset!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, "
                         f"not {optimizer!r}")
    if reuse_factor is not None and layers is None:
        raise ValueError(f"A reuse factor ({reuse_factor!r}) needs layers (a multi-layer "
                         f"perceptron); the single layer does one multiply-accumulate per cycle")
    from nnfab.casts import quantize

    rng = np.random.default_rng(seed)
    x, y, x_test, y_test = _load_data(dataset, rng, seed)
    if layers is not None:
        from .train_mlp import mlp_problem
        return mlp_problem(dataset, layers, optimizer=optimizer, batch_size=batch_size,
                           rng=rng, data=(x, y, x_test, y_test), reuse_factor=reuse_factor)
    wf, gf = FixedFormat(16, 4), FixedFormat(16, 4)
    if dataset == "regression":
        xf = FixedFormat(12, 3, rounding="RND", overflow="SAT")
        yf = FixedFormat(16, 4, rounding="RND", overflow="SAT")
        df = FixedFormat(16, 5, rounding="RND", overflow="SAT")
        shift = 5 if optimizer == "adam" else 3
        spec = TrainableDenseSpec(1, 1, "mse", _optimizer(optimizer, shift, wf, gf), xf, yf, df,
                                  batch_size or 4, np.zeros((1, 2), dtype=np.int64))
        return Problem(spec, x, y, x_test, y_test, quantize(x, xf), quantize(y, yf), 2.0 ** -shift)
    n_out = int(y.max()) + 1
    xf = FixedFormat(12, 4, rounding="RND", overflow="SAT")
    yf = FixedFormat(16, 5, rounding="RND", overflow="SAT")
    df = FixedFormat(16, 2, rounding="RND", overflow="SAT")
    shift = 6
    w0 = quantize(rng.normal(0, 0.05, (n_out, x.shape[1] + 1)), wf)
    spec = TrainableDenseSpec(x.shape[1], n_out, "softmax_cross_entropy",
                              _optimizer(optimizer, shift, wf, gf), xf, yf, df,
                              batch_size or 16, w0)
    return Problem(spec, x, y, x_test, y_test, quantize(x, xf), y.astype(np.int64), 2.0 ** -shift)


def _load_data(dataset, rng, seed):
    """``(x, y, x_test, y_test)`` of ``dataset`` as :func:`make_problem` describes."""
    if dataset == "regression":
        x = rng.uniform(-1, 1, (100, 1))
        y = 3 * x + 2 + rng.normal(0, 0.1, (100, 1))
        return x, y, x[:0], y[:0]
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    loader = load_breast_cancer if dataset == "breast-cancer" else load_digits
    x, y = loader(return_X_y=True)
    x, x_test, y, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1
    return (x - mean) / std, y, (x_test - mean) / std, y_test


def pack_samples(spec, x_codes, targets):
    """Packed input words (integers) of :func:`nnfab.hdl.trainable_dense.sample_layout`, one per
    sample, the last flagged ``last``."""
    xw, yw = spec.input_format.width, spec.output_format.width
    words = []
    for n, row in enumerate(x_codes):
        word = 0
        for k, v in enumerate(row):
            word |= (int(v) & ((1 << xw) - 1)) << (k * xw)
        offset = spec.n_in * xw
        if spec.loss == "mse":
            for k, v in enumerate(np.atleast_1d(targets[n])):
                word |= (int(v) & ((1 << yw) - 1)) << (offset + k * yw)
            offset += spec.n_out * yw
        else:
            word |= int(targets[n]) << offset
            offset += spec.label_width
        word |= int(n == len(x_codes) - 1) << offset
        words.append(word)
    return words


class _Backend:
    """What differs between the single layer and the multi-layer perceptron: the design,
    its golden models and the parameters' shape."""

    def __init__(self, spec):
        self.spec = spec
        self.mlp = isinstance(spec, TrainableMLPSpec)
        if self.mlp:
            from nnfab.hdl.trainable_mlp import TrainableMLP
            from nnfab.sim.golden import backprop as golden
            self.design, self.toplevel = TrainableMLP, "trainable_mlp"
        else:
            from nnfab.hdl.trainable_dense import TrainableDense
            from nnfab.sim.golden import training as golden
            self.design, self.toplevel = TrainableDense, "trainable_dense"
        self.golden = golden

    def shaped(self, words):
        """Streamed parameter codes as the golden model's ``weights`` entries."""
        return words if self.mlp else words.reshape(self.spec.n_out, -1)

    def predict(self, weights, x_codes):
        if self.mlp:
            return self.golden.predict(self.spec, self.golden.split_weights(self.spec, weights),
                                       x_codes)
        return self.golden.forward(self.spec, weights, x_codes)

    def float_predict(self, weights, x):
        if self.mlp:
            return self.golden.float_predict(self.spec, weights, x)
        return np.concatenate([x, np.ones((len(x), 1))], axis=1) @ weights.T


def _run_rtl(problem, epochs):
    spec = problem.spec
    backend = _Backend(spec)
    words = pack_samples(spec, problem.x_codes, problem.y_codes) * epochs
    per_epoch = len(problem.x_codes) * spec.n_out + spec.n_params
    words_out, cycles, results = _run_harness(backend, words, epochs, per_epoch)
    outputs, weights = [], []
    for e in range(epochs):
        chunk = words_out[e * per_epoch:(e + 1) * per_epoch]
        outputs.append(chunk[:len(problem.x_codes) * spec.n_out].reshape(-1, spec.n_out))
        weights.append(backend.shaped(chunk[len(problem.x_codes) * spec.n_out:]))
    return outputs, weights, cycles / len(problem.x_codes), results


#: Idle and back-pressure of the RTL run after its first epoch (:func:`_run_harness`).
P_IDLE = P_STALL = 0.2


def _run_harness(backend, words, epochs, per_epoch):
    """The run inside the HDL harness (:func:`nnfab.sim.harness.run_harness`, Verilator
    speed): the first epoch at full rate (its cycles are returned), the others with random
    idle input and output back-pressure bursts (:data:`P_IDLE`, :data:`P_STALL`)."""
    from nnfab.hdl.optim import UPDATE_LATENCY
    from nnfab.hdl.trainable_mlp import cycles_per_sample, update_cycles
    from nnfab.sim.harness import run_harness

    spec = backend.spec
    design = backend.design(spec)
    n_samples = len(words) // epochs
    # The single layer: one forward and one gradient walk over its parameters per sample.
    per_sample = cycles_per_sample(spec) if backend.mlp else 2 * spec.n_params + spec.n_out
    # The single layer sends one parameter at a time through the update unit.
    update = update_cycles(spec) if backend.mlp else (UPDATE_LATENCY + 3) * spec.n_params
    estimate = (per_sample + 40 + update // spec.batch_size
                + 3 * spec.n_params // n_samples)
    run = run_harness(design, toplevel=backend.toplevel, words_in=words,
                      n_out=epochs * per_epoch, warmup_in=n_samples, warmup_out=per_epoch,
                      p_idle=P_IDLE, p_stall=P_STALL, burst=16,
                      max_cycles=100_000 + 4 * estimate * len(words) + 8 * epochs * per_epoch)
    if run.timed_out or len(run.words_out) != epochs * per_epoch:
        raise SimulationError(f"RTL training run failed: {len(run.words_out)} of "
                              f"{epochs * per_epoch} output words after "
                              f"{run.counters.get('cycle')} cycles")
    width = design.o.payload.shape().width
    out = np.array(run.words_out, dtype=object)
    out = np.where(out >> (width - 1) != 0, out - (1 << width), out).astype(np.int64)
    return out, run.cycles, run.results


def train(dataset="regression", *, optimizer="adam", epochs=10, batch_size=None, seed=0,
          png=None, simulate=True, layers=None, reuse_factor=None):
    """Train the layer (or with ``layers``, the multi-layer perceptron) of
    :func:`make_problem` on Verilator and on the NumPy fixed-point and float64 references.

    Parameters
    ----------
    dataset : str
        One of :data:`DATASETS`.
    optimizer : str
        One of :data:`OPTIMIZERS`.
    epochs : int
        Passes over the training set (the host streams it once per epoch, in order).
    batch_size : int, optional
        Power of two; defaults 4 (regression) and 16 (classification).
    seed : int
        Seeds the data, the split and the initial weights.
    png : str or Path, optional
        Where to write the loss curves (:func:`plot_losses`).
    simulate : bool
        Run the RTL simulation (else only the references).
    layers : sequence of int, optional
        Sizes ``n_0, ..., n_L`` of a multi-layer perceptron (2 to 4 dense layers) trained by
        :class:`~nnfab.hdl.trainable_mlp.TrainableMLP`; its parameters are then flat vectors.
    reuse_factor : int, optional
        With ``layers``: the reuse factor of its products
        (:class:`~nnfab.training_mlp.TrainableMLPSpec`); default one multiply-accumulate per
        cycle. The codes are the same at every reuse factor, only the cycles change.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        As :func:`make_problem`.
    RuntimeError
        If the RTL run fails.
    """
    from nnfab.casts import quantize, to_float
    from nnfab.sim.golden.training import loss_from_outputs

    problem = make_problem(dataset, optimizer=optimizer, batch_size=batch_size, seed=seed,
                           layers=layers, reuse_factor=reuse_factor)
    spec = problem.spec
    backend = _Backend(spec)
    yf = spec.output_format
    fixed = backend.golden.train_fixed(spec, problem.x_codes, problem.y_codes, epochs=epochs)
    targets = problem.y_train
    flt = backend.golden.train_float(spec, problem.x_train, targets, epochs=epochs,
                                     lr=problem.lr)
    result = TrainResult(problem)
    result.losses_fixed = [loss_from_outputs(spec.loss, to_float(o, yf), targets)
                           for o in fixed.outputs]
    result.losses_float = [loss_from_outputs(spec.loss, o, targets) for o in flt.outputs]
    result.weights_fixed, result.weights_float = fixed.weights, flt.weights
    if simulate:
        outputs, weights, cps, _ = _run_rtl(problem, epochs)
        result.losses_rtl = [loss_from_outputs(spec.loss, to_float(o, yf), targets)
                             for o in outputs]
        result.weights_rtl, result.cycles_per_sample = weights, cps
    if spec.loss != "mse":
        trained = result.weights_rtl[-1] if simulate else fixed.weights[-1]
        logits = backend.predict(trained, quantize(problem.x_test, spec.input_format))
        result.accuracy_rtl = float(np.mean(logits.argmax(axis=1) == problem.y_test))
        result.accuracy_float = float(np.mean(
            backend.float_predict(flt.weights[-1], problem.x_test).argmax(axis=1)
            == problem.y_test))
    if png is not None:
        plot_losses(result, png, title=f"{dataset}, {optimizer}")
    return result


def plot_losses(result, path, *, title=""):
    """Write the loss curves (RTL, fixed-point reference, float64) of ``result`` to the PNG
    ``path`` (matplotlib, Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(result.losses_fixed) + 1)
    if result.losses_rtl:
        ax.plot(epochs, result.losses_rtl, "o-", label="RTL (Verilator)", linewidth=3, alpha=0.5)
    ax.plot(epochs, result.losses_fixed, "x--", label="NumPy fixed-point reference")
    ax.plot(epochs, result.losses_float, "s:", label="float64 reference")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss" + (" (MSE)" if result.problem.spec.loss == "mse"
                                     else " (cross-entropy)"))
    if result.accuracy_rtl is not None:
        title += f" — test accuracy RTL {result.accuracy_rtl:.3f}, float {result.accuracy_float:.3f}"
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
