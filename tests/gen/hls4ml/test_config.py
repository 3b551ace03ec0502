"""hls4ml project configs: hls4ml's precedence rules, the mapping onto nnfab's layers, and one
clear message for every setting nnfab cannot honour (also through the CLI)."""

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.cli import main
from nnfab.gen.hls4ml import ConfigError, load_hls4ml, load_hls4ml_config
from nnfab.gen.hls4ml.convert import auto_accumulator, hls4ml_weight_codes

from .conftest import HLS4ML_MODELS

F = FixedFormat.parse


def _write(tmp_path, base="keras-config.yml", edit=None, name="config.yml"):
    raw = yaml.safe_load((HLS4ML_MODELS / base).read_text())
    for key in ("KerasJson", "KerasH5", "OnnxModel"):
        if key in raw:
            raw[key] = str(HLS4ML_MODELS / raw[key])
    if edit:
        edit(raw)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def _layers(raw, **sections):
    raw["HLSConfig"].update(sections)


def test_precision_precedence(tmp_path):
    path = _write(tmp_path, edit=lambda raw: _layers(
        raw,
        LayerType={"Dense": {"Precision": {"weight": "ap_fixed<8,3>"}},
                   "Activation": {"Precision": "ap_fixed<9,4>"}},
        LayerName={"FC1_RELU": {"Precision": {"weight": "ap_fixed<10,4>"}},
                   "fc2_relu": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"}}))
    config = load_hls4ml_config(path)
    assert config.precision("fc1_relu", "Dense", "weight") == F("fixed<10,4>")  # name, any case
    assert config.precision("fc1_relu", "Dense", "bias") == F("fixed<16,6>")  # model default
    assert config.precision("fc2_relu", "Dense", "weight") == F("fixed<12,5,RND,SAT>")
    assert config.precision("fc3_relu", "Dense", "weight") == F("fixed<8,3>")  # layer type
    assert config.precision("fc3_relu_relu", "Activation", "result") == F("fixed<9,4>")
    assert config.precision("output_softmax", "Dense", "accum") == F("fixed<16,6>")


def test_reuse_factor_and_strategy_precedence(tmp_path):
    path = _write(tmp_path, edit=lambda raw: _layers(
        raw, LayerType={"Dense": {"ReuseFactor": 4, "Strategy": "Resource"}},
        LayerName={"fc2_relu": {"ReuseFactor": 8}}))
    config, model = load_hls4ml(path)
    assert config.reuse_factor("fc2_relu", "Dense") == 8
    assert config.strategy("fc1_relu", "Dense") == "resource"
    assert {layer.name: layer.reuse_factor for layer in model.layers if layer.kind == "dense"} \
        == {"fc1_relu": 4, "fc2_relu": 8, "fc3_relu": 4, "output_softmax": 4}


def test_keras_jet_tagger_layers_follow_hls4ml():
    config, model = load_hls4ml(HLS4ML_MODELS / "keras-config.yml")
    assert [(layer.name, layer.kind) for layer in model.layers] == [
        ("fc1_relu", "dense"), ("fc1_relu_relu", "activation"), ("fc2_relu", "dense"),
        ("fc2_relu_relu", "activation"), ("fc3_relu", "dense"), ("fc3_relu_relu", "activation"),
        ("output_softmax", "dense"), ("output_softmax_softmax", "hls4ml_softmax")]
    dense = model.layers[0].spec
    assert model.input_format == F("fixed<16,6>")
    assert (dense.weight_format, dense.accumulator_format, dense.output_format) == \
        (F("fixed<16,6>"),) * 3
    assert model.layers[1].fout == F("fixed<16,6>")  # ReLU keeps WRAP: large values wrap
    assert any("OutputDir" in note for note in config.notes)


def test_onnx_jet_tagger_splits_bias_into_apply_alpha():
    _, model = load_hls4ml(HLS4ML_MODELS / "onnx-config.yml")
    assert [(layer.name, layer.kind) for layer in model.layers][:3] == [
        ("Dense_MatMul_0", "dense"), ("bn_Add_0", "batchnorm"), ("Relu_0", "activation")]
    assert model.layers[0].spec.biases is None
    assert model.layers[-1].name == "Softmax_0"


def test_weights_are_written_and_read_back_as_hls4ml_does():
    fmt = F("fixed<8,3>")  # 5 fraction bits: 5 decimals, then TRN
    values = np.array([0.03125, 0.0312496, 0.0312449, -0.0000001, 3.99, 4.5])
    # 0.0312496 prints as 0.03125 (5 decimals): one LSB, where truncating the float itself
    # gives 0; -1e-7 prints as -0.00000; 4.5 wraps to -3.5.
    assert hls4ml_weight_codes(values, fmt).tolist() == [1, 1, 0, 0, 127, -112]


def test_auto_accumulator_matches_hls4ml_formula():
    acc = auto_accumulator(F("fixed<16,6>"), F("fixed<16,6>"), F("fixed<16,6>"), 16, True)
    assert acc == F("fixed<37,17>")  # hls4ml's fc1 accum_t with 'auto'
    assert auto_accumulator(F("fixed<16,6>"), F("fixed<8,3>"), F("fixed<8,3>"), 64, False) == \
        F("fixed<30,15>")


def _set(path_keys, value):
    def edit(raw):
        node = raw
        for key in path_keys[:-1]:
            node = node.setdefault(key, {})
        node[path_keys[-1]] = value
    return edit


ERRORS = {
    "unknown-top": (_set(["Optimizers"], ["x"]), ConfigError,
                    "setting 'Optimizers' is not supported by nnfab"),
    "unknown-layer-setting": (_set(["HLSConfig", "LayerName", "fc1_relu"],
                                   {"ParallelizationFactor": 2}), ConfigError,
                              "setting 'ParallelizationFactor' of HLSConfig.LayerName.fc1_relu "
                              "is not supported by nnfab"),
    "backend": (_set(["Backend"], "oneAPI"), ConfigError,
                "Backend 'oneAPI' is not supported"),
    "io-type": (_set(["IOType"], "io_serial"), ConfigError,
                "IOType 'io_serial' is not supported; use io_parallel or io_stream"),
    "precision-string": (_set(["HLSConfig", "LayerName", "fc2_relu"],
                              {"Precision": {"weight": "float"}}), ConfigError,
                         "HLSConfig.LayerName.fc2_relu.Precision.weight: precision 'float' is "
                         "not supported"),
    "saturating-accum": (_set(["HLSConfig", "LayerType", "Dense"],
                              {"Precision": {"accum": "ap_fixed<16,6,AP_TRN,AP_SAT>"}}),
                         ConfigError, "accum fixed<16,6,TRN,SAT> of layer 'fc1_relu' saturates "
                                      "after every addition"),
    "reuse-factor": (_set(["HLSConfig", "LayerName", "fc1_relu"], {"ReuseFactor": 3}),
                     ConfigError, "ReuseFactor 3 of layer 'fc1_relu' does not divide its 16 "
                                  "inputs per output or be 16 times a divisor of its 64 "
                                  "outputs; nnfab takes 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, "
                                  "1024"),
    "softmax-implementation": (_set(["HLSConfig", "LayerName", "output_softmax_softmax"],
                                    {"implementation": "latency"}), ConfigError,
                               "implementation 'latency' of softmax layer "
                               "'output_softmax_softmax' is not supported"),
    "missing-model": (_set(["KerasJson"], "nowhere.json"), ConfigError,
                      "KerasJson file 'nowhere.json' does not exist (tried 'nowhere.json', "),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_unsupported_settings_are_named(case, tmp_path):
    edit, error, message = ERRORS[case]
    path = _write(tmp_path, edit=edit)
    with pytest.raises(error) as info:
        load_hls4ml(path)
    assert message in str(info.value)
    result = CliRunner().invoke(main, ["verify", "--hls4ml-config", str(path), "--random", "5"])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split())


def test_auto_accumulator_is_accepted_for_dense(tmp_path):
    path = _write(tmp_path, edit=_set(["HLSConfig", "LayerType", "Dense"],
                                      {"Precision": {"accum": "auto", "result": "auto"}}))
    _, model = load_hls4ml(path)
    assert model.layers[0].spec.accumulator_format == F("fixed<37,17>")


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("HLSConfig: [unclosed")
    with pytest.raises(ModelError, match="is not valid YAML"):
        load_hls4ml(bad)
    with pytest.raises(ModelError, match="does not exist"):
        load_hls4ml(tmp_path / "none.yml")


@pytest.mark.slow
def test_cli_build_reports_the_config(tmp_path):
    path = _write(tmp_path, edit=_set(["HLSConfig", "Model", "ReuseFactor"], 16))
    out = tmp_path / "build"
    result = CliRunner().invoke(main, ["build", "--hls4ml-config", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "hls4ml softmax layers" in report
    assert f"Source: hls4ml config {path}" in report
    assert "- OutputDir: an HLS project setting; no effect on nnfab's Verilog" in report
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input_cast"] == "format"  # `nnfab verify DIR` casts inputs as hls4ml
    softmax = manifest["layers"][-1]
    assert softmax["kind"] == "hls4ml_softmax"
    assert softmax["exp_table"] == "1024 x fixed<18,8,RND,SAT>"
    assert {row["reuse_factor"] for row in manifest["layers"] if row["kind"] == "dense"} == {16}
    # The build folder's model reads back: verify DIR uses it.
    from nnfab.gen.native import load_native

    assert [layer.kind for layer in load_native(out / "model.json").layers][-1] == \
        "hls4ml_softmax"


def test_model_maximum_caps_inferred_types(tmp_path):
    """``Model.Precision.maximum`` caps width and integer bits of hls4ml's inferred types."""
    path = _write(tmp_path, edit=lambda raw: raw["HLSConfig"].update(
        Model={"Precision": {"default": "ap_fixed<16,6>", "maximum": "ap_fixed<24,10>"}},
        LayerType={"Dense": {"Precision": {"result": "auto"}}}))
    _, model = load_hls4ml(path)
    assert model.layers[0].spec.output_format == F("fixed<24,10>")  # 37,17 uncapped


def test_keras_layer_without_bias_infers_with_a_one_bit_bias():
    """hls4ml gives a layer without a bias a zero bias of type ap_uint<1>, which widens the
    inferred type by one integer bit (``infer_no_bias`` is off)."""
    from nnfab.gen.hls4ml.convert import NO_BIAS_FORMAT

    assert auto_accumulator(F("fixed<16,6>"), F("fixed<8,3>"), NO_BIAS_FORMAT, 64, True) == \
        F("fixed<31,16>")
