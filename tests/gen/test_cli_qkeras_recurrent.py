"""A QKeras QLSTM model (json + h5 written here, no TensorFlow) through ``nnfab build`` and
``nnfab verify FOLDER`` (a state quantizer: the state fed back is cast, the output is not):
its Verilog on Verilator, under the harness's random idle cycles and
back-pressure, gives exactly the golden codes (which equal QKeras' equations,
``importers/test_qkeras_recurrent.py``), with the latency and II the manifest states."""

import numpy as np
import pytest

from .importers.test_keras_conv import _keras_model
from .test_cli_recurrent import build, verify


@pytest.mark.slow
def test_qkeras_lstm_verifies_bit_exact_on_verilator(tmp_path):
    rng = np.random.default_rng(19)
    quantizer = "quantized_bits(4,0,alpha=1)"
    path = _keras_model(tmp_path, [
        ("QLSTM", "lstm", {"units": 4, "return_sequences": False,
                           "activation": "quantized_tanh(4)",
                           "recurrent_activation": "quantized_sigmoid(4)",
                           "kernel_quantizer": quantizer, "recurrent_quantizer": quantizer,
                           "bias_quantizer": quantizer,
                           "state_quantizer": "quantized_bits(6,1,alpha=1)"}),
        ("QDense", "fc", {"units": 2, "kernel_quantizer": quantizer,
                          "bias_quantizer": quantizer}),
    ], {"lstm": {"kernel": rng.normal(0, 0.5, (2, 16)),
                 "recurrent_kernel": rng.normal(0, 0.5, (4, 16)),
                 "bias": rng.normal(0, 0.3, 16)},
        "fc": {"kernel": rng.normal(0, 0.5, (4, 2)), "bias": rng.normal(0, 0.3, 2)}},
        (6, 2), name="qlstm_small")
    # At the defaults, as a user runs it: the head is fused into a shift-add layer of latency
    # 1, whose one-entry skid FIFO once had [-1:0] address wires Verilator refused.
    runner, folder, manifest = build(path, tmp_path)
    row = manifest["layers"][0]
    assert (row["kind"], row["cell"], row["n_steps"]) == ("recurrent", "lstm", 6)
    assert row["feedback_format"] == "fixed<6,2,RND_CONV,SAT>"
    assert row["sequence_latency"] == 6 * row["step_latency"]
    head = manifest["layers"][-1]
    assert (head["kind"], head["latency"]) == ("shift_add_dense", 1)

    latency, expected_latency, interval, expected_interval = verify(runner, folder)
    assert (latency, interval) == (expected_latency, expected_interval) == \
        (manifest["latency"], manifest["initiation_interval"])
