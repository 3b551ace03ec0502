"""Input arrays in the model file's layout or nnfab's (:mod:`nnfab.gen.tensor_layout`): which
shapes are accepted, the transposition, the line about a shape that fits both, and the
messages."""

import re

import numpy as np
import pytest

from nnfab.errors import ModelError, NnfabError
from nnfab.gen.tensor_layout import TensorLayout, manifest_layout, resolve_inputs

NCHW = TensorLayout("NCHW")
NAME = "Inputs file 'x.npy'"


def test_nchw_inputs_are_transposed_to_channels_last():
    x = np.random.default_rng(0).normal(size=(5, 3, 4, 2))  # (n, C, H, W)
    got, note = resolve_inputs(x, (4, 2, 3), NCHW, name=NAME)
    assert note is None
    assert got.shape == (5, 4, 2, 3)
    assert np.array_equal(got[2, 1, 0, :], x[2, :, 1, 0])  # every channel of one pixel
    assert np.array_equal(got, np.moveaxis(x, 1, 3))


def test_channels_last_inputs_pass_unchanged():
    x = np.random.default_rng(1).normal(size=(5, 4, 2, 3))
    got, note = resolve_inputs(x, (4, 2, 3), NCHW, name=NAME)
    assert got is x and note is None
    got, note = resolve_inputs(x, (4, 2, 3), TensorLayout("NHWC"), name=NAME)
    assert got is x and note is None


def test_shape_of_both_layouts_is_read_as_the_model_files():
    x = np.arange(2 * 3 * 3 * 3).reshape(2, 3, 3, 3)
    got, note = resolve_inputs(x, (3, 3, 3), NCHW, name=NAME)
    assert np.array_equal(got, np.transpose(x, (0, 2, 3, 1)))
    assert note == ("Inputs file 'x.npy' of shape (2, 3, 3, 3) fits both the model file's NCHW "
                    "layout and nnfab's NHWC; read as NCHW, as the model file declares")


def test_shape_of_neither_layout_names_both():
    x = np.zeros((5, 4, 3, 2))
    with pytest.raises(NnfabError, match=re.escape(
            "Inputs file 'x.npy' of shape (5, 4, 3, 2) does not fit the model's input shape; "
            "expected (n, 3, 4, 2) in the model file's NCHW layout or (n, 4, 2, 3) in nnfab's "
            "NHWC") + "$"):
        resolve_inputs(x, (4, 2, 3), NCHW, name=NAME)


@pytest.mark.parametrize("layout", [None, TensorLayout("NHWC")])
def test_shape_without_a_second_layout(layout):
    with pytest.raises(NnfabError, match=re.escape(
            "Inputs file 'x.npy' of shape (5, 3, 4, 2) does not fit the model's input shape; "
            "expected (n, 4, 2, 3)") + "$"):
        resolve_inputs(np.zeros((5, 3, 4, 2)), (4, 2, 3), layout, name=NAME)


def test_layout_names_are_checked():
    with pytest.raises(ModelError, match=r"^Tensor layout 'NWHC' is not supported; accepted: "
                                         r"'NHWC', 'NCHW'$"):
        TensorLayout("NWHC")
    with pytest.raises(ModelError, match=r"^Hardware layout 'NCHW' is not supported; nnfab's "
                                         r"is 'NHWC'$"):
        TensorLayout("NCHW", "NCHW")


def test_manifest_layout_round_trip_and_old_manifests():
    assert manifest_layout({"shape": [4, 2, 3], "layout": NCHW.as_dict()}, "m") == NCHW
    assert NCHW.as_dict() == {"model": "NCHW", "hardware": "NHWC"}
    assert manifest_layout({"shape": [4, 2, 3]}, "m") is None  # before layouts were recorded
    with pytest.raises(ModelError, match=r"^Build folder 'b': manifest.json: layout 'NCHW' is "
                                         r"not an object with 'model' and 'hardware'; build it "
                                         r"again with nnfab build$"):
        manifest_layout({"layout": "NCHW"}, "Build folder 'b': manifest.json")
