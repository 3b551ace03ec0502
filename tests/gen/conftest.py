import json

import numpy as np
import pytest


@pytest.fixture
def write_model(tmp_path):
    """Write a native model (JSON document + arrays) and return the JSON path."""

    def write(doc, arrays=None, name="model"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        if arrays is not None:
            np.savez(tmp_path / f"{name}.npz", **arrays)
        return path

    return write


def tiny_mlp(weights=None, weight_format="fixed<8,2>"):
    """A quantized 4→3→2 MLP document and its arrays (codes)."""
    rng = np.random.default_rng(0)
    arrays = {
        "d1.w": rng.integers(-100, 100, (3, 4)) if weights is None else weights,
        "d1.b": rng.integers(-10, 10, 3),
        "d2.w": rng.integers(-100, 100, (2, 3)),
    }
    doc = {"nnfab_model": 1, "name": "tiny", "input": {"shape": [4], "format": "fixed<8,3>"},
           "layers": [
               {"name": "d1", "type": "dense", "weights": "d1.w", "biases": "d1.b",
                "weight_format": weight_format, "bias_format": "fixed<8,3>",
                "output_format": "fixed<8,3,RND_CONV,SAT>"},
               {"name": "relu", "type": "activation", "activation": "relu",
                "output_format": "ufixed<8,3,RND_CONV,SAT>"},
               {"name": "d2", "type": "dense", "weights": "d2.w",
                "weight_format": "fixed<8,2>", "output_format": "fixed<10,4,RND_CONV,SAT>"},
           ]}
    return doc, arrays


def leaky_conv_spec():
    """A 3x3 convolution of a 5x5x2 input to 3 filters with its own leaky ReLU (slope 3/16),
    seeded: ``(Conv2DSpec, input format)``."""
    from nnfab.conv_layers import Conv2DSpec
    from nnfab.fixed import FixedFormat

    rng = np.random.default_rng(4)
    fin = FixedFormat.parse("fixed<8,3>")
    spec = Conv2DSpec(rng.integers(-30, 30, (3, 3, 3, 2)), rng.integers(-9, 9, 3), (5, 5, 2),
                      fin, FixedFormat.parse("fixed<6,1>"),
                      FixedFormat.parse("fixed<10,4,RND_CONV,SAT>"),
                      bias_format=FixedFormat.parse("fixed<6,2>"), activation="leaky_relu",
                      activation_format=FixedFormat.parse("fixed<9,4,RND,SAT>"),
                      activation_params={"alpha_format": FixedFormat.parse("ufixed<4,0>"),
                                         "alpha_code": 3})
    return spec, fin
