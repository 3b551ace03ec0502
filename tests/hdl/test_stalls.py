"""Every streaming engine that networks use, and every pair of engines that networks chain,
under back-pressure in Amaranth's simulator: random idle cycles on the input with random
back-pressure on the output, ``ready`` held low for longer than the latency, and ``ready``
toggling every cycle. Outputs are compared code for code with the golden model, and their count
checked (nothing lost, nothing repeated).

Engines are built the way the generator builds them: IR layers (``nnfab.ir``) at the
command line's defaults (reuse factor 1, dense layers after ``flatten`` fused into shift-add
engines by :class:`~nnfab.gen.passes.FuseShiftAdd`), assembled by
:class:`nnfab.gen.assemble.Network` and checked against :func:`nnfab.sim.golden.network
.run_network`.
"""

import itertools
import random

import numpy as np
import pytest

from nnfab.conv_layers import (BatchNormSpec, Conv2DSpec, DepthwiseConv2DSpec, GlobalPoolSpec,
                               PoolSpec)
from nnfab.fixed import FixedFormat
from nnfab.gen.assemble import Network
from nnfab.ir import ActivationLayer, ArgmaxLayer, DenseLayer, Model, SoftmaxLayer
from nnfab.ir import (BatchNormLayer, Conv2DLayer, FlattenLayer, GlobalPoolLayer,
                               PoolLayer, ZeroPadLayer)
from nnfab.ir import Hls4mlSoftmaxLayer
from nnfab.ir import QuantizeLayer
from nnfab.gen.passes import ChainShiftAdd, FuseShiftAdd, run_passes
from nnfab.layers import DenseSpec
from nnfab.sim.golden.network import run_network

from ..sim.golden.test_softmax_hls4ml import CASES as HLS4ML_SOFTMAX
from ..streams import check_stalls, codes, ready_pattern, run_stream
from .test_activations import params_for

F = FixedFormat
PIXEL = F(8, 3)                                   # frames in, pooled frames
WEIGHT = F(4, 1)                                  # at most 3 CSD digits: shift-add eligible
CONV_OUT = F(10, 5, rounding="RND_CONV", overflow="SAT")
RELU_OUT = F(8, 3, signed=False, rounding="RND_CONV", overflow="SAT")
DENSE_OUT = F(10, 4, rounding="RND", overflow="SAT")


class Builder:
    """IR layers with seeded random weights, each fitting the previous one's output."""

    def __init__(self, seed, input_shape, input_format=PIXEL):
        self.rng = np.random.default_rng(seed)
        self.input_shape, self.input_format = tuple(input_shape), input_format
        self.shape, self.fmt, self.layers = tuple(input_shape), input_format, []

    def _add(self, layer):
        self.layers.append(layer)
        self.shape, self.fmt = tuple(layer.output_shape), layer.output_format
        return self

    def _name(self, kind):
        return f"{kind}{len(self.layers)}"

    def _weights(self, shape):
        w = self.rng.integers(WEIGHT.min_code, WEIGHT.max_code + 1, shape)
        w[self.rng.random(shape) < 0.3] = 0
        w.flat[0] = WEIGHT.min_code
        return w

    def _biases(self, n):
        return self.rng.integers(-32, 32, n)

    def conv(self, n_filters, k=3, *, reuse_factor=1, padding="valid", strides=1, out=CONV_OUT,
             activation=None, depthwise=False, pad_code=0):
        c, (kh, kw) = self.shape[2], (k, k) if isinstance(k, int) else k
        kwargs = dict(strides=strides, padding=padding, bias_format=PIXEL, pad_code=pad_code)
        if activation is not None:
            kwargs.update(activation=activation, activation_format=RELU_OUT)
        if depthwise:
            spec = DepthwiseConv2DSpec(self._weights((kh, kw, c)), self._biases(c), self.shape,
                                       self.fmt, WEIGHT, out, **kwargs)
        else:
            spec = Conv2DSpec(self._weights((n_filters, kh, kw, c)), self._biases(n_filters),
                              self.shape, self.fmt, WEIGHT, out, **kwargs)
        return self._add(Conv2DLayer(self._name("conv"), spec=spec, reuse_factor=reuse_factor))

    def act(self, function="relu", out=RELU_OUT, **params):
        return self._add(ActivationLayer(self._name(function), function=function,
                                         shape=self.shape, fin=self.fmt, fout=out,
                                         params=params))

    def pool(self, kind="max", size=2, *, strides=None, padding="valid"):
        out = self.fmt if kind == "max" else F(8, 3, rounding="RND_CONV", overflow="SAT")
        spec = PoolSpec(kind, self.shape, size, self.fmt, out, strides=strides,
                        padding=padding)
        return self._add(PoolLayer(self._name("pool"), spec=spec))

    def global_pool(self, kind="max"):
        out = self.fmt if kind == "max" else F(8, 3, rounding="RND_CONV", overflow="SAT")
        spec = GlobalPoolSpec(kind, self.shape, self.fmt, out)
        return self._add(GlobalPoolLayer(self._name("global_pool"), spec=spec))

    def flatten(self):
        return self._add(FlattenLayer(self._name("flatten"), shape=self.shape, fmt=self.fmt))

    def zero_pad(self, padding=((1, 0), (2, 1))):
        return self._add(ZeroPadLayer(self._name("zero_pad"), shape=self.shape,
                                      padding=padding, fmt=self.fmt))

    def batchnorm(self):
        c = self.shape[-1]
        spec = BatchNormSpec(self.rng.integers(-16, 16, c), self.rng.integers(-128, 128, c),
                             self.fmt, F(5, 1), F(8, 2),
                             F(8, 3, rounding="RND_CONV", overflow="SAT"))
        return self._add(BatchNormLayer(self._name("batchnorm"), spec=spec, shape=self.shape))

    def dense(self, n_out, *, reuse_factor=1, out=DENSE_OUT):
        n_in = self.shape[0]
        spec = DenseSpec(self._weights((n_out, n_in)), self._biases(n_out), self.fmt, WEIGHT,
                         out, bias_format=PIXEL)
        return self._add(DenseLayer(self._name("dense"), spec=spec, reuse_factor=reuse_factor))

    def softmax(self):
        return self._add(SoftmaxLayer(self._name("softmax"), n=self.shape[0], fin=self.fmt,
                                      fout=F(8, 0, signed=False, rounding="RND",
                                             overflow="SAT")))

    def hls4ml_softmax(self, case="n5_sat"):
        spec = HLS4ML_SOFTMAX[case][0]
        assert (spec.n,) == self.shape and spec.input_format == self.fmt
        return self._add(Hls4mlSoftmaxLayer(self._name("hls4ml_softmax"), spec=spec))

    def argmax(self):
        return self._add(ArgmaxLayer(self._name("argmax"), n=self.shape[0], fin=self.fmt))

    def quantize(self):
        n = self.shape[-1]
        formats = [F(6, 2), None, F(5, 3, rounding="RND_CONV", overflow="SAT"),
                   F(4, 2, signed=False), F(7, 2, rounding="RND", overflow="SAT_SYM")]
        return self._add(QuantizeLayer(self._name("quantize"), shape=self.shape, fin=self.fmt,
                                       formats=tuple(formats[k % 5] for k in range(n))))

    def model(self, *, fuse=False, chain=False):
        """The model; with ``fuse``, dense layers fused as the command line does; with
        ``chain`` too, consecutive fused layers built as one pipeline (ChainShiftAdd)."""
        model = Model("stalls", self.input_shape, self.input_format, self.layers)
        if fuse or chain:
            model, _ = run_passes(model, [FuseShiftAdd()] + [ChainShiftAdd()] * chain)
        return model


def check_model(model, seed, *, n=3, kinds=None):
    """Stream ``n`` random inputs of ``model`` through its Network under every stall pattern;
    ``kinds``: the engine kinds the network must hold (so a case tests what it names). The
    skip-FIFO depths of a graph are measured once, not for every pattern."""
    ahead = 0
    last = model.layers[-1]
    if last.kind == "zero_pad":  # it sends the next frame's padding up to its first pixel
        (top, _), (left, _) = last.padding
        ahead = top * last.output_shape[1] + left
    if kinds is not None:
        assert [layer.kind for layer in model.layers] == kinds
    rng = np.random.default_rng(seed)
    fmt = model.input_format
    x = rng.integers(fmt.min_code, fmt.max_code + 1, (n, *model.input_shape))
    x.reshape(n, -1)[0, ::3] = fmt.min_code           # edge codes
    x.reshape(n, -1)[0, 1::3] = fmt.max_code
    want = np.asarray(run_network(model, x)).reshape(-1, model.output_shape[-1])
    inputs = x.reshape(-1, model.input_shape[-1]).tolist()
    depths = Network(model).skip_fifo_depths
    return check_stalls(lambda: Network(model, skip_fifo_depths=depths), inputs, want.tolist(),
                        seed=seed, ahead=ahead)


FRAME = (6, 6, 2)

# One engine at a time. Each builds the model and names the kinds it must hold.
ENGINES = {
    "dense_r1": (lambda b: b.dense(6), (12,), ["dense"]),
    "dense_r4": (lambda b: b.dense(6, reuse_factor=4), (12,), ["dense"]),
    "shift_add": (lambda b: b.dense(6), (12,), ["shift_add_dense"]),
    "shift_add_relu": (lambda b: b.dense(6).act(), (12,), ["shift_add_dense"]),
    "conv_r1": (lambda b: b.conv(3), FRAME, ["conv2d"]),
    "conv_r1_same_relu": (lambda b: b.conv(3, padding="same", activation="relu"), FRAME,
                          ["conv2d"]),
    "conv_r1_stride2": (lambda b: b.conv(3, padding="same", strides=2), FRAME, ["conv2d"]),
    "conv_r6": (lambda b: b.conv(3, reuse_factor=6), FRAME, ["conv2d"]),
    "conv1d_r1": (lambda b: b.conv(3, k=(1, 3)), (1, 9, 2), ["conv2d"]),
    "depthwise_r1": (lambda b: b.conv(2, depthwise=True, padding="same"), FRAME, ["conv2d"]),
    # Padding with a code other than 0 (TFLite pads with the input zero point).
    "conv_same_pad_code": (lambda b: b.conv(3, padding="same", strides=2, pad_code=-77), FRAME,
                           ["conv2d"]),
    "depthwise_pad_code": (lambda b: b.conv(2, depthwise=True, padding="same", pad_code=127),
                           FRAME, ["conv2d"]),
    "pool_max": (lambda b: b.pool("max"), (5, 6, 2), ["pool"]),
    "pool_max_same": (lambda b: b.pool("max", 3, strides=2, padding="same"), FRAME, ["pool"]),
    "pool_avg": (lambda b: b.pool("average", 3, strides=1), FRAME, ["pool"]),
    "global_max": (lambda b: b.global_pool("max"), (3, 4, 3), ["global_pool"]),
    "global_avg": (lambda b: b.global_pool("average"), (3, 4, 3), ["global_pool"]),
    "zero_pad": (lambda b: b.zero_pad(), (3, 4, 2), ["zero_pad"]),
    "flatten": (lambda b: b.flatten(), (3, 4, 2), ["flatten"]),
    # TFLite's RESHAPE of a globally pooled (1, 1, C) map to a vector.
    "flatten_one_pixel": (lambda b: b.flatten(), (1, 1, 4), ["flatten"]),
    "batchnorm": (lambda b: b.batchnorm(), (4, 4, 3), ["batchnorm"]),
    "relu": (lambda b: b.act(), (5,), ["activation"]),
    "sigmoid_table": (lambda b: b.act("sigmoid", F(8, 2, rounding="RND_CONV", overflow="SAT"),
                                      **params_for("sigmoid", 8)), (5,), ["activation"]),
    "tanh_table": (lambda b: b.act("tanh", F(8, 2, rounding="RND_CONV", overflow="SAT"),
                                   **params_for("tanh", 8)), (5,), ["activation"]),
    "elu_table": (lambda b: b.act("elu", F(8, 3, rounding="RND_CONV", overflow="SAT"),
                                  **params_for("elu", 4)), (5,), ["activation"]),
    "softmax": (lambda b: b.softmax(), (5,), ["softmax"]),
    "hls4ml_softmax": (lambda b: b.hls4ml_softmax(), (5,), ["hls4ml_softmax"], F(10, 4)),
    "argmax": (lambda b: b.argmax(), (5,), ["argmax"]),
    "quantize": (lambda b: b.quantize(), (5,), ["quantize"]),
}

# Pairs of engines as networks chain them (and a few triples around them).
PAIRS = {
    "conv_pool": (lambda b: b.conv(3).pool(), FRAME, ["conv2d", "pool"]),
    "conv_relu_pool": (lambda b: b.conv(3).act().pool(), FRAME,
                       ["conv2d", "activation", "pool"]),
    "pool_conv": (lambda b: b.pool().conv(3, k=2), FRAME, ["pool", "conv2d"]),
    "pool_odd_conv": (lambda b: b.pool().conv(2, k=2), (7, 7, 2), ["pool", "conv2d"]),
    "pool_flatten": (lambda b: b.pool().flatten(), (5, 5, 2), ["pool", "flatten"]),
    "flatten_dense": (lambda b: b.flatten().dense(5), (3, 3, 2), ["flatten", "dense"]),
    "flatten_shift_add": (lambda b: b.flatten().dense(5), (3, 3, 2),
                          ["flatten", "shift_add_dense"]),
    "conv_relu": (lambda b: b.conv(3).act(), FRAME, ["conv2d", "activation"]),
    "conv_sigmoid": (lambda b: b.conv(2).act("sigmoid", F(8, 2, rounding="RND_CONV"),
                                             **params_for("sigmoid", 8)), (4, 4, 2),
                     ["conv2d", "activation"]),
    "conv_r1_conv_r1": (lambda b: b.conv(3).conv(2, k=2), FRAME, ["conv2d", "conv2d"]),
    "zero_pad_conv": (lambda b: b.zero_pad().conv(2), (4, 4, 2), ["zero_pad", "conv2d"]),
    "conv_batchnorm": (lambda b: b.conv(3, out=PIXEL).batchnorm(), FRAME,
                       ["conv2d", "batchnorm"]),
    "global_pool_dense": (lambda b: b.global_pool("average").dense(4), (3, 4, 3),
                          ["global_pool", "dense"]),
    "dense_relu": (lambda b: b.dense(6).act(), (12,), ["dense", "activation"]),
    "dense_dense": (lambda b: b.dense(6).dense(4, out=PIXEL), (12,), ["dense", "dense"]),
    "dense_softmax": (lambda b: b.dense(5, out=PIXEL).softmax(), (12,), ["dense", "softmax"]),
    "shift_add_softmax": (lambda b: b.dense(5, out=PIXEL).softmax(), (12,),
                          ["shift_add_dense", "softmax"]),
    "dense_hls4ml_softmax": (lambda b: b.dense(5, out=F(10, 4)).hls4ml_softmax(), (12,),
                             ["dense", "hls4ml_softmax"]),
    "dense_argmax": (lambda b: b.dense(5).argmax(), (12,), ["dense", "argmax"]),
    "shift_add_argmax": (lambda b: b.dense(5).argmax(), (12,), ["shift_add_dense", "argmax"]),
    "quantize_dense": (lambda b: b.quantize().dense(4), (5,), ["quantize", "dense"]),
}


def _case(table, name):
    build, shape, kinds, *input_format = table[name]
    seed = sorted(table).index(name) + (1000 if table is PAIRS else 0)
    builder = Builder(seed, shape, *input_format)
    model = build(builder).model(fuse="shift_add_dense" in kinds,
                                 chain="shift_add_chain" in kinds)
    return model, seed, kinds


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_under_stalls(name):
    model, seed, kinds = _case(ENGINES, name)
    check_model(model, seed, kinds=kinds)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_engine_pair_under_stalls(name):
    model, seed, kinds = _case(PAIRS, name)
    check_model(model, seed, kinds=kinds)


# Consecutive fused layers as one pipeline (ChainShiftAdd); a table of its own, so that the
# seeds of the cases above stay as they are.
CHAINS = {
    "shift_add_chain": (lambda b: b.quantize().dense(6).act().dense(5).act().dense(4), (5,),
                        ["shift_add_chain"]),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_under_stalls(name):
    model, seed, kinds = _case(CHAINS, name)
    check_model(model, seed, kinds=kinds)


MNIST_LIKE = (16, 28, 1)


def mnist_like(seed, *, fuse):
    """The shape of hls4ml's QKeras MNIST CNN, small: conv 3x3 (R=1), ReLU, max pool, conv 3x3
    (R=1), ReLU, max pool (its last row and column in no window, as 11x11 pooled to 5x5),
    flatten, dense (fused into a shift-add engine, as the command line does by default),
    softmax."""
    b = Builder(seed, MNIST_LIKE)
    b.conv(4).act().pool().conv(4).act().pool().flatten().dense(10, out=PIXEL).softmax()
    return b.model(fuse=fuse)


@pytest.mark.slow
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "no_fuse"])
def test_cnn_network_under_back_pressure(fuse):
    """Issue 14 item 4 (``nnfab verify`` of the MNIST CNN mismatched on every vector after the
    full-rate warm-up). The engines keep every transfer under all stall patterns; what broke was
    the testbench: each frame's last output leaves before the frame's last input pixels are
    taken (the last pooled row needs none of them), so a driver that starts its next phase when
    the outputs are in, with its source still sending, sends two streams at once."""
    model = mnist_like(7, fuse=fuse)
    dense = "shift_add_dense" if fuse else "dense"
    assert [layer.kind for layer in model.layers] == [
        "conv2d", "activation", "pool", "conv2d", "activation", "pool", "flatten", dense,
        "softmax"]
    assert all(layer.reuse_factor == 1 for layer in model.layers if layer.kind == "conv2d")
    n = 3
    full = check_model(model, 7, n=n)
    pixels = MNIST_LIKE[0] * MNIST_LIKE[1]
    for k in range(n):
        assert full.produced_at[k] < full.accepted_at[(k + 1) * pixels - 1]

    # As `nnfab verify` runs: one frame at full rate, then 10% back-pressure, one source.
    rng = np.random.default_rng(8)
    x = rng.integers(0, PIXEL.max_code + 1, (n, *MNIST_LIKE))
    want = np.asarray(run_network(model, x)).tolist()
    stalls = random.Random(8)
    ready = itertools.chain(itertools.repeat(True, pixels + full.first_latency),
                            ready_pattern("random", rng=stalls, p_stall=0.1))
    run = run_stream(Network(model), x.reshape(-1, 1).tolist(), ready=ready, n_outputs=n,
                     max_cycles=10 * n * pixels, drain_cycles=full.first_latency)
    assert [codes(o) for o in run.outputs] == want and not run.extra
