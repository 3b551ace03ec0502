"""Stream drivers for Amaranth-simulator tests: random idle cycles on the input, random
back-pressure on the output, and the cycle of every transfer (to measure latency and II)."""

from dataclasses import dataclass

from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream"]


@dataclass(frozen=True)
class StreamRun:
    outputs: list
    accepted_at: list
    produced_at: list

    @property
    def first_latency(self):
        """Cycles from the first accepted input to its output being transferred."""
        return self.produced_at[0] - self.accepted_at[0]


def run_stream(dut, inputs, *, rng=None, p_idle=0.0, p_stall=0.0, n_outputs=None,
               max_cycles=None):
    """Push ``inputs`` (payload values) into ``dut.i`` and collect ``dut.o``'s payloads.

    ``p_idle`` is the chance that the producer leaves ``i.valid`` low in a cycle, ``p_stall``
    the chance that the consumer leaves ``o.ready`` low; both draw from ``rng`` (a
    ``random.Random``). Returns the payloads and the cycle index of every transfer.
    """
    n_outputs = len(inputs) if n_outputs is None else n_outputs
    max_cycles = max_cycles or 20 * (len(inputs) + 50)
    accepted_at, produced_at, outputs = [], [], []

    async def producer(ctx):
        cycle = 0
        for payload in inputs:
            while rng is not None and rng.random() < p_idle:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, payload)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    accepted_at.append(cycle - 1)
                    break
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycle = 0
        while len(outputs) < n_outputs:
            if cycle > max_cycles:
                raise AssertionError(f"Only {len(outputs)} of {n_outputs} outputs after "
                                     f"{cycle} cycles")
            ready = not (rng is not None and rng.random() < p_stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if valid and ready:
                outputs.append(payload)
                produced_at.append(cycle - 1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return StreamRun(outputs, accepted_at, produced_at)
