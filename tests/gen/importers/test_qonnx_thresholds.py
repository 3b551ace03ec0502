"""QONNX with any scales: the three QONNX zoo models whose scales are not powers of two (or
per channel, or with BatchNormalization) import as integer dense layers and multithreshold
layers, and the golden model equals qonnx's ``execute_onnx`` on the codes of every quantizer
for 1,000 seeded inputs each; a synthetic graph pins the tie rule (round half to even) and
flipped channels exactly."""

import time

import numpy as np
import pytest

from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.importers.qonnx_reference import compare_with_qonnx
from nnfab.gen.importers.qonnx_thresholds import import_qonnx_thresholds
from nnfab.gen.load import load_model

from ...vectors import shared_dir

ZOO = shared_dir() / "models" / "qonnx-model-zoo"
N_INPUTS = 1000

#: Graph inputs in each model's range: MNIST pixels in [0, 1], KWS features over the input
#: quantizer's range and beyond (clipping), UNSW-NB15's bipolar bits.
MODELS = {
    "TFC_2W2A": (lambda rng, n: rng.random((n, 1, 28, 28)), None,
                 ["Quant_5", "Quant_6", "Quant_7", "MatMul_3"], [2, 2, 2]),
    "kwsmlp_w3a3": (lambda rng, n: rng.uniform(-110, 110, (n, 1, 10, 49)), None,
                    ["Quant_5", "Quant_6", "Quant_7", "MatMul_3"], [7, 7, 7]),
    "unsw_nb15-mlp-w2a2": (lambda rng, n: rng.choice([-1.0, 1.0], (n, 600)), FixedFormat(2, 2),
                           ["Quant_4", "Quant_5", "Quant_6", "BipolarQuant_0"],
                           [255, 3, 3, 2]),
}


def _path(name):
    path = ZOO / f"{name}.onnx"
    if not path.exists():
        pytest.fail(f"{path} is not available: shared/ must be beside the repository")
    return path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_golden_equals_qonnx(name):
    inputs, input_format, compared, n_thresholds = MODELS[name]
    start = time.perf_counter()
    imported = import_qonnx_thresholds(_path(name), input_format=input_format)
    layers = [layer for layer in imported.model.layers if layer.kind == "multithreshold"]
    assert [layer.n_thresholds for layer in layers] == n_thresholds
    assert all(layer.proof.startswith("exhaustive: all ") for layer in layers)
    seed = sorted(MODELS).index(name)
    result = compare_with_qonnx(imported, inputs(np.random.default_rng(seed), N_INPUTS))
    print(f"{name}: import and {N_INPUTS} inputs in {time.perf_counter() - start:.1f} s")
    assert sorted(result.compared) == sorted(compared)
    assert result.n_inputs == N_INPUTS
    assert result.compared == dict.fromkeys(compared, 0), f"seed {seed}: {result}"


@pytest.mark.parametrize("name", ["TFC_2W2A", "unsw_nb15-mlp-w2a2"])
def test_zoo_models_load_through_load_model(name):
    model = load_model(_path(name)).model
    assert [layer.kind for layer in model.layers] == ["dense", "multithreshold"] * 3 + \
        ["dense"] + ["multithreshold"] * (name != "TFC_2W2A")


def _tiny_graph(tmp_path, *, middle="Mul"):
    """input (3 values) -> Quant 4-bit -> MatMul (integer weights, scale 1) -> ``middle`` by
    [0.5, -0.5] -> Quant 4-bit (scale 1, round half to even)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.util.basic import qonnx_make_model

    domain = "qonnx.custom_op.general"
    one, zero, four = (numpy_helper.from_array(np.array(v, dtype=np.float32), n)
                       for v, n in ((1.0, "one"), (0.0, "zero"), (4.0, "four")))
    weights = numpy_helper.from_array(np.array([[1, 2], [1, -1], [1, 0]], dtype=np.float32),
                                      "w")
    half = numpy_helper.from_array(np.array([0.5, -0.5], dtype=np.float32), "half")
    quant = dict(domain=domain, signed=1, narrow=0, rounding_mode="ROUND")
    nodes = [helper.make_node("Quant", ["x", "one", "zero", "four"], ["xq"], name="Quant_in",
                              **quant),
             helper.make_node("Quant", ["w", "one", "zero", "four"], ["wq"], name="Quant_w",
                              **quant),
             helper.make_node("MatMul", ["xq", "wq"], ["acc"], name="MatMul_0"),
             helper.make_node(middle, ["acc", "half"] if middle == "Mul" else ["acc"], ["mid"],
                              name=f"{middle}_0"),
             helper.make_node("Quant", ["mid", "one", "zero", "four"], ["y"], name="Quant_out",
                              **quant)]
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              initializer=[one, zero, four, weights, half])
    path = tmp_path / "tiny.onnx"
    onnx.save(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_ties_round_half_to_even_and_flipped_channel(tmp_path):
    imported = import_qonnx_thresholds(_tiny_graph(tmp_path))
    dense, thresholds = imported.model.layers
    assert dense.spec.weights.tolist() == [[1, 1, 1], [-2, 1, 0]]   # channel 1 negated
    # Exact: code = clip(round_half_even(acc * m), -8, 7) on acc in the reachable range.
    for c, (m, low, high) in enumerate([(0.5, -24, 21), (-0.5, -23, 22)]):
        sign = -1 if m < 0 else 1
        accs = range(low, high + 1) if sign > 0 else range(-high, -low + 1)
        code = {a: min(7, max(-8, round(a * sign * m))) for a in accs}
        want = [min([a for a in accs if code[a] >= -8 + k] or [max(accs) + 1])
                for k in range(1, 16)]
        assert thresholds.thresholds[c].tolist() == want
    # Ties resolve to even: acc 1 (0.5) gives 0, acc 3 (1.5) gives 2, acc 5 (2.5) gives 2, so
    # code 1 starts at 2, code 2 at 3, code 3 at 6. Every threshold sits on an exact tie here,
    # so all 2 x 15 count as near ties.
    assert thresholds.thresholds[0, 8:11].tolist() == [2, 3, 6]
    assert thresholds.proof == ("exhaustive: all 92 reachable accumulator values evaluated by "
                                "qonnx execute_onnx (widest channel range 46); 1 flipped "
                                "channels; 30 near ties")
    grid = np.stack(np.meshgrid(*[np.arange(-9, 9)] * 3), axis=-1).reshape(-1, 3)
    result = compare_with_qonnx(imported, grid.astype(np.float32))
    assert result.compared == {"Quant_2": 0}   # cleanup_model renames the nodes


def test_unsupported_node_between_quantizers(tmp_path):
    with pytest.raises(UnsupportedLayerError, match=r"^Node 'Sigmoid_0': Sigmoid here is not "
                                                    r"supported; nnfab imports QONNX graphs "
                                                    r"with any scales as MatMul/Gemm"):
        import_qonnx_thresholds(_tiny_graph(tmp_path, middle="Sigmoid"))
