"""Train the bundled ``sine-lstm`` example from scratch in NumPy, quantize it with nnfab's PTQ
and verify its RTL on Verilator.

The task (``load_dataset("sine-frequency")``, :func:`nnfab.gen.datasets.sine_frequency`): a
noisy sine of 16 samples, is its frequency above 0.12 cycles per step? The model: a Keras-style
LSTM (1 input, 4 units, gate order i, f, c, o; tanh and sigmoid), then Dense(2) and argmax,
trained by backpropagation through time with Adam on the 2,000 training sequences
(:func:`train`). Reproducible: the data and the weights come from fixed seeds.

Writes ``gen/examples/sine-lstm.json``/``.npz`` (quantized, what ``nnfab verify --example
sine-lstm`` uses) and ``sine-lstm-float.json``/``.npz`` (the float model), then prints the float,
quantized (golden model) and RTL accuracies on the 400 test sequences. ``--no-rtl`` skips the
Verilator run.

    python examples/train_sine_lstm.py [--no-rtl]
"""

import argparse
from pathlib import Path

import numpy as np

from nnfab.fixed import FixedFormat
from nnfab.gen.datasets import load_dataset
from nnfab.gen.float_model import FloatArgmax, FloatDense, FloatModel
from nnfab.gen.native import save_native
from nnfab.gen.ptq import PTQConfig, compare, quantize_model
from nnfab.ir.recurrent import FloatRecurrent

OUT = Path(__file__).resolve().parents[1] / "gen" / "examples"
INPUT_FORMAT = FixedFormat(8, 2)  # samples in [-2, 2) by 1/64; the data stay within +-1.5
UNITS, EPOCHS, BATCH, LEARNING_RATE, SEED = 4, 30, 50, 0.02, 0


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _forward(p, x):
    """Logits of the LSTM + Dense over ``x`` (n, steps, 1), and each step's values for BPTT."""
    n = UNITS
    h = c = np.zeros((len(x), n))
    cache = []
    for t in range(x.shape[1]):
        z = x[:, t] @ p["W"].T + h @ p["U"].T + p["b"]
        i, f = _sigmoid(z[:, :n]), _sigmoid(z[:, n:2 * n])
        g, o = np.tanh(z[:, 2 * n:3 * n]), _sigmoid(z[:, 3 * n:])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        cache.append((x[:, t], h, c, i, f, g, o, tc))
        h, c = o * tc, c_new
    return h @ p["V"].T + p["d"], h, cache


def _gradients(p, x, y):
    """Mean softmax cross-entropy over the batch and its gradients (BPTT)."""
    logits, h, cache = _forward(p, x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    dlogits = probs
    dlogits[np.arange(len(y)), y] -= 1
    dlogits /= len(y)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    grads["V"], grads["d"] = dlogits.T @ h, dlogits.sum(axis=0)
    dh, dc = dlogits @ p["V"], 0.0
    for xt, h_prev, c_prev, i, f, g, o, tc in reversed(cache):
        dc = dc + dh * o * (1 - tc ** 2)
        dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dc * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        grads["W"] += dz.T @ xt
        grads["U"] += dz.T @ h_prev
        grads["b"] += dz.sum(axis=0)
        dh, dc = dz @ p["U"], dc * f
    return loss, grads


def train(x, y, *, seed=SEED):
    """LSTM + Dense weights (``W`` (4u, 1), ``U`` (4u, u), ``b``, ``V`` (2, u), ``d``) after
    ``EPOCHS`` epochs of Adam on mini-batches of ``BATCH``; forget-gate biases start at 1."""
    rng = np.random.default_rng(seed)
    n = UNITS
    p = {"W": rng.normal(0, 0.5, (4 * n, x.shape[2])),
         "U": rng.normal(0, 1 / np.sqrt(n), (4 * n, n)),
         "b": np.concatenate([np.zeros(n), np.ones(n), np.zeros(2 * n)]),
         "V": rng.normal(0, 1 / np.sqrt(n), (2, n)), "d": np.zeros(2)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(w) for k, w in p.items()}
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            loss, grads = _gradients(p, x[batch], y[batch])
            losses.append(loss)
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                p[k] -= LEARNING_RATE * (m[k] / (1 - 0.9 ** step)) / (
                    np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}", flush=True)
    return p


def float_model(p, steps):
    """The trained weights as nnfab's float model over sequences of ``steps`` samples."""
    return FloatModel("sine-lstm", (steps, p["W"].shape[1]), (
        FloatRecurrent("lstm", "lstm", p["W"], p["U"], p["b"]),
        FloatDense("dense", p["V"], p["d"]),
        FloatArgmax("argmax")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-rtl", action="store_true", help="Skip the Verilator run.")
    args = parser.parse_args(argv)
    x_train, y_train = load_dataset("sine-frequency", "train")
    x_test, y_test = load_dataset("sine-frequency", "test")
    floats = float_model(train(x_train, y_train), x_train.shape[1])
    model = quantize_model(floats, x_train, input_format=INPUT_FORMAT,
                           config=PTQConfig(weight_bits=8, bias_bits=8, activation_bits=8))
    report = compare(floats, model, x_test, y_test)
    print("\n".join(report.lines()))
    save_native(floats, OUT / "sine-lstm-float.json")
    save_native(model, OUT / "sine-lstm.json")
    if not args.no_rtl:
        from nnfab.gen.verify import verify

        result = verify(model, x_test, labels=y_test, float_model=floats)
        print(f"RTL on Verilator: {result.n_vectors} sequences, {result.n_mismatches} "
              f"mismatches; accuracy " +
              ", ".join(f"{k} {v:.2%}" for k, v in result.accuracy.items()))


if __name__ == "__main__":
    main()
