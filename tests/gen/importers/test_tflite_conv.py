"""TFLite convolutions as nnfab model graphs (:mod:`nnfab.gen.importers.tflite_conv`): on small
.tflite files written here, and on MLPerf Tiny's KWS and ResNet-8, the graph's golden model
equals TFLite's reference kernels (``BUILTIN_REF``) at every operator's output, code for code;
a small convolution model equals its golden model on Verilator under stalls; what is not built
gives one clear error."""

import numpy as np
import pytest

from nnfab.errors import UnsupportedLayerError
from nnfab.gen.importers.tflite import load_tflite
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.sim.golden.network import trace_network
from nnfab.sim.golden.tflite import window_padding

from .test_tflite import KWS, MODELS, RESNET, _require, seeded_inputs
from .test_tflite_import import _interpreter_outputs
from .test_tflite_synthetic import ModelWriter, _weights

_ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
_PADDINGS = {"SAME": 0, "VALID": 1}


class ConvWriter(ModelWriter):
    """A chain of int8 operators on ``(1, H, W, C)`` frames, each written after the last."""

    def __init__(self, shape, zero_point, seed):
        super().__init__()
        self.rng = np.random.default_rng(seed)
        self.scale = np.float32(0.05)
        self.shape = (1,) + tuple(shape)
        self.last = self.input = self.tensor(self.shape, scales=self.scale,
                                             zero_points=zero_point)

    def _output(self, shape, scale, zero_point):
        self.last = self.tensor(shape, scales=np.float32(scale), zero_points=zero_point)
        self.shape, self.scale = tuple(shape), np.float32(scale)
        return self.last

    def conv(self, n_out, kernel, *, stride=1, padding="SAME", activation="NONE",
             zero_point=0, depthwise=False, scale=0.2):
        (_, h, w, c), (kh, kw) = self.shape, kernel
        w_scales = self.rng.uniform(0.002, 0.01, c if depthwise else n_out).astype(np.float32)
        shape = (1, kh, kw, c) if depthwise else (n_out, kh, kw, c)
        k = self.tensor(shape, scales=w_scales, data=_weights(self.rng, shape),
                        axis=3 if depthwise else 0)
        n_out = c if depthwise else n_out
        b = self.tensor((n_out,), "int32", scales=(self.scale * w_scales).astype(np.float32),
                        data=self.rng.integers(-3000, 3000, n_out))
        out_h = window_padding(h, kh, stride, 1, padding)[0]
        out_w = window_padding(w, kw, stride, 1, padding)[0]
        x = self.last
        y = self._output((1, out_h, out_w, n_out), scale, zero_point)
        options = dict(padding=_PADDINGS[padding], stride_w=stride, stride_h=stride,
                       dilation_w_factor=1, dilation_h_factor=1,
                       fused_activation_function=_ACTIVATIONS[activation])
        if depthwise:
            options["depth_multiplier"] = 1
        self.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, k, b], [y], **options)
        return self

    def reshape(self, shape):
        new_shape = self.tensor((len(shape),), "int32", data=shape)
        x = self.last
        y = self._output(shape, self.scale, self.tensors[x][3][0])
        self.op("RESHAPE", [x, new_shape], [y], new_shape=list(shape))
        return self

    def fully_connected(self, n_out, zero_point=3):
        n_in = self.shape[-1]
        k = self.tensor((n_out, n_in), scales=np.float32(0.004),
                        data=_weights(self.rng, (n_out, n_in)))
        b = self.tensor((n_out,), "int32", scales=np.float32(self.scale * np.float32(0.004)),
                        data=self.rng.integers(-500, 500, n_out))
        x = self.last
        y = self._output((1, n_out), 0.05, zero_point)
        self.op("FULLY_CONNECTED", [x, k, b], [y], fused_activation_function=0)
        return self

    def save(self, path):
        return self.write(path, [self.input], [self.last])


def layer_of(op):
    """The IR layer that holds the int8 output tensor of TFLite operator ``op``."""
    name = f"{op.opcode.lower()}_{op.index}"
    return name if op.opcode == "RESHAPE" else f"{name}_requantize"


def assert_graph_equals_reference(path, model, inputs, operators):
    """Trace ``model`` (built from ``operators`` of ``path``) on the interpreter's values of its
    first operator's input, and compare every operator's output tensor with the interpreter's.
    Returns the number of codes compared."""
    description = read_tflite(path)
    ops = [description.operators[k] for k in operators]
    first = ops[0].inputs[0]
    reference = _interpreter_outputs(path, inputs, sorted({first} | {op.outputs[0]
                                                                     for op in ops}))
    x = reference[first].reshape((len(inputs),) + model.input_shape)
    trace = trace_network(model, x)
    compared, holder = 0, {}
    for op in ops:
        name = layer_of(op)
        if name not in trace and op.opcode == "RESHAPE":     # to the same shape: no layer
            name = holder[op.inputs[0]]
        holder[op.outputs[0]] = name
        got = np.asarray(trace[name]).reshape(len(inputs), -1)
        want = reference[op.outputs[0]]
        assert got.shape == want.shape, op
        bad = np.flatnonzero((got != want).any(axis=1))
        assert not bad.size, f"operator {op.index} ({op.opcode}): inputs {bad[:5]} differ"
        compared += want.size
    return compared


#: (input shape, input zero point, first stride, activations, tail) of the synthetic chains.
CHAINS = {
    "zp-128_relu_vector": ((7, 9, 3), -128, 1, ("RELU", "RELU6", "NONE"), "vector"),
    "zp127_stride2_flatten": ((8, 10, 3), 127, 2, ("RELU6", "NONE", "RELU"), "flatten"),
    "zp0_n1_to_1_flatten": ((7, 9, 3), 0, 1, ("NONE", "RELU", "RELU_N1_TO_1"), "flatten"),
}


def conv_chain(path, name):
    """CONV_2D 3x3 SAME, DEPTHWISE_CONV_2D 3x3 SAME stride 2, CONV_2D 1x1 VALID, CONV_2D 2x3
    VALID stride 2, then a whole-frame VALID CONV_2D to (1, 1, C) and a RESHAPE to a vector
    ("vector"), or a RESHAPE flattening the frames ("flatten"); then a FULLY_CONNECTED, and
    a RESHAPE to the same shape."""
    shape, zero_point, stride, (a1, a2, a3), tail = CHAINS[name]
    w = ConvWriter(shape, zero_point, seed=sorted(CHAINS).index(name))
    w.conv(6, (3, 3), stride=stride, activation=a1, zero_point=-128, scale=0.15)
    w.conv(6, (3, 3), stride=2, depthwise=True, activation=a2, zero_point=17, scale=0.12)
    w.conv(5, (1, 1), padding="VALID", activation=a3, zero_point=-5, scale=0.1)
    w.conv(4, (2, 3), stride=2, padding="VALID", zero_point=100, scale=0.2)
    if tail == "vector":
        w.conv(8, w.shape[1:3], padding="VALID", zero_point=-20, scale=0.3)
    w.reshape((1, int(np.prod(w.shape[1:]))))
    w.fully_connected(5)
    w.reshape((1, 5))
    return w.save(path)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_synthetic_convolutions_equal_the_reference_kernels(name, tmp_path):
    path = conv_chain(tmp_path / f"{name}.tflite", name)
    model = load_tflite(path)
    description = read_tflite(path)
    kinds = [layer.kind for layer in model.layers]
    assert kinds.count("conv2d") == (5 if CHAINS[name][-1] == "vector" else 4)
    assert kinds[-3:] == ["flatten", "dense", "output_stage"]      # the last RESHAPE is free
    inputs = seeded_inputs(description, 300, seed=len(name))
    compared = assert_graph_equals_reference(path, model, inputs,
                                             range(len(description.operators)))
    assert compared > 300 * 5


def _one_operator(tmp_path, opcode, **options):
    w = ConvWriter((4, 4, 3), 0, seed=1)
    if opcode == "RESHAPE":
        w.reshape((1, 8, 6))
    else:
        w.conv(6, (3, 3))
        w.operators[-1][3].update(options)
    return w.save(tmp_path / "one.tflite")


@pytest.mark.parametrize("opcode,options,message", [
    ("CONV_2D", dict(dilation_w_factor=2, dilation_h_factor=2),
     r"^Operator 0 \(CONV_2D\): dilation \(2, 2\); nnfab builds convolutions of dilation "
     r"\(1, 1\)$"),
    ("RESHAPE", {},
     r"^Operator 0 \(RESHAPE\): from \(4, 4, 3\) to \(8, 6\); nnfab builds reshapes of "
     r"\(H, W, C\) frames to one vector, or to the same shape$"),
])
def test_refuses_what_is_not_built(tmp_path, opcode, options, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        load_tflite(_one_operator(tmp_path, opcode, **options))


def test_refuses_a_depth_multiplier_other_than_1(tmp_path):
    w = ConvWriter((4, 4, 3), 0, seed=1)
    k = w.tensor((1, 3, 3, 6), scales=np.float32(0.01), data=_weights(w.rng, (1, 3, 3, 6)))
    y = w._output((1, 4, 4, 6), 0.1, 0)
    w.op("DEPTHWISE_CONV_2D", [w.input, k], [y], padding=0, stride_w=1, stride_h=1,
         depth_multiplier=2, dilation_w_factor=1, dilation_h_factor=1)
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(DEPTHWISE_CONV_2D\): depth multiplier 2 \(3 "
                             r"input channels, 6 output channels\); nnfab builds depth "
                             r"multiplier 1$"):
        load_tflite(w.save(tmp_path / "multiplier.tflite"))


@pytest.mark.parametrize("operators", [range(0), range(3, 1), range(0, 14), range(0, 4, 2),
                                       [0, 1]])
def test_operator_range_is_checked(operators):
    with pytest.raises(ValueError, match=r"^Operators of '.*kws_ref_model.tflite' must be a "
                                         r"non-empty range of step 1 within range\(0, 13\), "
                                         r"not "):
        load_tflite(_require(KWS), operators=operators)


# --- MLPerf Tiny ------------------------------------------------------------------------------

def test_kws_convolutions_equal_the_reference_kernels():
    """Operators 0 to 8 of KWS (CONV_2D 10x4 stride 2 and 1x1, DEPTHWISE_CONV_2D 3x3, all SAME
    with RELU; the zero points 83 and -128 padded at the borders) on 24 seeded inputs and the
    benchmark's own input."""
    path = _require(KWS)
    description = read_tflite(path)
    sample = np.load(_require(MODELS / "kws_sample_input.npy"))
    inputs = np.concatenate([sample, seeded_inputs(description, 24, seed=31)])
    model = load_tflite(path, operators=range(9))
    assert model.name == "kws_ref_model_ops_0_8" and model.output_shape == (25, 5, 64)
    assert [layer.spec.pad_code for layer in model.layers if layer.kind == "conv2d"] == \
        [83] + [-128] * 8
    assert all(layer.n_multipliers <= 64 for layer in model.layers if layer.kind == "conv2d")
    assert assert_graph_equals_reference(path, model, inputs, range(9)) == 25 * 9 * 25 * 5 * 64


#: ResNet-8's runs of operators without an ADD inside (the ADDs are built elsewhere): every
#: CONV_2D of the model, fed the interpreter's value of its run's input.
RESNET_RUNS = (range(0, 3), range(4, 6), range(6, 7), range(8, 10), range(10, 11))


def test_resnet_convolutions_equal_the_reference_kernels():
    path = _require(RESNET)
    description = read_tflite(path)
    inputs = seeded_inputs(description, 22, seed=37)
    built = []
    for run in RESNET_RUNS:
        model = load_tflite(path, operators=run)
        assert_graph_equals_reference(path, model, inputs, run)
        built += [op for op in run]
    assert [description.operators[k].opcode for k in built] == ["CONV_2D"] * 9


# --- RTL ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_small_convolution_model_on_verilator(tmp_path):
    """CONV_2D 3x3 SAME (input zero point -128 padded at the borders) and DEPTHWISE_CONV_2D 3x3
    SAME stride 2, each with its output stage: the RTL equals the golden model, which equals
    the reference kernels, under idle cycles and back-pressure."""
    from nnfab.gen.verify import verify

    w = ConvWriter((6, 6, 2), -128, seed=41)
    w.conv(4, (3, 3), activation="RELU", zero_point=-128, scale=0.15)
    w.conv(4, (3, 3), stride=2, depthwise=True, activation="RELU6", zero_point=17, scale=0.12)
    path = w.save(tmp_path / "conv_dw.tflite")
    model = load_tflite(path)
    assert [layer.kind for layer in model.layers] == ["conv2d", "output_stage"] * 2
    # Each output stage matches its convolution's reuse factor: the first, on 2 lanes for 4
    # channels, is time-shared.
    assert [layer.reuse_factor for layer in model.layers] == [2, 2, 1, 1]
    inputs = seeded_inputs(read_tflite(path), 40, seed=43)
    assert_graph_equals_reference(path, model, inputs, range(2))
    result = verify(model, inputs.astype(np.float64), seed=44, p_stall=0.2, p_idle=0.2,
                    warmup=4)
    assert result.n_mismatches == 0, result.first_mismatches
    assert result.n_vectors == 40 and result.passed
