"""The TFLite reader and golden model: MLPerf Tiny's int8 models code for code against TFLite's
reference kernels (``ai-edge-litert``, ``OpResolverType.BUILTIN_REF``) at every tensor an
operator computes; bad files give one clear error each."""

import struct
import time

import numpy as np
import pytest

from nnfab.errors import FormatError, ModelError, ShapeError, UnsupportedLayerError
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.sim.golden.tflite import run_tflite

from ...vectors import shared_dir

MODELS = shared_dir() / "models" / "mlperf-tiny"
AD01 = MODELS / "ad01_int8.tflite"
KWS = MODELS / "kws_ref_model.tflite"
RESNET = MODELS / "pretrainedResnet_quant.tflite"


def _require(path):
    if not path.exists():
        pytest.fail(f"{path} is not available: shared/ must be beside the repository")
    return path


def seeded_inputs(model, n, seed):
    """``n`` int8 inputs over the whole range: one all -128, one all 127, the rest uniform."""
    shape = model.tensors[model.inputs[0]].shape[1:]
    x = np.random.default_rng(seed).integers(-128, 128, size=(n,) + shape, dtype=np.int8)
    x[0], x[1] = -128, 127
    return x


def compare_with_reference(path, inputs):
    """Run the golden model and the reference interpreter on ``inputs``; return ``{tensor index:
    (values compared, mismatches)}`` for every operator output, and the seconds each took."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = read_tflite(path)
    start = time.perf_counter()
    _, golden = run_tflite(model, inputs, trace=True)
    golden_seconds = time.perf_counter() - start
    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    computed = [op.outputs[0] for op in model.operators]
    counts = {index: [0, 0] for index in computed}
    start = time.perf_counter()
    for k in range(len(inputs)):
        interpreter.set_tensor(model.inputs[0], inputs[k:k + 1])
        interpreter.invoke()
        for index in computed:
            reference = interpreter.get_tensor(index).astype(np.int64)
            mine = golden[index][k:k + 1].reshape(reference.shape)
            counts[index][0] += reference.size
            counts[index][1] += int(np.count_nonzero(reference != mine))
    reference_seconds = time.perf_counter() - start
    print(f"{path.name}: {len(inputs)} inputs, golden {golden_seconds:.2f} s, reference "
          f"{reference_seconds:.2f} s")
    return model, {i: tuple(c) for i, c in counts.items()}


def assert_all_equal(model, counts, n_inputs):
    for op in model.operators:
        tensor = model.tensors[op.outputs[0]]
        compared, mismatches = counts[op.outputs[0]]
        assert compared == n_inputs * int(np.prod(tensor.shape)), op
        assert mismatches == 0, f"operator {op.index} ({op.opcode}): {mismatches} of {compared}"


# --- the golden model against the reference kernels -------------------------------------------

def test_ad01_seeded_and_real_windows():
    model = read_tflite(_require(AD01))
    windows = np.load(_require(MODELS / "ad01_sample_windows.npy"))
    assert windows.shape == (196, 640) and windows.dtype == np.int8
    inputs = np.concatenate([seeded_inputs(model, 1000, seed=17), windows])
    model, counts = compare_with_reference(AD01, inputs)
    assert_all_equal(model, counts, 1196)
    assert len(counts) == 10


def test_kws_seeded_and_sample_input():
    model = read_tflite(_require(KWS))
    sample = np.load(_require(MODELS / "kws_sample_input.npy"))
    inputs = np.concatenate([seeded_inputs(model, 200, seed=18), sample])
    model, counts = compare_with_reference(KWS, inputs)
    assert_all_equal(model, counts, 201)
    assert len(counts) == 13
    assert int(np.argmax(run_tflite(model, sample)[0])) == 5


def test_resnet_seeded():
    model = read_tflite(_require(RESNET))
    model, counts = compare_with_reference(RESNET, seeded_inputs(model, 200, seed=19))
    assert_all_equal(model, counts, 200)
    assert len(counts) == 16


# --- settings the models do not use, by patching their options in place ---------------------

def _table_field(obj, slot):
    """Byte position of a flatbuffer table field (``slot`` as the generated accessor uses it)."""
    offset = obj._tab.Offset(slot)
    assert offset, "field not stored"
    return obj._tab.Pos + offset


def _set_opcode(data, code, value):
    """Set an operator code's builtin code: the int8 deprecated field, and the int32 field where
    the file stores it (TFLite reads the larger of the two)."""
    data[_table_field(code, 4)] = value
    if code._tab.Offset(10):
        struct.pack_into("<i", data, _table_field(code, 10), value)


def _patched(path, tmp_path, patch):
    import tflite

    data = bytearray(path.read_bytes())
    model = tflite.Model.GetRootAs(data, 0)
    patch(data, model)
    out = tmp_path / path.name
    out.write_bytes(bytes(data))
    return out


def _set_conv_activations(code):
    import tflite

    def patch(data, model):
        graph = model.Subgraphs(0)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if op.BuiltinOptionsType() in (tflite.BuiltinOptions.Conv2DOptions,
                                           tflite.BuiltinOptions.DepthwiseConv2DOptions):
                table = op.BuiltinOptions()
                options = (tflite.Conv2DOptions() if op.BuiltinOptionsType() == 1 else
                           tflite.DepthwiseConv2DOptions())
                options.Init(table.Bytes, table.Pos)
                slot = 10 if op.BuiltinOptionsType() == 1 else 12
                data[_table_field(options, slot)] = code
    return patch


@pytest.mark.parametrize("code,name", [(2, "RELU_N1_TO_1"), (3, "RELU6")])
def test_fused_activations(code, name, tmp_path):
    path = _patched(_require(KWS), tmp_path, _set_conv_activations(code))
    model = read_tflite(path)
    assert model.operators[0].options["fused_activation"] == name
    model, counts = compare_with_reference(path, seeded_inputs(model, 20, seed=21))
    assert_all_equal(model, counts, 20)


def test_max_pool(tmp_path):
    def patch(data, model):
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == 1:   # AVERAGE_POOL_2D
                _set_opcode(data, code, 17)                                   # MAX_POOL_2D

    path = _patched(_require(KWS), tmp_path, patch)
    model = read_tflite(path)
    assert model.operators[9].opcode == "MAX_POOL_2D"
    model, counts = compare_with_reference(path, seeded_inputs(model, 20, seed=22))
    assert_all_equal(model, counts, 20)


# --- the description -------------------------------------------------------------------------

def test_description_of_kws():
    model = read_tflite(_require(KWS))
    assert model.inputs == (0,) and model.outputs == (34,)
    assert [op.opcode for op in model.operators] == (
        ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 4
        + ["AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"])
    conv = model.operators[0]
    assert conv.inputs == (0, 17, 3) and conv.outputs == (22,)
    assert dict(conv.options) == {"padding": "SAME", "stride": (2, 2), "dilation": (1, 1),
                                  "fused_activation": "RELU"}
    assert model.operators[1].options["depth_multiplier"] == 1
    assert dict(model.operators[9].options) == {"padding": "VALID", "stride": (25, 5),
                                                "filter_size": (25, 5),
                                                "fused_activation": "NONE"}
    assert model.operators[12].options == {"beta": 1.0}
    source = model.tensors[0]
    assert (source.shape, source.dtype, source.zero_points) == ((1, 49, 10, 1), "int8", (83,))
    assert source.scale == float(np.float32(0.5847029089927673)) and source.data is None
    weights = model.tensors[17]
    assert (weights.shape, weights.dtype, weights.quantized_dimension) == ((64, 10, 4, 1),
                                                                           "int8", 0)
    assert len(weights.scales) == 64 and weights.zero_points == (0,) * 64
    assert weights.data.dtype == np.int8 and not weights.data.flags.writeable
    assert model.tensors[5].quantized_dimension == 3                  # depthwise weights
    bias = model.tensors[3]
    assert (bias.dtype, bias.data.shape) == ("int32", (64,))
    assert model.tensors[2].data.tolist() == [-1, 64] and model.tensors[2].scales == ()


# --- bad files --------------------------------------------------------------------------------

def test_too_short(tmp_path):
    path = tmp_path / "short.tflite"
    path.write_bytes(AD01.read_bytes()[:5])
    with pytest.raises(ModelError, match=r"^File 'short\.tflite' is not a TFLite flatbuffer: it "
                                         r"has 5 bytes, fewer than the 8 of a flatbuffer header$"):
        read_tflite(path)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9])
def test_truncated(fraction, tmp_path):
    # The root table is near the start, the vectors it points to run to the end of the file.
    data = _require(AD01).read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ModelError, match=rf"^TFLite file 'cut\.tflite' is truncated or corrupt: "
                                         rf"reading the root table fails in its "
                                         rf"{int(len(data) * fraction)} bytes$"):
        read_tflite(path)


def test_truncated_before_the_root_table(tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(_require(AD01).read_bytes()[:20])
    with pytest.raises(ModelError, match=r"^TFLite file 'cut\.tflite' is truncated: its root "
                                         r"table starts at byte 28, beyond its 20 bytes$"):
        read_tflite(path)


@pytest.mark.parametrize("n_tensors,where", [(1000, "tensor 31"), (5, "operator 0")])
def test_corrupt(n_tensors, where, tmp_path):
    # The tensor vector claims more tensors than the file holds, or fewer than operator 0 uses.
    def patch(data, model):
        graph = model.Subgraphs(0)
        struct.pack_into("<I", data, graph._tab.Vector(graph._tab.Offset(4)) - 4, n_tensors)

    path = _patched(_require(AD01), tmp_path, patch)
    with pytest.raises(ModelError, match=rf"^TFLite file 'ad01_int8\.tflite' is truncated or "
                                         rf"corrupt: reading {where} fails in its 276976 bytes$"):
        read_tflite(path)


def test_wrong_schema_identifier(tmp_path):
    data = bytearray(_require(AD01).read_bytes())
    data[4:8] = b"TFL2"
    path = tmp_path / "old.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"^File 'old\.tflite' is not a TFLite model: its schema "
                                         r"identifier is b'TFL2', not b'TFL3'$"):
        read_tflite(path)


def test_not_a_flatbuffer(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("these are notes, not a model\n")
    with pytest.raises(ModelError, match=r"^File 'notes\.tflite' is not a TFLite model: its "
                                         r"schema identifier is b'e ar', not b'TFL3'$"):
        read_tflite(path)


def test_several_subgraphs(tmp_path):
    def patch(data, model):
        vector = model._tab.Vector(model._tab.Offset(8))
        struct.pack_into("<I", data, vector - 4, 2)

    path = _patched(_require(AD01), tmp_path, patch)
    with pytest.raises(ModelError, match=r"^TFLite file 'ad01_int8\.tflite' has 2 subgraphs; "
                                         r"nnfab reads models of exactly one subgraph$"):
        read_tflite(path)


def test_unsupported_operator(tmp_path):
    def patch(data, model):
        _set_opcode(data, model.OperatorCodes(0), 18)                  # MUL

    path = _patched(_require(AD01), tmp_path, patch)
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(MUL\) is not supported; nnfab reads "
                             r"FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, "
                             r"MAX_POOL_2D, ADD, RESHAPE, SOFTMAX, PAD, QUANTIZE, DEQUANTIZE$"):
        read_tflite(path)


def _set_tensor_type(index, code):
    def patch(data, model):
        tensor = model.Subgraphs(0).Tensors(index)
        data[_table_field(tensor, 6)] = code
    return patch


@pytest.mark.parametrize("code,dtype", [(0, "float32"), (7, "int16")])
def test_activation_type(code, dtype, tmp_path):
    # Tensor 23 is the output of operator 1 (DEPTHWISE_CONV_2D), the input of operator 2.
    path = _patched(_require(KWS), tmp_path, _set_tensor_type(23, code))
    name = read_tflite(KWS).tensors[23].name
    with pytest.raises(UnsupportedLayerError) as info:
        read_tflite(path)
    assert str(info.value) == (
        f"Operator 1 (DEPTHWISE_CONV_2D): output {name!r} is {dtype}, not int8; nnfab takes "
        f"int8 activations (float32 only into QUANTIZE and out of DEQUANTIZE), int8 weights and "
        f"int32 biases")


def test_unsupported_fused_activation(tmp_path):
    path = _patched(_require(KWS), tmp_path, _set_conv_activations(4))       # TANH
    with pytest.raises(UnsupportedLayerError,
                       match=r"^Operator 0 \(CONV_2D\): fused activation 4 is not supported; "
                             r"nnfab takes 0 \(NONE\), 1 \(RELU\), 2 \(RELU_N1_TO_1\), "
                             r"3 \(RELU6\)$"):
        read_tflite(path)


# --- inputs of the golden model ---------------------------------------------------------------

def test_run_rejects_bad_inputs():
    model = read_tflite(_require(AD01))
    with pytest.raises(ShapeError, match=r"^Input 'input_1': shape \(2, 64\) does not match "
                                         r"\(N,\) \+ \(640,\)$"):
        run_tflite(model, np.zeros((2, 64), dtype=np.int8))
    with pytest.raises(FormatError, match=r"^Input 'input_1': code 128 is outside the int8 range "
                                          r"-128 to 127$"):
        run_tflite(model, np.full((1, 640), 128))
    with pytest.raises(FormatError, match=r"^Input 'input_1': type 'float64'; int8 codes are "
                                          r"integers$"):
        run_tflite(model, np.zeros((1, 640)))
