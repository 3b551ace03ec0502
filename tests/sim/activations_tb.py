"""In-simulator cocotb tests for ``tests/sim/test_activations_verilator.py``.

The design (``ActivationBank``) has one stream pair ``<unit>_i``/``<unit>_o`` per activation
unit. Each test drives one unit with the packed input words of the vectors file named by
``$NNFAB_ACTIVATIONS_VECTORS`` (JSON: ``{unit: {"inputs": [...], "expected": [...]}}``, written
from the golden model), with random idle cycles on the input and random back-pressure on the
output, and checks every output word.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

P_IDLE = 0.3
P_STALL = 0.3


def _vectors():
    with open(os.environ["NNFAB_ACTIVATIONS_VECTORS"]) as file:
        return json.load(file)


async def _reset(dut, units):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for unit in units:
        getattr(dut, f"{unit}_i__valid").value = 0
        getattr(dut, f"{unit}_o__ready").value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def _run_unit(dut, unit):
    vectors = _vectors()
    await _reset(dut, vectors)
    inputs, expected = vectors[unit]["inputs"], vectors[unit]["expected"]
    i_valid, i_payload, i_ready = (getattr(dut, f"{unit}_i__{name}")
                                   for name in ("valid", "payload", "ready"))
    o_valid, o_payload, o_ready = (getattr(dut, f"{unit}_o__{name}")
                                   for name in ("valid", "payload", "ready"))
    seed = int(os.environ.get("COCOTB_RANDOM_SEED", "0"))
    rng = random.Random(seed)
    got, sent, pending = [], 0, None
    max_cycles = 10 * (len(inputs) + 50)
    for cycle in range(max_cycles):
        if len(got) == len(expected):
            break
        if pending is None and sent < len(inputs) and rng.random() >= P_IDLE:
            pending = inputs[sent]
        i_valid.value = int(pending is not None)
        if pending is not None:
            i_payload.value = pending
        ready = int(rng.random() >= P_STALL)
        o_ready.value = ready
        await ReadOnly()
        if pending is not None and int(i_ready.value):
            sent += 1
            pending = None
        if ready and int(o_valid.value):
            got.append(int(o_payload.value))
        await RisingEdge(dut.clk)
    assert len(got) == len(expected), \
        f"{unit}: {len(got)} of {len(expected)} outputs after {max_cycles} cycles (seed {seed})"
    mismatches = [(k, e, g) for k, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert not mismatches, f"{unit} (seed {seed}): {len(mismatches)} mismatches, first " \
                           f"(vector, expected word, got word): {mismatches[:3]}"


@cocotb.test()
async def test_relu(dut):
    await _run_unit(dut, "relu")


@cocotb.test()
async def test_leaky_relu(dut):
    await _run_unit(dut, "leaky_relu")


@cocotb.test()
async def test_hard_sigmoid(dut):
    await _run_unit(dut, "hard_sigmoid")


@cocotb.test()
async def test_sigmoid(dut):
    await _run_unit(dut, "sigmoid")


@cocotb.test()
async def test_tanh(dut):
    await _run_unit(dut, "tanh")


@cocotb.test()
async def test_argmax(dut):
    await _run_unit(dut, "argmax")


@cocotb.test()
async def test_softmax(dut):
    await _run_unit(dut, "softmax")
