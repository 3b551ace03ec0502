import numpy as np
import pytest
from amaranth.hdl import Const, Shape
from amaranth.sim import Simulator

from nnfab.boards.stream_link import StreamLink
from nnfab.hdl.trainable_dense import sample_layout
from nnfab.hdl.trainable_mlp import TrainableMLP
from nnfab.sim.golden.backprop import train_fixed

from ..hdl.test_trainable_dense import sample_payloads
from ..hdl.test_trainable_mlp import random_problem
from .test_link import receive_byte, send_byte


@pytest.mark.parametrize("divisor,pipelined", [(4, False), (7, False), (4, True)])
def test_stream_link_trains_like_the_golden_model(divisor, pipelined):
    """A tiny trainer (4-3-2, Adam, batches of 2) behind the UART: samples in as bytes, each
    sample's output codes and, after the last one of an epoch, every weight code out as bytes,
    equal to :func:`nnfab.sim.golden.backprop.train_fixed`. The host sends a sample and reads
    its outputs before the next, or (``pipelined``) sends every sample at once into a receive
    FIFO that holds them all while the trainer and the transmitter hold them back."""
    rng = np.random.default_rng(divisor)
    spec, x, targets = random_problem(rng, "softmax_cross_entropy", "adam", sizes=(4, 3, 2),
                                      n=3, batch_size=2)
    epochs = 2
    trace = train_fixed(spec, x, targets, epochs=epochs)
    link = StreamLink(TrainableMLP(spec), divisor=divisor, rx_depth=64 if pipelined else None)
    layout = sample_layout(spec)
    out_width = max(spec.output_format.width, spec.optimizer.weight_format.width)
    assert (link.input_bytes, link.output_bytes) == (-(-layout.size // 8), -(-out_width // 8))
    payloads = sample_payloads(spec, x, targets, epochs)
    got = []

    async def read(ctx, n_words):
        for _ in range(n_words):
            data = [await receive_byte(ctx, link.tx, divisor, timeout=20_000)
                    for _ in range(link.output_bytes)]
            got.append(Const(int.from_bytes(bytes(data), "little"),
                             Shape(out_width, signed=True)).value)

    async def host(ctx):
        ctx.set(link.rx, 1)
        await ctx.tick().repeat(5)
        for payload in payloads:
            word = Const.cast(layout.const(payload)).value
            for byte in word.to_bytes(link.input_bytes, "little"):
                await send_byte(ctx, link.rx, byte, divisor)
            if not pipelined:
                await read(ctx, spec.n_out + (spec.n_params if payload["last"] else 0))
        assert not ctx.get(link.error)

    async def listener(ctx):
        await read(ctx, epochs * (len(x) * spec.n_out + spec.n_params))
        assert not ctx.get(link.error)

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    if pipelined:
        sim.add_testbench(listener)
    sim.run()
    expected = []
    for outputs, weights in zip(trace.outputs, trace.weights):
        expected += outputs.ravel().tolist() + weights.tolist()
    assert got == expected


def test_stream_link_rejects_bad_depth():
    rng = np.random.default_rng(0)
    spec, _, _ = random_problem(rng, "softmax_cross_entropy", "adam", sizes=(4, 3, 2), n=1,
                                batch_size=2)
    with pytest.raises(ValueError, match=r"^Receive FIFO depth must be a positive integer, "
                                         r"not 0$"):
        StreamLink(TrainableMLP(spec), divisor=4, rx_depth=0)
