"""In-simulator cocotb tests for ``tests/sim/test_runner.py``: a registered adder ``y = a + b``.

``RUNNER_TB_FAIL=1`` in the environment adds one test that fails on purpose, so the runner's
failure counting can be checked.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.a.value = 0
    dut.b.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


@cocotb.test()
async def test_adds_after_one_cycle(dut):
    await _reset(dut)
    dut.a.value = 3
    dut.b.value = 4
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.y.value) == 7


@cocotb.test()
async def test_sum_is_not_truncated(dut):
    await _reset(dut)
    width = len(dut.a)
    top = (1 << width) - 1
    for a, b in [(top, top), (top, 1), (0, 0), (0x55, 0xAA)]:
        dut.a.value = a
        dut.b.value = b
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert int(dut.y.value) == a + b
        await RisingEdge(dut.clk)


if os.environ.get("RUNNER_TB_FAIL") == "1":

    @cocotb.test()
    async def test_fails_on_purpose(dut):
        await _reset(dut)
        dut.a.value = 1
        dut.b.value = 1
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert int(dut.y.value) == 3, "fails on purpose: 1 + 1 is not 3"
