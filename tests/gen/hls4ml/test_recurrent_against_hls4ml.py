"""Keras LSTM and GRU models (json + h5 written here, no TensorFlow) in hls4ml configs against
hls4ml's own C simulation: every traced layer equals nnfab's golden model code for code on
2,011 seeded sequences with edge values (the input format's most negative and largest codes,
values that wrap, values between grid points), ``return_sequences`` both ways and a Dense
head; then one small GRU config through ``nnfab build`` and ``nnfab verify`` on Verilator.
Settings hls4ml mode cannot build are refused with one message each."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.gen.hls4ml import ConfigError, load_hls4ml
from nnfab.gen.native import load_native, save_native
from nnfab.tables import sigmoid_table, tanh_table

from ..importers.test_keras_functional import write_functional
from .test_against_hls4ml import compare_layers, edge_case_inputs
from .test_graph_against_hls4ml import _project

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def stacked_rnn(tmp_path, cls, *, n_in=3, units=4, n_steps=5, n_out=2, scale=0.5, seed=0,
                first=None, head="linear"):
    """``cls(return_sequences=True) -> cls(return_sequences=False) -> Dense(n_out, head)``,
    seeded weights; ``first`` updates the first layer's Keras config. Returns the project
    config."""
    rng = np.random.default_rng(seed)
    g, weights, layers, inbound = GATES[cls], {}, [], "input_1"
    for name, width, sequences in (("rnn1", n_in, True), ("rnn2", units, False)):
        weights[name] = {
            "kernel": rng.normal(0, scale, (width, g * units)),
            "recurrent_kernel": rng.normal(0, scale, (units, g * units)),
            "bias": rng.normal(0, 0.3, (2, g * units) if cls == "GRU" else g * units)}
        cfg = {"units": units, "return_sequences": sequences, "return_state": False,
               "activation": "tanh", **({"recurrent_activation": "sigmoid"}
                                        if cls != "SimpleRNN" else {}),
               **({"reset_after": True} if cls == "GRU" else {}),
               **((first or {}) if name == "rnn1" else {})}
        layers.append((cls, name, cfg, [inbound]))
        inbound = name
    weights["fc"] = {"kernel": rng.normal(0, 0.5, (units, n_out)),
                     "bias": rng.normal(0, 0.3, n_out)}
    layers.append(("Dense", "fc", {"units": n_out, "activation": head}, [inbound]))
    keras_json = write_functional(tmp_path, f"{cls.lower()}_stack", (n_steps, n_in), layers,
                                  weights)
    return _project(tmp_path, keras_json)


def _edit(path, **hls_config):
    raw = yaml.safe_load(path.read_text())
    raw["HLSConfig"].update(hls_config)
    path.write_text(yaml.safe_dump(raw))
    return path


# LSTM at the default types; GRU with rounding, saturating types, another table type and size
# (hls4ml's LSTM compiles only when its input, result and accum types are one type: its
# non-static ``lstm`` is instantiated whatever ``use_static`` says).
GRU_TYPES = {"LayerType": {"GRU": {
    "Precision": {"weight": "ap_fixed<8,2,AP_RND,AP_SAT>", "recurrent_weight": "ap_fixed<9,3>",
                  "bias": "ap_fixed<12,3,AP_RND>", "accum": "ap_fixed<15,7,AP_RND_CONV,AP_SAT>",
                  "result": "ap_fixed<10,3,AP_RND,AP_SAT>"},
    "table_t": "ap_fixed<10,2,AP_RND,AP_SAT>", "table_size": 256}}}


@pytest.mark.slow
@pytest.mark.parametrize("cls,hls_config,head", [("LSTM", {}, "sigmoid"),
                                                  ("GRU", GRU_TYPES, "tanh")])
def test_recurrent_layers_equal_hls4ml_code_for_code(tmp_path, cls, hls_config, head):
    """Also a Dense head's sigmoid or tanh activation (hls4ml's tables at their defaults)."""
    pytest.importorskip("hls4ml")
    path = _edit(stacked_rnn(tmp_path, cls, scale=0.5 if cls == "LSTM" else 0.3, head=head),
                 **hls_config)
    _, model = load_hls4ml(path)
    assert [layer.kind for layer in model.layers] == ["recurrent", "recurrent", "dense",
                                                      "activation"]
    x = edge_case_inputs(model)
    assert len(x) >= 1_000
    compare_layers(model, x, tmp_path, path)


@pytest.mark.slow
def test_gru_config_builds_and_verifies_bit_exact_on_verilator(tmp_path):
    path = stacked_rnn(tmp_path, "GRU", n_in=2, units=2, n_steps=3, n_out=1)
    build_and_verify(tmp_path, _edit(path, Model={"Precision": "ap_fixed<10,4>",
                                                  "ReuseFactor": 1, "Strategy": "Latency"}))


def build_and_verify(tmp_path, path):
    """``nnfab build`` of the config at ``path``, then ``nnfab verify`` of the build folder:
    1,000 vectors, 0 mismatches, latency and II measured as the manifest says."""
    runner = CliRunner(env={"COLUMNS": "200"})
    folder = tmp_path / "build"
    built = runner.invoke(main, ["build", "--hls4ml-config", str(path), "--output", str(folder)])
    assert built.exit_code == 0, built.output
    manifest = json.loads((folder / "manifest.json").read_text())
    # The output dense layer (hls4ml accum_t, reuse factor 1) is fused into an adder graph.
    assert [row["kind"] for row in manifest["layers"]] == ["recurrent", "recurrent",
                                                           "shift_add_dense"]
    result = runner.invoke(main, ["verify", str(folder)])
    out = result.output
    print(built.output, out)
    assert result.exit_code == 0, out
    assert "1000 vectors tried" in out
    assert re.search(r"^0 mismatches$", out, re.M)
    timing = re.search(r"latency: (\d+) cycles measured, (\d+) expected; initiation interval: "
                       r"(\d+) measured, (\d+) expected", out)
    assert timing and timing[1] == timing[2] and timing[3] == timing[4], out


@pytest.mark.parametrize("cls,first,error,message", [
    ("SimpleRNN", {}, UnsupportedLayerError,
     "Layer 'rnn1': Keras layer 'SimpleRNN' is not supported in hls4ml mode: hls4ml 1.3's "
     "Vivado backend writes no code for it (its C simulation leaves the layer out); use LSTM "
     "or GRU, or Backend Quartus"),
    ("GRU", {"reset_after": False}, UnsupportedLayerError,
     "Layer 'rnn1': reset_after=False is not supported in hls4ml mode (hls4ml's GRU applies "
     "the reset gate after the recurrent product); only True"),
    ("LSTM", {"go_backwards": True}, UnsupportedLayerError,
     "Layer 'rnn1': go_backwards=True is not supported in hls4ml mode; only False"),
    ("LSTM", {"recurrent_activation": "hard_sigmoid"}, UnsupportedLayerError,
     "Layer 'rnn1': recurrent activation 'hard_sigmoid' is not supported in hls4ml mode; use "
     "sigmoid or tanh"),
])
def test_unsupported_recurrent_settings_are_refused(tmp_path, cls, first, error, message):
    path = stacked_rnn(tmp_path, cls, first=first)
    with pytest.raises(error) as info:
        load_hls4ml(path)
    assert str(info.value) == message


def test_bidirectional_is_refused(tmp_path):
    path = stacked_rnn(tmp_path, "LSTM")
    raw = json.loads((tmp_path / "lstm_stack.json").read_text())
    layer = raw["config"]["layers"][1]
    layer["class_name"], layer["config"] = "Bidirectional", {"name": "rnn1",
                                                             "layer": dict(layer)}
    (tmp_path / "lstm_stack.json").write_text(json.dumps(raw))
    with pytest.raises(UnsupportedLayerError, match="Keras layer 'Bidirectional' is not "
                                                    "supported in hls4ml mode"):
        load_hls4ml(path)


def test_static_is_read_as_without_effect(tmp_path):
    """hls4ml's static and non-static GRU and LSTM give the same codes (measured: 0 of 20,000
    differ for each on 1,000 sequences); the key is accepted and noted."""
    config, _ = load_hls4ml(_edit(stacked_rnn(tmp_path, "GRU"),
                                  LayerName={"rnn1": {"static": False}}))
    assert any("static and non-static" in note for note in config.notes)
    with pytest.raises(ConfigError, match="static 'no' is not supported; give true or false"):
        load_hls4ml(_edit(stacked_rnn(tmp_path, "GRU"), LayerName={"rnn1": {"static": "no"}}))


@pytest.mark.parametrize("setting,message", [
    ({"table_size": 1000}, "table_size 1000 of layer 'rnn1' is not supported (Table size must "
                           "be a power of two, not 1000); nnfab's tables take a power of two"),
    ({"Precision": {"accum": "ap_fixed<8,3,AP_TRN,AP_SAT>"}},
     "accum fixed<8,3,TRN,SAT> of layer 'rnn1' saturates after every addition"),
])
def test_recurrent_settings_nnfab_cannot_honour_are_refused(tmp_path, setting, message):
    path = _edit(stacked_rnn(tmp_path, "GRU"), LayerName={"rnn1": setting})
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_hls4ml(path)


def test_hls4ml_recurrent_model_round_trips_through_the_native_form(tmp_path):
    """The build folder's model file keeps hls4ml's arithmetic: tables indexed toward zero,
    the accumulator and GRU's reset product format."""
    _, model = load_hls4ml(_edit(stacked_rnn(tmp_path, "GRU", scale=0.3, head="tanh"),
                                 **GRU_TYPES))
    save_native(model, tmp_path / "a.json")
    again = load_native(tmp_path / "a.json")
    for layer in (again.layers[0], again.layers[1]):
        s = layer.spec
        assert (s.sigmoid_table.index_rounding, s.tanh_table.index_rounding) == ("zero", "zero")
        assert str(s.accumulator_format) == str(s.reset_product_format) == \
            "fixed<15,7,RND_CONV,SAT>"
    assert again.layers[3].params["table"] == model.layers[3].params["table"]
    save_native(again, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


TABLE_DUMP = """#include "nnet_utils/nnet_activation.h"
#include <cstdio>
struct cfg { typedef ap_fixed<32,2> table_t; static const unsigned table_size = 4096; };
int main() {
    static cfg::table_t s[4096], t[4096];
    nnet::init_sigmoid_table<cfg, 4096>(s);
    nnet::init_tanh_table<cfg, 4096>(t);
    for (int i = 0; i < 4096; i++)
        printf("%lld %lld\\n", (long long)s[i].range().to_int64(),
               (long long)t[i].range().to_int64());
}
"""


def test_single_precision_tables_equal_hls4ml_init_functions(tmp_path):
    """hls4ml's own ``init_sigmoid_table`` and ``init_tanh_table`` (compiled here with its
    headers) for 4,096 entries of ``ap_fixed<32,2>``: nnfab's single-precision tables hold the
    same codes; double-precision ones differ in the last bits."""
    hls4ml = pytest.importorskip("hls4ml")
    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    (tmp_path / "t.cpp").write_text(TABLE_DUMP)
    subprocess.run(["g++", "-O1", "-std=c++14", f"-I{templates}", f"-I{templates / 'ap_types'}",
                    "t.cpp", "-o", "t"], cwd=tmp_path, check=True)
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True)
    raw = np.array([line.split() for line in out.stdout.splitlines()], dtype=np.int64)
    want = np.where(raw >= 2**31, raw - 2**32, raw)
    fmt = FixedFormat(32, 2)
    for column, make in enumerate((sigmoid_table, tanh_table)):
        single = make(table_size=4096, table_format=fmt, single_precision=True)
        assert list(single.codes) == want[:, column].tolist(), make.__name__
        double = make(table_size=4096, table_format=fmt)
        assert list(double.codes) != want[:, column].tolist()
