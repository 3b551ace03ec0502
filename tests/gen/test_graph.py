"""Model graphs: construction rules, residual and branching networks through the golden model,
the native format and the hardware (forks, joins and skip FIFOs under back-pressure), and Keras
functional models with ``Add`` and ``Concatenate`` through PTQ."""

import json

import numpy as np
import pytest

from nnfab.conv_layers import Conv2DSpec, GlobalPoolSpec
from nnfab.errors import FormatError, ModelError, ShapeError
from nnfab.fixed import FixedFormat
from nnfab.gen.assemble import Network
from nnfab.ir import ActivationLayer, DenseLayer, Model
from nnfab.ir import Conv2DLayer, GlobalPoolLayer
from nnfab.ir import AddLayer, ConcatenateLayer, UpsampleLayer
from nnfab.gen.native import load_native, save_native
from nnfab.gen.passes import FoldBatchNorm
from nnfab.gen.float_model import FloatActivation, FloatAdd, FloatBatchNorm, FloatDense, FloatModel
from nnfab.layers import DenseSpec
from nnfab.sim.golden.merge import add as golden_add
from nnfab.sim.golden.dense import dense_relu
from nnfab.sim.golden.network import run_network, trace_network

from ..hdl.test_stalls import check_model

F = FixedFormat
PIXEL = F(8, 3)
WEIGHT = F(4, 1)
CONV_OUT = F(10, 5, rounding="RND_CONV", overflow="SAT")
RELU_OUT = F(8, 3, signed=False, rounding="RND_CONV", overflow="SAT")
SUM_OUT = F(9, 4, rounding="RND_CONV", overflow="SAT")
DENSE_OUT = F(10, 4, rounding="RND", overflow="SAT")


def _dense(name, rng, n_in, n_out, fin, out=DENSE_OUT, **kw):
    spec = DenseSpec(rng.integers(-8, 8, (n_out, n_in)), rng.integers(-32, 32, n_out), fin,
                     WEIGHT, out, bias_format=PIXEL)
    return DenseLayer(name, spec=spec, **kw)


def _conv(name, rng, shape, fin, filters, **kw):
    spec = Conv2DSpec(rng.integers(-8, 8, (filters, 3, 3, shape[2])),
                      rng.integers(-32, 32, filters), shape, fin, WEIGHT, CONV_OUT,
                      padding="same", bias_format=PIXEL, activation="relu",
                      activation_format=RELU_OUT)
    return Conv2DLayer(name, spec=spec, **kw)


def skip_mlp(seed=0):
    """input(8) -> d1 -> relu -> d2; add(d2, d1); concatenate(add, input) -> d3."""
    rng = np.random.default_rng(seed)
    d1 = _dense("d1", rng, 8, 6, PIXEL)
    relu = ActivationLayer("relu", function="relu", shape=(6,), fin=DENSE_OUT, fout=RELU_OUT)
    d2 = _dense("d2", rng, 6, 6, RELU_OUT)
    add = AddLayer("add", shape=(6,), fins=(DENSE_OUT, DENSE_OUT), fout=SUM_OUT,
                   inputs=("d2", "d1"))
    cat = ConcatenateLayer("cat", shapes=((6,), (8,)), fins=(SUM_OUT, PIXEL), fout=SUM_OUT,
                           inputs=("add", "input"))
    d3 = _dense("d3", rng, 14, 4, SUM_OUT)
    return Model("skip_mlp", (8,), PIXEL, (d1, relu, d2, add, cat, d3))


def residual_cnn(seed=0, shape=(5, 6, 2)):
    """input -> conv(relu) -> conv(relu); add(conv2, input) -> global max pool -> dense."""
    rng = np.random.default_rng(seed)
    c1 = _conv("c1", rng, shape, PIXEL, 3)
    c2 = _conv("c2", rng, shape[:2] + (3,), RELU_OUT, shape[2])
    add = AddLayer("add", shape=shape, fins=(RELU_OUT, PIXEL), fout=SUM_OUT,
                   inputs=("c2", "input"))
    pool = GlobalPoolLayer("pool", spec=GlobalPoolSpec("max", shape, SUM_OUT, SUM_OUT))
    d = _dense("d", rng, shape[2], 3, SUM_OUT)
    return Model("residual_cnn", shape, PIXEL, (c1, c2, add, pool, d))


def upsample_concat(seed=0):
    """A U-Net-like step: conv at full size, upsampled pooled branch, concatenated."""
    from nnfab.conv_layers import PoolSpec
    from nnfab.ir import PoolLayer

    rng = np.random.default_rng(seed)
    shape = (4, 6, 2)
    c1 = _conv("c1", rng, shape, PIXEL, 2)
    pool = PoolLayer("pool", spec=PoolSpec("max", shape, 2, PIXEL, PIXEL), inputs=("input",))
    up = UpsampleLayer("up", shape=(2, 3, 2), size=(2, 2), fmt=PIXEL)
    cat = ConcatenateLayer("cat", shapes=((4, 6, 2), (4, 6, 2)), fins=(RELU_OUT, PIXEL),
                           fout=SUM_OUT, inputs=("c1", "up"))
    return Model("upsample_concat", shape, PIXEL, (c1, pool, up, cat))


# --- construction ----------------------------------------------------------------------------

def test_chain_needs_no_names_and_graph_order_is_topological():
    model = skip_mlp()
    assert [layer.inputs for layer in model.layers] == [
        ("input",), ("d1",), ("relu",), ("d2", "d1"), ("add", "input"), ("cat",)]
    assert not model.is_chain
    assert model.consumers()["d1"] == ["relu", "add"]
    assert model.consumers()["input"] == ["d1", "cat"]
    # Listed out of order, the layers come back in a topological order.
    shuffled = [model.layers[k] for k in (0, 4, 1, 3, 2, 5)]
    again = Model("skip_mlp", (8,), PIXEL, shuffled)
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def _with(model, layer_name, **changes):
    import dataclasses

    return [dataclasses.replace(layer, **changes) if layer.name == layer_name else layer
            for layer in model.layers]


@pytest.mark.parametrize("change,error,message", [
    (lambda m: _with(m, "add", inputs=("d2", "nowhere")), ModelError,
     "Layer 'add': input 'nowhere' is no tensor of model 'skip_mlp' (the model input 'input' "
     "or a layer's name)"),
    (lambda m: _with(m, "d1", inputs=("cat",)), ModelError,
     "Model 'skip_mlp': layers 'd1', 'relu', 'd2', 'add', 'cat', 'd3' read each other's "
     "outputs in a cycle; a model must be acyclic"),
    (lambda m: _with(m, "cat", inputs=("add", "input", "d1")), ModelError,
     "Layer 'cat': has 2 input formats but reads 3 tensors ('add', 'input', 'd1')"),
    (lambda m: _with(m, "add", inputs=("d2", "d2")), ModelError,
     "Layer 'add': reads tensor 'd2' twice (['d2', 'd2']); each input must be another tensor"),
    (lambda m: _with(m, "add", inputs=("d2", "relu")), FormatError,
     "Layer 'add': input format fixed<10,4,RND,SAT> does not match the output format "
     "ufixed<8,3,RND_CONV,SAT> of 'relu'"),
    (lambda m: _with(m, "cat", inputs=("add", "d1")), ShapeError,
     "Layer 'cat': input shape (8,) does not match the output shape (6,) of 'd1'"),
    (lambda m: list(m.layers) + [ActivationLayer("dangling", function="relu", shape=(6,),
                                                 fin=DENSE_OUT, fout=RELU_OUT,
                                                 inputs=("d1",))], ModelError,
     "Layer 'd3': its output feeds no layer; a model has one output (here 'dangling'), so "
     "every other layer must feed another"),
    (lambda m: _with(m, "d3", name="input"), ModelError,
     "Model 'skip_mlp': a layer is named 'input', the name of the model's input tensor; "
     "rename the layer"),
])
def test_bad_graphs_are_refused(change, error, message):
    model = skip_mlp()
    with pytest.raises(error) as info:
        Model("skip_mlp", (8,), PIXEL, change(model))
    assert str(info.value) == message


def test_folding_a_layer_rewires_its_readers():
    rng = np.random.default_rng(1)
    n = 4
    layers = [FloatDense("d1", rng.normal(size=(n, n))),
              FloatBatchNorm("bn", np.ones(n), np.zeros(n), np.zeros(n), np.ones(n)),
              FloatActivation("relu", "relu"),
              FloatAdd("add", inputs=("relu", "bn"))]
    model = FloatModel("m", (n,), layers)
    folded, changed = FoldBatchNorm().apply(model)
    assert changed
    assert [(layer.name, layer.inputs) for layer in folded.layers] == [
        ("d1", ("input",)), ("relu", ("d1",)), ("add", ("relu", "d1"))]
    x = rng.normal(size=(5, n))
    assert np.allclose(folded.forward(x), model.forward(x))  # float reference, not codes


# --- golden model ----------------------------------------------------------------------------

def test_golden_model_follows_the_graph():
    model = skip_mlp()
    rng = np.random.default_rng(3)
    x = rng.integers(PIXEL.min_code, PIXEL.max_code + 1, (50, 8))
    trace = trace_network(model, x)
    want_add = golden_add([trace["d2"], trace["d1"]], (DENSE_OUT, DENSE_OUT), SUM_OUT)
    assert np.array_equal(trace["add"], want_add)
    assert np.array_equal(run_network(model, x), trace["d3"])
    assert np.array_equal(run_network(model, x, until="add"), want_add)



def test_golden_model_folds_relu_only_where_its_dense_output_is_unread():
    """``run_network`` folds a ReLU into the dense layer before it (one pass, the dense output
    never stored) only when the ReLU alone reads it: in ``skip_mlp`` ``d1`` also feeds the
    add, so its output is kept. Every tensor ``until`` names, folded or not, equals the
    layer-by-layer trace, on extreme and random codes."""
    rng = np.random.default_rng(4)
    d1 = _dense("d1", rng, 8, 6, PIXEL)
    # 7 fraction bits (one more than the dense output's), 8 bits: the left shift saturates.
    fout = F(8, 1, signed=False, rounding="RND_CONV", overflow="SAT")
    relu = ActivationLayer("relu", function="relu", shape=(6,), fin=DENSE_OUT, fout=fout)
    d2 = _dense("d2", rng, 6, 5, fout)
    model = Model("chain", (8,), PIXEL, (d1, relu, d2))
    x = rng.integers(PIXEL.min_code, PIXEL.max_code + 1, (200, 8))
    x[0], x[1] = PIXEL.min_code, PIXEL.max_code
    assert dense_relu(x, d1.spec, fout) is not None  # the fold is taken here
    for net in (model, skip_mlp()):
        trace = trace_network(net, x)
        for name in trace:
            assert np.array_equal(run_network(net, x, until=name), trace[name]), name
        assert np.array_equal(run_network(net, x), trace[net.layers[-1].name])


# --- native format ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", [skip_mlp, residual_cnn, upsample_concat])
def test_native_round_trip_is_byte_identical(tmp_path, make):
    model = make()
    save_native(model, tmp_path / "a.json")
    again = load_native(tmp_path / "a.json")
    save_native(again, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert [layer.inputs for layer in again.layers] == [layer.inputs for layer in model.layers]
    x = np.random.default_rng(0).integers(PIXEL.min_code, PIXEL.max_code + 1,
                                          (7, *model.input_shape))
    assert np.array_equal(run_network(again, x), run_network(model, x))


def test_native_graph_errors_name_the_layer(tmp_path):
    save_native(skip_mlp(), tmp_path / "m.json")
    doc = json.loads((tmp_path / "m.json").read_text())
    doc["layers"][3]["inputs"] = ["d2", "d3"]          # d3 comes later in the file
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError) as info:
        load_native(tmp_path / "m.json")
    assert str(info.value) == ("Layer 'add': input 'd3' is not the model input 'input' or a "
                               "layer listed before this one")


# --- hardware: forks, joins and skip FIFOs under back-pressure ------------------------------

@pytest.mark.parametrize("make", [skip_mlp, residual_cnn, upsample_concat])
def test_graph_networks_under_stalls(make):
    model = make()
    network = Network(model)
    joins = [layer.name for layer in model.layers if len(layer.inputs) > 1]
    assert joins and all(any(key[0] == name for key in network.skip_fifo_depths)
                         for name in joins)
    check_model(model, seed=11, n=3)


def test_residual_skip_fifo_is_as_deep_as_the_convolutions_run_behind():
    """The skip path must hold the pixels the two 'same' convolutions take before their
    first output (about two rows each): a depth below that deadlocks (the fork waits for the
    full FIFO, the join for the convolutions, the convolutions for the fork). At full rate the
    convolutions take pixels faster than they give results until their buffers fill, so the
    skip path holds up to their capacity: more than a frame here, but bounded."""
    model = residual_cnn()
    depths = Network(model).skip_fifo_depths
    width = model.input_shape[1]
    assert depths[("add", 1)] >= 2 * (width + 1)
    assert depths[("add", 1)] <= 2 * model.input_shape[0] * width + 2


def test_manifest_and_report_show_joins(tmp_path):
    from nnfab.gen.emit import build_outputs

    result = build_outputs(residual_cnn(), tmp_path / "b")
    row = next(row for row in result.manifest["layers"] if row["name"] == "add")
    assert row["inputs"] == ["c2", "input"]
    assert row["skip_fifo_depths"][1] >= 2 * (6 + 1)
    report = (tmp_path / "b" / "report.md").read_text()
    assert f"| add | c2, input | {row['skip_fifo_depths'][0]}, {row['skip_fifo_depths'][1]} |" \
        in report
    assert result.manifest["latency_source"] == "simulated"


def test_shift_add_fusion_keeps_a_tensor_that_two_layers_read():
    """d1's output feeds both its activation and the skip Add: fusing d1 with the activation
    would lose the tensor the Add reads, so d1 stays a layer of its own; the golden model of
    the fused graph equals the unfused one."""
    from nnfab.gen.passes import FuseShiftAdd, run_passes

    model = skip_mlp()
    fused, _ = run_passes(model, [FuseShiftAdd()])
    kinds = {layer.name: layer.kind for layer in fused.layers}
    assert "relu" in kinds and "d1" in kinds
    assert [layer.inputs for layer in fused.layers if layer.name == "add"] == [("d2", "d1")]
    x = np.random.default_rng(8).integers(PIXEL.min_code, PIXEL.max_code + 1, (40, 8))
    assert np.array_equal(run_network(fused, x), run_network(model, x))
    assert any(layer.kind == "shift_add_dense" for layer in fused.layers)


def test_batchnorm_is_not_folded_into_a_layer_that_a_skip_path_reads():
    rng = np.random.default_rng(2)
    n = 4
    layers = [FloatDense("d1", rng.normal(size=(n, n))),
              FloatBatchNorm("bn", rng.uniform(0.5, 2, n), rng.normal(size=n), np.zeros(n),
                             np.ones(n)),
              FloatAdd("add", inputs=("bn", "d1"))]
    model = FloatModel("m", (n,), layers)
    folded, changed = FoldBatchNorm().apply(model)
    assert not changed and [layer.name for layer in folded.layers] == ["d1", "bn", "add"]


def test_large_frames_get_analytic_skip_fifos_without_a_simulation(monkeypatch):
    """Beyond ``MAX_SIMULATED_TRANSFERS`` the depths are the analytic bounds of
    :mod:`nnfab.gen.skip_fifos`, chosen without simulating (a frame of 30 pixels would have
    given 32 for both inputs); a network with those depths streams correctly under every
    stall pattern."""
    import nnfab.gen.assemble as assemble
    from ..streams import check_stalls

    model = residual_cnn()
    depths = {("add", 0): 5, ("add", 1): 31}
    with monkeypatch.context() as patch:
        patch.setattr(assemble, "MAX_SIMULATED_TRANSFERS", 8)
        patch.setattr(assemble, "Network", _no_simulation)
        assert assemble.skip_fifo_depths_of(model) == depths
    rng = np.random.default_rng(5)
    x = rng.integers(PIXEL.min_code, PIXEL.max_code + 1, (2, *model.input_shape))
    want = np.asarray(run_network(model, x)).reshape(-1, model.output_shape[-1])
    check_stalls(lambda: Network(model, skip_fifo_depths=depths),
                 x.reshape(-1, model.input_shape[-1]).tolist(), want.tolist(), seed=5)


def _no_simulation(*args, **kwargs):
    raise AssertionError("no network is built to simulate beyond the limit")


def test_manifest_and_report_show_analytic_depths(tmp_path, monkeypatch):
    """Beyond the simulated limit the build's manifest and report carry the analytic depths,
    as they carry simulated ones."""
    import nnfab.gen.assemble as assemble
    from nnfab.gen.emit import build_outputs

    monkeypatch.setattr(assemble, "MAX_SIMULATED_TRANSFERS", 8)
    result = build_outputs(residual_cnn(), tmp_path / "b")
    row = next(row for row in result.manifest["layers"] if row["name"] == "add")
    assert row["skip_fifo_depths"] == [5, 31]
    assert "| add | c2, input | 5, 31 |" in (tmp_path / "b" / "report.md").read_text()


@pytest.mark.slow
def test_a_network_too_large_for_amaranths_simulator_is_timed_on_verilator(tmp_path,
                                                                          monkeypatch):
    """Beyond ``MAX_SIMULATED_LAYER_CYCLES`` (MLPerf Tiny's ResNet-8 had not measured its skip
    FIFOs after 80 minutes in Amaranth's simulator) a build takes the analytic depths and
    measures the latency of its Verilog on Verilator, without any Amaranth simulation: the
    same latency as Amaranth's simulation of that network, and ``nnfab verify`` of the folder
    reuses the Verilator build and passes."""
    import nnfab.gen.assemble as assemble
    import nnfab.gen.timing as timing
    from nnfab.gen.emit import build_outputs
    from nnfab.gen.verify import verify

    model = residual_cnn()
    analytic = {("add", 0): 5, ("add", 1): 31}
    expected = Network(model, skip_fifo_depths=analytic).timing
    monkeypatch.setattr(assemble, "MAX_SIMULATED_LAYER_CYCLES", 0)
    monkeypatch.setattr(timing, "simulate_timing", _no_simulation)
    assert Network(model).simulation_too_slow
    result = build_outputs(model, tmp_path / "b")
    manifest = result.manifest
    assert manifest["latency_source"] == "simulated on Verilator"
    assert manifest["latency"] == expected["latency"]
    row = next(row for row in manifest["layers"] if row["name"] == "add")
    assert row["skip_fifo_depths"] == [5, 31]
    x = np.random.default_rng(6).uniform(-4, 4, (12, *model.input_shape))
    run = verify(model, x, seed=6, verilog=result.verilog_path.read_text(),
                 timing=(manifest["latency"], manifest["initiation_interval"]))
    assert run.build_cached and run.passed and run.n_mismatches == 0


def test_golden_model_frees_tensors_and_verify_blocks_by_tensor_size(monkeypatch):
    """``run_network`` drops a tensor once its last reader ran (a batch of 256x256 frames is
    gigabytes per tensor: 200 frames of the branched QONNX model were killed for memory),
    and ``nnfab verify`` runs the golden model in blocks whose largest tensor stays under a
    bound. The outputs are unchanged either way."""
    import weakref

    import nnfab.gen.verify as verify_module
    import nnfab.sim.golden.network as network

    model = residual_cnn()
    largest = max(int(np.prod(layer.output_shape)) for layer in model.layers)
    monkeypatch.setattr(verify_module, "_GOLDEN_BLOCK_ELEMENTS", 3 * largest)
    assert verify_module.golden_block(model) == 3
    rng = np.random.default_rng(9)
    x = rng.integers(PIXEL.min_code, PIXEL.max_code + 1, (7, *model.input_shape))
    want = trace_network(model, x)[model.layers[-1].name]
    outputs, alive_at_last = [], []
    run_layer = network.run_layer

    def recording(layer, *inputs):
        if layer is model.layers[-1]:
            alive_at_last.append(sum(ref() is not None for ref in outputs))
        out = run_layer(layer, *inputs)
        outputs.append(weakref.ref(out))
        return out

    monkeypatch.setattr(network, "run_layer", recording)
    assert np.array_equal(run_network(model, x), want)
    # When the last layer runs, only the tensors it reads are still held.
    assert len(outputs) == len(model.layers) > 3
    assert alive_at_last == [len([t for t in model.layers[-1].inputs if t != "input"])]
    blocks = np.concatenate([run_network(model, x[i:i + 3]) for i in range(0, 7, 3)])
    assert np.array_equal(blocks, want)
