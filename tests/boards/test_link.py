import numpy as np
import pytest
from amaranth.sim import Simulator

from nnfab.boards.link import ANSWER_START, REQUEST_START, HostLink
from nnfab.boards.network import choose_rom_reuse_factors, rom_backend
from nnfab.gen.assemble import Network
from nnfab.boards.uart import UARTRx, UARTTx, uart_divisor
from nnfab.gen.examples import example
from nnfab.gen.native import load_native
from nnfab.packing import pack, unpack
from nnfab.sim.golden.network import run_network


def digits_model():
    return load_native(example("digits-mlp").path)


async def send_byte(ctx, line, byte, divisor):
    for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
        ctx.set(line, bit)
        await ctx.tick().repeat(divisor)


async def receive_byte(ctx, line, divisor, *, timeout):
    for _ in range(timeout):
        if not ctx.get(line):
            break
        await ctx.tick()
    else:
        raise AssertionError(f"No start bit in {timeout} cycles")
    await ctx.tick().repeat(divisor // 2)
    assert ctx.get(line) == 0
    byte = 0
    for k in range(8):
        await ctx.tick().repeat(divisor)
        byte |= ctx.get(line) << k
    await ctx.tick().repeat(divisor)
    assert ctx.get(line) == 1, "stop bit"
    return byte


@pytest.mark.parametrize("divisor", [4, 7, 13])
def test_uart_loopback(divisor):
    rx, tx = UARTRx(divisor=divisor), UARTTx(divisor=divisor)
    data = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x3C]
    got = []

    from amaranth.hdl import Module
    m = Module()
    m.submodules.rx, m.submodules.tx = rx, tx
    m.d.comb += rx.rx.eq(tx.tx)

    async def producer(ctx):
        for byte in data:
            ctx.set(tx.i.valid, 1)
            ctx.set(tx.i.payload, byte)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                got.append(payload)
        assert not ctx.get(rx.overrun) and not ctx.get(rx.framing_error)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == data


def test_uart_errors():
    with pytest.raises(ValueError, match=r"^Divisor must be an integer of at least 4, not 3$"):
        UARTRx(divisor=3)
    with pytest.raises(TypeError, match=r"^Divisor must be an integer, not 4\.0$"):
        UARTTx(divisor=4.0)
    assert uart_divisor(12e6, 115200) == 104
    with pytest.raises(ValueError, match=r"^Baud rate 4000000 is too fast for a 12 MHz clock "
                                         r"\(at most 3e\+06\)$"):
        uart_divisor(12e6, 4_000_000)
    with pytest.raises(ValueError, match=r"^Baud rate 2500000 is off by 4\.0% at 12 MHz "
                                         r"\(divisor 5\); at most 2% is accepted$"):
        uart_divisor(12e6, 2_500_000)


@pytest.mark.parametrize("divisor", [4, 9])
def test_link_matches_golden(divisor):
    """Request frames in over the UART line, answers out, bit-exact against the golden model;
    at two baud rates (4 and 9 clock cycles per bit)."""
    model = digits_model()
    rom = choose_rom_reuse_factors(model, max_multipliers=32)
    link = HostLink(Network(model, backend=rom_backend(model, rom)), divisor=divisor)
    rng = np.random.default_rng(divisor)
    fmt = model.input_format
    x = rng.integers(fmt.min_code, fmt.max_code + 1, (3, 64))
    expected = run_network(model, x).reshape(3, -1)
    out_formats = [model.output_format] * model.output_shape[-1]
    in_formats = [fmt] * 64
    in_bytes = -(-sum(f.width for f in in_formats) // 8)
    answers = []

    async def host(ctx):
        ctx.set(link.rx, 1)
        await ctx.tick().repeat(5)
        for row in x:
            word = pack(row, in_formats)
            frame = [0x33, REQUEST_START] + list(word.to_bytes(in_bytes, "little"))
            for byte in frame:  # 0x33: line noise before the start byte is ignored
                await send_byte(ctx, link.rx, byte, divisor)
            # answers are read by the listener
        await ctx.tick().repeat(20 * divisor * 10 + 2000)

    async def listener(ctx):
        out_bytes = -(-sum(f.width for f in out_formats) // 8)
        for _ in range(len(x)):
            frame = [await receive_byte(ctx, link.tx, divisor, timeout=100_000)
                     for _ in range(1 + out_bytes)]
            assert frame[0] == ANSWER_START
            answers.append(unpack(int.from_bytes(bytes(frame[1:]), "little"), out_formats))
        assert not ctx.get(link.error)

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(listener, background=True)
    sim.run()
    assert np.array(answers).tolist() == expected.tolist()
