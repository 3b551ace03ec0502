"""The hardware cast on Verilator: every ap_fixed golden row, and the pipelined stream
component under back-pressure, bit-exact."""

import json
import random

import numpy as np
import pytest

from nnfab.casts import cast
from nnfab.fixed import FixedFormat
from nnfab.hdl.cast import Requantizer
from nnfab.packing import pack
from nnfab.sim.runner import run_cocotb

from ..hdl.cast_bank import CastBank, ap_fixed_stimulus
from .verilator import run_stream_test


@pytest.mark.slow
def test_every_ap_fixed_row_on_verilator(tmp_path):
    stimulus = ap_fixed_stimulus()
    dsts = [dst for _, dst in stimulus.pairs]
    data = tmp_path / "bank.json"
    data.write_text(json.dumps({
        "words_in": [hex(w) for w in stimulus.words_in()],
        "words_out": [hex(pack(row, dsts)) for row in stimulus.expected],
    }))
    results = run_cocotb(CastBank(stimulus.pairs), toplevel="cast_bank",
                         test_module="tests.sim.cast_tb", extra_env={"NNFAB_TB_DATA": str(data)})
    assert stimulus.inputs.size == 168_000
    assert results.total == results.passed == 1


@pytest.mark.slow
@pytest.mark.parametrize("dst", ["fixed<8,3,RND_INF,SAT_SYM>", "ufixed<6,2,RND_ZERO,WRAP>",
                                 "fixed<5,-1,RND_CONV,SAT_ZERO>"])
def test_requantizer_stream_on_verilator(dst):
    src, dst = FixedFormat(16, 6), FixedFormat.parse(dst)
    seed = sum(map(ord, str(dst)))
    rng = random.Random(seed)
    edges = [src.min_code, src.max_code, -1, 0, 1] + [(k << 7) + 64 for k in range(-256, 256)]
    codes = edges + [rng.randint(src.min_code, src.max_code) for _ in range(500)]
    expected = cast(np.array(codes), src, dst)
    run = run_stream_test(Requantizer(src=src, dst=dst), toplevel="requantizer",
                          inputs=[[c] for c in codes], input_formats=[src],
                          expected=[[c] for c in expected], output_formats=[dst], seed=seed)
    assert run.results.total == run.results.passed == 1
