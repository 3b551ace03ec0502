"""Network assembly: the IR's layers as hardware engines chained by streams into one component."""

import math

from amaranth.hdl import Module
from amaranth.lib import wiring

from nnfab.errors import UnsupportedLayerError
from nnfab.hdl.activations import Activation, Argmax, Softmax
from nnfab.hdl.dense import DenseEngine

__all__ = ["engine_for", "Network"]


def engine_for(layer, *, multiplier_threshold=3):
    """The hardware engine of one IR layer (a stream component with ``i``, ``o``, ``latency``
    and ``initiation_interval``).

    Raises
    ------
    UnsupportedLayerError
        If the layer kind has no engine.
    """
    if layer.kind == "dense":
        return DenseEngine(layer.spec, reuse_factor=layer.reuse_factor,
                           multiplier_threshold=multiplier_threshold)
    if layer.kind == "activation":
        return Activation(kind=layer.function, n=layer.shape[-1], fin=layer.fin,
                          fout=layer.fout, **dict(layer.params))
    if layer.kind == "softmax":
        return Softmax(n=layer.n, fin=layer.fin, fout=layer.fout, exp_table=layer.exp_table,
                       inv_table=layer.inv_table)
    if layer.kind == "argmax":
        return Argmax(n=layer.n, fin=layer.fin)
    if hasattr(layer, "engine"):
        return layer.engine()
    raise UnsupportedLayerError(f"Layer {layer.name!r}: no hardware engine for a "
                                f"{layer.kind!r} layer")


class Network(wiring.Component):
    """A whole network: one engine per IR layer, each one's output stream feeding the next.

    Back-pressure passes through every engine, so the network as a whole is a stream component
    like its parts.

    Parameters
    ----------
    model : nnfab.gen.ir.Model
    multiplier_threshold : int
        As :class:`~nnfab.hdl.dense.DenseEngine`.

    Members
    -------
    i : the first engine's input stream (one input vector, or one pixel, per transfer)
    o : the last engine's output stream

    Attributes
    ----------
    latency : int
        Cycles from the first transfer of an input to its first output: the sum of the
        engines' latencies when every layer takes whole vectors; measured in Amaranth's
        simulator (:func:`nnfab.gen.timing.simulate_timing`) once a layer streams pixels.
    initiation_interval : int
        Cycles between inferences at full rate (between the first input transfers of
        consecutive inferences): the largest engine II times that engine's transfers per
        inference.
    engines : list of (layer, engine)
    """

    def __init__(self, model, *, multiplier_threshold=3):
        self._model = model
        self._multiplier_threshold = multiplier_threshold
        self._timing = None
        self._engines = [(layer, engine_for(layer, multiplier_threshold=multiplier_threshold))
                         for layer in model.layers]
        # A network is often made only to read its figures (reports, manifests): not being
        # elaborated is then no mistake worth a warning.
        self._MustUse__silence = True
        for _, engine in self._engines:
            engine._MustUse__silence = True
        first, last = self._engines[0][1], self._engines[-1][1]
        super().__init__({"i": first.signature.members["i"],
                          "o": last.signature.members["o"]})

    @property
    def model(self):
        return self._model

    @property
    def engines(self):
        return list(self._engines)

    @property
    def streams_pixels(self):
        """Whether some layer takes ``(H, W, C)`` frames one pixel per transfer."""
        return any(len(layer.input_shape) == 3 for layer in self._model.layers)

    @property
    def timing(self):
        """``latency`` and ``cycles_per_inference`` from a simulation of one inference."""
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
        return Network(self._model, multiplier_threshold=self._multiplier_threshold)

    @property
    def latency(self):
        if self.streams_pixels:
            return self.timing["latency"]
        return sum(engine.latency for _, engine in self._engines)

    @property
    def initiation_interval(self):
        """Cycles between the first transfers of consecutive inferences at full rate: the
        largest of the engines' cycles per inference (an engine's II, in cycles per input
        transfer, times its input transfers per inference)."""
        return max(math.ceil(engine.initiation_interval
                             * math.prod(layer.input_shape[:-1]))
                   for layer, engine in self._engines)

    def elaborate(self, platform):
        m = Module()
        previous = None
        for layer, engine in self._engines:
            name = "".join(c if c.isalnum() or c == "_" else "_" for c in layer.name)
            m.submodules[name] = engine
            if previous is None:
                wiring.connect(m, wiring.flipped(self.i), engine.i)
            else:
                wiring.connect(m, previous.o, engine.i)
            previous = engine
        wiring.connect(m, previous.o, wiring.flipped(self.o))
        return m
