"""Train the bundled ``digits-mlp`` example and quantize it with nnfab's PTQ.

Reproducible: fixed data split and seeds. Writes ``gen/examples/digits-mlp.json``/``.npz``
(quantized, what ``nnfab build --example digits-mlp`` uses) and ``digits-mlp-float.json``/``.npz``
(the float model the reports compare with).

    python examples/train_digits_mlp.py
"""

from pathlib import Path

import numpy as np
from sklearn.neural_network import MLPClassifier

from nnfab.fixed import FixedFormat
from nnfab.gen.datasets import load_dataset
from nnfab.gen.float_model import FloatActivation, FloatArgmax, FloatDense, FloatModel
from nnfab.gen.native import save_native
from nnfab.gen.ptq import PTQConfig, compare, quantize_model

OUT = Path(__file__).resolve().parents[1] / "gen" / "examples"
INPUT_FORMAT = FixedFormat(5, 1, signed=False)  # pixels k/16, k = 0..16, exactly


def main():
    x_train, y_train = load_dataset("digits", "train")
    x_test, y_test = load_dataset("digits", "test")
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", max_iter=600,
                        alpha=1e-3, random_state=0)
    clf.fit(x_train, y_train)
    float_model = FloatModel("digits-mlp", (64,), (
        FloatDense("dense_1", clf.coefs_[0].T, clf.intercepts_[0]),
        FloatActivation("relu_1", "relu"),
        FloatDense("dense_2", clf.coefs_[1].T, clf.intercepts_[1]),
        FloatArgmax("argmax"),
    ))
    model = quantize_model(float_model, x_train, input_format=INPUT_FORMAT,
                           config=PTQConfig(weight_bits=8, bias_bits=8, activation_bits=10))
    report = compare(float_model, model, x_test, y_test)
    print("\n".join(report.lines()))
    save_native(float_model, OUT / "digits-mlp-float.json")
    save_native(model, OUT / "digits-mlp.json")


if __name__ == "__main__":
    main()
