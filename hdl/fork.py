"""Stream forks for model graphs: one stream to several consumers (:class:`Broadcast`), and
a FIFO for the shorter path into a join (:class:`SkipFifo`).

Where the paths from a fork into a join (:mod:`nnfab.hdl.join`) have different latencies, the
shorter one needs a :class:`SkipFifo` deep enough to hold what the longer one keeps in flight:
at least the inputs the longer path takes before its first output, minus one, or the fork
stalls and the network deadlocks; more for full rate. The generator measures the depths in
simulation, or bounds them from the engines' dataflow and schedules for large frames
(``nnfab.gen.skip_fifos``).
"""

from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import data, stream
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .checked import CheckedComponent, check_count

__all__ = ["Broadcast", "SkipFifo", "skip_fifo_entries"]


def _vector(shape, lanes):
    return stream.Signature(data.ArrayLayout(shape, lanes))


class Broadcast(CheckedComponent):
    """Fork: every transfer on ``i`` is delivered exactly once to each of ``n_outputs``
    output streams.

    Outputs may take the payload in different cycles: a flag per output remembers that it has
    taken the current one, and ``i.ready`` is high when every output has taken it or is taking
    it now. There is no other storage: a stalled output holds back the input, and with it every
    other output. ``o[k].valid`` depends on ``i.valid`` and the flags only, ``i.ready`` on the
    outputs' ``ready`` combinationally.

    Parameters
    ----------
    n_outputs : int, >= 1
    lanes : int, >= 1
        Elements per transfer (vector elements, or channels of one pixel).
    shape : Shape
        Element shape (``fixed_shape`` of the format).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, lanes)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, lanes))).array(n_outputs)``
        Output ``k`` is ``o[k]``.

    Attributes
    ----------
    latency : int
        0 cycles: the payload passes combinationally.
    initiation_interval : int
        1 cycle between transfers at full rate.

    Raises
    ------
    TypeError
        If ``n_outputs`` or ``lanes`` is not an integer.
    ValueError
        If ``n_outputs`` or ``lanes`` is below 1.
    """

    @staticmethod
    def _check(*, n_outputs, lanes, shape):
        check_count(n_outputs, "Number of outputs", 1)
        check_count(lanes, "Lanes", 1)

    def __init__(self, *, n_outputs, lanes, shape):
        self._n_outputs, self._lanes, self._shape = n_outputs, lanes, Shape.cast(shape)
        signature = _vector(self._shape, lanes)
        super().__init__({"i": In(signature), "o": Out(signature).array(n_outputs)})

    def __repr__(self):
        return (f"Broadcast(n_outputs={self._n_outputs!r}, lanes={self._lanes!r}, "
                f"shape={self._shape!r})")

    @property
    def n_outputs(self):
        return self._n_outputs

    @property
    def lanes(self):
        return self._lanes

    @property
    def latency(self):
        return 0

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        taken = Signal(self._n_outputs)
        m.d.comb += self.i.ready.eq(Cat(taken[k] | o.ready for k, o in enumerate(self.o)).all())
        for k, o in enumerate(self.o):
            m.d.comb += [o.valid.eq(self.i.valid & ~taken[k]), o.payload.eq(self.i.payload)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Else():
            for k, o in enumerate(self.o):
                with m.If(o.valid & o.ready):
                    m.d.sync += taken[k].eq(1)
        return m


def skip_fifo_entries(depth):
    """Entries of the FIFO a :class:`SkipFifo` of ``depth`` transfers builds: ``max(depth, 3)``
    (below 3 entries that FIFO takes a write only every other cycle)."""
    return max(depth, 3)


class SkipFifo(CheckedComponent):
    """A stream FIFO of at least ``depth`` transfers, for the shorter path into a join.

    Built on ``amaranth.lib.fifo.SyncFIFOBuffered`` (block RAM plus an output register) of
    ``fifo_depth = max(depth, 3)`` entries: below 3 entries that FIFO takes a write only every
    other cycle.

    Parameters
    ----------
    depth : int, >= 1
        Transfers it must be able to hold.
    lanes : int, >= 1
    shape : Shape
        Element shape.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, lanes)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, lanes)))``

    Attributes
    ----------
    fifo_depth : int
        Entries of the FIFO built, ``max(depth, 3)``.
    level : Signal
        Transfers held.
    latency : int
        2 cycles from a transfer into the empty FIFO to it being valid at the output.
    initiation_interval : int
        1 cycle between transfers at full rate.

    Raises
    ------
    TypeError
        If ``depth`` or ``lanes`` is not an integer.
    ValueError
        If ``depth`` or ``lanes`` is below 1.
    """

    @staticmethod
    def _check(*, depth, lanes, shape):
        check_count(depth, "Depth", 1)
        check_count(lanes, "Lanes", 1)

    def __init__(self, *, depth, lanes, shape):
        self._depth, self._lanes, self._shape = depth, lanes, Shape.cast(shape)
        signature = _vector(self._shape, lanes)
        super().__init__({"i": In(signature), "o": Out(signature)})
        #: Transfers held, ``0 .. fifo_depth`` (to measure how deep a skip path must be).
        self.level = Signal(range(self.fifo_depth + 1))

    def __repr__(self):
        return f"SkipFifo(depth={self._depth!r}, lanes={self._lanes!r}, shape={self._shape!r})"

    @property
    def depth(self):
        return self._depth

    @property
    def fifo_depth(self):
        return skip_fifo_entries(self._depth)

    @property
    def lanes(self):
        return self._lanes

    @property
    def latency(self):
        return 2

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.i.payload.shape()).width
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=self.fifo_depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload.as_value()),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.valid.eq(fifo.r_rdy),
            self.o.payload.as_value().eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m
