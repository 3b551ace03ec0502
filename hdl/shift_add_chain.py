"""Consecutive fused shift-add dense layers as one free-running pipeline, its registers placed
over the whole chain."""

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .cast import fixed_shape
from .pipeline import free_running_output
from .shift_add import ShiftAddDense
from .shift_add_timing import layer_graph
from .timing_model import schedule

__all__ = ["ShiftAddChain"]

#: The steps of a layer's output logic (:func:`~nnfab.hdl.shift_add_timing.layer_graph`).
_STEPS = ("cast", "act", "lane")


def _step_widths(layer, j):
    """Bits of output ``j``'s code after each step of its logic (cast, activation, lane)."""
    cast = layer.spec.output_format.width
    act = cast if layer._activation is None else layer._activation[1].width
    return cast, act, act if layer._output_lanes is None else layer._output_lanes[j].width


class ShiftAddChain(wiring.Component):
    """``layers[-1](… layers[1](layers[0](x)))``: consecutive
    :class:`~nnfab.hdl.shift_add.ShiftAddDense` layers as one pipeline with one skid FIFO.

    Each layer's adder graph, cast, activation and output requantizer are built as that layer
    builds them (bit-exact with it, so the golden model is the layers' golden models in
    order), but without the layer's own output register and skid FIFO: the layers' logic is
    one graph, and its pipeline registers are placed by the delay model
    (:func:`nnfab.hdl.timing_model.schedule`) over the whole chain, across layer boundaries.
    A layer's output logic is three nodes of the graph (the cast of the sum, the activation,
    the output lane's cast), so a register may fall between them; the next layer's input
    lanes read the previous layer's outputs. With ``adder_levels_per_stage`` the levels count
    on from one layer to the next. The pipeline runs free (registers load every cycle, a
    valid bit beside the data); one skid FIFO of ``latency`` entries behind the output
    register takes the back-pressure (:func:`nnfab.hdl.pipeline.free_running_output`), and
    ``i.ready`` comes from its credit. Layer ``n``'s logic is the submodule ``names[n]``, its
    signals named as in :class:`~nnfab.hdl.shift_add.ShiftAddDense`.

    Parameters
    ----------
    layers : sequence of ShiftAddDense, at least one
        The layers in order; each layer's ``fout`` must be the next one's ``fin`` and its
        ``n_out`` the next one's ``n_in``. They must agree on the timing (``clock_mhz``,
        ``family``, ``adder_levels_per_stage``), which the chain takes; the chain builds
        them, they are not used on their own.
    names : sequence of str or None
        Submodule name of each layer; default ``layer0``, ``layer1``, …

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(layers[0].fin), n_in)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(layers[-1].fout), n_out)))``

    Attributes
    ----------
    latency : int
        Register stages from ``i`` to ``o`` as the delay model places them (the output
        register included).
    initiation_interval : int
        1.
    estimated_f_max_hz : float
        The delay model's Fmax: 1 / its longest register-to-register path.

    Raises
    ------
    TypeError
        If a layer is not a ShiftAddDense.
    ValueError
        If there are no layers, the names do not match them, consecutive layers' formats or
        sizes differ, or the layers' timing options differ.
    """

    def __init__(self, layers, *, names=None):
        layers = tuple(layers)
        for layer in layers:
            if isinstance(layer, ShiftAddDense):
                layer._MustUse__silence = True  # built by the chain
        try:
            names = self._validate(layers, names)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected design is not an unused one
            raise
        self._layers, self._names = layers, names
        first = layers[0]
        self._model = first._timing
        self._clock_mhz = first.clock_mhz
        self._levels_per_stage = first._levels_per_stage
        self._schedule = self._place_registers()
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(first._fin),
                                                      first.spec.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(layers[-1]._fout),
                                                       layers[-1].spec.n_out))),
        })

    @staticmethod
    def _validate(layers, names):
        if not layers:
            raise ValueError("A shift-add chain needs at least one layer")
        for layer in layers:
            if not isinstance(layer, ShiftAddDense):
                raise TypeError(f"Layer must be a ShiftAddDense, not {layer!r}")
        if names is None:
            names = tuple(f"layer{n}" for n in range(len(layers)))
        names = tuple(names)
        if len(names) != len(layers) or len(set(names)) != len(names):
            raise ValueError(f"Names must be {len(layers)} distinct names, not {names!r}")
        for n, (a, b) in enumerate(zip(layers, layers[1:])):
            if a._fout != b._fin or a.spec.n_out != b.spec.n_in:
                raise ValueError(f"Layer {names[n + 1]!r} reads {b.spec.n_in} codes of "
                                 f"{b._fin}, but {names[n]!r} gives {a.spec.n_out} of "
                                 f"{a._fout}")
        timing = {(layer.clock_mhz, layer._family, layer._levels_per_stage) for layer in layers}
        if len(timing) != 1:
            raise ValueError(f"Layers of a shift-add chain must share their timing (clock, "
                             f"family, adder levels per stage), not {sorted(timing, key=str)!r}")
        return names

    def __repr__(self):
        return f"ShiftAddChain({list(self._layers)!r}, names={list(self._names)!r})"

    def _place_registers(self):
        """One schedule over every layer's graph: layer ``n``'s output ``j`` is the nodes
        ``(step, n, j)`` for the steps of its logic; the next layer's input lanes read them."""
        nodes, levels, sources, offset = [], {}, None, 0
        for n, layer in enumerate(self._layers):
            graph, outputs, layer_levels = layer_graph(layer._plan, sources=sources,
                                                       **layer._graph_options())
            nodes += graph
            levels.update((key, level + offset) for key, level in layer_levels.items())
            offset += layer.levels
            sources = []
            for j, (key, steps) in enumerate(outputs):
                if steps is None:  # always 0
                    sources.append(None)
                    continue
                widths = _step_widths(layer, j)
                for step, delay, width in zip(_STEPS, steps, widths):
                    nodes.append(((step, n, j), () if key is None else (key,), delay, 0.0,
                                  width, False))
                    levels[step, n, j] = offset
                    key = (step, n, j)
                sources.append(key)
        outputs = [(key, 0.0) for key in sources if key is not None] or [(None, 0.0)]
        period = None if self._clock_mhz is None else 1e3 / self._clock_mhz
        return schedule(nodes, outputs, period_ns=period, model=self._model,
                        levels_per_stage=self._levels_per_stage, levels=levels)

    @property
    def layers(self):
        return self._layers

    @property
    def names(self):
        return self._names

    @property
    def clock_mhz(self):
        """The target clock the registers are placed for (None with adder levels per
        stage)."""
        return self._clock_mhz

    @property
    def estimated_f_max_hz(self):
        return self._schedule.f_max_hz

    @property
    def levels(self):
        """Addition levels through the chain (the layers' deepest outputs, added)."""
        return sum(layer.levels for layer in self._layers)

    @property
    def n_adders(self):
        return sum(layer.n_adders for layer in self._layers)

    @property
    def n_shared_subexpressions(self):
        return sum(layer.n_shared_subexpressions for layer in self._layers)

    @property
    def n_shift_add_terms(self):
        return sum(layer.n_shift_add_terms for layer in self._layers)

    @property
    def n_multipliers(self):
        return sum(layer.n_multipliers for layer in self._layers)

    @property
    def latency(self):
        return self._schedule.latency

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        stages, last = self._schedule.stages, self._schedule.output_stage
        sources = [(self.i.payload[k], 0) for k in range(self._layers[0].spec.n_in)]
        for n, (layer, name) in enumerate(zip(self._layers, self._names)):
            sub = Module()
            m.submodules[name] = sub
            steps = [tuple(stages.get((step, n, j), last) for step in _STEPS)
                     for j in range(layer.spec.n_out)]
            # An output that is always 0 is a signal with no driver, in stage 0.
            codes = [Signal(fixed_shape(layer._fout), name=f"out{j}")
                     for j in range(layer.spec.n_out)]
            driven = set()
            layer._datapath(sub, sources, stages, steps,
                            lambda j, code: driven.add(j) or codes[j].eq(code))
            sources = [(code, steps[j][-1] if j in driven else 0)
                       for j, code in enumerate(codes)]
        out = Signal(len(Value.cast(self.o.payload)), name="out")
        width = fixed_shape(self._layers[-1]._fout).width
        for j, (value, stage) in enumerate(sources):
            for cut in range(stage + 1, last + 1):  # computed early: held to the last stage
                reg = Signal(value.shape(), name=f"out{j}_s{cut}", reset_less=True)
                m.d.sync += reg.eq(value)
                value = reg
            m.d.comb += out.word_select(j, width).eq(value)
        free_running_output(m, self.i, self.o, payload=out, latency=self.latency)
        return m
