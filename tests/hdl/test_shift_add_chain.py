"""ShiftAddChain against the golden models of its layers in sequence, in Amaranth's simulator:
seeded random inputs and edge codes, at full rate and under every stall pattern
(:func:`tests.streams.check_stalls`), with the measured latency equal to the reported one;
register placement over the chain; the errors."""

import math

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.shift_add import ShiftAddDense
from nnfab.hdl.shift_add_chain import ShiftAddChain
from nnfab.ir.quantize import lanes_format
from nnfab.layers import DenseSpec

from ..streams import check_stalls
from .test_shift_add import FIN, INPUT_LANES, csd_weights, edge_rows, golden

F = FixedFormat

#: Three layers as FuseShiftAdd makes them: HGQ's lanes in, wrapping cast, ReLU and lanes
#: out; then a rounding, saturating cast reading the known lanes (an output of all-zero
#: weights and bias: a constant); then an exact sum whose output lanes wrap and saturate.
LAYERS = [
    dict(input_lanes=INPUT_LANES, n_out=6, out=F(12, 7), act=("relu", F(11, 6, signed=False), {}),
         output_lanes=(F(8, 5, signed=False), None, F(7, 5, signed=False),
                       F(5, 7, signed=False), F(10, 6, signed=False), None)),
    dict(input_lanes="known", n_out=5, out=F(10, 6, rounding="RND", overflow="SAT"), act=None,
         output_lanes=None, zero_row=2),
    dict(input_lanes=None, n_out=4, out=None, act=None,
         output_lanes=(F(9, 4), F(6, 2, rounding="RND"), None, F(8, 6, overflow="SAT"))),
]


def make_layers(seed, **options):
    """The :data:`LAYERS` with seeded random weights, each a ShiftAddDense with ``options``,
    and their golden functions."""
    rng = np.random.default_rng(seed)
    layers, goldens, fin, known = [], [], FIN, None
    for case in LAYERS:
        lanes = known if case["input_lanes"] == "known" else case["input_lanes"]
        n_in = len(lanes) if lanes else layers[-1].spec.n_out
        in_fmt = lanes_format(lanes) if lanes else fin
        w_fmt, b_fmt = F(10, 4), F(8, 3)
        weights = csd_weights(rng, (case["n_out"], n_in), w_fmt)
        biases = rng.integers(-100, 100, case["n_out"])
        if "zero_row" in case:
            weights[case["zero_row"]], biases[case["zero_row"]] = 0, 0
        exact = DenseSpec(weights, biases, in_fmt, w_fmt, F(4, 4), bias_format=b_fmt).accumulator
        spec = DenseSpec(weights, biases, in_fmt, w_fmt, case["out"] or exact, bias_format=b_fmt)
        act, out_lanes = case["act"], case["output_lanes"]
        fout = lanes_format(out_lanes) if out_lanes else None
        layer = ShiftAddDense(spec, fin=fin, input_lanes=lanes, activation=act,
                              output_lanes=out_lanes, fout=fout, **options)
        layers.append(layer)
        goldens.append(lambda x, spec=spec, fin=fin, lanes=lanes, act=act, out_lanes=out_lanes,
                       fout=fout: golden(x, spec, fin=fin, input_lanes=lanes, act=act,
                                         output_lanes=out_lanes, fout=fout))
        fin = layer._fout
        known = None if out_lanes is None else tuple(
            None if f is None else f.replace(rounding="TRN", overflow="WRAP") for f in out_lanes)
    return layers, goldens


def chain_golden(goldens, x):
    for function in goldens:
        x = function(x)
    return x


TIMINGS = {
    "100MHz": dict(clock_mhz=100),
    "100MHz_lut6": dict(clock_mhz=100, lut_adder_width=6),
    "300MHz": dict(clock_mhz=300),  # registers between the steps of the output logic
    "20MHz": dict(clock_mhz=20),  # several layers in one stage
    "levels1": dict(adder_levels_per_stage=1),
    "levels3": dict(adder_levels_per_stage=3),
}


@pytest.mark.parametrize("timing", sorted(TIMINGS))
def test_chain_matches_its_layers_golden_models_under_stalls(timing):
    seed = 21 + sorted(TIMINGS).index(timing)
    layers, goldens = make_layers(seed, **TIMINGS[timing])
    x = edge_rows(np.random.default_rng(seed), FIN, len(INPUT_LANES), 40)
    want = chain_golden(goldens, x)
    latency = ShiftAddChain(make_layers(seed, **TIMINGS[timing])[0]).latency
    full = check_stalls(lambda: ShiftAddChain(make_layers(seed, **TIMINGS[timing])[0]),
                        x.tolist(), want.tolist(), seed=seed, latency=latency)
    assert full.first_latency == latency
    assert full.accepted_at[-1] - full.accepted_at[0] == len(x) - 1  # II 1


def test_chain_places_registers_across_layer_boundaries():
    """The chain needs fewer stages than its layers alone (each with its output register):
    7 instead of 3 + 3 + 2 at 100 MHz, 1 instead of 3 at 20 MHz; a faster clock needs more
    stages; levels count on through the chain."""
    layers, _ = make_layers(5, clock_mhz=100)
    chain = ShiftAddChain(layers)
    assert [layer.latency for layer in layers] == [3, 3, 2]
    assert chain.latency == 7
    slow = make_layers(5, clock_mhz=20)[0]
    assert [layer.latency for layer in slow] == [1, 1, 1]
    assert ShiftAddChain(slow).latency == 1
    assert chain.estimated_f_max_hz >= 100e6
    assert ShiftAddChain(make_layers(5, clock_mhz=300)[0]).latency > chain.latency
    for levels in (1, 2, 5):
        chain = ShiftAddChain(make_layers(5, adder_levels_per_stage=levels)[0])
        assert chain.levels == sum(layer.levels for layer in layers)
        assert chain.latency == max(1, math.ceil(chain.levels / levels))


def test_a_chain_of_one_layer_is_that_layer():
    layers, goldens = make_layers(8, clock_mhz=150)
    x = edge_rows(np.random.default_rng(8), FIN, len(INPUT_LANES), 30)
    chain = ShiftAddChain(layers[:1], names=["first"])
    check_stalls(lambda: ShiftAddChain(make_layers(8, clock_mhz=150)[0][:1]), x.tolist(),
                 goldens[0](x).tolist(), seed=8, latency=chain.latency)
    assert chain.names == ("first",) and chain.n_adders == layers[0].n_adders


def test_rejects_bad_layers():
    layers, _ = make_layers(9, clock_mhz=100)
    with pytest.raises(ValueError, match=r"^A shift-add chain needs at least one layer$"):
        ShiftAddChain([])
    with pytest.raises(TypeError, match=r"^Layer must be a ShiftAddDense, not 3$"):
        ShiftAddChain([layers[0], 3])
    with pytest.raises(ValueError, match=r"^Names must be 2 distinct names, not \('a', 'a'\)$"):
        ShiftAddChain(layers[:2], names=["a", "a"])
    with pytest.raises(ValueError, match=r"^Layer 'layer1' reads 5 codes of fixed<10,6,RND,SAT>, "
                                         r"but 'layer0' gives 6 of "):
        ShiftAddChain([layers[0], layers[2]])
    other, _ = make_layers(9, clock_mhz=120)
    with pytest.raises(ValueError, match=r"^Layers of a shift-add chain must share their timing "
                                         r"\(clock, family, adder levels per stage\), not "
                                         r"\[\(100.0, 'ecp5', None\), \(120.0, 'ecp5', None\)\]$"):
        ShiftAddChain([layers[0], other[1]])
