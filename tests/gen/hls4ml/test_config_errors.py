"""Hand-edited hls4ml configs: every mistake is one nnfab error naming the key path, the value
and what is accepted (never a traceback, never silently ignored), also through the CLI."""

import re

import pytest
import yaml
from click.testing import CliRunner

from nnfab.errors import ModelError
from nnfab.cli import main
from nnfab.gen.hls4ml import ConfigError, load_hls4ml

from .conftest import HLS4ML_MODELS

KERAS, ONNX = "keras-config.yml", "onnx-config.yml"
KERAS_LAYERS = ("input_1, fc1_relu, fc1_relu_relu, fc2_relu, fc2_relu_relu, fc3_relu, "
                "fc3_relu_relu, output_softmax, output_softmax_softmax")
ONNX_LAYERS = "global_in, " + ", ".join(
    f"MatMul_{i}, MatMul_{i}_param0, Dense_MatMul_{i}, Add_{i}, Add_{i}_param0, bn_Add_{i}"
    + (f", Relu_{i}" if i < 3 else "") for i in range(4)) + ", Softmax_0"
TOP_KEYS = ("KerasJson, KerasH5, OnnxModel, HLSConfig, IOType, Backend and the project "
            "settings OutputDir, ProjectName, ProjectDir, Part, XilinxPart, Board, ClockPeriod, "
            "ClockUncertainty, InputData, OutputPredictions, Stamp, Version, WriterConfig, "
            "TraceOutput")
LAYER_KEYS = ("Precision, ReuseFactor, Strategy, table_size, implementation, exp_scale, "
              "skip, accum_t, table_t, exp_table_t, inv_table_t, inv_inp_t, static")
WIDTHS = "ap_fixed types take 1 to 1024 bits and integer bits from -1024 to 1024"


def _set(keys, value):
    def edit(raw):
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return edit


#: case: (base config, edit, message with {path} for the config file)
CASES = {
    # A misspelled LayerName names the section and lists the model's layers.
    "layer-name-keras": (KERAS, _set(["HLSConfig", "LayerName", "fc1_rleu"],
                                     {"Precision": "ap_fixed<8,3>"}),
                         f"{{path}}: HLSConfig.LayerName 'fc1_rleu' is not a layer of the "
                         f"model; its layers are {KERAS_LAYERS}"),
    "layer-name-onnx": (ONNX, _set(["HLSConfig", "LayerName", "MatMul_O"], {"ReuseFactor": 2}),
                        f"{{path}}: HLSConfig.LayerName 'MatMul_O' is not a layer of the "
                        f"model; its layers are {ONNX_LAYERS}"),
    "layer-type": (KERAS, _set(["HLSConfig", "LayerType", "QDense"],
                               {"Precision": "ap_fixed<8,3>"}),
                   "{path}: HLSConfig.LayerType 'QDense' is not an hls4ml layer class (hls4ml's "
                   "class of QDense layers is 'Dense'); nnfab's hls4ml mode builds Input, Dense, "
                   "Conv2D, Activation, Softmax, Pooling2D, BatchNormalization, ApplyAlpha, "
                   "MatMul, Merge, Concatenate, Constant, LSTM, GRU"),
    # Precisions beyond ap_fixed's limits (an OverflowError traceback before).
    "too-wide": (KERAS, _set(["HLSConfig", "Model", "Precision"], "ap_fixed<10000,6>"),
                 f"{{path}}: HLSConfig.Model.Precision: precision 'ap_fixed<10000,6>' is not "
                 f"supported; {WIDTHS}"),
    "too-many-integer-bits": (KERAS, _set(["HLSConfig", "LayerName", "fc1_relu"],
                                          {"Precision": {"weight": "ap_fixed<16,2000>"}}),
                              f"{{path}}: HLSConfig.LayerName.fc1_relu.Precision.weight: "
                              f"precision 'ap_fixed<16,2000>' is not supported; {WIDTHS}"),
    "precision-number": (KERAS, _set(["HLSConfig", "LayerType", "Dense", "Precision"], 16),
                         "{path}: HLSConfig.LayerType.Dense.Precision 16 is not supported; give "
                         "a precision such as 'ap_fixed<16,6>' or a mapping of default, weight, "
                         "bias, result, accum, scale, recurrent_weight, recurrent_bias to "
                         "precisions"),
    "softmax-skip": (KERAS, _set(["HLSConfig", "LayerName", "output_softmax_softmax"],
                                 {"Skip": True}),
                     "{path}: HLSConfig.LayerName.output_softmax_softmax.Skip True is not "
                     "supported; nnfab builds the softmax: give false"),
    # hls4ml casts a maximum to accum_t, then to result_t: one cast only where accum_t holds
    # the input type (fixed<7,1,RND,SAT> here).
    "pooling-accum": ("config-files/qkeras_mnist_cnn_config.yml",
                      _set(["HLSConfig", "LayerName", "max_pooling2d", "Precision"],
                           {"accum": "ap_fixed<6,1>", "result": "auto"}),
                      "{path}: accum fixed<6,1> of max pooling layer 'max_pooling2d' does not "
                      "hold every value of its input type fixed<7,1,RND,SAT>: hls4ml casts the "
                      "maximum to accum_t before result_t, which nnfab does not model; give an "
                      "accum that holds fixed<7,1,RND,SAT>, or auto"),
    "auto-quantized-activation": ("config-files/qkeras_3layer_config.yml",
                                  _set(["HLSConfig", "LayerName", "relu1", "Precision",
                                        "result"], "auto"),
                                  "{path}: precision 'auto' for 'result' of layer 'relu1' is not "
                                  "supported there; nnfab infers 'auto' types of dense and "
                                  "convolution layers, ONNX bias additions (ApplyAlpha), batch "
                                  "normalization, max pooling, activations, softmax and the "
                                  "input only"),
    "wide-input": (ONNX, _set(["HLSConfig", "LayerName", "global_in"],
                              {"Precision": "ap_fixed<101,40>"}),
                   # nnfab's own limit (64 bits) comes before hls4ml's FixInputPrecision
                   # (100 bits), which nnfab does not model.
                   "{path}: HLSConfig.LayerName.global_in.Precision: precision "
                   "'ap_fixed<101,40>' is not supported (Fixed-point format 'fixed<101,40>' "
                   "is 101 bits wide; nnfab builds formats of at most 64 bits); nnfab takes "
                   "ap_fixed<W,I,Q,O>, ap_ufixed, ap_int, ap_uint and fixed<...>"),
    "precision-var": (KERAS, _set(["HLSConfig", "LayerType", "Dense"],
                                  {"Precision": {"wieght": "ap_fixed<8,3>"}}),
                      "{path}: HLSConfig.LayerType.Dense.Precision.wieght is not supported "
                      "(nnfab reads default, weight, bias, result, accum, scale, "
                      "recurrent_weight, recurrent_bias)"),
    # Reuse factors.
    **{f"reuse-factor-{value!r}": (KERAS, _set(["HLSConfig", "Model", "ReuseFactor"], value),
                                   f"{{path}}: HLSConfig.Model.ReuseFactor {value!r} is not "
                                   f"supported; give a positive integer")
       for value in (0, 1.5, None, True, -2)},
    "reuse-factor-string": (KERAS, _set(["HLSConfig", "LayerType", "Dense", "ReuseFactor"], "4"),
                            "{path}: HLSConfig.LayerType.Dense.ReuseFactor '4' is not supported; "
                            "give a positive integer"),
    "strategy-name": (KERAS, _set(["HLSConfig", "LayerType", "Dense", "Strategy"], "Fast"),
                      "{path}: HLSConfig.LayerType.Dense.Strategy 'Fast' is not supported; give "
                      "Latency, Resource or Resource_Unrolled"),
    "strategy-stable-on-dense": (KERAS, _set(["HLSConfig", "LayerType", "Dense", "Strategy"],
                                             "Stable"),
                                 "{path}: Strategy 'stable' of layer 'fc1_relu' is not supported "
                                 "(Latency, Resource or Resource_Unrolled)"),
    "backend": (KERAS, _set(["Backend"], "oneAPI"),
                "{path}: Backend 'oneAPI' is not supported; nnfab reproduces the numerics of "
                "Vivado, Vitis, VivadoAccelerator, VitisAccelerator, Quartus (Quartus for "
                "SimpleRNN, Dense, relu and linear layers)"),
    "strategy": (KERAS, _set(["HLSConfig", "Model", "Strategy"], 3),
                 "{path}: HLSConfig.Model.Strategy 3 is not supported; give Latency, Resource or "
                 "Resource_Unrolled"),
    "table-size": (KERAS, _set(["HLSConfig", "LayerType", "Softmax", "TableSize"], 0),
                   "{path}: HLSConfig.LayerType.Softmax.TableSize 0 is not supported; give a "
                   "positive integer"),
    # Values of the wrong kind.
    "hls-config": (KERAS, _set(["HLSConfig"], "x"),
                   "{path}: HLSConfig 'x' is not a mapping; give a mapping with a Model section "
                   "(and LayerType, LayerName)"),
    "model-list": (KERAS, _set(["HLSConfig", "Model"], ["Precision"]),
                   "{path}: HLSConfig.Model ['Precision'] is not a mapping of settings"),
    "layer-names-list": (KERAS, _set(["HLSConfig", "LayerName"], ["fc1"]),
                         "{path}: HLSConfig.LayerName ['fc1'] is not a mapping of layer names"),
    "layer-section-string": (KERAS, _set(["HLSConfig", "LayerName", "fc1_relu"], "ap_fixed<8,3>"),
                             f"{{path}}: HLSConfig.LayerName.fc1_relu 'ap_fixed<8,3>' is not a "
                             f"mapping of settings ({LAYER_KEYS})"),
    "io-type-number": (KERAS, _set(["IOType"], 3),
                       "{path}: IOType 3 is not supported; use io_parallel or io_stream"),
    "model-file-number": (KERAS, _set(["KerasJson"], 5),
                          "{path}: KerasJson 5 is not a file name; give the model file's path as "
                          "a string"),
    # Keys at the wrong level.
    "top-level-reuse-factor": (KERAS, _set(["ReuseFactor"], 4),
                               f"{{path}}: setting 'ReuseFactor' is not supported by nnfab (it "
                               f"reads {TOP_KEYS}); 'ReuseFactor' belongs in HLSConfig.Model or a "
                               f"LayerType/LayerName section"),
    "layer-name-in-model": (KERAS, _set(["HLSConfig", "Model", "LayerName"], {"fc1_relu": {}}),
                            "{path}: setting 'LayerName' of HLSConfig.Model is not supported by "
                            "nnfab (it reads Precision, ReuseFactor, Strategy, and BramFactor, "
                            "TargetCycles, PipelineStyle, PipelineInterval, Compression, Trace, "
                            "ConvImplementation, TraceOutput without effect); 'LayerName' belongs "
                            "in HLSConfig"),
    "precision-in-hls-config": (KERAS, _set(["HLSConfig", "Precision"], "ap_fixed<8,3>"),
                                "{path}: HLSConfig setting 'Precision' is not supported (nnfab "
                                "reads Model, LayerType and LayerName); 'Precision' belongs in "
                                "HLSConfig.Model or a LayerType/LayerName section"),
    "auto-qkeras-weight": ("config-files/qkeras_3layer_config.yml",
                           _set(["HLSConfig", "LayerName", "fc2", "Precision", "weight"], "auto"),
                           "{path}: precision 'auto' for 'weight' of QKeras layer 'fc2' is not "
                           "supported (hls4ml takes its quantizer's type); give the type, such as "
                           "'ap_fixed<16,6>'"),
    "missing-onnx-model": (ONNX, _set(["OnnxModel"], "nowhere.onnx"),
                           "{path}: OnnxModel file 'nowhere.onnx' does not exist (tried "
                           "'nowhere.onnx', '{folder}/nowhere.onnx', '{parent}/nowhere.onnx')"),
}


def _write(tmp_path, base, edit):
    raw = yaml.safe_load((HLS4ML_MODELS / base).read_text())
    for key in ("KerasJson", "KerasH5", "OnnxModel"):
        if key in raw:
            raw[key] = str(HLS4ML_MODELS / raw[key])
    edit(raw)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_mistake_is_one_clear_error(case, tmp_path):
    base, edit, message = CASES[case]
    path = _write(tmp_path, base, edit)
    with pytest.raises(ConfigError) as info:
        load_hls4ml(path)
    assert str(info.value) == message.format(path=path, folder=path.parent,
                                             parent=path.parent.parent)


@pytest.mark.parametrize("case", ["layer-name-keras", "too-wide", "reuse-factor-1.5"])
def test_cli_shows_the_message_without_traceback(case, tmp_path):
    base, edit, message = CASES[case]
    path = _write(tmp_path, base, edit)
    result = CliRunner().invoke(main, ["verify", "--hls4ml-config", str(path), "--random", "5"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert message.format(path=path) in " ".join(result.output.split())


@pytest.mark.parametrize("text,message", [
    ("HLSConfig: [unclosed", r"hls4ml config '.*' is not valid YAML: while parsing a flow "
                             r"sequence .* expected ',' or '\]', but got '<stream end>' .*"),
    ("- a\n- b\n", r"hls4ml config '.*' is not a mapping of settings \(it holds list \['a', "
                   r"'b'\]\); give a YAML mapping such as 'OnnxModel: model.onnx'"),
    ("", r"hls4ml config '.*' is not a mapping of settings \(it holds NoneType None\); give a "
         r"YAML mapping such as 'OnnxModel: model.onnx'"),
])
def test_unreadable_config_file(text, message, tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ModelError) as info:
        load_hls4ml(path)
    assert re.fullmatch(message, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_backend_name_ignores_case_as_in_hls4ml(tmp_path):
    load_hls4ml(_write(tmp_path, KERAS, _set(["Backend"], "vitis")))


def test_layer_name_sections_of_rewritten_and_constant_layers_are_accepted(tmp_path):
    """hls4ml's name-granularity ONNX configs name constants (``MatMul_0_param0``) and users
    may name the layers hls4ml creates (``Dense_MatMul_0``); case does not matter."""
    path = _write(tmp_path, ONNX, _set(["HLSConfig", "LayerName"], {
        "MatMul_0_param0": {"Precision": {"result": "auto"}},
        "dense_matmul_1": {"Precision": {"weight": "ap_fixed<12,4>"}},
        "BN_ADD_2": {"Precision": {"result": "ap_fixed<14,6>"}}}))
    _, model = load_hls4ml(path)
    layers = {layer.name: layer for layer in model.layers}
    assert str(layers["Dense_MatMul_1"].spec.weight_format) == "fixed<12,4>"
    assert str(layers["bn_Add_2"].output_format) == "fixed<14,6>"


def test_key_given_twice_is_an_error(tmp_path):
    """PyYAML (and so hls4ml) keeps the last of two equal keys silently."""
    text = (f"KerasJson: {HLS4ML_MODELS}/keras/KERAS_3layer.json\n"
            f"HLSConfig:\n  Model:\n    Precision: ap_fixed<16,6>\n  LayerName:\n"
            f"    fc1_relu:\n      ReuseFactor: 2\n    fc1_relu:\n      ReuseFactor: 4\n")
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_hls4ml(path)
    line = text.splitlines().index("    fc1_relu:", text.splitlines().index("    fc1_relu:") + 1)
    assert str(info.value) == (f"{path}: 'fc1_relu' is given twice in one mapping (line "
                               f"{line + 1}); give each setting once")


def test_scale_precision_is_listed_as_without_effect(tmp_path):
    config, _ = load_hls4ml(_write(tmp_path, ONNX, _set(
        ["HLSConfig", "LayerName", "Add_0"], {"Precision": {"scale": "ap_fixed<4,2>"}})))
    assert "HLSConfig.LayerName.Add_0.Precision.scale: the scale type of BatchNormalization " \
           "layers; no effect on other layers (hls4ml gives the scale of an ONNX Add " \
           "ap_uint<1>)" in config.notes
