import numpy as np
import pytest

from nnfab.conv_layers import (BatchNormSpec, Conv1DSpec, Conv2DSpec, DepthwiseConv2DSpec,
                               GlobalPoolSpec, PoolSpec, output_size, same_padding)
from nnfab.fixed import FixedFormat

FX = FixedFormat(8, 3)


def conv(shape=(8, 8, 2), k=3, **kwargs):
    return Conv2DSpec(np.ones((4, k, k, shape[2]), dtype=int), None, shape, FX, FX, FX,
                      **kwargs)


@pytest.mark.parametrize("size,k,s,pads", [(28, 3, 1, (1, 1)), (28, 3, 2, (0, 1)),
                                           (8, 5, 2, (1, 2)), (7, 1, 2, (0, 0)),
                                           (5, 5, 1, (2, 2)), (3, 5, 2, (2, 2))])
def test_same_padding_is_keras(size, k, s, pads):
    assert same_padding(size, k, s) == pads
    assert output_size(size, k, s, "same") == -(-size // s)


def test_geometry():
    spec = conv((28, 28, 1), 3, strides=2, padding="same")
    assert spec.output_shape == (14, 14, 4)
    assert spec.pads == ((0, 1), (0, 1)) and spec.padded_shape == (29, 29)
    assert spec.n_window == 9 and spec.dense_weights.shape == (4, 9)
    assert conv((10, 9, 2), 5).output_shape == (6, 5, 4)
    assert spec.accumulator == FX.mul_format(FX).sum_format(9)
    one_d = Conv1DSpec(np.ones((3, 5, 2), dtype=int), None, (20, 2), FX, FX, FX, strides=2)
    assert one_d.output_shape == (1, 8, 3) and one_d.strides == (1, 2)
    dw = DepthwiseConv2DSpec(np.ones((3, 3, 4), dtype=int), None, (6, 6, 4), FX, FX, FX)
    assert dw.output_shape == (4, 4, 4) and dw.dense_weights.shape == (4, 36)
    assert dw.accumulator == FX.mul_format(FX).sum_format(9)
    assert PoolSpec("max", (9, 9, 3), 2, FX, FX).output_shape == (4, 4, 3)
    assert PoolSpec("max", (9, 9, 3), 2, FX, FX, padding="same").output_shape == (5, 5, 3)


@pytest.mark.parametrize("make,error,message", [
    (lambda: conv(strides=0), ValueError, "Stride must be a positive integer, not 0"),
    (lambda: conv(strides=-2), ValueError, "Stride must be a positive integer, not -2"),
    (lambda: conv(strides=1.5), TypeError, "Stride must be an integer, not 1.5"),
    (lambda: conv(strides=(1, 2, 3)), TypeError,
     "Stride must be an integer or a pair of integers, not (1, 2, 3)"),
    (lambda: conv((4, 8, 2), 5), ValueError,
     "Kernel height 5 is larger than the padded input height 4"),
    (lambda: conv((8, 3, 2), 5), ValueError,
     "Kernel width 5 is larger than the padded input width 3"),
    (lambda: conv(dilation_rate=2), ValueError,
     "Dilation rate must be 1 (dilated convolution is not supported), not 2"),
    (lambda: conv(padding="full"), ValueError, "Padding must be 'valid' or 'same', not 'full'"),
    (lambda: conv(padding=None), TypeError, "Padding must be a string, not None"),
    (lambda: conv(padding="same", pad_code=128), ValueError,
     "Pad code must be a code of fixed<8,3> (from -128 to 127), not 128"),
    (lambda: conv(pad_code=0.5), TypeError, "Pad code must be an integer, not 0.5"),
    (lambda: Conv2DSpec(np.ones((4, 3, 3, 2), dtype=int), None, (8, 8), FX, FX, FX), TypeError, "Input shape must be a tuple of 3 integers, not (8, 8)"),
    (lambda: conv((8, 0, 2)), ValueError, "Input shape must be a positive integer, not 0"),
    (lambda: Conv2DSpec(np.ones((4, 3, 3, 3), dtype=int), None, (8, 8, 2), FX, FX, FX),
     ValueError, "Weights have 3 input channels, the input 2"),
    (lambda: Conv2DSpec(np.ones((3, 3, 2), dtype=int), None, (8, 8, 2), FX, FX, FX),
     ValueError, "Weights must be a non-empty array of 4 dimensions, not of shape (3, 3, 2)"),
    (lambda: Conv2DSpec(np.full((1, 1, 1, 1), 300), None, (8, 8, 1), FX, FX, FX),
     ValueError, "Weight code 300 at (0, 0, 0, 0) does not fit fixed<8,3> (codes -128 to 127)"),
    (lambda: Conv2DSpec(np.ones((1, 1, 1, 1), dtype=int), [1], (8, 8, 1), FX, FX, FX),
     ValueError, "Bias format must be given with biases"),
    (lambda: Conv2DSpec(np.ones((1, 1, 1, 1), dtype=int), None, (8, 8, 1), "fixed<8,3>", FX,
                        FX), TypeError, "Input format must be a FixedFormat, not 'fixed<8,3>'"),
    (lambda: conv(activation="relu"), ValueError, "Activation 'relu' needs an activation format"),
    (lambda: conv(activation="swish", activation_format=FX), ValueError, None),
    (lambda: Conv1DSpec(np.ones((3, 5, 2), dtype=int), None, (4, 2), FX, FX, FX), ValueError,
     "Kernel length 5 is larger than the padded input length 4"),
    (lambda: Conv1DSpec(np.ones((3, 5, 2), dtype=int), None, (9, 2), FX, FX, FX, strides=0),
     ValueError, "Stride must be a positive integer, not 0"),
    (lambda: DepthwiseConv2DSpec(np.ones((3, 3, 4), dtype=int), None, (6, 6, 2), FX, FX, FX),
     ValueError, "Weights have 4 channels, the input 2"),
    (lambda: PoolSpec("min", (8, 8, 1), 2, FX, FX), ValueError,
     "Pool kind must be 'max' or 'average', not 'min'"),
    (lambda: PoolSpec("average", (8, 8, 1), 3, FX, FX, padding="same"), ValueError,
     "Average pooling supports padding 'valid' only, not 'same'"),
    (lambda: PoolSpec("max", (8, 8, 1), 0, FX, FX), ValueError,
     "Pool size must be a positive integer, not 0"),
    (lambda: PoolSpec("max", (8, 8, 1), 2, FX, FX, strides=0), ValueError,
     "Stride must be a positive integer, not 0"),
    (lambda: PoolSpec("max", (8, 1, 1), 2, FX, FX), ValueError,
     "Kernel width 2 is larger than the padded input width 1"),
    (lambda: GlobalPoolSpec("sum", (8, 8, 1), FX, FX), ValueError,
     "Pool kind must be 'max' or 'average', not 'sum'"),
    (lambda: BatchNormSpec([1, 2], [1], FX, FX, FX, FX), ValueError,
     "Shift must have shape (2,), not (1,)"),
    (lambda: BatchNormSpec([1, 2], [1, 2], FX, FX, None, FX), TypeError,
     "Shift format must be a FixedFormat, not None"),
])
def test_errors(make, error, message):
    with pytest.raises(error) as info:
        make()
    if message is not None:
        assert str(info.value) == message
