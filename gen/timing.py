"""Latency of networks whose layers stream pixels, measured in Amaranth's simulator, or for
large designs on Verilator (:func:`verilator_timing`).

For a chain of vector engines the latency is the sum of the engines' latencies. Once a layer
streams pixels, its first output waits for enough input pixels (a convolution for ``kh - 1``
rows, a flatten for the whole frame), so the end-to-end figure depends on how the engines'
schedules interleave; it is measured instead, on one frame of zeros at full rate with the output
always ready. The simulation is the same cycle-accurate model of the design that Verilog is
produced from, so the figure is the hardware's.
"""

from amaranth.sim import Simulator

from nnfab.errors import SimulationError

__all__ = ["NetworkVerilog", "convert_network", "network_details", "network_from_details",
           "network_verilog", "simulate_timing", "verilator_timing"]


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


def verilator_timing(verilog, *, model, top, cache_dir=None):
    """:func:`simulate_timing`'s figures for a design too large for Amaranth's simulator: one
    inference of zeros at full rate, output always ready, through the HDL harness on Verilator
    (:func:`nnfab.sim.harness.run_harness`). The harness build is the one ``nnfab verify``
    makes of the same Verilog for a long run (``-O1``), and a later verify, finding only that
    build in the cache, runs it (:func:`nnfab.sim.harness.choose_optimize`).

    Parameters
    ----------
    verilog : str
        The design's Verilog (top module ``top``).
    model : nnfab.ir.Model
        The model it was built from (stream shapes and formats).
    cache_dir : path, optional
        As :func:`nnfab.sim.runner.run_cocotb`.

    Returns
    -------
    dict
        ``latency`` and ``cycles_per_inference``, as :func:`simulate_timing`.

    Raises
    ------
    SimulationError
        If the build fails or the outputs do not all arrive.
    """
    from nnfab.packing import packed_width
    from nnfab.sim.harness import run_harness

    lanes_in, lanes_out = model.input_shape[-1], model.output_shape[-1]
    n_in, n_out = model.n_inputs // lanes_in, model.n_outputs // lanes_out
    run = run_harness(verilog, toplevel=top, words_in=[0] * n_in, n_out=n_out,
                      warmup_in=n_in, warmup_out=n_out, p_idle=0.0, p_stall=0.0,
                      in_width=packed_width([model.input_format] * lanes_in),
                      out_width=packed_width([model.output_format] * lanes_out),
                      transfers_per_vector=n_in, cache_dir=cache_dir, optimize=True)
    if run.timed_out or run.latency is None:
        raise SimulationError(f"The timing simulation of {top!r} on Verilator ended after "
                              f"{run.counters.get('cycle')} cycles with "
                              f"{run.counters.get('n_out')} of {n_out} outputs")
    return {"latency": run.latency, "cycles_per_inference": run.cycles}


def convert_network(network, *, name, say=None, cache_dir=None):
    """The Verilog of ``network`` (a :class:`~nnfab.gen.assemble.Network`, top module
    ``name``); for a network too large to simulate in Amaranth
    (:attr:`~nnfab.gen.assemble.Network.simulation_too_slow`), also its timing measured on
    Verilator (:func:`verilator_timing`) and given to the network, so its ``latency`` is
    read without an Amaranth simulation. ``say`` is called before each step.

    Raises
    ------
    SimulationError
        As :func:`verilator_timing`.
    """
    from amaranth.back import verilog

    say = say or (lambda text: None)
    say("converting to Verilog")
    text = verilog.convert(network, name=name, emit_src=False)
    if network.simulation_too_slow:
        say(f"measuring the latency on Verilator (about {network.simulated_layer_cycles:,} "
            f"layer-cycles: too long for Amaranth's simulator)")
        network.use_timing(verilator_timing(text, model=network.model, top=name,
                                            cache_dir=cache_dir))
    return text


def network_details(network):
    """What a build needs of ``network`` besides its Verilog, measured on it (so simulated
    when it needs a simulation), for :func:`nnfab.gen.verilog_cache.cached_verilog`.

    Returns
    -------
    dict
        ``latency`` and ``initiation_interval`` (cycles); for a network whose timing is
        simulated (:attr:`~nnfab.gen.assemble.Network.timing_needs_simulation`) also
        ``cycles_per_inference``; ``skip_fifo_depths``: ``[layer, input index, depth]`` rows
        (empty for a chain).
    """
    details = {"latency": int(network.latency),
               "initiation_interval": int(network.initiation_interval),
               "skip_fifo_depths": [[layer, index, int(depth)] for (layer, index), depth
                                    in sorted(network.skip_fifo_depths.items())]}
    if network.timing_needs_simulation:
        details["cycles_per_inference"] = int(network.timing["cycles_per_inference"])
    return details


def network_from_details(model, details, *, multiplier_threshold=None):
    """The :class:`~nnfab.gen.assemble.Network` of ``model`` with the skip FIFO depths and
    timing of ``details`` (:func:`network_details` of the same model and options), so that
    reading its figures simulates nothing."""
    from .assemble import Network

    network = Network(model, multiplier_threshold=multiplier_threshold,
                      skip_fifo_depths={(layer, index): depth for layer, index, depth
                                        in details["skip_fifo_depths"]})
    if network.timing_needs_simulation:
        network.use_timing(details)
    return network


class NetworkVerilog:
    """The Verilog of a model and the figures measured on it (:func:`network_verilog`).

    Attributes
    ----------
    verilog : str
    details : dict
        As :func:`network_details`.
    hit : bool
        Whether the Verilog came from the cache.
    """

    def __init__(self, model, verilog, details, hit, *, multiplier_threshold, network=None):
        self.verilog, self.details, self.hit = verilog, details, hit
        self._model, self._multiplier_threshold = model, multiplier_threshold
        self._network = network

    @property
    def network(self):
        """The :class:`~nnfab.gen.assemble.Network` the Verilog is of: the one converted, or
        for a cache hit one made on first use with the cached figures
        (:func:`network_from_details`)."""
        if self._network is None:
            self._network = network_from_details(
                self._model, self.details, multiplier_threshold=self._multiplier_threshold)
        return self._network


def network_verilog(model, *, name, multiplier_threshold, cache_dir, use_cache=True,
                    say=None):
    """The Verilog of ``model`` (top module ``name``) and the figures measured on it:
    converted and timed here, or, for a model converted before with the same options by the
    same nnfab, from the cache (:mod:`nnfab.gen.verilog_cache`), which ``nnfab build`` and
    ``nnfab verify`` share.

    Returns
    -------
    NetworkVerilog

    Raises
    ------
    SimulationError
        As :func:`convert_network`.
    """
    from .assemble import Network
    from .verilog_cache import cached_verilog

    made = []

    def convert():
        say_ = say or (lambda text: None)
        say_("elaborating engines")
        network = Network(model, multiplier_threshold=multiplier_threshold)
        made.append(network)
        text = convert_network(network, name=name, say=say, cache_dir=cache_dir)
        return text, network_details(network)

    from . import assemble

    # The bounds on Amaranth simulations are constants, but they decide whether the skip FIFOs
    # get measured or analytic depths (different Verilog): part of the key all the same.
    text, details, hit = cached_verilog(
        model, convert, cache_dir=cache_dir, use_cache=use_cache,
        multiplier_threshold=multiplier_threshold,
        max_simulated_layer_cycles=assemble.MAX_SIMULATED_LAYER_CYCLES,
        max_simulated_transfers=assemble.MAX_SIMULATED_TRANSFERS)
    return NetworkVerilog(model, text, details, hit, multiplier_threshold=multiplier_threshold,
                          network=made[0] if made else None)
