"""Models of shared/models whose verified design differs from `nnfab build`'s default one (a
reuse factor, LUT adders, one engine per layer) import, build and verify bit-exact on Verilator
(10,000 seeded random inputs for the jet taggers, 200 for the MNIST models; one Verilator build
per model), built as `nnfab build` builds them (with FuseShiftAdd); the HGQ jet classifier also
with one engine per layer. The models whose default build is the verified design (the pruned,
batch-norm and QKeras jet taggers, the QONNX jet tagger, the ONNX jet taggers from Keras and
PyTorch, the small ONNX CNNs) are built and verified through the command line, folder and
all, by tests/gen/test_cli_shared_models.py; the ONNX PyTorch jet tagger also at reuse
factor 2 here. The float Keras jet tagger goes through nnfab's PTQ to 16-bit formats and the
native format at reuse factor 4 (its hls4ml build, 16 bits at reuse factor 1, is verified in
tests/gen/hls4ml)."""

import time

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.gen.load import load_model
from nnfab.gen.native import load_native, save_native
from nnfab.gen.passes import ChooseReuseFactors, FuseShiftAdd
from nnfab.gen.ptq import PTQConfig
from nnfab.gen.verify import verify

from .conftest import KERAS, ONNX, QONNX, need

N_VECTORS = 10_000
SEED = 2024

# Reuse factors keep the largest designs quick to compile (the 784-input MNIST MLP is 475 s at
# reuse factor 1 on 2 cores); the other jet taggers cover reuse factor 1. The MNIST CNN's
# convolutions are verified at reuse factor 1 as they were before CI time raised them.
REUSE = {"qkeras_mnist_dense": 16, "qkeras_mnist_cnn": {"q_dense": 16},
         "onnx_three_layer_pytorch": 2}

MODELS = {
    "qkeras_mnist_dense": (KERAS / "qkeras_mnist_dense.json", None),
    "hgq_jet_classifier": (KERAS / "hgq_jet_classifier.h5", None),
    "hgq_jet_classifier_separate_engines": (KERAS / "hgq_jet_classifier.h5", None),
    "onnx_three_layer_pytorch": (ONNX / "three_layer_pytorch.onnx", None),
    "qkeras_mnist_cnn": (KERAS / "qkeras_mnist_cnn.json", None),
}
N_IMAGES = 200
# Models are built as `nnfab build` does by default, with FuseShiftAdd; these also without.
SEPARATE_ENGINES = {"hgq_jet_classifier_separate_engines"}
# The HGQ jet classifier as bench/hgq_jet_synth.py builds it: adders up to 7 bits in LUTs.
LUT_ADDERS = {"hgq_jet_classifier": {"lut_adder_width": 7}}


@pytest.mark.slow
@pytest.mark.parametrize("reuse_factor", [1])
def test_float_jet_tagger_16_bit_through_native_format(reuse_factor, tmp_path):
    started = time.perf_counter()
    bits = PTQConfig(weight_bits=16, bias_bits=16, activation_bits=16)
    loaded = load_model(need(KERAS / "KERAS_3layer.json"), ptq_config=bits,
                        input_format=FixedFormat(16, 6))
    save_native(loaded.model, tmp_path / "jet.json")
    model, _ = ChooseReuseFactors(reuse_factor=reuse_factor).apply(
        load_native(tmp_path / "jet.json"))
    assert {layer.spec.weight_format.width for layer in model.layers if layer.kind == "dense"} \
        == {16}
    x = np.random.default_rng(SEED).normal(0.0, 1.5, (N_VECTORS, *model.input_shape))
    result = verify(model, x, seed=SEED)
    print(f"KERAS_3layer 16-bit R={reuse_factor}: {result.n_mismatches} mismatches in "
          f"{result.n_vectors} vectors, seed {SEED}, "
          f"{ {k: round(v, 1) for k, v in result.seconds.items()} }, "
          f"total {time.perf_counter() - started:.1f} s")
    assert result.n_vectors == len(x)
    assert result.n_mismatches == 0, f"seed {SEED}: first mismatches {result.first_mismatches}"
    assert result.passed
    assert result.measured_initiation_interval == reuse_factor


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_verifies_bit_exact(name):
    path, weights = MODELS[name]
    started = time.perf_counter()
    loaded = load_model(need(path), weights=weights)
    reuse = REUSE.get(name, 1)
    model, _ = ChooseReuseFactors(**({"per_layer": reuse} if isinstance(reuse, dict) else
                                     {"reuse_factor": reuse})).apply(loaded.model)
    if name not in SEPARATE_ENGINES:
        model, _ = FuseShiftAdd(**LUT_ADDERS.get(name, {})).apply(model)
    fused = [layer.name for layer in model.layers if layer.kind == "shift_add_dense"]
    rng = np.random.default_rng(SEED)
    shape = model.input_shape
    if "mnist" in name:
        x = np.floor(rng.random((N_IMAGES, *shape)) * 2**10) / 2**10
    elif len(shape) == 3:
        x = rng.normal(0.0, 1.5, (N_IMAGES, *shape))
    else:
        x = rng.normal(0.0, 1.5, (N_VECTORS, *shape))
    result = verify(model, x, seed=SEED)
    print(f"{name} (reuse factor {REUSE.get(name, 1)}, shift-add layers {fused}): "
          f"{result.n_mismatches} mismatches in {result.n_vectors} vectors, seed {SEED}, "
          f"{ {k: round(v, 1) for k, v in result.seconds.items()} }, "
          f"total {time.perf_counter() - started:.1f} s")
    assert result.n_vectors == len(x)
    assert result.n_mismatches == 0, f"seed {SEED}: first mismatches {result.first_mismatches}"
    assert result.passed
    if name.startswith("hgq_jet_classifier"):
        assert len(fused) == (0 if name in SEPARATE_ENGINES else 4)
