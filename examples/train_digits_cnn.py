"""Train the bundled ``digits-cnn`` example in NumPy and quantize it with nnfab's PTQ.

conv 3x3 (8 filters, valid) → ReLU → max pool 2x2 → flatten → dense 10 → argmax, on 8x8x1
digits; plain NumPy backpropagation with Adam, softmax cross-entropy, fixed seeds, so the
result is reproducible. Writes ``gen/examples/digits-cnn.json``/``.npz`` and
``digits-cnn-float.json``/``.npz``.

    python examples/train_digits_cnn.py
"""

from pathlib import Path

import numpy as np

from nnfab.fixed import FixedFormat
from nnfab.gen.datasets import load_dataset
from nnfab.gen.float_model import (FloatActivation, FloatArgmax, FloatConv2D, FloatDense,
                                   FloatFlatten, FloatModel, FloatPool)
from nnfab.gen.native import save_native
from nnfab.gen.ptq import PTQConfig, compare, quantize_model

OUT = Path(__file__).resolve().parents[1] / "gen" / "examples"
INPUT_FORMAT = FixedFormat(5, 1, signed=False)  # pixels k/16, k = 0..16, exactly
FILTERS, EPOCHS, BATCH, LEARNING_RATE = 8, 40, 32, 0.01


def windows(x):
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
    return np.moveaxis(win, 3, -1)  # (b, 6, 6, 3, 3, 1)


def forward(params, x):
    w1, b1, w2, b2 = params
    win = windows(x)
    z1 = np.einsum("bhwijc,fijc->bhwf", win, w1) + b1
    a1 = np.maximum(z1, 0.0)
    blocks = a1.reshape(-1, 3, 2, 3, 2, FILTERS)
    pooled = blocks.max(axis=(2, 4))
    flat = pooled.reshape(len(x), -1)
    logits = flat @ w2.T + b2
    return logits, (win, z1, blocks, pooled, flat)


def train(x, y, rng):
    params = [rng.normal(0, 0.3, (FILTERS, 3, 3, 1)), np.zeros(FILTERS),
              rng.normal(0, 0.1, (10, 9 * FILTERS)), np.zeros(10)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            xb, yb = x[idx], y[idx]
            logits, (win, z1, blocks, pooled, flat) = forward(params, xb)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1.0
            dlogits = p / len(yb)
            grads = [None, None, dlogits.T @ flat, dlogits.sum(axis=0)]
            dpooled = (dlogits @ params[2]).reshape(pooled.shape)
            mask = blocks == pooled[:, :, None, :, None, :]
            dblocks = mask * dpooled[:, :, None, :, None, :]
            dz1 = dblocks.reshape(z1.shape) * (z1 > 0)
            grads[0] = np.einsum("bhwijc,bhwf->fijc", win, dz1)
            grads[1] = dz1.sum(axis=(0, 1, 2))
            step += 1
            for k, g in enumerate(grads):
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                m_hat, v_hat = m[k] / (1 - 0.9**step), v[k] / (1 - 0.999**step)
                params[k] -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
    return params


def main():
    rng = np.random.default_rng(0)
    x_train, y_train = load_dataset("digits", "train", image=True)
    x_test, y_test = load_dataset("digits", "test", image=True)
    w1, b1, w2, b2 = train(x_train, y_train, rng)
    float_model = FloatModel("digits-cnn", (8, 8, 1), (
        FloatConv2D("conv", w1, b1), FloatActivation("relu", "relu"),
        FloatPool("pool", "max", (2, 2)), FloatFlatten("flatten"),
        FloatDense("dense", w2, b2), FloatArgmax("argmax"),
    ))
    model = quantize_model(float_model, x_train, input_format=INPUT_FORMAT,
                           config=PTQConfig(weight_bits=8, bias_bits=8, activation_bits=10))
    report = compare(float_model, model, x_test, y_test)
    print("\n".join(report.lines()))
    save_native(float_model, OUT / "digits-cnn-float.json")
    save_native(model, OUT / "digits-cnn.json")


if __name__ == "__main__":
    main()
