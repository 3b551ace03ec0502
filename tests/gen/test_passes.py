import numpy as np
import pytest

from nnfab.errors import ModelError
from nnfab.gen.assemble import engine_for
from nnfab.gen.native import load_native
from nnfab.gen.passes import ChooseReuseFactors, PruneWeights, Validate, run_passes

from .conftest import tiny_mlp


@pytest.fixture
def model(write_model):
    doc, arrays = tiny_mlp()
    return load_native(write_model(doc, arrays))


def test_reuse_factor_global_and_per_layer(model):
    new, changed = ChooseReuseFactors(reuse_factor=2, per_layer={"d2": 3}).apply(model)
    assert changed
    assert (new.layer("d1").reuse_factor, new.layer("d2").reuse_factor) == (2, 3)
    # A global factor that does not divide n_in takes the largest divisor below it.
    new, _ = ChooseReuseFactors(reuse_factor=3).apply(model)
    assert (new.layer("d1").reuse_factor, new.layer("d2").reuse_factor) == (2, 3)


def test_reuse_factor_from_multiplier_budget(model):
    new, _ = ChooseReuseFactors(max_multipliers=4).apply(model)
    for name in ("d1", "d2"):
        assert new.layer(name).n_multipliers <= 4
        smaller = [r for r in range(1, new.layer(name).reuse_factor)
                   if new.layer(name).spec.n_in % r == 0]
        for r in smaller:  # the smallest factor that fits was chosen
            nonzero = np.count_nonzero(new.layer(name).spec.weights != 0, axis=1)
            assert np.sum(-(-nonzero // r)) > 4


def test_reuse_factor_errors(model):
    with pytest.raises(ModelError) as info:
        ChooseReuseFactors(per_layer={"relu": 2}).apply(model)
    assert str(info.value) == ("Reuse factor given for 'relu', which is not a dense, "
                               "convolution, recurrent or output stage layer of "
                               "model 'tiny' (those are: d1, d2)")
    with pytest.raises(ModelError) as info:
        ChooseReuseFactors(per_layer={"d1": 3}).apply(model)
    assert str(info.value) == ("Layer 'd1': reuse factor must divide n_in 4 or be n_in times a "
                               "divisor of n_out 3 (one of 1, 2, 4, 12), not 3")


def test_prune(model):
    assert PruneWeights(0).apply(model) == (model, False)
    new, changed = PruneWeights(50).apply(model)
    assert changed
    w = new.layer("d1").spec.weights.astype(np.int64)
    assert np.all((w == 0) | (np.abs(w) > 50))
    with pytest.raises(ValueError) as info:
        PruneWeights(-1)
    assert str(info.value) == "Pruning threshold must be a non-negative integer code, not -1"


def test_run_passes_reports_changes(model):
    new, changed_by = run_passes(model, [Validate(), ChooseReuseFactors(reuse_factor=2),
                                         PruneWeights(0)])
    assert changed_by == ["ChooseReuseFactors"]


def test_fuse_shift_add_takes_weights_of_any_digits():
    # The digits MLP has weights of 4 canonical signed digits: fused by default into adder
    # graphs; a multiplier threshold of 3 keeps its separate engines, and a multiplier leaf
    # threshold of 3 fuses it with the 4-digit weights as multiplier leaves.
    from nnfab.gen.examples import example
    from nnfab.gen.passes import FuseShiftAdd
    from nnfab.hdl.csd import csd_digits
    from nnfab.sim.golden.network import run_network

    mlp = load_native(example("digits-mlp").path)
    weights = mlp.layer("dense_1").spec.weights
    assert max(len(csd_digits(int(w))) for w in weights.flat) == 4
    fused, changed = FuseShiftAdd().apply(mlp)
    assert changed
    assert [layer.kind for layer in fused.layers] == ["shift_add_dense", "shift_add_dense",
                                                     "argmax"]
    assert [p.name for p in fused.layers[0].parts] == ["dense_1", "relu_1"]
    assert engine_for(fused.layers[0]).n_multipliers == 0
    x = np.random.default_rng(5).integers(0, 32, (50, 64))
    assert np.array_equal(run_network(fused, x), run_network(mlp, x))
    kept, changed = FuseShiftAdd(multiplier_threshold=3).apply(mlp)
    assert not changed and [layer.kind for layer in kept.layers] == [
        "dense", "activation", "dense", "argmax"]
    leaves, _ = FuseShiftAdd(multiplier_leaf_threshold=3).apply(mlp)
    n_four = len({(k, int(w)) for (j, k), w in np.ndenumerate(weights)
                  if len(csd_digits(int(w))) == 4})
    assert 0 < engine_for(leaves.layers[0]).n_multipliers <= n_four


def test_fuse_shift_add_takes_explicit_accumulators_unless_told_not_to():
    import dataclasses

    from nnfab.fixed import FixedFormat
    from nnfab.gen.examples import example
    from nnfab.gen.passes import FuseShiftAdd
    from nnfab.sim.golden.network import run_layer

    from ..streams import run_stream

    mlp = load_native(example("digits-mlp").path)
    dense = mlp.layer("dense_2")
    spec = dataclasses.replace(dense.spec, accumulator_format=FixedFormat(12, 6))
    model = mlp.replace_layers([dataclasses.replace(layer, spec=spec)
                                if layer.name == "dense_2" else layer
                                for layer in mlp.layers])
    fused, _ = FuseShiftAdd(explicit_accumulators=False).apply(model)
    assert [layer.kind for layer in fused.layers] == ["shift_add_dense", "dense", "argmax"]
    fused, _ = FuseShiftAdd().apply(model)
    assert [layer.kind for layer in fused.layers] == ["shift_add_dense", "shift_add_dense",
                                                     "argmax"]
    layer = fused.layers[1]
    x = np.random.default_rng(6).integers(0, 1024, (60, 32))
    want = run_layer(model.layer("dense_2"), x)
    assert np.array_equal(run_layer(layer, x), want)
    run = run_stream(engine_for(layer), [[int(v) for v in row] for row in x])
    got = np.array([[out[j] for j in range(10)] for out in run.outputs])
    assert np.array_equal(got, want), "seed 6"


def test_board_builds_keep_the_former_fusion_rule():
    # The board flow puts dense layers' weights in block RAM: layers with weights of more
    # than 3 signed digits stay unfused there (the digits MLP's have 4).
    from nnfab.cli.commands import _load

    kinds = [layer.kind for layer in _load(None, "digits-mlp", None, None, None, None, None)
             .model.layers]
    assert kinds == ["shift_add_dense", "shift_add_dense", "argmax"]
    kinds = [layer.kind for layer in _load(None, "digits-mlp", None, None, None, None, None,
                                           for_board=True).model.layers]
    assert kinds == ["dense", "activation", "dense", "argmax"]


def test_output_stage_reuse_matches_the_layer_before():
    from tests.gen.test_kinds import int8_dense

    model = int8_dense()                       # dense 6 -> 4, output stage at reuse 3
    new, _ = ChooseReuseFactors(reuse_factor=2).apply(model)
    assert [layer.reuse_factor for layer in new.layers] == [2, 2]
    new, _ = ChooseReuseFactors(reuse_factor=6).apply(model)
    assert [layer.reuse_factor for layer in new.layers] == [6, 4]    # at most the channels
    new, _ = ChooseReuseFactors(max_multipliers=1).apply(model)
    assert new.layers[1].reuse_factor == 4                           # one lane
    new, _ = ChooseReuseFactors(per_layer={"fc": 2}).apply(model)    # follows its feeder
    assert [layer.reuse_factor for layer in new.layers] == [2, 2]
    new, _ = ChooseReuseFactors(per_layer={"fc_requantize": 2}).apply(model)
    assert [layer.reuse_factor for layer in new.layers] == [1, 2]
    with pytest.raises(ModelError) as info:
        ChooseReuseFactors(per_layer={"fc_requantize": 5}).apply(model)
    assert str(info.value) == ("Layer 'fc_requantize': reuse factor must be an integer from 1 "
                               "to 4 (the channels), not 5")


def test_reuse_factors_of_a_recurrent_layer():
    """``--reuse-factor`` and per-layer reuse reach recurrent layers: their step product has
    n_in + units = 7 inputs and 16 pre-activations (an LSTM of 4 units), so 14 (2 groups) is
    valid and 3 is not."""
    from nnfab.ir import Model, RecurrentLayer

    from ..hdl.test_recurrent import random_spec

    spec = random_spec("lstm", np.random.default_rng(3))
    model = Model("seq", spec.input_shape, spec.input_format,
                  (RecurrentLayer("lstm", spec=spec),))
    new, changed = ChooseReuseFactors(reuse_factor=20).apply(model)
    assert changed and new.layer("lstm").reuse_factor == 14
    new, _ = ChooseReuseFactors(per_layer={"lstm": 28}).apply(model)
    assert new.layer("lstm").reuse_factor == 28
    with pytest.raises(ModelError) as info:
        ChooseReuseFactors(per_layer={"lstm": 3}).apply(model)
    assert str(info.value) == (
        "Layer 'lstm': reuse factor must divide n_in + units 7 or be n_in + units times a "
        "divisor of its pre-activations 16 (one of 1, 7, 14, 28, 56, 112), not 3")


def test_fuse_shift_add_builds_convolution_windows_as_adder_graphs(tmp_path):
    """A convolution at reuse factor 1 gets an adder graph (the build decision is not saved:
    a reloaded model is fused again); not at R > 1, not with ``convolutions=False``, not in a
    board build."""
    from nnfab.gen.examples import example
    from nnfab.gen.load import prepare_model
    from nnfab.gen.native import save_native
    from nnfab.gen.passes import FuseShiftAdd
    from nnfab.sim.golden.network import run_network

    cnn = load_native(example("digits-cnn").path)
    fused, changed = FuseShiftAdd(clock_mhz=150).apply(cnn)
    conv = fused.layer("conv")
    assert changed and dict(conv.adder_graph)["clock_mhz"] == 150
    engine = engine_for(conv)
    assert engine.adder_graph and engine.dense.clock_mhz == 150
    assert "shift-add adder graph" in conv.describe()
    row = conv.manifest_row(engine)
    assert row["adder_graph"] and row["estimated_f_max_mhz"] > 0
    x = np.random.default_rng(8).integers(0, 32, (4, *cnn.input_shape))
    assert np.array_equal(run_network(fused, x), run_network(cnn, x))
    save_native(fused, tmp_path / "m.json")
    assert load_native(tmp_path / "m.json").layer("conv").adder_graph is None
    unfused, _ = FuseShiftAdd(convolutions=False).apply(cnn)
    assert unfused.layer("conv").adder_graph is None
    slow, _ = ChooseReuseFactors(per_layer={"conv": 3}).apply(cnn)
    assert FuseShiftAdd().apply(slow)[0].layer("conv").adder_graph is None
    assert prepare_model(cnn, for_board=True).layer("conv").adder_graph is None
    assert prepare_model(cnn).layer("conv").adder_graph is not None
    with pytest.raises(ModelError, match="adder-graph convolution needs reuse factor 1"):
        slow.layer("conv").__class__(
            "conv", spec=slow.layer("conv").spec, reuse_factor=3, adder_graph=conv.adder_graph)
