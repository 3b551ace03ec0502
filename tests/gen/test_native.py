import numpy as np
import pytest

from nnfab.errors import FormatError, ModelError, ShapeError, UnsupportedLayerError
from nnfab.gen.examples import EXAMPLES
from nnfab.gen.float_model import FloatModel
from nnfab.gen.ir import Model
from nnfab.gen.native import load_native, save_native
from nnfab.sim.golden.network import run_network

from .conftest import tiny_mlp


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
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
    (lambda d, a: d["layers"][1].update(type="lstm"), UnsupportedLayerError,
     "Layer 'relu': unknown layer type 'lstm'; nnfab supports dense, conv2d, pool, flatten, "
     "activation, batchnorm, quantize, softmax, hls4ml_softmax, argmax"),
    (lambda d, a: a.update({"d2.w": np.zeros((2, 5), dtype=np.int64)}), ModelError,
     "Layer 'd2': weights of shape (2, 5) do not take inputs of shape (3,) (expected (n_out, 3))"),
    (lambda d, a: a.update({"d1.w": np.full((3, 4), 300)}), FormatError,
     "Layer 'd1': weight 4.6875 (code 300) does not fit fixed<8,2> (range -2.0 to 1.984375)"),
    (lambda d, a: a.update({"d1.w": np.full((3, 4), np.nan)}), FormatError,
     "Layer 'd1': weights contain nan; every value must be finite"),
    (lambda d, a: d["layers"][0].update(weight_format="fixed<8>"), FormatError,
     "Layer 'd1': Fixed-point format 'fixed<8>' must have 2 to 5 parameters, not 1"),
    (lambda d, a: d["layers"][0].pop("weights"), ModelError, "Layer 'd1': 'weights' is missing"),
    (lambda d, a: d["layers"][0].update(weights="nope"), ModelError,
     "Layer 'd1': array 'nope' is not in the .npz file (it holds d1.b, d1.w, d2.w)"),
    (lambda d, a: d.update(layers=[]), ModelError, "layers is []; it must be a list of 1 to 1000 layers"),
    (lambda d, a: d["layers"][0].update(reuse_factor=3), ModelError,
     "Layer 'd1': reuse factor must divide n_in 4 (one of 1, 2, 4), not 3"),
])
def test_bad_models(write_model, mutate, error, message):
    doc, arrays = tiny_mlp()
    mutate(doc, arrays)
    with pytest.raises(error) as info:
        load_native(write_model(doc, arrays))
    assert str(info.value) == message


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
