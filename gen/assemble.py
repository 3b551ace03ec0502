"""Network assembly: the IR's graph of layers as hardware engines joined by streams into one
component.

Engines come from a :class:`Backend`, a table from layer kind to engine builder: the default
:data:`CONSTANT_WEIGHTS` backend builds every layer with its weights as constants; a board may
use another (:func:`nnfab.boards.network.rom_backend`). A tensor read by several layers goes
through a :class:`~nnfab.hdl.fork.Broadcast`; each input of a layer that joins branches
(``add``, ``concatenate``) goes through a :class:`~nnfab.hdl.fork.SkipFifo` as deep as that
branch must run ahead of the slowest one (:func:`skip_fifo_depths_of`: simulated, or
analytic for large frames).
"""

import math
from dataclasses import dataclass, field

from amaranth.hdl import Module
from amaranth.lib import wiring

from nnfab.errors import UnsupportedLayerError
from nnfab.hdl.activations import Activation, Argmax
from nnfab.hdl.softmax import Softmax
from nnfab.hdl.add_tflite import AddTfliteEngine
from nnfab.hdl.batchnorm import BatchNormEngine
from nnfab.hdl.cast import fixed_shape
from nnfab.hdl.conv import ConvEngine
from nnfab.hdl.dense import DenseEngine
from nnfab.hdl.dense_rom import DenseRomEngine
from nnfab.hdl.layout import Flatten, ZeroPadding
from nnfab.hdl.multithreshold import MultiThresholdEngine
from nnfab.hdl.output_stage import OutputStageEngine
from nnfab.hdl.fork import Broadcast, SkipFifo, skip_fifo_entries
from nnfab.hdl.join import Add, Concatenate
from nnfab.hdl.resize import Upsample2D
from nnfab.hdl.shift_add import ShiftAddDense
from nnfab.hdl.shift_add_chain import ShiftAddChain
from nnfab.hdl.pool_tflite import GlobalAveragePoolTfliteEngine
from nnfab.hdl.pooling import GlobalPoolEngine, PoolEngine
from nnfab.hdl.quantize import LaneQuantizer
from nnfab.hdl.recurrent import RecurrentEngine
from nnfab.hdl.softmax_hls4ml import Hls4mlSoftmax
from nnfab.hdl.softmax_tflite import TfliteSoftmax
from nnfab.hdl.unused import discard
from nnfab.hdl.vector_pipeline import vector_signature

from nnfab.ir import INPUT

__all__ = ["ENGINES", "Backend", "CONSTANT_WEIGHTS", "MAX_SIMULATED_LAYER_CYCLES",
           "MAX_SIMULATED_TRANSFERS", "engine_for",
           "Network", "skip_fifo_depths_of"]

#: Engine builder of each layer kind for constant weights: ``ENGINES[kind](layer, backend)``
#: returns a stream component with ``i`` (an array of streams for layers with several
#: inputs), ``o``, ``latency`` and ``initiation_interval``.
ENGINES = {}


def _engine(kind):
    def register(builder):
        ENGINES[kind] = builder
        return builder
    return register


@dataclass(frozen=True)
class Backend:
    """A table of engine builders by layer kind, and the options they read.

    Parameters
    ----------
    name : str
    engines : dict of str to callable
        ``engines[kind](layer, backend)`` builds the engine of a layer.
    multiplier_threshold : int
        As :class:`~nnfab.hdl.dense.DenseEngine`.
    rom_reuse_factors : dict of str to int
        For backends that keep weights in ROMs: reuse factor by dense layer name.
    """

    name: str
    engines: dict
    multiplier_threshold: int = 3
    rom_reuse_factors: dict = field(default_factory=dict)

    def replace(self, **changes):
        return Backend(**{**self.__dict__, **changes})

    def engine(self, layer):
        """The engine of ``layer``.

        Raises
        ------
        UnsupportedLayerError
            If this backend has no engine for the layer's kind.
        """
        try:
            builder = self.engines[layer.kind]
        except KeyError:
            raise UnsupportedLayerError(f"Layer {layer.name!r}: no hardware engine for a "
                                        f"{layer.kind!r} layer") from None
        return builder(layer, self)


CONSTANT_WEIGHTS = Backend("constant weights", ENGINES)


def engine_for(layer, *, multiplier_threshold=3):
    """The constant-weight engine of one IR layer (see :class:`Backend.engine`)."""
    return CONSTANT_WEIGHTS.replace(multiplier_threshold=multiplier_threshold).engine(layer)


_engine("dense")(lambda layer, b: DenseEngine(layer.spec, reuse_factor=layer.reuse_factor,
                                              multiplier_threshold=b.multiplier_threshold,
                                              fabric_multipliers=layer.fabric_multipliers))
_engine("activation")(lambda layer, b: Activation(kind=layer.function, n=layer.shape[-1],
                                                  fin=layer.fin, fout=layer.fout,
                                                  fabric_multipliers=layer.fabric_multipliers,
                                                  **dict(layer.params)))
_engine("softmax")(lambda layer, b: Softmax(n=layer.n, fin=layer.fin, fout=layer.fout,
                                            exp_table=layer.exp_table,
                                            inv_table=layer.inv_table))
_engine("argmax")(lambda layer, b: Argmax(n=layer.n, fin=layer.fin))
_engine("output_stage")(lambda layer, b: OutputStageEngine(
    layer.stage, lanes=layer.shape[-1], in_width=layer.fin.width,
    reuse_factor=layer.reuse_factor))
_engine("multithreshold")(lambda layer, b: MultiThresholdEngine(
    layer.thresholds, base=layer.base, fin=layer.fin, fout=layer.fout))
_engine("tflite_average_pool")(lambda layer, b: GlobalAveragePoolTfliteEngine(
    layer.divider, lanes=layer.shape[-1]))
_engine("tflite_add")(lambda layer, b: AddTfliteEngine(layer.params,
                                                      lanes=layer.shape[-1]))
_engine("tflite_softmax")(lambda layer, b: TfliteSoftmax(
    n=layer.n, input_scale=layer.input_scale, beta=layer.beta))
_engine("hls4ml_softmax")(lambda layer, b: Hls4mlSoftmax(layer.spec))
_engine("conv2d")(lambda layer, b: ConvEngine(
    layer.spec, reuse_factor=layer.reuse_factor,
    adder_graph=None if layer.adder_graph is None else dict(layer.adder_graph),
    fabric_multipliers=layer.fabric_multipliers))
_engine("pool")(lambda layer, b: PoolEngine(layer.spec))
_engine("global_pool")(lambda layer, b: GlobalPoolEngine(layer.spec))
_engine("batchnorm")(lambda layer, b: BatchNormEngine(layer.spec))
_engine("flatten")(lambda layer, b: Flatten(input_shape=tuple(layer.shape),
                                            shape=fixed_shape(layer.fmt)))
_engine("zero_pad")(lambda layer, b: ZeroPadding(input_shape=tuple(layer.shape),
                                                 padding=tuple(map(tuple, layer.padding)),
                                                 shape=fixed_shape(layer.fmt)))


@_engine("shift_add_dense")
def _shift_add_dense(layer, backend):
    pre, act, post = layer.input_quantizer, layer.activation, layer.output_quantizer
    return ShiftAddDense(
        layer.dense.spec, fin=layer.input_format,
        input_lanes=pre.formats if pre is not None else layer.input_lanes,
        activation=(act.function, act.fout, dict(act.params)) if act is not None else None,
        output_lanes=post.formats if post is not None else None,
        fout=layer.output_format, adder_levels_per_stage=layer.adder_levels_per_stage,
        clock_mhz=layer.clock_mhz, family=layer.family,
        lut_adder_width=layer.lut_adder_width, multiplier_threshold=layer.multiplier_threshold)


_engine("shift_add_chain")(lambda layer, b: ShiftAddChain(
    [_shift_add_dense(part, b) for part in layer.parts], names=[p.name for p in layer.parts]))


_engine("rom_dense")(lambda layer, b: DenseRomEngine(
    layer.spec, reuse_factor=layer.rom_reuse_factor, output_stage=layer.stage))
_engine("add")(lambda layer, b: Add(lanes=layer.shape[-1], fins=tuple(layer.fins),
                                    fout=layer.fout))
_engine("concatenate")(lambda layer, b: Concatenate(
    lanes=tuple(s[-1] for s in layer.shapes), fins=tuple(layer.fins), fout=layer.fout))
_engine("recurrent")(lambda layer, b: RecurrentEngine(
    layer.spec, reuse_factor=layer.reuse_factor, cell_lanes=layer.cell_lanes,
    multiplier_threshold=b.multiplier_threshold))
_engine("upsample")(lambda layer, b: Upsample2D(input_shape=tuple(layer.shape),
                                                size=tuple(layer.size),
                                                shape=fixed_shape(layer.fmt)))


@_engine("quantize")
def _quantize(layer, backend):
    if len(layer.shape) != 1:
        raise UnsupportedLayerError(f"Layer {layer.name!r}: per-element requantize of shape "
                                    f"{layer.shape} has no engine; only of vectors")
    return LaneQuantizer(fin=layer.fin, formats=layer.formats, fout=layer.fout)


def _transfers(shape):
    """Stream transfers of one tensor per inference: one per position of the leading axes."""
    return math.prod(shape[:-1])


class Network(wiring.Component):
    """A whole network: one engine per IR layer, joined as the model's graph says.

    Back-pressure passes through every engine, fork and join, so the network as a whole is a
    stream component like its parts.

    Parameters
    ----------
    model : nnfab.ir.Model
    backend : Backend, optional
        Where engines come from; :data:`CONSTANT_WEIGHTS` by default.
    multiplier_threshold : int, optional
        As :class:`~nnfab.hdl.dense.DenseEngine` (overrides the backend's).
    skip_fifo_depths : dict of (str, int) to int, optional
        Depth of the FIFO before input ``k`` of join layer ``name``; measured by
        :func:`skip_fifo_depths` when not given.

    Members
    -------
    i : the input stream (one input vector, or one pixel, per transfer)
    o : the last layer's output stream

    Attributes
    ----------
    latency : int
        Cycles from the first transfer of an input to its first output: the sum of the
        engines' latencies for a chain of layers that take whole vectors; measured in
        Amaranth's simulator (:func:`nnfab.gen.timing.simulate_timing`) once a layer streams
        pixels or branches join, unless a build measured it on Verilator first (see
        :attr:`simulation_too_slow`).
    initiation_interval : int
        Cycles between inferences at full rate (between the first input transfers of
        consecutive inferences): the largest engine II times that engine's transfers per
        inference.
    engines : list of (layer, engine)
    skip_fifo_depths : dict of (str, int) to int
        FIFO depth (transfers) before each input of each join layer.
    """

    def __init__(self, model, *, backend=None, multiplier_threshold=None, skip_fifo_depths=None):
        backend = backend or CONSTANT_WEIGHTS
        if multiplier_threshold is not None:
            backend = backend.replace(multiplier_threshold=multiplier_threshold)
        self._model = model
        self._backend = backend
        self._timing = None
        self._engines = [(layer, backend.engine(layer)) for layer in model.layers]
        # Measured on first use (a simulation): building a network to read its figures
        # stays cheap.
        self._skip_fifo_depths = None if skip_fifo_depths is None else dict(skip_fifo_depths)
        # A network is often made only to read its figures (reports, manifests): not being
        # elaborated is then no mistake worth a warning.
        discard(self)
        for _, engine in self._engines:
            discard(engine, deep=True)
        input_port = wiring.In(vector_signature(model.input_format, model.input_shape[-1]))
        super().__init__({"i": input_port, "o": self._engines[-1][1].signature.members["o"]})

    @property
    def model(self):
        return self._model

    @property
    def backend(self):
        return self._backend

    @property
    def engines(self):
        return list(self._engines)

    @property
    def skip_fifo_depths(self):
        return dict(self._depths())

    def _depths(self):
        if self._skip_fifo_depths is None:
            self._skip_fifo_depths = {}
            if any(len(layer.inputs) > 1 for layer in self._model.layers):
                # The simulation that measures the depths may give this network's timing too.
                self._skip_fifo_depths, timing = _measure_skip_fifos(
                    self._model, self._backend, analytic=self.simulation_too_slow)
                self._timing = self._timing or timing
        return self._skip_fifo_depths

    @property
    def timing_needs_simulation(self):
        """Whether :attr:`latency` comes from a simulation (a layer streams pixels or branches
        join) rather than the sum of the engines' latencies."""
        return self.streams_pixels or not self._model.is_chain

    @property
    def simulated_layer_cycles(self):
        """Estimated cost of the Amaranth simulations that :attr:`skip_fifo_depths` and
        :attr:`timing` run, in layer-cycles: cycles simulated (one inference, plus a run of
        several when branches join) times the number of layers."""
        latency = sum(math.ceil(engine.latency) for _, engine in self._engines)
        ii = max(1, self.initiation_interval)
        cycles = latency + ii
        if any(len(layer.inputs) > 1 for layer in self._model.layers):
            cycles += (math.ceil(latency / ii) + 3) * ii + latency
        return cycles * len(self._engines)

    @property
    def simulation_too_slow(self):
        """Whether the timing simulation would exceed :data:`MAX_SIMULATED_LAYER_CYCLES`: then
        the skip FIFOs get the analytic depths, and builds measure the timing of the Verilog
        on Verilator (:func:`nnfab.gen.timing.verilator_timing`, given to :meth:`use_timing`)."""
        return (self.timing_needs_simulation
                and self.simulated_layer_cycles > MAX_SIMULATED_LAYER_CYCLES)

    def use_timing(self, timing):
        """Take ``timing`` (``latency`` and ``cycles_per_inference``, measured elsewhere: on
        Verilator) as this network's instead of simulating it."""
        self._timing = {"latency": int(timing["latency"]),
                        "cycles_per_inference": int(timing["cycles_per_inference"])}

    @property
    def streams_pixels(self):
        """Whether some layer takes several transfers per input: ``(H, W, C)`` frames one
        pixel per transfer, or ``(n_steps, n_in)`` sequences one time step per transfer."""
        return any(len(layer.input_shape) >= 2 for layer in self._model.layers)

    @property
    def timing(self):
        """``latency`` and ``cycles_per_inference`` from a simulation of one inference (the
        one that measured the skip FIFOs' depths, when it is exact for this network)."""
        self._depths()
        if self._timing is None:
            from .timing import simulate_timing

            model = self._model
            lanes_in, lanes_out = model.input_shape[-1], model.output_shape[-1]
            self._timing = simulate_timing(
                self._fresh_copy(),
                input_transfers=model.n_inputs // lanes_in,
                output_transfers=model.n_outputs // lanes_out)
        return self._timing

    def _fresh_copy(self):
        """An unelaborated twin of this network, to simulate."""
        return Network(self._model, backend=self._backend,
                       skip_fifo_depths=self.skip_fifo_depths)

    @property
    def latency(self):
        if self.timing_needs_simulation:
            return self.timing["latency"]
        return sum(engine.latency for _, engine in self._engines)

    @property
    def initiation_interval(self):
        """Cycles between the first transfers of consecutive inferences at full rate: the
        largest of the engines' cycles per inference (an engine's II, in cycles per input
        transfer, times its input transfers per inference)."""
        return max(math.ceil(engine.initiation_interval * _transfers(layer.input_shape))
                   for layer, engine in self._engines)

    def elaborate(self, platform):
        m = Module()
        self._skip_fifos = {}
        consumers = self._model.consumers()
        # The stream of every tensor, one per reader (through a fork when several read it).
        sources = {INPUT: wiring.flipped(self.i)}
        sources.update({layer.name: engine.o for layer, engine in self._engines})
        readers = {}
        for tensor, names in consumers.items():
            if tensor == self._model.layers[-1].name:
                continue
            if len(names) == 1:
                readers[tensor] = [sources[tensor]]
                continue
            shape, lanes = self._tensor_layout(tensor)
            fork = Broadcast(n_outputs=len(names), lanes=lanes, shape=shape)
            m.submodules[f"{_identifier(tensor)}__fork"] = fork
            wiring.connect(m, sources[tensor], fork.i)
            readers[tensor] = list(fork.o)
        taken = {tensor: 0 for tensor in readers}
        for layer, engine in self._engines:
            m.submodules[_identifier(layer.name)] = engine
            ports = [engine.i] if len(layer.inputs) == 1 else list(engine.inputs)
            for k, (tensor, port) in enumerate(zip(layer.inputs, ports)):
                stream = readers[tensor][taken[tensor]]
                taken[tensor] += 1
                depth = self.skip_fifo_depths.get((layer.name, k), 0)
                if depth:
                    shape, lanes = self._tensor_layout(tensor)
                    fifo = SkipFifo(depth=depth, lanes=lanes, shape=shape)
                    self._skip_fifos[(layer.name, k)] = fifo
                    m.submodules[f"{_identifier(layer.name)}__skip{k}"] = fifo
                    wiring.connect(m, stream, fifo.i)
                    stream = fifo.o
                wiring.connect(m, stream, port)
        wiring.connect(m, self._engines[-1][1].o, wiring.flipped(self.o))
        return m

    def _tensor_layout(self, tensor):
        if tensor == INPUT:
            shape, fmt = self._model.input_shape, self._model.input_format
        else:
            layer = self._model.layer(tensor)
            shape, fmt = layer.output_shape, layer.output_format
        return fixed_shape(fmt), shape[-1]


def _identifier(name):
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


#: Largest number of input transfers per inference for which :func:`skip_fifo_depths_of`
#: measures the depths in Amaranth's simulator (a 128x128 image); beyond it, a simulation of
#: several frames would take hours.
MAX_SIMULATED_TRANSFERS = 16_384

#: Budget of a network's Amaranth simulations (skip-FIFO depths, timing), in layer-cycles
#: (:attr:`Network.simulated_layer_cycles`). One costs about a millisecond on one core: the
#: 25-layer ResNet-8 of MLPerf Tiny (II 36,899 cycles) simulated 3,000 cycles in about
#: 90 s, and its build had not measured its skip FIFOs after 80 minutes. Beyond the budget
#: (about ten minutes) the depths are analytic and builds time the Verilog on Verilator.
MAX_SIMULATED_LAYER_CYCLES = 600_000


def skip_fifo_depths_of(model, backend=CONSTANT_WEIGHTS, *, slack=2):
    """Depth of the FIFO before every input of every join layer, so that no branch waits
    for a fork that waits for it, and the network keeps its initiation interval.

    Models with more than :data:`MAX_SIMULATED_TRANSFERS` input transfers per inference get,
    without a simulation, the analytic bound of
    :func:`nnfab.gen.skip_fifos.analytic_skip_fifo_depths`: each branch's dataflow demand
    (line-buffer rows, pooling and upsampling rows) plus what its pipelines take in meanwhile,
    from the engines' schedules and latencies.

    The network is simulated at full rate with the output always ready (Amaranth's
    simulator), with FIFOs that hold every transfer of the run: once for one inference (its
    latency ``L`` in cycles), then for ``ceil(L / II) + 2`` inferences back to back, enough to
    fill every branch. Each FIFO's largest fill level plus
    ``slack`` becomes its depth: the transfers that branch must run ahead of the slowest
    branch. A FIFO that stays empty is left out.

    Returns
    -------
    dict of (str, int) to int
        ``(layer name, input index)`` to depth in transfers.
    """
    return _measure_skip_fifos(model, backend, slack=slack)[0]


def _measure_skip_fifos(model, backend, *, slack=2, analytic=False):
    """:func:`skip_fifo_depths_of`, and the timing of the network built with those depths
    when its single-inference simulation gives it exactly, else None; with ``analytic`` (or
    beyond :data:`MAX_SIMULATED_TRANSFERS`) the analytic depths without a simulation.

    It does when every join input keeps its FIFO and none of them filled to the depth chosen
    in that run: a FIFO that never fills hands on its transfers at the same cycles whatever
    its depth (the depths only grow from the longer run), so the network with the chosen
    depths runs cycle for cycle as the simulated one.
    """
    from .timing import simulate_timing

    joins = [(layer, k) for layer in model.layers if len(layer.inputs) > 1
             for k in range(len(layer.inputs))]
    if analytic or _transfers(model.input_shape) > MAX_SIMULATED_TRANSFERS:
        from .skip_fifos import analytic_skip_fifo_depths

        def engine_of(layer):
            engine = backend.engine(layer)
            discard(engine, deep=True)  # built only to read its schedule and latency
            return engine

        return analytic_skip_fifo_depths(model, engine_of, slack=slack), None
    levels = {(layer.name, k): 0 for layer, k in joins}

    def simulate(n):
        """Stream ``n`` inferences with FIFOs that can hold them all."""
        deep = {(layer.name, k): n * _transfers(layer.input_shapes[k]) + slack
                for layer, k in joins}
        network = Network(model, backend=backend, skip_fifo_depths=deep)

        def record(ctx):
            for key, fifo in network._skip_fifos.items():
                levels[key] = max(levels[key], ctx.get(fifo.level))

        timing = simulate_timing(network, input_transfers=n * _transfers(model.input_shape),
                                 output_transfers=n * _transfers(model.output_shape),
                                 on_cycle=record, max_cycles=200_000 * n)
        return timing, network.initiation_interval, deep

    (timing, ii, _) = simulate(1)
    single = dict(levels)
    _, _, deep = simulate(math.ceil(timing["latency"] / ii) + 2)
    depths = {key: min(level + slack, deep[key]) for key, level in levels.items() if level}
    exact = set(depths) == set(levels) and all(
        single[key] < skip_fifo_entries(depth) for key, depth in depths.items())
    return depths, timing if exact else None
