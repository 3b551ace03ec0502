"""Completeness of the layer kinds: every kind registered in :data:`nnfab.ir.KINDS` has an
engine, a golden function, a native form (or is stored as its parts), a manifest row, a float
layer with a PTQ rule (unless it exists only in quantized models), and round-trips: build ->
``model.json`` -> load gives the same model (byte-identical native files) and byte-identical
Verilog. A new kind without a sample model here fails :func:`test_every_kind_has_a_sample`."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from nnfab.gen.assemble import ENGINES, Network
from nnfab.gen.emit import build_outputs, manifest_of
from nnfab.gen.native import load_native, save_native
from nnfab.gen.native_schema import LAYER_KEYS
from nnfab.gen.passes import ChainShiftAdd, FuseShiftAdd, run_passes
from nnfab.ir import FLOAT_KINDS, KINDS, Layer, native_kinds, register, registry
from nnfab.recurrent import RecurrentSpec
from nnfab.sim.golden.network import GOLDEN, run_network

from ..hdl.test_stalls import CHAINS as CHAIN_CASES
from ..hdl.test_stalls import ENGINES as ENGINE_CASES
from ..hdl.test_stalls import _case
from .test_graph import residual_cnn, skip_mlp, upsample_concat

#: Kinds the native format stores as other kinds (a fused layer as its parts).
STORED_AS_PARTS = {"shift_add_dense", "shift_add_chain", "rom_dense"}
#: Kinds that exist only in quantized models (no float layer, so no PTQ rule).
QUANTIZED_ONLY = {"quantize", "hls4ml_softmax", "shift_add_dense", "shift_add_chain",
                  "output_stage", "multithreshold",
                  "rom_dense",
                  "tflite_average_pool", "tflite_add", "tflite_softmax"}


def int8_dense():
    """A TFLite-style int8 fully connected layer: exact integer accumulator, output stage on
    two time-shared lanes (reuse factor 3 over 4 channels)."""
    from nnfab.ir import DenseLayer, Model, OutputStageLayer, integer_format
    from nnfab.layers import DenseSpec
    from nnfab.output_stage import OutputStage

    rng = np.random.default_rng(3)
    weights, biases = rng.integers(-128, 128, (4, 6)), rng.integers(-2000, 2000, 4)
    int8, bias_format = integer_format(8), integer_format(12)
    acc = DenseSpec(weights, biases, int8, int8, int8, bias_format=bias_format).accumulator
    spec = DenseSpec(weights, biases, int8, int8, acc, bias_format=bias_format)
    stage = OutputStage.fit_real([0.01, 0.002, 0.03, 0.005], zero_point=-3, low=-3)
    return Model("int8_dense", (6,), int8, (
        DenseLayer("fc", spec=spec),
        OutputStageLayer("fc_requantize", shape=(4,), fin=acc, stage=stage, reuse_factor=3)))

def int8_dense_floor():
    """:func:`int8_dense` with a ``floor`` output stage (per-channel offsets, 12-bit codes)."""
    from dataclasses import replace

    from nnfab.output_stage import OutputStage

    model = int8_dense()
    stage = OutputStage((3, 5, 1, 7), (20, 18, 25, 31), low=-2048, high=2047, width=12,
                        rounding="floor", offsets=(-5, 1 << 13, 17, -(1 << 40)))
    return replace(model, layers=(model.layers[0], replace(model.layers[1], stage=stage)))


def int8_dense_in_rom():
    """:func:`int8_dense` as a board build makes it: weights in a ROM at reuse factor 12 (6
    chunks, 2 outputs per PE, 2 PEs), the output stage inside (``rom_dense``)."""
    from nnfab.boards.network import fuse_rom_output_stages

    return fuse_rom_output_stages(int8_dense(), ROM_REUSE)


#: The ROM reuse factor of :func:`int8_dense_in_rom`.
ROM_REUSE = {"fc": 12}


def threshold_mlp():
    """An integer dense layer followed by 3-bit multi-threshold requantization (QONNX style):
    thresholds at and beyond both ends of the accumulator range, repeated thresholds."""
    from nnfab.ir import DenseLayer, Model, MultiThresholdLayer, integer_format
    from nnfab.layers import DenseSpec

    weights = np.array([[1, -2, 3], [-3, 0, 1], [2, 2, -1], [0, 1, 1]])
    int4 = integer_format(4)
    acc = DenseSpec(weights, None, int4, integer_format(3), int4).accumulator
    spec = DenseSpec(weights, None, int4, integer_format(3), acc)
    thresholds = np.array([[-20, -5, -5, 0, 3, 9, 40], [acc.min_code] * 3 + [0, 1, 2, 3],
                           [-1, 0, 1, 2, 3, 4, acc.max_code + 1], [-6, -4, -2, 0, 2, 4, 6]])
    thresholds = np.clip(thresholds, acc.min_code, acc.max_code + 1)
    return Model("threshold_mlp", (3,), int4, (
        DenseLayer("fc", spec=spec),
        MultiThresholdLayer("fc_threshold", shape=(4,), fin=acc, thresholds=thresholds,
                            base=-4, fout=integer_format(3), proof="test sample")))


def tflite_average_pool():
    """TFLite's global average of a 3x4 frame, clamped below (a fused RELU)."""
    from nnfab.ir import Model, TfliteAveragePoolLayer, integer_format

    return Model("tflite_average_pool", (3, 4, 3), integer_format(8),
                 (TfliteAveragePoolLayer("average", shape=(3, 4, 3), low=-50),))


def tflite_softmax():
    from nnfab.ir import Model, TfliteSoftmaxLayer, integer_format

    return Model("tflite_softmax", (3,), integer_format(8),
                 (TfliteSoftmaxLayer("softmax", n=3, input_scale=0.0625, beta=0.7),))


def tflite_add():
    """TFLite's add joining the input and a clamp of it (two branches)."""
    from nnfab.ir import INPUT, Model, OutputStageLayer, TfliteAddLayer, integer_format
    from nnfab.output_stage import OutputStage
    from nnfab.tflite_ops import AddParams

    int8 = integer_format(8)
    clamp = OutputStage((1,), (31,), low=-100, high=90, rounding="half_away")
    params = AddParams.from_scales((0.05, 0.02, 0.06), (3, -7, 11), low=-120, high=100)
    return Model("tflite_add", (3,), int8, (
        OutputStageLayer("clamp", shape=(3,), fin=int8, stage=clamp),
        TfliteAddLayer("add", shape=(3,), params=params, inputs=(INPUT, "clamp"))))


def recurrent_lstm():
    """An LSTM (3 inputs, 4 units, 5 steps) returning its last state, then a dense layer."""
    from nnfab.ir import DenseLayer, Model, RecurrentLayer
    from nnfab.layers import DenseSpec

    from ..hdl.test_recurrent import random_spec

    rng = np.random.default_rng(19)
    spec = random_spec("lstm", rng, return_sequences=False)
    dense = DenseSpec(rng.integers(-8, 8, (2, 4)), None, spec.state_format,
                      spec.weight_format, spec.preact_format)
    return Model("recurrent_lstm", spec.input_shape, spec.input_format, (
        RecurrentLayer("lstm", spec=spec), DenseLayer("fc", spec=dense)))


def recurrent_gru():
    """A GRU (recurrent biases, every step's state, its 4 units on 3 cell lanes) then a
    SimpleRNN with a relu over it."""
    from nnfab.ir import Model, RecurrentLayer

    from ..hdl.test_recurrent import random_spec

    rng = np.random.default_rng(23)
    gru = random_spec("gru", rng)
    rnn = random_spec("simple_rnn", rng, n_in=gru.units, n_steps=gru.n_steps)
    rnn = RecurrentSpec(**{**{k: getattr(rnn, k) for k in rnn.__dataclass_fields__},
                           "input_format": gru.state_format, "activation": "relu"})
    return Model("recurrent_gru", gru.input_shape, gru.input_format, (
        RecurrentLayer("gru", spec=gru, cell_lanes=3),
        RecurrentLayer("rnn", spec=rnn, reuse_factor=2)))


def recurrent_gru_reset_before():
    """A GRU with ``reset_after=False`` (r * h cast narrow) returning its last state."""
    from nnfab.ir import Model, RecurrentLayer

    from ..hdl.test_recurrent import random_spec

    gru = random_spec("gru", np.random.default_rng(29), return_sequences=False,
                      reset_after=False)
    return Model("recurrent_gru_reset_before", gru.input_shape, gru.input_format, (
        RecurrentLayer("gru", spec=gru, reuse_factor=7),))


#: A small model holding each kind (the stall tests' engine cases, and graph models).
SAMPLES = {
    "dense": lambda: _case(ENGINE_CASES, "dense_r1")[0],
    "shift_add_dense": lambda: _case(ENGINE_CASES, "shift_add_relu")[0],
    "shift_add_chain": lambda: _case(CHAIN_CASES, "shift_add_chain")[0],
    "conv2d": lambda: _case(ENGINE_CASES, "conv_r1_same_relu")[0],
    "pool": lambda: _case(ENGINE_CASES, "pool_max")[0],
    "global_pool": lambda: _case(ENGINE_CASES, "global_avg")[0],
    "zero_pad": lambda: _case(ENGINE_CASES, "zero_pad")[0],
    "flatten": lambda: _case(ENGINE_CASES, "flatten")[0],
    "batchnorm": lambda: _case(ENGINE_CASES, "batchnorm")[0],
    "activation": lambda: _case(ENGINE_CASES, "elu_table")[0],
    "softmax": lambda: _case(ENGINE_CASES, "softmax")[0],
    "hls4ml_softmax": lambda: _case(ENGINE_CASES, "hls4ml_softmax")[0],
    "argmax": lambda: _case(ENGINE_CASES, "argmax")[0],
    "quantize": lambda: _case(ENGINE_CASES, "quantize")[0],
    "add": residual_cnn,
    "concatenate": skip_mlp,
    "upsample": upsample_concat,
    "output_stage": int8_dense,
    "rom_dense": int8_dense_in_rom,
    "multithreshold": threshold_mlp,
    "tflite_average_pool": tflite_average_pool,
    "tflite_add": tflite_add,
    "tflite_softmax": tflite_softmax,
    "recurrent": recurrent_lstm,
}

#: Extra depthwise convolution sample (a conv2d whose native form must keep it depthwise).
DEPTHWISE = lambda: _case(ENGINE_CASES, "depthwise_r1")[0]  # noqa: E731
#: Extra samples: native keys that only some models of a kind have.
EXTRA_SAMPLES = {"depthwise": DEPTHWISE, "recurrent_gru": recurrent_gru,
                 "output_stage_floor": int8_dense_floor,
                 "recurrent_gru_reset_before": recurrent_gru_reset_before,
                 "conv2d_pad_code": lambda: _case(ENGINE_CASES, "depthwise_pad_code")[0]}


def missing_tables():
    """``(kind, what)`` for every registered kind without an entry it needs, and every table
    entry without a registered kind."""
    kinds = set(KINDS)
    needs = {"engine": set(ENGINES), "golden function": set(GOLDEN),
             "native form": set(native_kinds()) | STORED_AS_PARTS,
             "native schema": set(LAYER_KEYS) | STORED_AS_PARTS,
             "float layer": set(FLOAT_KINDS) | QUANTIZED_ONLY, "sample": set(SAMPLES)}
    return sorted({(kind, what) for what, have in needs.items() for kind in kinds ^ have})


def test_every_kind_is_in_every_table():
    assert missing_tables() == []


def test_a_kind_registered_alone_is_incomplete(monkeypatch):
    @dataclass(frozen=True)
    class LstmLayer(Layer):
        kind: ClassVar[str] = "lstm"

    monkeypatch.setattr(registry, "KINDS", dict(KINDS))
    monkeypatch.setitem(globals(), "KINDS", registry.KINDS)
    register(LstmLayer)
    assert missing_tables() == [("lstm", what) for what in (
        "engine", "float layer", "golden function", "native form", "native schema", "sample")]
    with pytest.raises(ValueError, match="^Layer kind 'lstm' is already registered by "
                                         "test_a_kind_registered_alone_is_incomplete.<locals>."
                                         "LstmLayer$"):
        register(LstmLayer)


def test_only_layer_classes_register():
    with pytest.raises(TypeError, match="^Only Layer and FloatLayer subclasses can be "
                                        "registered, not <class 'int'>$"):
        register(int)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_has_its_parts(kind):
    """Each registered class defines its own native form (not the base's), and its float
    class its forward pass, native form and PTQ rule."""
    cls = KINDS[kind]
    if kind not in STORED_AS_PARTS:
        assert isinstance(cls.native_keys, dict)
        for method in ("from_native", "to_native"):
            assert getattr(cls, method) is not getattr(Layer, method), (kind, method)
    if kind not in QUANTIZED_ONLY:
        float_cls = FLOAT_KINDS[kind]
        for method in ("from_native", "to_native", "output_shape", "forward", "quantize"):
            assert callable(getattr(float_cls, method, None)), (kind, method)


def test_every_kind_has_a_sample():
    assert set(SAMPLES) == set(KINDS)
    for kind, make in SAMPLES.items():
        assert kind in [layer.kind for layer in make().layers], kind


@pytest.mark.parametrize("kind", sorted(SAMPLES) + sorted(EXTRA_SAMPLES))
def test_kind_round_trips_through_a_build_folder(kind, tmp_path):
    model = {**SAMPLES, **EXTRA_SAMPLES}[kind]()
    first = build_outputs(model, tmp_path / "a")
    reloaded = load_native(tmp_path / "a" / "model.json")
    if kind == "shift_add_dense":  # stored as its parts; the build fuses them again
        reloaded, _ = run_passes(reloaded, [FuseShiftAdd()])
    if kind == "shift_add_chain":  # stored as the fused layers' parts; fused and chained again
        reloaded, _ = run_passes(reloaded, [FuseShiftAdd(), ChainShiftAdd()])
    if kind == "rom_dense":  # stored as its parts; a board build fuses them again
        from nnfab.boards.network import fuse_rom_output_stages

        reloaded = fuse_rom_output_stages(reloaded, ROM_REUSE)
    second = build_outputs(reloaded, tmp_path / "b")
    for name in ("model.json", first.verilog_path.name):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with np.load(tmp_path / "a" / "model.npz") as a, np.load(tmp_path / "b" / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a.files)
    rows = {row["name"]: row for row in first.manifest["layers"]}
    assert [row["kind"] for row in second.manifest["layers"]] == \
        [row["kind"] for row in first.manifest["layers"]]
    assert all(layer.name in rows for layer in model.layers)
    fmt = model.input_format
    x = np.random.default_rng(5).integers(fmt.min_code, fmt.max_code + 1,
                                          (6, *model.input_shape))
    assert np.array_equal(run_network(reloaded, x), run_network(model, x))


def test_output_stage_reuse_factor_round_trips(tmp_path):
    model = int8_dense()
    save_native(model, tmp_path / "m.json")
    again = load_native(tmp_path / "m.json")
    assert again.layers[1] == model.layers[1] and again.layers[1].reuse_factor == 3
    row = manifest_of(again, Network(again))["layers"][1]
    assert (row["reuse_factor"], row["lanes"], row["multipliers"], row["latency"],
            row["initiation_interval"]) == (3, 2, 2, 4, 2)


def test_recurrent_cell_lanes_round_trip(tmp_path):
    """``cell_lanes`` stored when given (the GRU's 3), its default (``ceil(4 / 2)``, the
    SimpleRNN's at R = 2) not; the manifest states the lanes and the step's walk."""
    model = recurrent_gru()
    save_native(model, tmp_path / "m.json")
    again = load_native(tmp_path / "m.json")
    assert [(layer.cell_lanes, layer.lanes) for layer in again.layers] == [(3, 3), (None, 2)]
    network = Network(again)
    rows = manifest_of(again, network)["layers"]
    dense = network.engines[0][1].dense.latency
    assert (rows[0]["cell_lanes"], rows[0]["step_latency"], rows[0]["step_initiation_interval"]) \
        == (3, dense + 2, dense + 2)
    assert rows[1]["cell_lanes"] == 2


@pytest.mark.parametrize("lanes", [0, 5])
def test_recurrent_rejects_impossible_cell_lanes(lanes):
    from nnfab.errors import ModelError
    from nnfab.ir import RecurrentLayer

    gru = recurrent_gru().layers[0]
    with pytest.raises(ModelError, match=rf"^Layer 'gru': cell_lanes must be an integer from 1 "
                       rf"to units 4 \(units updated per cycle\), not {lanes}$"):
        RecurrentLayer("gru", spec=gru.spec, cell_lanes=lanes)


def test_depthwise_convolution_stays_depthwise(tmp_path):
    model = DEPTHWISE()
    save_native(model, tmp_path / "m.json")
    again = load_native(tmp_path / "m.json")
    assert type(again.layers[0].spec) is type(model.layers[0].spec)
    assert manifest_of(again, Network(again))["layers"][0]["weights"] == \
        model.layers[0].spec.weights.size
