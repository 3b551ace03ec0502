"""Latency of networks whose layers stream pixels, measured in Amaranth's simulator.

For a chain of vector engines the latency is the sum of the engines' latencies. Once a layer
streams pixels, its first output waits for enough input pixels (a convolution for ``kh - 1``
rows, a flatten for the whole frame), so the end-to-end figure depends on how the engines'
schedules interleave; it is measured instead, on one frame of zeros at full rate with the output
always ready. The simulation is the same cycle-accurate model of the design that Verilog is
produced from, so the figure is the hardware's.
"""

from amaranth.sim import Simulator

__all__ = ["simulate_timing"]


def simulate_timing(network, *, input_transfers, output_transfers, max_cycles=200_000,
                    on_cycle=None):
    """Stream one inference of zeros through ``network`` at full rate; ``on_cycle(ctx)``, if
    given, is called once per cycle (to sample other signals of the design).

    Returns
    -------
    dict
        ``latency`` (cycles from the first input transfer to the first output transfer) and
        ``cycles_per_inference`` (from the first input transfer to the last output transfer,
        plus one).

    Raises
    ------
    RuntimeError
        If the outputs do not all arrive within ``max_cycles``.
    """
    accepted, produced = [], []

    async def driver(ctx):
        ctx.set(network.o.ready, 1)
        ctx.set(network.i.valid, 1)
        cycle = 0
        while len(produced) < output_transfers:
            if cycle > max_cycles:
                raise RuntimeError(f"Only {len(produced)} of {output_transfers} outputs after "
                                   f"{cycle} cycles")
            _, _, i_ready, o_valid = await ctx.tick().sample(network.i.ready, network.o.valid)
            if i_ready and len(accepted) < input_transfers:
                accepted.append(cycle)
                if len(accepted) == input_transfers:
                    ctx.set(network.i.valid, 0)
            if o_valid:
                produced.append(cycle)
            if on_cycle is not None:
                on_cycle(ctx)
            cycle += 1

    sim = Simulator(network)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.run()
    return {"latency": produced[0] - accepted[0],
            "cycles_per_inference": produced[-1] - accepted[0] + 1}
