import json
from pathlib import Path

import numpy as np
import pytest

from nnfab.errors import FormatError, ModelError, ShapeError, UnsupportedLayerError
from nnfab.gen.examples import EXAMPLES
from nnfab.gen.float_model import FloatModel
from nnfab.ir import Model
from nnfab.gen.native import load_native, save_native
from nnfab.sim.golden.network import run_network

from .conftest import tiny_mlp


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "sine-lstm"])
def test_examples_round_trip(name, tmp_path):
    model = load_native(EXAMPLES[name].path)
    assert isinstance(model, Model)
    save_native(model, tmp_path / "again.json")
    again = load_native(tmp_path / "again.json")
    x = np.random.default_rng(0).integers(0, 17, (20, *model.input_shape))
    assert run_network(again, x).tolist() == run_network(model, x).tolist()
    float_model = load_native(EXAMPLES[name].float_path)
    assert isinstance(float_model, FloatModel)
    assert float_model.input_shape == model.input_shape


def test_save_is_deterministic(tmp_path):
    model = load_native(EXAMPLES["digits-mlp"].path)
    save_native(model, tmp_path / "a.json")
    save_native(model, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_quantized_model(write_model):
    doc, arrays = tiny_mlp()
    model = load_native(write_model(doc, arrays))
    assert [layer.kind for layer in model.layers] == ["dense", "activation", "dense"]
    assert model.output_shape == (2,)
    assert str(model.layers[1].input_format) == "fixed<8,3,RND_CONV,SAT>"


@pytest.mark.parametrize("mutate,error,message", [
    (lambda d, a: d["layers"][1].update(type="gru_v2"), UnsupportedLayerError,
     "Layer 'relu': unknown layer type 'gru_v2'; nnfab supports dense, conv2d, pool, global_pool, "
     "zero_pad, flatten, activation, batchnorm, quantize, softmax, hls4ml_softmax, argmax, add, "
     "concatenate, upsample, output_stage, multithreshold, tflite_average_pool, tflite_add, "
     "tflite_softmax, recurrent"),
    (lambda d, a: a.update({"d2.w": np.zeros((2, 5), dtype=np.int64)}), ModelError,
     "Layer 'd2': weights of shape (2, 5) do not take inputs of shape (3,) (expected (n_out, 3))"),
    (lambda d, a: a.update({"d1.w": np.full((3, 4), 300)}), FormatError,
     "Layer 'd1': weight 4.6875 (code 300) does not fit fixed<8,2> (range -2.0 to 1.984375)"),
    (lambda d, a: a.update({"d1.w": np.full((3, 4), np.nan)}), FormatError,
     "Layer 'd1': weights contain nan; every value must be finite"),
    (lambda d, a: d["layers"][0].update(weight_format="fixed<8>"), FormatError,
     "Layer 'd1': Fixed-point format 'fixed<8>' must have 2 to 5 parameters, not 1"),
    (lambda d, a: d["layers"][0].pop("weights"), ModelError,
     "layers[0].weights is missing; it must be the name of an array in the .npz file (a "
     "non-empty string)"),
    (lambda d, a: d["layers"][0].update(weights="nope"), ModelError,
     "Layer 'd1': array 'nope' is not in the .npz file (it holds d1.b, d1.w, d2.w)"),
    (lambda d, a: d.update(layers=[]), ModelError, "layers is []; it must be a list of 1 to 1000 layers"),
    (lambda d, a: d["layers"][0].update(reuse_factor=3), ModelError,
     "Layer 'd1': reuse factor must divide n_in 4 or be n_in times a divisor of n_out 3 (one "
     "of 1, 2, 4, 12), not 3"),
])
def test_bad_models(write_model, mutate, error, message):
    doc, arrays = tiny_mlp()
    mutate(doc, arrays)
    path = write_model(doc, arrays)
    with pytest.raises(error) as info:
        load_native(path)
    assert str(info.value).replace(f"Model file {str(path)!r}: ", "") == message


def test_float_shape_mismatch(write_model):
    doc = {"nnfab_model": 1, "name": "f", "input": {"shape": [4]},
           "layers": [{"name": "d1", "type": "dense", "weights": "w"},
                      {"name": "d2", "type": "dense", "weights": "w"}]}
    with pytest.raises(ShapeError) as info:
        load_native(write_model(doc, {"w": np.ones((3, 4))}))
    assert str(info.value) == "Layer 'd2': expects 4 inputs, not shape (3,)"


def test_empty_and_invalid_files(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(ModelError) as info:
        load_native(empty)
    assert str(info.value) == f"Model file {str(empty)!r} is empty"
    broken = tmp_path / "broken.json"
    broken.write_text('{"nnfab_model": 1, "layers": [')
    with pytest.raises(ModelError) as info:
        load_native(broken)
    assert str(info.value).startswith(f"Model file {str(broken)!r} is not valid JSON: ")


def _conv_doc():
    doc = json.loads(Path(EXAMPLES["digits-cnn"].path).read_text())
    with np.load(Path(EXAMPLES["digits-cnn"].path).with_suffix(".npz")) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return doc, arrays


# Issue 14 item 7: each of these loaded (or ended in a Python error) before.
@pytest.mark.parametrize("mutate,error,message", [
    (lambda d, a: d["input"].pop("format"), FormatError,
     "Model 'tiny': input.format is missing, but layer 'd1' has 'weight_format'; a quantized "
     "model needs input.format (a format string such as \"fixed<16,6>\"), a float model has no "
     "formats"),
    (lambda d, a: d["layers"][0].update(reuse_factor=1.5), ModelError,
     "Model file {path}: layers[0].reuse_factor is 1.5; it must be an integer from 1 to 65536"),
    (lambda d, a: d["input"].update(shape=[64.5]), ModelError,
     "Model file {path}: input.shape[0] is 64.5; it must be an integer from 1 to 65536"),
    (lambda d, a: d["layers"][1].update(name=None), ModelError,
     "Model file {path}: layers[1].name is null; it must be a non-empty string of at most 256 "
     "printable characters"),
    (lambda d, a: d.update(name=""), ModelError,
     "Model file {path}: name is \"\"; it must be a non-empty string of at most 256 printable "
     "characters"),
    (lambda d, a: d.update(input=64), ModelError,
     "Model file {path}: input is 64; it must be an object with \"shape\" and, in a quantized "
     "model, \"format\""),
    (lambda d, a: d["layers"][2].update(name="d1"), ModelError,
     "Model 'tiny': two layers are named 'd1'"),
    (lambda d, a: d["layers"][0].update(reuse_facter=2), ModelError,
     "Model file {path}: layers[0] has the unknown key 'reuse_facter'; a 'dense' layer takes "
     "name, type, inputs, weights, biases, weight_format, bias_format, output_format, "
     "accumulator_format, reuse_factor"),
    (lambda d, a: d["layers"][0].pop("type"), ModelError,
     "Model file {path}: layers[0].type is missing; it must be dense, conv2d, pool, global_pool, "
     "zero_pad, flatten, activation, batchnorm, quantize, softmax, hls4ml_softmax, argmax, add, "
     "concatenate, upsample, output_stage, multithreshold, tflite_average_pool, tflite_add, "
     "tflite_softmax, recurrent"),
    (lambda d, a: d["layers"][0].update(weight_format="fixed<10000,2>"), FormatError,
     "Layer 'd1': Fixed-point format 'fixed<10000,2>' is 10000 bits wide; nnfab builds formats "
     "of at most 64 bits"),
    (lambda d, a: d["layers"][0].update(weight_format="fixed<8,100000>"), FormatError,
     "Layer 'd1': Fixed-point format 'fixed<8,100000>' has 100000 integer bits; nnfab builds "
     "formats with -256 to 256 integer bits"),
    (lambda d, a: d["layers"][0].update(weight_format="fixed<64,256>",
                                        bias_format="fixed<64,-200>"), ModelError,
     "Layer 'd1': Accumulator fixed<526,262> is 526 bits wide; nnfab builds accumulators of at "
     "most 128 bits (narrow the operand formats or bring their binary points closer)"),
    (lambda d, a: d.update(nnfab_model=2), ModelError,
     "Model file {path}: nnfab_model is 2; this nnfab reads format version 1"),
    (lambda d, a: d.update(extra=1), ModelError,
     "Model file {path}: the document has the unknown key 'extra'; it takes nnfab_model, name, "
     "arrays, input, layers"),
    (lambda d, a: d["layers"][1].pop("activation"), ModelError,
     "Model file {path}: layers[1].activation is missing; it must be the name of an activation "
     "function"),
    (lambda d, a: d["layers"][1].update(strides=[1, 1]), ModelError,
     "Model file {path}: layers[1] has the unknown key 'strides'; an 'activation' layer takes "
     "name, type, inputs, activation, output_format, params"),
    (lambda d, a: a.update({"d1.w": a["d1.w"] + 0.5j}), FormatError,
     "Layer 'd1': weights must be integer codes, not complex128 values"),
])
def test_inconsistent_models(write_model, mutate, error, message):
    doc, arrays = tiny_mlp()
    mutate(doc, arrays)
    path = write_model(doc, arrays)
    with pytest.raises(error) as info:
        load_native(path)
    assert str(info.value) == message.format(path=repr(str(path)))


def test_conv_without_weight_format(write_model):
    doc, arrays = _conv_doc()
    del doc["layers"][0]["weight_format"]
    with pytest.raises(FormatError) as info:
        load_native(write_model(doc, arrays))
    assert str(info.value) == ("Layer 'conv': a quantized conv2d layer needs \"weight_format\" "
                               "and \"output_format\"")


@pytest.mark.parametrize("value,shown", [(1j, "complex128"), ("a", "<U1")])
def test_float_model_arrays_must_be_real(write_model, value, shown):
    doc = {"nnfab_model": 1, "name": "f", "input": {"shape": [2]},
           "layers": [{"name": "d", "type": "dense", "weights": "w"}]}
    weights = np.ones((3, 2)) + value if value == 1j else np.full((3, 2), value)
    with pytest.raises(ModelError) as info:
        load_native(write_model(doc, {"w": weights}))
    assert str(info.value) == f"Layer 'd': weights must be real numbers, not {shown} values"


def test_duplicate_json_keys(write_model, tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"nnfab_model": 1, "name": "a", "name": "b", "input": {"shape": [2]}, '
                    '"layers": [{"name": "am", "type": "argmax"}]}')
    with pytest.raises(ModelError) as info:
        load_native(path)
    assert str(info.value) == (f"Model file {str(path)!r}: key 'name' appears twice in one "
                               f"object; every key must be unique")


@pytest.mark.parametrize("content,message", [
    (b"", "Array file {npz} is empty (a .npz file holds the model's arrays)"),
    (b"PK\x03\x04 not a zip", "Array file {npz} is not a readable .npz (not a zip archive; "
                               "truncated or corrupt?)"),
    (None, "Array file {npz} is not a readable .npz (truncated or corrupt?): array 'd1.w' cannot "
           "be read"),
])
def test_corrupt_npz(write_model, content, message):
    doc, arrays = tiny_mlp()
    path = write_model(doc, arrays)
    npz = path.with_suffix(".npz")
    if content is None:  # a flipped byte inside the first compressed array: zlib.error before
        np.savez_compressed(npz, **arrays)
        data = bytearray(npz.read_bytes())
        data[80] ^= 0xFF
        content = bytes(data)
    npz.write_bytes(content)
    with pytest.raises(ModelError) as info:
        load_native(path)
    assert str(info.value) == message.format(npz=repr(str(npz)))


def test_missing_npz(write_model):
    doc, arrays = tiny_mlp()
    path = write_model(doc)
    with pytest.raises(ModelError) as info:
        load_native(path)
    assert str(info.value) == (f"Array file {str(path.with_suffix('.npz'))!r} of model file "
                               f"{str(path)!r} does not exist")


def test_not_utf8(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes(b'{"nnfab_model": 1, "name": "\xff"}')
    with pytest.raises(ModelError) as info:
        load_native(path)
    assert str(info.value) == f"Model file {str(path)!r} is not UTF-8 text (byte 28 is 0xff)"


def test_wide_formats_fail_validation():
    from nnfab.fixed import FixedFormat
    from nnfab.ir import ActivationLayer
    from nnfab.gen.passes import Validate

    wide = FixedFormat(80, 8)
    model = Model("m", (4,), wide, (ActivationLayer("act", function="linear", shape=(4,),
                                                    fin=wide, fout=FixedFormat(8, 3)),))
    with pytest.raises(FormatError) as info:
        Validate().apply(model)
    assert str(info.value) == ("Model 'm': input format: Fixed-point format 'fixed<80,8>' is 80 "
                               "bits wide; nnfab builds formats of at most 64 bits")


@pytest.mark.parametrize("params,message", [
    ({"relu_max": 1e308}, "layers[0].params.relu_max is 1e+308; it must be a number from 0 to "
                          "2**64 or a fraction string"),
    ({"relu_max": "7/2", "extra": 1}, "layers[0].params has the unknown key 'extra'; it takes "
                                      "relu_max, alpha_format, alpha_code, slope, offset, scale, "
                                      "table"),
    ({"scale": {"format": "ufixed<18,1>", "code": "x"}},
     "layers[0].params.scale.code is \"x\"; it must be an integer"),
])
def test_activation_parameters(write_model, params, message):
    """The fuzzer found Python's own errors (OverflowError, int() texts) behind these."""
    doc = {"nnfab_model": 1, "name": "p", "input": {"shape": [4], "format": "fixed<8,3>"},
           "layers": [{"name": "b", "type": "activation", "activation": "bounded_relu",
                       "output_format": "ufixed<8,3>", "params": params}]}
    path = write_model(doc, {})
    with pytest.raises(ModelError) as info:
        load_native(path)
    assert str(info.value) == f"Model file {str(path)!r}: {message}"


def test_conv_with_fused_activation_round_trips(tmp_path):
    """Issue 15, bug 1: a conv2d layer's fused activation was dropped by save_native, so
    ``nnfab verify BUILD_DIR`` would have checked another network."""
    from nnfab.ir import Model
    from nnfab.ir import Conv2DLayer, FlattenLayer
    from nnfab.gen.native import load_native, save_native
    from nnfab.sim.golden.network import run_network

    from .conftest import leaky_conv_spec

    spec, fin = leaky_conv_spec()
    rng = np.random.default_rng(5)
    conv = Conv2DLayer("conv", spec=spec, reuse_factor=3)
    model = Model("act", (5, 5, 2), fin, [conv, FlattenLayer("flat", shape=(3, 3, 3),
                                                            fmt=spec.activation_format)])
    save_native(model, tmp_path / "m.json")
    again = load_native(tmp_path / "m.json")
    loaded = again.layers[0].spec
    assert (loaded.activation, loaded.activation_format) == ("leaky_relu",
                                                              spec.activation_format)
    assert loaded.activation_params == spec.activation_params
    x = rng.integers(-128, 128, (20, 5, 5, 2))
    assert np.array_equal(run_network(again, x), run_network(model, x))


def test_fused_layer_followed_by_an_unfused_one_round_trips(tmp_path):
    """The QONNX jet tagger after FuseShiftAdd: ``MatMul_0`` fuses ``MatMul_0, Relu_0`` and the
    next layer ``Quant_8`` (a quantizing activation, not fused) reads ``MatMul_0``. Saved, it
    must read ``Relu_0``, the last part: a build folder of this model failed to load in
    ``nnfab verify`` ("Layer 'Relu_0': its output feeds no layer")."""
    from nnfab.gen.load import load_model
    from nnfab.gen.passes import FuseShiftAdd

    from ..vectors import shared_dir

    path = shared_dir() / "models" / "qonnx-model-zoo" / "qkeras_jettagging.onnx"
    if not path.exists():
        pytest.fail(f"{path} is not available: shared/ must be beside the repository")
    model = load_model(path).model
    fused, changed = FuseShiftAdd().apply(model)
    assert changed and fused.layers[1].name == "Quant_8" and \
        fused.layers[1].inputs == ("MatMul_0",)
    save_native(fused, tmp_path / "m.json")
    loaded = load_native(tmp_path / "m.json")
    assert [(layer.name, layer.inputs) for layer in loaded.layers] == \
        [(layer.name, layer.inputs) for layer in model.layers]
    fmt = model.input_format
    x = np.random.default_rng(3).integers(fmt.min_code, fmt.max_code + 1,
                                           (500, *model.input_shape))
    assert np.array_equal(run_network(loaded, x), run_network(model, x))
