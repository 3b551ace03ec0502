"""nnfab's importers and golden model against the frameworks' own forward passes, layer by
layer, value for value (exact, never allclose)."""

import numpy as np
import pytest

from nnfab.casts import quantize, to_float
from nnfab.gen.importers import load
from nnfab.layers import DenseSpec
from nnfab.sim.golden.dense import dense
from nnfab.sim.golden.network import trace_network

from .conftest import FRAMEWORKS, KERAS, QONNX, need


def _values(codes, fmt):
    return to_float(np.asarray(codes), fmt)


def _compare(model, trace, reference, tensors):
    """{tensor: (values compared, mismatches)} for the named framework tensors."""
    result = {}
    for name, layer_name in tensors.items():
        got = _values(trace[layer_name], model.layer(layer_name).output_format)
        want = reference[name].astype(np.float64)
        assert got.shape == want.shape, name
        result[name] = (want.size, int(np.sum(got != want)))
    return result


@pytest.mark.parametrize("stem,npz,tensors", [
    ("qkeras_3layer", "qkeras_3layer_layers.npz",
     ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output"]),
    ("qkeras_mnist_dense", "qkeras_mnist_dense_layers.npz",
     ["q_activation_2", "q_dense_2", "q_activation_3", "q_dense_3"]),
    # q_conv2d holds Keras' float ReLU of the convolution, fused into nnfab's conv layer.
    ("qkeras_mnist_cnn", "qkeras_mnist_cnn_layers.npz",
     ["q_conv2d", "q_activation", "max_pooling2d", "q_conv2d_1", "q_activation_1",
      "max_pooling2d_1", "flatten", "q_dense"]),
])
def test_qkeras_layers_exact(stem, npz, tensors):
    model = load(need(KERAS / f"{stem}.json"), kind="keras-json")
    ref = np.load(need(FRAMEWORKS / npz))
    codes = quantize(ref["inputs"].astype(np.float64), model.input_format)
    assert np.array_equal(_values(codes, model.input_format), ref["inputs"])
    result = _compare(model, trace_network(model, codes), ref, {t: t for t in tensors})
    print(stem, result)
    assert all(bad == 0 for _, bad in result.values())
    assert sum(n for n, _ in result.values()) == sum(ref[t].size for t in tensors)


def test_hgq_layers_exact():
    model = load(need(KERAS / "hgq_jet_classifier.h5"), kind="hdf5")
    ref = np.load(need(FRAMEWORKS / "hgq_jet_classifier_layers.npz"))
    codes = quantize(ref["inputs"].astype(np.float64), model.input_format)
    trace = trace_network(model, codes)
    names = [layer.name for layer in model.layers]
    tensors = {}
    for name in ref.files:
        if name in trace and model.layer(name).kind != "dense":
            tensors[name] = name
        elif name.endswith("_quantizer") and name.removesuffix("_quantizer") in names:
            tensors[name] = name.removesuffix("_quantizer")  # quantizer fused into the dense
        elif name in trace:
            tensors[name] = name
    result = _compare(model, trace, ref, tensors)
    # HGQ's pre-quantizer dense outputs: the fused layer's exact accumulator.
    previous = codes
    for layer in model.layers:
        if layer.kind == "dense" and layer.name in ref.files and \
                f"{layer.name}_quantizer" in tensors:
            s = layer.spec
            exact_spec = DenseSpec(s.weights, s.biases, s.input_format, s.weight_format,
                                   s.accumulator, bias_format=s.bias_format)
            got = _values(dense(previous, exact_spec), s.accumulator)
            want = ref[layer.name].astype(np.float64)
            result[layer.name] = (want.size, int(np.sum(got != want)))
        previous = trace[layer.name]
    print(result)
    assert len(result) == len(ref.files) - 1  # every tensor but the raw inputs
    assert all(bad == 0 for _, bad in result.values())


def test_qonnx_matches_execute_onnx():
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    path = need(QONNX / "qkeras_jettagging.onnx")
    model = load(path, kind="onnx")
    wrapper = ModelWrapper(str(path))
    rng = np.random.default_rng(7)
    x = np.round(rng.normal(0, 1.5, (500, 16)) * 2**10) / 2**10
    codes = quantize(x, model.input_format)
    trace = trace_network(model, codes)
    pairs = {"Quant_8_out0": "Quant_8", "Quant_9_out0": "Quant_9", "Quant_10_out0": "Quant_10",
             "MatMul_0_out0": None, "Add_3_out0": "MatMul_3", "Add_0_out0": "MatMul_0"}
    mismatches = total = 0
    for i in range(len(x)):
        out = execute_onnx(wrapper, {"global_in": x[i:i + 1].astype(np.float32)},
                           return_full_exec_context=True)
        for tensor, layer in pairs.items():
            if layer is None:
                continue
            got = _values(trace[layer][i:i + 1], model.layer(layer).output_format)
            want = np.asarray(out[tensor], dtype=np.float64)
            total += want.size
            mismatches += int(np.sum(got != want))
    print("qonnx", total, mismatches)
    assert total == 500 * (64 + 32 + 32 + 5 + 64)
    assert mismatches == 0
