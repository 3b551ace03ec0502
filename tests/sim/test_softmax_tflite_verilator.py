"""TFLite's int8 softmax on Verilator (the Verilog Amaranth writes, through the HDL harness):
edge rows and 2,400 seeded random rows at the KWS model's softmax parameters, with random idle
cycles and back-pressure at both ends, against the golden model code for code."""

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.softmax_tflite import TfliteSoftmax
from nnfab.packing import pack, unpack
from nnfab.sim.golden.tflite_softmax import softmax_int8
from nnfab.sim.harness import run_harness

from ..hdl.test_softmax_tflite import model_softmax, rows_for


@pytest.mark.slow
def test_softmax_tflite_on_verilator():
    n, input_scale, beta = model_softmax("kws_ref_model.tflite")
    rows = rows_for(n, input_scale, beta, seed=2026, n_random=1200)
    assert len(rows) >= 2400
    want = softmax_int8(rows, input_scale, beta)
    int8 = [FixedFormat(8, 8)] * n
    softmax = TfliteSoftmax(n=n, input_scale=input_scale, beta=beta)
    run = run_harness(softmax, toplevel="softmax_tflite",
                      words_in=[pack(row, int8) for row in rows], n_out=len(rows),
                      warmup_in=32, warmup_out=32, seed=9, p_idle=0.3, p_stall=0.3, burst=30)
    assert not run.timed_out
    got = np.array([unpack(word, int8) for word in run.words_out])
    assert got.shape == want.shape
    mismatches = int(np.sum(np.any(got != want, axis=1)))
    assert mismatches == 0, f"{mismatches} of {len(rows)} rows differ"
    assert run.latency == softmax.latency == 21 and run.initiation_interval == 1
    # Stalls longer than the latency (the pipeline fills and waits) and input bubbles happened.
    assert run.counters["longest_stall"] > 21 and run.counters["idle_runs"] > 20
