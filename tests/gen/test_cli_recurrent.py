"""Keras LSTM and GRU (``reset_after=False``) models (json + h5 written here, no TensorFlow)
through ``nnfab build`` and ``nnfab verify FOLDER``: their Verilog on Verilator, under the
harness's random idle cycles and back-pressure, gives exactly the golden codes, with the
latency and II the manifest states. The RTL proofs of the recurrent engine (about a minute
each cold, most of it Verilator's build; seconds with a warm cache)."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main

from .importers.test_keras_conv import _keras_model


def lstm_with_dense_head(tmp_path, rng, name):
    """A Keras LSTM (3 inputs, 4 units, 5 steps, last state only) and Dense(2), json + h5
    with weights drawn from ``rng``: the model's path."""
    return _keras_model(tmp_path, [
        ("LSTM", "lstm", {"units": 4, "return_sequences": False, "activation": "tanh",
                          "recurrent_activation": "sigmoid"}),
        ("Dense", "fc", {"units": 2, "activation": "linear"}),
    ], {"lstm": {"kernel": rng.normal(0, 0.5, (3, 16)),
                 "recurrent_kernel": rng.normal(0, 0.5, (4, 16)),
                 "bias": rng.normal(0, 0.3, 16)},
        "fc": {"kernel": rng.normal(0, 0.5, (4, 2)), "bias": rng.normal(0, 0.3, 2)}},
        (5, 3), name=name)


def build(path, tmp_path, *options):
    """``nnfab build`` of ``path`` into ``tmp_path / "build"``: ``(runner, folder, manifest)``."""
    runner = CliRunner(env={"COLUMNS": "200"})
    folder = tmp_path / "build"
    built = runner.invoke(main, ["build", str(path), "--output", str(folder), *options])
    assert built.exit_code == 0, built.output
    return runner, folder, json.loads((folder / "manifest.json").read_text())


def verify(runner, folder):
    """``nnfab verify folder``: assert 1,000 vectors, 0 mismatches and one cocotb test passed;
    return ``(latency, expected latency, II, expected II)`` as the output states them."""
    result = runner.invoke(main, ["verify", str(folder)])
    out = result.output
    assert result.exit_code == 0, out
    assert "1000 vectors tried" in out
    assert re.search(r"^0 mismatches$", out, re.M)
    assert "cocotb: 1 passed, 0 failed of 1" in out
    timing = re.search(r"latency: (\d+) cycles measured, (\d+) expected; initiation interval: "
                       r"(\d+) measured, (\d+) expected", out)
    assert timing, out
    return tuple(map(int, timing.groups()))


@pytest.mark.slow
def test_keras_lstm_verifies_bit_exact_on_verilator(tmp_path):
    # The default cache, as a user's run: Verilator's run-time objects are shared with the
    # suite's other builds (a private cache compiles them again, ~40 s).
    path = lstm_with_dense_head(tmp_path, np.random.default_rng(7), "lstm_small")
    runner, folder, manifest = build(path, tmp_path)
    row = manifest["layers"][0]
    assert (row["kind"], row["step_latency"], row["step_initiation_interval"]) == \
        ("recurrent", 7, 7)
    assert (row["sequence_latency"], row["sequence_interval"]) == (35, 35)
    # The dense head, fused with its fixed<19,6> to fixed<8,1,RND_CONV,SAT> output cast,
    # takes 3 cycles at the default 100 MHz: the delay model counts that cast at 9.4 ns on
    # ECP5 (nextpnr, out of context: 6.7 ns), and a cast is one node of the schedule.
    assert [row["latency"] for row in manifest["layers"][1:]] == [3]
    assert (manifest["latency"], manifest["initiation_interval"]) == (38, 35)
    assert manifest["input"]["transfers_per_inference"] == 5
    assert verify(runner, folder) == (38, 38, 35, 35)
    assert "Below their target clock in the delay model: fc 89.8 MHz for 100 MHz" in \
        (folder / "report.md").read_text()


@pytest.mark.slow
def test_keras_gru_reset_before_verifies_bit_exact_on_verilator(tmp_path):
    """A GRU with ``reset_after=False`` (two passes through the step's dense engine) returning
    every step's state: 0 mismatches, latency and II per step twice the dense pass's."""
    rng = np.random.default_rng(11)
    path = _keras_model(tmp_path, [
        ("GRU", "gru", {"units": 3, "return_sequences": True, "activation": "tanh",
                        "recurrent_activation": "sigmoid", "reset_after": False}),
    ], {"gru": {"kernel": rng.normal(0, 0.5, (2, 9)),
                "recurrent_kernel": rng.normal(0, 0.5, (3, 9)),
                "bias": rng.normal(0, 0.3, 9)}},
        (4, 2), name="gru_reset_before")
    runner, folder, manifest = build(path, tmp_path)
    row = manifest["layers"][0]
    assert (row["kind"], row["reset_after"], row["step_latency"],
            row["step_initiation_interval"]) == ("recurrent", False, 14, 14)
    assert (row["sequence_latency"], row["sequence_interval"]) == (56, 56)
    assert (manifest["latency"], manifest["initiation_interval"]) == (14, 56)
    assert manifest["input"]["transfers_per_inference"] == 4
    assert verify(runner, folder) == (14, 14, 56, 56)


@pytest.mark.slow
def test_reuse_factors_above_n_in_verify_bit_exact_on_verilator(tmp_path):
    """``--reuse-factor 14`` on an LSTM (3 inputs + 4 units: its 16 pre-activations in 2
    groups of 8 over the 7 inputs) and its Dense head (4 -> 2 at R = 8, the 2 outputs one
    after the other): hls4ml's reuse factors above n_in, each multiplier serving several
    outputs. 0 mismatches under the harness's stalls; the manifest's latency and II hold."""
    path = lstm_with_dense_head(tmp_path, np.random.default_rng(5), "lstm_folded")
    runner, folder, manifest = build(path, tmp_path, "--reuse-factor", "14")
    lstm, fc = manifest["layers"][0], manifest["layers"][1]
    assert (lstm["kind"], lstm["reuse_factor"], fc["reuse_factor"]) == ("recurrent", 14, 8)
    assert (lstm["multipliers"], fc["multipliers"]) == (8, 1)  # 112 / 14, 8 / 8 products
    measured = verify(runner, folder)
    assert measured[0] == measured[1] == manifest["latency"]
    assert measured[2] == measured[3] == manifest["initiation_interval"]
