"""ChainShiftAdd on the HGQ jet classifier (one pipeline of its four fused layers: golden model,
latency, stalls, native round trip) and the conditions under which it applies."""

import dataclasses

import numpy as np
import pytest

from nnfab.errors import ModelError
from nnfab.gen.assemble import Network
from nnfab.gen.load import load_model
from nnfab.gen.native import load_native, save_native
from nnfab.gen.passes import ChainShiftAdd, FuseShiftAdd, run_passes
from nnfab.ir import ConcatenateLayer, Model, ShiftAddChainLayer
from nnfab.sim.golden.network import run_network

from ...hdl.test_stalls import Builder
from ...streams import check_stalls
from ..test_graph import DENSE_OUT, PIXEL, SUM_OUT, _dense
from .conftest import KERAS, need

HGQ = KERAS / "hgq_jet_classifier.h5"


@pytest.fixture(scope="module")
def hgq():
    return load_model(need(HGQ)).model


def chained(model, **options):
    return run_passes(model, [FuseShiftAdd(lut_adder_width=7, **options), ChainShiftAdd()])[0]


def edge_inputs(model, n, seed):
    """``n`` seeded random inputs, the first rows the most negative, the largest and zero
    codes, then alternating extremes (saturating the layers' casts)."""
    fmt = model.input_format
    x = np.random.default_rng(seed).integers(fmt.min_code, fmt.max_code + 1,
                                             (n, *model.input_shape))
    x[0], x[1], x[2] = fmt.min_code, fmt.max_code, 0
    x[3, ::2], x[3, 1::2] = fmt.min_code, fmt.max_code
    x[4, ::2], x[4, 1::2] = fmt.max_code, fmt.min_code
    return x


def test_hgq_fused_layers_chain_into_one_pipeline(hgq):
    fused, _ = FuseShiftAdd(lut_adder_width=7).apply(hgq)
    model, changed = ChainShiftAdd().apply(fused)
    assert changed
    [layer] = model.layers
    assert (layer.kind, layer.name) == ("shift_add_chain", "dense_1")
    assert layer.parts == fused.layers
    x = edge_inputs(hgq, 500, 3)
    assert np.array_equal(run_network(model, x), run_network(hgq, x))
    # At the default 100 MHz: 6 cycles instead of the layers' 2 + 2 + 2 + 2.
    assert [engine.latency for _, engine in Network(fused).engines] == [2, 2, 2, 2]
    assert Network(model).latency == 6
    assert Network(chained(hgq, clock_mhz=115)).latency == 8
    assert Network(chained(hgq, clock_mhz=80)).latency == 5


@pytest.mark.parametrize("clock_mhz", [100, 200])
def test_hgq_chain_matches_golden_under_stalls(hgq, clock_mhz):
    model = chained(hgq, clock_mhz=clock_mhz)
    x = edge_inputs(hgq, 40, clock_mhz)
    want = np.asarray(run_network(model, x)).tolist()
    latency = Network(model).latency
    full = check_stalls(lambda: Network(model), x.tolist(), want, seed=clock_mhz,
                        latency=latency)
    assert full.first_latency == latency


def test_hgq_chain_saves_as_the_layers_it_fuses(hgq, tmp_path):
    model = chained(hgq)
    save_native(model, tmp_path / "m.json")
    back = load_native(tmp_path / "m.json")
    assert [layer.name for layer in back.layers] == [layer.name for layer in hgq.layers]
    save_native(chained(back), tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == (tmp_path / "m.json").read_text()
    x = edge_inputs(hgq, 100, 4)
    assert np.array_equal(run_network(chained(back), x), run_network(hgq, x))


def _mlp(*, clocks=(None, None), softmax=False):
    b = Builder(4, (12,))
    b.dense(6).act().dense(5)
    if softmax:
        b.softmax()
    b.dense(4)
    model = b.model()
    fused, _ = FuseShiftAdd().apply(model)
    layers = list(fused.layers)
    for n, clock in zip((0, -1), clocks):
        if clock is not None:
            layers[n] = dataclasses.replace(layers[n], clock_mhz=clock)
    return fused.replace_layers(layers)


def test_chain_conditions():
    model, changed = ChainShiftAdd().apply(_mlp())
    assert changed and [layer.kind for layer in model.layers] == ["shift_add_chain"]
    assert [part.name for part in model.layers[0].parts] == ["dense0", "dense2", "dense3"]
    # A softmax between: the run before it chains, the layer after it stays alone.
    model, _ = ChainShiftAdd().apply(_mlp(softmax=True))
    assert [layer.kind for layer in model.layers] == ["shift_add_chain", "softmax",
                                                      "shift_add_dense"]
    # Another timing starts a new run; a run of one layer is left as it is.
    model, _ = ChainShiftAdd().apply(_mlp(clocks=(None, 150)))
    assert [layer.kind for layer in model.layers] == ["shift_add_chain", "shift_add_dense"]
    model, changed = ChainShiftAdd().apply(_mlp(clocks=(150, 120)))
    assert [layer.kind for layer in model.layers] == ["shift_add_dense"] * 3
    alone = Builder(4, (12,)).dense(6).act().model(fuse=True)
    assert ChainShiftAdd().apply(alone) == (alone, False)


def test_a_layer_read_twice_ends_a_run():
    """d1 -> d2 -> concatenate(d2, d1) -> d3: d1 has two readers, so d1 and d2 stay apart."""
    rng = np.random.default_rng(2)
    d1 = _dense("d1", rng, 8, 6, PIXEL)
    d2 = _dense("d2", rng, 6, 6, DENSE_OUT)
    cat = ConcatenateLayer("cat", shapes=((6,), (6,)), fins=(DENSE_OUT, DENSE_OUT),
                           fout=SUM_OUT, inputs=("d2", "d1"))
    d3 = _dense("d3", rng, 12, 4, SUM_OUT, inputs=("cat",))
    model = Model("branch", (8,), PIXEL, (d1, d2, cat, d3))
    fused, _ = FuseShiftAdd().apply(model)
    assert [layer.kind for layer in fused.layers] == ["shift_add_dense", "shift_add_dense",
                                                      "concatenate", "shift_add_dense"]
    assert ChainShiftAdd().apply(fused) == (fused, False)
    # Without the second reader d1 and d2 chain, and d3 after them.
    straight = Model("straight", (8,), PIXEL, (d1, d2, _dense("d3", rng, 6, 4, DENSE_OUT)))
    model, _ = ChainShiftAdd().apply(FuseShiftAdd().apply(straight)[0])
    assert [layer.kind for layer in model.layers] == ["shift_add_chain"]
    x = np.random.default_rng(3).integers(PIXEL.min_code, PIXEL.max_code + 1, (50, 8))
    assert np.array_equal(run_network(model, x), run_network(straight, x))


def test_chain_layer_rejects_other_parts():
    fused = _mlp(clocks=(None, 150))
    with pytest.raises(ModelError, match=r"^Layer 'x': a shift-add chain fuses two or more "
                                         r"shift_add_dense layers, not shift_add_dense$"):
        ShiftAddChainLayer("x", parts=fused.layers[:1])
    with pytest.raises(ModelError, match=r"^Layer 'x': the layers of a shift-add chain share "
                                         r"their timing \(adder_levels_per_stage, clock_mhz, "
                                         r"family\), not \[\(None, 150, 'ecp5'\), "
                                         r"\(None, None, 'ecp5'\)\]$"):
        ShiftAddChainLayer("x", parts=fused.layers[1:])
