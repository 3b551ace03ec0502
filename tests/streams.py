"""Stream drivers for Amaranth-simulator tests: random idle cycles on inputs, random
back-pressure on outputs, and the cycle of every transfer (to measure latency and II)."""

from dataclasses import dataclass, field

from amaranth.sim import Simulator

__all__ = ["StreamRun", "send", "receive", "run_stream"]


@dataclass
class StreamRun:
    outputs: list = field(default_factory=list)
    accepted_at: list = field(default_factory=list)
    produced_at: list = field(default_factory=list)

    @property
    def first_latency(self):
        """Cycles from the first accepted input to its output being transferred."""
        return self.produced_at[0] - self.accepted_at[0]


async def send(ctx, port, payloads, *, rng=None, p_idle=0.0, accepted_at=None, cycle=0):
    """Transfer ``payloads`` on stream ``port`` (valid/ready/payload), idling with chance
    ``p_idle`` per cycle; appends the cycle of each transfer to ``accepted_at``, counting from
    ``cycle`` (the caller's cycle count when it calls). Returns the cycle count at the end."""
    for payload in payloads:
        while rng is not None and rng.random() < p_idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        while True:
            _, _, ready = await ctx.tick().sample(port.ready)
            cycle += 1
            if ready:
                if accepted_at is not None:
                    accepted_at.append(cycle - 1)
                break
    ctx.set(port.valid, 0)
    return cycle


async def receive(ctx, port, n, *, rng=None, p_stall=0.0, outputs, produced_at=None,
                  max_cycles=100_000):
    """Collect ``n`` payloads from stream ``port`` into ``outputs``, holding ``ready`` low
    with chance ``p_stall`` per cycle."""
    cycle = 0
    while len(outputs) < n:
        if cycle > max_cycles:
            raise AssertionError(f"Only {len(outputs)} of {n} outputs after {cycle} cycles")
        ready = not (rng is not None and rng.random() < p_stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        cycle += 1
        if valid and ready:
            outputs.append(payload)
            if produced_at is not None:
                produced_at.append(cycle - 1)
    ctx.set(port.ready, 0)


def run_stream(dut, inputs, *, rng=None, p_idle=0.0, p_stall=0.0, n_outputs=None,
               max_cycles=None):
    """Push ``inputs`` (payload values) into ``dut.i`` and collect ``dut.o``'s payloads.

    ``p_idle`` is the chance that the producer leaves ``i.valid`` low in a cycle, ``p_stall``
    the chance that the consumer leaves ``o.ready`` low; both draw from ``rng`` (a
    ``random.Random``). Returns the payloads and the cycle index of every transfer.
    """
    n_outputs = len(inputs) if n_outputs is None else n_outputs
    max_cycles = max_cycles or 20 * (len(inputs) + 50)
    run = StreamRun()

    async def producer(ctx):
        await send(ctx, dut.i, inputs, rng=rng, p_idle=p_idle, accepted_at=run.accepted_at)

    async def consumer(ctx):
        await receive(ctx, dut.o, n_outputs, rng=rng, p_stall=p_stall, outputs=run.outputs,
                      produced_at=run.produced_at, max_cycles=max_cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return run
