"""The TFLite operator kinds (:mod:`nnfab.ir.tflite_ops`): their checks, one message each, and
their native form read back only onto int8 tensors."""

import json
import re

import pytest

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat
from nnfab.gen.native import load_native, save_native
from nnfab.ir import (Model, TfliteAddLayer, TfliteAveragePoolLayer, TfliteSoftmaxLayer,
                      integer_format)
from nnfab.tflite_ops import AddParams

from .test_kinds import tflite_softmax

PARAMS = AddParams.from_scales((0.05, 0.02, 0.06), (3, -7, 11))


@pytest.mark.parametrize("make,message", [
    (lambda: TfliteAveragePoolLayer("avg", shape=(4, 3)),
     "Layer 'avg': a global average pool reads (H, W, C) frames, not shape (4, 3)"),
    (lambda: TfliteAveragePoolLayer("avg", shape=(2, 2, 3), low=5, high=-5),
     "Layer 'avg': Average clamp must have low <= high, not [5, -5]"),
    (lambda: TfliteAddLayer("add", shape=(3,), params=None),
     "Layer 'add': a TFLite add needs an AddParams, not None"),
    (lambda: TfliteAddLayer("add", shape=(3,), params=PARAMS, inputs=("a", "b", "c")),
     "Layer 'add': a TFLite add reads 2 tensors, not 3 ('a', 'b', 'c')"),
    (lambda: TfliteSoftmaxLayer("sm", n=512, input_scale=0.1, beta=1.0),
     "Layer 'sm': TFLite softmax depth must be an integer from 1 to 511, not 512"),
    (lambda: TfliteSoftmaxLayer("sm", n=4, input_scale=0.0, beta=1.0),
     "Layer 'sm': TFLite softmax input scale must be a finite number above 0, not 0.0"),
])
def test_layer_checks(make, message):
    with pytest.raises(ModelError, match=f"^{re.escape(message)}$"):
        make()


def test_native_form_reads_int8_only(tmp_path):
    save_native(tflite_softmax(), tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["layers"][0] == {"name": "softmax", "type": "tflite_softmax",
                                     "input_scale": 0.0625, "beta": 0.7}
    document["input"]["format"] = str(FixedFormat(8, 3))
    (tmp_path / "m.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match=r"^Layer 'softmax': a 'tflite_softmax' layer reads and "
                                         r"writes int8 codes \(fixed<8,8>\); its input format "
                                         r"is fixed<8,3>$"):
        load_native(tmp_path / "m.json")


def test_model_of_a_softmax_round_trips(tmp_path):
    model = Model("m", (4,), integer_format(8),
                  (TfliteSoftmaxLayer("sm", n=4, input_scale=0.1, beta=0.7),))
    save_native(model, tmp_path / "m.json")
    assert load_native(tmp_path / "m.json") == model
