"""Keras SimpleRNN models (json + h5 written here, no TensorFlow) in hls4ml configs with
``Backend: Quartus`` against hls4ml's own Quartus C simulation (g++ with the ``ac_types``
hls4ml bundles, no Quartus install): every traced layer equals nnfab's golden model code for
code on 2,011 seeded sequences with edge values, ``return_sequences`` both ways, tanh and
sigmoid, a Dense head. Settings the Quartus templates compute differently, or do not compile,
are refused with one message each. A small model through ``nnfab build`` and ``nnfab verify``
on Verilator: 0 mismatches."""

import re

import numpy as np
import pytest
import yaml

from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.hls4ml import ConfigError, load_hls4ml
from nnfab.gen.native import load_native, save_native
from nnfab.sim.golden.activations import activation
from nnfab.tables import quartus_sigmoid_table, quartus_tanh_table

from .test_against_hls4ml import compare_layers, edge_case_inputs
from .test_recurrent_against_hls4ml import _edit, build_and_verify, stacked_rnn


def quartus_rnn(tmp_path, cls="SimpleRNN", *, first=None, head="relu", scale=0.5, sizes=None,
                **hls_config):
    """:func:`stacked_rnn` (``return_sequences`` true, then false, Dense head; ``sizes`` its
    size keywords) with ``Backend: Quartus`` and ``hls_config`` in its HLSConfig."""
    path = stacked_rnn(tmp_path, cls, first=first, head=head, scale=scale, **(sizes or {}))
    raw = yaml.safe_load(path.read_text())
    raw.update(Backend="Quartus", ClockPeriod=5)  # hls4ml's Quartus writer needs a clock
    path.write_text(yaml.safe_dump(raw))
    return _edit(path, **hls_config)


# Rounding and saturating types, a 256-entry table with a rounding table_t, another table_t
# for the second layer (each layer's own; the size is one per model).
TYPES = {"LayerType": {"SimpleRNN": {
    "Precision": {"weight": "ap_fixed<8,2,AP_RND,AP_SAT>",
                  "recurrent_weight": "ap_fixed<8,2,AP_RND,AP_SAT>",
                  "bias": "ap_fixed<12,3,AP_RND>", "accum": "ap_fixed<15,7,AP_RND,AP_SAT>"},
    "table_t": "ap_fixed<10,2,AP_RND,AP_SAT>", "table_size": 256}},
    "LayerName": {"rnn2": {"table_t": "ap_fixed<12,1,AP_RND_CONV,AP_SAT>"}}}


@pytest.mark.slow
@pytest.mark.parametrize("first,hls_config,head", [
    (None, {}, "relu"),                             # tanh, hls4ml's default types
    ({"activation": "sigmoid"}, TYPES, "linear"),   # sigmoid then tanh, other types
])
def test_simple_rnn_equals_hls4ml_quartus_code_for_code(tmp_path, first, hls_config, head):
    pytest.importorskip("hls4ml")
    path = quartus_rnn(tmp_path, first=first, head=head, scale=0.4, **hls_config)
    _, model = load_hls4ml(path)
    assert [layer.kind for layer in model.layers] == \
        ["recurrent", "recurrent", "dense"] + (["activation"] if head == "relu" else [])
    assert model.layers[0].spec.return_sequences and not model.layers[1].spec.return_sequences
    x = edge_case_inputs(model)
    assert len(x) >= 1_000
    compare_layers(model, x, tmp_path, path)


@pytest.mark.slow
def test_quartus_simple_rnn_builds_and_verifies_bit_exact_on_verilator(tmp_path):
    """Also equal to hls4ml's Quartus C simulation with 32-entry tables (a small ROM keeps
    the Verilator build short)."""
    pytest.importorskip("hls4ml")
    path = quartus_rnn(tmp_path, head="linear", sizes=dict(n_in=2, units=2, n_steps=3, n_out=1),
                       Model={"Precision": "ap_fixed<10,4>", "ReuseFactor": 1,
                              "Strategy": "Latency"}, LayerType={"SimpleRNN": {"table_size": 32}})
    _, model = load_hls4ml(path)
    compare_layers(model, edge_case_inputs(model), tmp_path, path)
    build_and_verify(tmp_path, path)


@pytest.mark.parametrize("cls,first,hls_config,error,message", [
    ("LSTM", None, {}, UnsupportedLayerError,
     "Layer 'rnn1': Keras layer 'LSTM' is not supported with Backend Quartus"),
    ("SimpleRNN", None, {"LayerName": {"rnn2": {"Precision": {"result": "ap_fixed<12,4>"}}}},
     ConfigError, "layer 'rnn2': result type fixed<12,4> is not its input type "
                  "fixed<16,6>; hls4ml's Quartus simple_rnn compiles only"),
    ("SimpleRNN", None, {"LayerName": {"rnn1": {"Precision": {"recurrent_weight":
                                                              "ap_fixed<8,2>"}}}},
     ConfigError, "recurrent_weight type fixed<8,2> is not its weight type"),
    ("SimpleRNN", None, {"LayerName": {"rnn1": {"Precision": {"accum":
                                                              "ap_fixed<20,8,AP_RND_CONV>"}}}},
     ConfigError, "accum fixed<20,8,RND_CONV> rounds with RND_CONV after every addition"),
    ("SimpleRNN", None, {"LayerName": {"rnn2": {"table_size": 2048}}}, ConfigError,
     "layer 'rnn2': table_size 2048 differs from 1024 of layer 'rnn1', the first using tanh: "
     "hls4ml's Quartus writer makes one tanh table"),
    ("SimpleRNN", {"activation": "relu"}, {}, UnsupportedLayerError,
     "Layer 'rnn1': activation 'relu' is not supported in hls4ml mode; use sigmoid or tanh"),
])
def test_quartus_settings_nnfab_cannot_honour_are_refused(tmp_path, cls, first, hls_config,
                                                          error, message):
    path = quartus_rnn(tmp_path, cls, first=first, **hls_config)
    with pytest.raises(error, match=re.escape(message)):
        load_hls4ml(path)


def test_quartus_dense_tables_and_stream_io_are_refused(tmp_path):
    with pytest.raises(UnsupportedLayerError, match=re.escape(
            "Layer 'fc': activation 'sigmoid' is not supported with Backend Quartus")):
        load_hls4ml(quartus_rnn(tmp_path, head="sigmoid"))
    path = quartus_rnn(tmp_path)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "IOType": "io_stream"}))
    with pytest.raises(ConfigError, match="Backend Quartus is supported for Keras models with "
                                          "IOType io_parallel only, not io_stream"):
        load_hls4ml(path)


def test_quartus_tables_mirror_the_magnitude_and_round_trip(tmp_path):
    """Entries at bin centres of |x| in [0, R); a negative input gives -y (tanh) or 1 - y
    (sigmoid) of the entry already cast to the output; |x| >= R reads the last entry."""
    fin, fout = FixedFormat(16, 6), FixedFormat(12, 2)
    x = np.array([-5000, -4096, -1, 0, 1, 1024, 4095, 4096, 9000, -32768])
    tanh, sig = quartus_tanh_table(), quartus_sigmoid_table(table_size=512)
    t = activation("tanh", x, fin=fin, fout=fout, table=tanh)
    y = activation("sigmoid", x, fin=fin, fout=fout, table=sig)
    # entry j of 1024 over [0, 4): j = |c| >> 2; entry of 512 over [0, 8): j = |c| >> 4
    assert t[3] == tanh.codes[0] and t[2] == -t[3] and t[5] == tanh.codes[256]
    assert t[6] == t[7] == t[8] == tanh.codes[-1] and t[1] == -t[7] and t[9] == t[1]
    assert y[3] == sig.codes[0] and y[2] == 1024 - y[3]
    assert y[0] == 1024 - (sig.codes[5000 >> 4])
    assert tanh.index_exponent(10) == -2 and sig.index_exponent(10) == -4
    _, model = load_hls4ml(quartus_rnn(tmp_path))
    save_native(model, tmp_path / "a.json")
    again = load_native(tmp_path / "a.json")
    assert again.layers[0].spec.tanh_table == model.layers[0].spec.tanh_table
    assert again.layers[0].spec.tanh_table.index_rounding == "magnitude"
