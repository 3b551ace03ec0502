"""hls4ml's merge of an ONNX ``MatMul`` and the bias ``Add`` after it (``FuseBatchNormalization``
in ``bn_fuse.py``, when the Dense's ``result`` is ``auto``) against hls4ml's own C simulation:
every traced layer and the outputs equal code for code, whether or not the config has sections
for the merged ``Add`` nodes (hls4ml ignores their types)."""

import pytest
import yaml

from nnfab.fixed import FixedFormat
from nnfab.gen.hls4ml import load_hls4ml

from .conftest import HLS4ML_MODELS, onnx_config
from .test_against_hls4ml import compare_layers, edge_case_inputs

F = FixedFormat.parse

#: ``result: auto`` on the first three MatMuls: hls4ml merges Add_0..2 into them; Add_3 stays
#: an ApplyAlpha after Dense_MatMul_3 (whose result is not auto).
MATMULS = {"MatMul_0": {"Precision": {"result": "auto", "accum": "auto"}},
           "MatMul_1": {"Precision": {"result": "auto"}},
           "MatMul_2": {"Precision": {"result": "auto", "bias": "ap_fixed<10,3>"}}}
#: Types of the Add nodes: ignored by hls4ml for Add_0..2 (merged), used for Add_3.
ADDS = {"Add_0": {"Precision": {"bias": "ap_fixed<8,3>", "result": "ap_fixed<12,4>"}},
        "Add_1": {"Precision": "ap_fixed<10,2>"},
        "Add_2": {"Precision": {"result": "ap_fixed<9,5,AP_RND,AP_SAT>"}},
        "Add_3": {"Precision": {"bias": "ap_fixed<12,4>", "result": "ap_fixed<14,6>"}}}


#: Sections for the layers hls4ml creates, in another case, and a LayerType in lower case:
#: hls4ml's precision lookups ignore case, and a created layer keeps the precisions of its
#: own section that the original node's section does not set (``parse_name_config``).
CREATED = {"LayerName": {"MatMul_0": {"Precision": {"result": "auto"}},
                         "dense_matmul_0": {"Precision": {"bias": "ap_fixed<9,2>"}},
                         "DENSE_MATMUL_1": {"Precision": {"weight": "ap_fixed<12,3>"}},
                         "MatMul_1": {"Precision": "ap_fixed<18,7>"},
                         "bn_add_1": {"Precision": {"bias": "ap_fixed<10,4>"}}},
           "LayerType": {"dense": {"Precision": {"accum": "ap_fixed<20,7>"}}}}


#: ``result: auto`` on the Add, Relu and Softmax nodes (as hls4ml's name-granularity configs
#: have them): nothing merges, each bn_Add_i infers its result type (``_infer_bn_precision``),
#: the input, the ReLUs and the softmax take the model default (``_infer_default_type``).
AUTO_ADDS = {"LayerName": {
    "global_in": {"Precision": {"result": "auto"}},
    **{f"Add_{i}": {"Precision": {"result": "auto"}} for i in range(4)},
    **{f"Relu_{i}": {"Precision": {"result": "auto"}} for i in range(3)},
    "Softmax_0": {"Precision": {"result": "auto", "accum": "auto"}}}}


def _config(tmp_path, with_adds, sections=None):
    raw = yaml.safe_load((HLS4ML_MODELS / "onnx-config.yml").read_text())
    raw["OnnxModel"] = str(HLS4ML_MODELS / raw["OnnxModel"])
    raw["HLSConfig"].update(sections or
                            {"LayerName": {**MATMULS, **(ADDS if with_adds else {})}})
    path = tmp_path / f"onnx-auto-{'with' if with_adds else 'without'}-adds.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("with_adds", [False, True])
def test_auto_result_merges_the_bias_add(with_adds, tmp_path):
    _, model = load_hls4ml(_config(tmp_path, with_adds))
    assert [layer.name for layer in model.layers] == [
        "Dense_MatMul_0", "Relu_0", "Dense_MatMul_1", "Relu_1", "Dense_MatMul_2", "Relu_2",
        "Dense_MatMul_3", "bn_Add_3", "Softmax_0"]
    specs = [model.layers[i].spec for i in (0, 2, 4)]
    # hls4ml's inferred types (infer_precision.py) with the merged bias's type.
    assert [(s.bias_format, s.accumulator_format, s.output_format) for s in specs] == [
        (F("fixed<16,6>"), F("fixed<37,17>"), F("fixed<37,17>")),
        (F("fixed<16,6>"), F("fixed<16,6>"), F("fixed<39,19>")),
        (F("fixed<10,3>"), F("fixed<16,6>"), F("fixed<38,18>"))]
    assert all(s.biases is not None for s in specs)
    assert model.layers[6].spec.biases is None
    bn = model.layers[7]
    assert bn.output_format == (F("fixed<14,6>") if with_adds else F("fixed<16,6>"))


def test_sections_of_created_layers(tmp_path):
    _, model = load_hls4ml(_config(tmp_path, False, CREATED))
    layers = {layer.name: layer for layer in model.layers}
    assert list(layers)[:4] == ["Dense_MatMul_0", "Relu_0", "Dense_MatMul_1", "bn_Add_1"]
    dense0, dense1 = layers["Dense_MatMul_0"].spec, layers["Dense_MatMul_1"].spec
    # Dense_MatMul_0: its own bias type, the lower-case LayerType's accum, result inferred.
    assert (dense0.bias_format, dense0.accumulator_format, dense0.output_format) == \
        (F("fixed<9,2>"), F("fixed<20,7>"), F("fixed<37,17>"))
    # Dense_MatMul_1: its own weight type; MatMul_1's string precision is its default, which
    # comes before the LayerType's accum.
    assert (dense1.weight_format, dense1.accumulator_format, dense1.output_format) == \
        (F("fixed<12,3>"), F("fixed<18,7>"), F("fixed<18,7>"))
    assert layers["bn_Add_1"].spec.shift_format == F("fixed<10,4>")


def test_auto_add_result_is_inferred(tmp_path):
    _, model = load_hls4ml(_config(tmp_path, False, AUTO_ADDS))
    bns = [layer for layer in model.layers if layer.name.startswith("bn_Add_")]
    # x (fixed<16,6>) * ap_uint<1> + bias (fixed<16,6>): fixed<18,8>, exact.
    assert [str(layer.output_format) for layer in bns] == ["fixed<18,8>"] * 4
    relus = [layer for layer in model.layers if layer.name.startswith("Relu_")]
    assert [str(layer.output_format) for layer in relus] == ["fixed<16,6>"] * 3
    softmax = model.layers[-1].spec
    assert (softmax.output_format, softmax.accum_format) == (F("fixed<16,6>"),) * 2


@pytest.mark.slow
@pytest.mark.parametrize("case", ["without-adds", "with-adds", "created-layers", "auto-adds"])
def test_auto_result_merge_equals_hls4ml(case, tmp_path):
    path = _config(tmp_path, case == "with-adds",
                   {"created-layers": CREATED, "auto-adds": AUTO_ADDS}.get(case))
    _, model = load_hls4ml(path)
    compare_layers(model, edge_case_inputs(model), tmp_path, path)


def _generated_config(tmp_path):
    """hls4ml's own name-granularity config of the jet tagger (every MatMul, Add, Relu and
    Softmax ``auto``; ``onnx_configs/three_layer_keras-name.yml``)."""
    return onnx_config(tmp_path, "three_layer_keras-name")


def test_hls4ml_generated_config_merges_every_bias(tmp_path):
    config, model = load_hls4ml(_generated_config(tmp_path))
    assert [(layer.name, str(layer.output_format)) for layer in model.layers] == [
        ("Dense_MatMul_0", "fixed<37,17>"), ("Relu_0", "fixed<16,6>"),
        ("Dense_MatMul_1", "fixed<39,19>"), ("Relu_1", "fixed<16,6>"),
        ("Dense_MatMul_2", "fixed<38,18>"), ("Relu_2", "fixed<16,6>"),
        ("Dense_MatMul_3", "fixed<38,18>"), ("Softmax_0", "fixed<16,6>")]
    assert model.layers[-1].spec.accum_format == F("fixed<18,8,RND,SAT>")
    assert "HLSConfig.LayerName.Softmax_0.Precision.exp_table: has no effect in hls4ml 1.3 (no " \
           "lookup asks for it) nor in nnfab; the table types are the layer setting " \
           "exp_table_t" in config.notes
