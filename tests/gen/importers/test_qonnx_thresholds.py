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


def _tiny_graph(tmp_path, *, middle="Mul", out_scale=1.0, out_zero=0.0):
    """input (3 values) -> Quant 4-bit -> MatMul (integer weights, scale 1) -> ``middle`` by
    [0.5, -0.5] -> Quant 4-bit (scale ``out_scale``, zero point ``out_zero``, round half to
    even)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.util.basic import qonnx_make_model

    domain = "qonnx.custom_op.general"
    one, zero, four = (numpy_helper.from_array(np.array(v, dtype=np.float32), n)
                       for v, n in ((1.0, "one"), (0.0, "zero"), (4.0, "four")))
    weights = numpy_helper.from_array(np.array([[1, 2], [1, -1], [1, 0]], dtype=np.float32),
                                      "w")
    half = numpy_helper.from_array(np.array([0.5, -0.5], dtype=np.float32), "half")
    out_s, out_z = (numpy_helper.from_array(np.asarray(v, dtype=np.float32), n)
                    for v, n in ((out_scale, "out_s"), (out_zero, "out_z")))
    quant = dict(domain=domain, signed=1, narrow=0, rounding_mode="ROUND")
    nodes = [helper.make_node("Quant", ["x", "one", "zero", "four"], ["xq"], name="Quant_in",
                              **quant),
             helper.make_node("Quant", ["w", "one", "zero", "four"], ["wq"], name="Quant_w",
                              **quant),
             helper.make_node("MatMul", ["xq", "wq"], ["acc"], name="MatMul_0"),
             helper.make_node(middle, ["acc", "half"] if middle == "Mul" else ["acc"], ["mid"],
                              name=f"{middle}_0"),
             helper.make_node("Quant", ["mid", "out_s", "out_z", "four"], ["y"],
                              name="Quant_out", **quant)]
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              initializer=[one, zero, four, weights, half, out_s, out_z])
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


#: Constants of the wide graphs: "float32" rounds in float32 at some accumulators (so no single
#: rounded affine map gives its codes); "exact" is dyadic throughout, with slopes of 3/4 and
#: offsets of 3/8 (no tie is ever reached), so the codes are floor(3/4 acc + beta + 1/2).
WIDE = {
    "float32": dict(s_w=[[0.02, 0.013, 0.5]], bias=[0.3, -2.1, 7.7], mul=[0.37, -1.1, 0.0123],
                    s_out=0.01),
    "exact": dict(s_w=[[0.25, 0.125, 0.5]], bias=[3 + 1 / 128, 1 / 256, -1 + 1 / 64],
                  mul=[0.75, -1.5, 0.375], s_out=1 / 64),
}


def _wide_graph(tmp_path, *, out_bits, signed, constants="float32"):
    """input (16 values) -> Quant 8-bit (scale 1/16) -> MatMul (8-bit weights, per-channel
    scales) -> Add bias -> Mul (one channel negative) -> Quant ``out_bits`` bits: more codes
    than are compared at once."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.util.basic import qonnx_make_model

    rng = np.random.default_rng(out_bits)
    c = WIDE[constants]
    arrays = {"s_in": np.float32(1 / 16), "zero": np.float32(0), "eight": np.float32(8),
              "w": rng.integers(-127, 128, (16, 3)).astype(np.float32),
              "s_w": np.float32(c["s_w"]), "bias": np.float32(c["bias"]),
              "mul": np.float32(c["mul"]), "s_out": np.float32(c["s_out"]),
              "bits": np.float32(out_bits)}
    quant = dict(domain="qonnx.custom_op.general", narrow=0, rounding_mode="ROUND")
    nodes = [helper.make_node("Quant", ["x", "s_in", "zero", "eight"], ["xq"], name="Quant_in",
                              signed=1, **quant),
             helper.make_node("Quant", ["w", "s_w", "zero", "eight"], ["wq"], name="Quant_w",
                              signed=1, **quant),
             helper.make_node("MatMul", ["xq", "wq"], ["acc"], name="MatMul_0"),
             helper.make_node("Add", ["acc", "bias"], ["biased"], name="Add_0"),
             helper.make_node("Mul", ["biased", "mul"], ["mid"], name="Mul_0"),
             helper.make_node("Quant", ["mid", "s_out", "zero", "bits"], ["y"],
                              name="Quant_out", signed=int(signed), **quant)]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in arrays.items()])
    path = tmp_path / f"wide_{constants}_{out_bits}.onnx"
    onnx.save(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize("constants, out_bits, signed, kind", [
    ("float32", 12, True, "multithreshold"), ("float32", 10, False, "multithreshold"),
    ("exact", 12, True, "output_stage"), ("exact", 11, False, "output_stage")])
def test_wide_quantizers(tmp_path, constants, out_bits, signed, kind):
    """A quantizer of more than 8 bits: searched thresholds, or their fixed-point form where the
    float graph is a rounded affine map; equal to qonnx on every quantizer's codes."""
    imported = import_qonnx_thresholds(_wide_graph(tmp_path, out_bits=out_bits, signed=signed,
                                                   constants=constants))
    dense, layer = imported.model.layers
    assert layer.kind == kind
    low, high = ((-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1) if signed else
                 (0, (1 << out_bits) - 1))
    if kind == "output_stage":
        assert layer.stage.rounding == "floor" and (layer.stage.low, layer.stage.high) == \
            (low, high)
        assert all("then (acc * m + b) >> s" in p for p in imported.proofs.values())
    else:
        assert layer.n_thresholds == high - low and layer.base == low
    # Channel 1 (negative Mul) is flipped: its weight codes negated.
    w = np.random.default_rng(out_bits).integers(-127, 128, (16, 3))[:, 1]
    s_w = np.float32(WIDE[constants]["s_w"][0][1])
    assert dense.spec.weights[1].tolist() == \
        (-np.clip(np.rint(w / s_w), -128, 127)).astype(int).tolist()
    rng = np.random.default_rng(5)
    x = rng.uniform(-9, 9, (N_INPUTS, 16)).astype(np.float32)
    x[0], x[1] = 8.0, -8.0
    result = compare_with_qonnx(imported, x)
    assert list(result.compared.values()) == [0] and result.n_inputs == N_INPUTS


@pytest.mark.slow
def test_wide_quantizers_on_verilator(tmp_path):
    """Both forms through ``nnfab verify`` at its defaults (random idle and back-pressure), on
    10-bit codes (1,023 thresholds per channel, searched in 10 stages)."""
    import re

    from click.testing import CliRunner

    from nnfab.cli import main

    for constants in WIDE:
        path = _wide_graph(tmp_path, out_bits=10, signed=True, constants=constants)
        result = CliRunner().invoke(main, ["verify", str(path), "--random", "300"])
        assert result.exit_code == 0, result.output
        assert re.search(r"^0 mismatches$", result.output, re.M), result.output
        assert "cocotb: 1 passed, 0 failed of 1" in result.output


def test_quantizer_beyond_16_bits_is_refused(tmp_path):
    with pytest.raises(UnsupportedLayerError, match=r"a 20-bit quantizer after float arithmetic "
                                                    r"is not supported; nnfab builds outputs of "
                                                    r"1 to 16 bits there$"):
        import_qonnx_thresholds(_wide_graph(tmp_path, out_bits=20, signed=True))


def test_per_channel_scale_and_zero_point_of_the_last_quantizer(tmp_path):
    """A last quantizer with a scale and a zero point per channel: per-channel thresholds."""
    imported = import_qonnx_thresholds(_tiny_graph(tmp_path, out_scale=[0.75, 0.3],
                                                   out_zero=[0.0, 2.0]))
    assert [layer.kind for layer in imported.model.layers] == ["dense", "multithreshold"]
    grid = np.stack(np.meshgrid(*[np.arange(-9, 9)] * 3), axis=-1).reshape(-1, 3)
    result = compare_with_qonnx(imported, grid.astype(np.float32))
    assert result.compared == {"Quant_2": 0}


def test_per_channel_codes_read_by_a_matrix_product_are_refused(tmp_path):
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    path = _tiny_graph(tmp_path, out_scale=[0.75, 0.3])
    model = ModelWrapper(str(path))
    graph = model.graph
    from onnx import TensorProto, helper, numpy_helper
    graph.initializer.append(numpy_helper.from_array(np.ones((2, 2), np.float32), "w2"))
    graph.node.append(helper.make_node("MatMul", ["y", "w2"], ["z"], name="MatMul_1"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2]))
    onnx.save(model.model, str(path))
    with pytest.raises(UnsupportedLayerError, match=r"MatMul of codes with a scale or zero "
                                                    r"point per channel \(from 'Quant_2'\): "
                                                    r"its sum of codes times weights is not one "
                                                    r"integer accumulator times a scale"):
        import_qonnx_thresholds(path)
