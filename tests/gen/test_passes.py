import numpy as np
import pytest

from nnfab.errors import ModelError
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
    assert str(info.value) == ("Reuse factor given for 'relu', which is not a dense or "
                               "convolution layer of "
                               "model 'tiny' (those are: d1, d2)")
    with pytest.raises(ModelError) as info:
        ChooseReuseFactors(per_layer={"d1": 3}).apply(model)
    assert str(info.value) == "Layer 'd1': reuse factor must divide n_in 4 (one of 1, 2, 4), not 3"


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
