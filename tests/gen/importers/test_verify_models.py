"""Every dense model in shared/models imports, builds and verifies bit-exact on Verilator
(10,000 seeded random inputs each; one Verilator build per model)."""

import time

import numpy as np
import pytest

from nnfab.gen.load import load_model
from nnfab.gen.verify import verify

from .conftest import KERAS, ONNX, QONNX, need

N_VECTORS = 10_000
SEED = 2024

MODELS = {
    "keras_3layer": (KERAS / "KERAS_3layer.json", None),
    "keras_3layer_pruned": (KERAS / "KERAS_3layer.json",
                            KERAS / "KERAS_3layer_70pruned_retrained_weights.h5"),
    "keras_3layer_batch_norm": (KERAS / "KERAS_3layer_batch_norm.json", None),
    "qkeras_3layer": (KERAS / "qkeras_3layer.json", None),
    "qkeras_mnist_dense": (KERAS / "qkeras_mnist_dense.json", None),
    "hgq_jet_classifier": (KERAS / "hgq_jet_classifier.h5", None),
    "onnx_three_layer_keras": (ONNX / "three_layer_keras.onnx", None),
    "onnx_three_layer_pytorch": (ONNX / "three_layer_pytorch.onnx", None),
    "qonnx_jettagging": (QONNX / "qkeras_jettagging.onnx", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_verifies_bit_exact(name):
    path, weights = MODELS[name]
    started = time.perf_counter()
    loaded = load_model(need(path), weights=weights)
    rng = np.random.default_rng(SEED)
    shape = loaded.model.input_shape
    if "mnist" in name:
        x = np.floor(rng.random((N_VECTORS, *shape)) * 2**10) / 2**10
    else:
        x = rng.normal(0.0, 1.5, (N_VECTORS, *shape))
    result = verify(loaded.model, x, seed=SEED)
    print(f"{name}: {result.n_mismatches} mismatches in {result.n_vectors} vectors, seed {SEED}, "
          f"{ {k: round(v, 1) for k, v in result.seconds.items()} }, "
          f"total {time.perf_counter() - started:.1f} s")
    assert result.n_vectors == N_VECTORS
    assert result.n_mismatches == 0, f"seed {SEED}: first mismatches {result.first_mismatches}"
    assert result.passed
