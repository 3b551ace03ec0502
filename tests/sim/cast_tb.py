"""In-simulator cocotb test for the cast bank of ``tests/sim/test_cast_verilator.py``.

The stimulus and the expected outputs (the ap_fixed vectors) come in the JSON file named by
``$NNFAB_TB_DATA``, as hexadecimal strings of packed words.
"""

import json
import os

import cocotb
from cocotb.triggers import Timer


def _data():
    with open(os.environ["NNFAB_TB_DATA"]) as file:
        return json.load(file)


@cocotb.test()
async def every_row_through_the_cast_bank(dut):
    data = _data()
    mismatches = []
    for step, (word, expected) in enumerate(zip(data["words_in"], data["words_out"])):
        dut.codes_in.value = int(word, 16)
        await Timer(1, unit="ns")
        got = int(dut.codes_out.value)
        if got != int(expected, 16):
            mismatches.append(step)
    assert not mismatches, f"{len(mismatches)} steps differ, first {mismatches[:5]}"
