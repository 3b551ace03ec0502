import re

import numpy as np
import pytest

from nnfab.casts import to_float
from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat
from nnfab.gen.float_model import (FloatActivation, FloatArgmax, FloatBatchNorm, FloatDense,
                                   FloatModel)
from nnfab.gen.passes import FoldBatchNorm
from nnfab.gen.ptq import PTQConfig, compare, integer_bits_for, quantize_model


def float_mlp(rng, batchnorm=False):
    layers = [FloatDense("d1", rng.normal(0, 0.5, (16, 8)), rng.normal(0, 0.1, 16))]
    if batchnorm:
        layers.append(FloatBatchNorm("bn", rng.uniform(0.5, 2, 16), rng.normal(0, 1, 16),
                                     rng.normal(0, 1, 16), rng.uniform(0.5, 2, 16)))
    layers += [FloatActivation("relu", "relu"),
               FloatDense("d2", rng.normal(0, 0.5, (4, 16)), rng.normal(0, 0.1, 4)),
               FloatArgmax("argmax")]
    return FloatModel("mlp", (8,), layers)


@pytest.mark.parametrize("value,signed,bits", [(0.0, True, 1), (0.99, True, 1), (1.0, True, 2),
                                              (3.5, True, 3), (3.5, False, 2),
                                              (0.2, True, -1)])
def test_integer_bits(value, signed, bits):
    assert integer_bits_for(value, signed=signed) == bits
    if value:
        fmt = FixedFormat(16, bits, signed=signed)
        assert float(fmt.max_value) >= value - float(fmt.lsb)


def test_formats_cover_the_calibrated_range():
    rng = np.random.default_rng(0)
    model = quantize_model(float_mlp(rng), rng.normal(0, 1, (500, 8)),
                           input_format=FixedFormat(12, 4), config=PTQConfig())
    d1 = model.layer("d1").spec
    assert d1.weight_format.width == 8
    w = model.layer("d1").spec.weights.astype(np.int64)
    # The largest weight uses the top of its format: no integer bit is wasted.
    assert np.max(np.abs(w)) >= 2 ** (d1.weight_format.width - 2)
    assert model.layer("relu").output_format.signed is False
    assert model.output_format == FixedFormat(2, 2, signed=False)  # argmax over 4 classes


def test_quantized_model_agrees_with_float():
    rng = np.random.default_rng(1)
    float_model = float_mlp(rng)
    x = rng.normal(0, 1, (2000, 8))
    model = quantize_model(float_model, x[:1000], input_format=FixedFormat(12, 4),
                           config=PTQConfig(weight_bits=10, bias_bits=10, activation_bits=12))
    report = compare(float_model, model, x[1000:], labels=np.argmax(
        float_model.forward(x[1000:], trace=True)["d2"], axis=1))
    # A float reference cannot match codes exactly; 10- and 12-bit formats keep the classes.
    assert report.agreement > 0.97
    assert report.float_accuracy > 0.99  # labels come from unquantized inputs


def test_batchnorm_is_folded():
    rng = np.random.default_rng(2)
    with_bn = float_mlp(rng, batchnorm=True)
    folded, changed = FoldBatchNorm().apply(with_bn)
    assert changed and [layer.kind for layer in folded.layers] == \
        ["dense", "activation", "dense", "argmax"]
    x = rng.normal(0, 1, (50, 8))
    # Folding is algebra on floats: equal up to float64 rounding.
    assert np.max(np.abs(folded.forward(x, trace=True)["relu"] -
                         with_bn.forward(x, trace=True)["relu"])) < 1e-12


@pytest.mark.parametrize("bits", [1, 33, 8.0])
def test_bad_bit_budget(bits):
    with pytest.raises(ValueError) as info:
        PTQConfig(weight_bits=bits)
    assert str(info.value) == f"Weight bits must be an integer from 2 to 32, not {bits!r}"


def test_non_finite_float_weights():
    with pytest.raises(ModelError) as info:
        FloatDense("d", np.array([[1.0, np.inf]]))
    assert str(info.value) == "Layer 'd': weights contain inf; every value must be finite"


@pytest.mark.parametrize("value,message", [
    (1e300, "Layer 'd1': weights need 998 integer bits (largest magnitude 1e+300); nnfab builds "
            "formats with -256 to 256 integer bits"),
    (1e-300, "Layer 'd1': weights need -995 integer bits (largest magnitude 1e-300); nnfab "
             "builds formats with -256 to 256 integer bits"),
])
def test_huge_or_tiny_weights_fail_fast(value, message):
    """Issue 14 item 9: weights of 1e300 built 1019-bit accumulators for 217 s."""
    import time

    rng = np.random.default_rng(0)
    model = float_mlp(rng)
    layers = list(model.layers)
    layers[0] = FloatDense("d1", np.full((16, 8), value), None)
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        quantize_model(model.replace_layers(layers), rng.normal(0, 1, (50, 8)),
                       input_format=FixedFormat(12, 4))
    assert str(info.value) == message
    assert time.monotonic() - start < 5


def test_accumulator_too_wide_names_the_layer():
    rng = np.random.default_rng(0)
    model = float_mlp(rng)
    layers = list(model.layers)
    # weights near 2**200 and biases near 2**-200: their binary points lie 400 bits apart
    layers[0] = FloatDense("d1", np.full((16, 8), 2.0**200), np.full(16, 2.0**-200))
    with pytest.raises(ModelError) as info:
        quantize_model(model.replace_layers(layers), rng.normal(0, 1, (50, 8)),
                       input_format=FixedFormat(12, 4))
    assert re.fullmatch(r"Layer 'd1': Accumulator fixed<\d+,\d+> is \d+ bits wide; nnfab builds "
                        r"accumulators of at most 128 bits \(narrow the operand formats or "
                        r"bring their binary points closer\)", str(info.value)), str(info.value)
