"""TFLite's int8 ``AVERAGE_POOL_2D`` over the whole map (a global average), as MLPerf Tiny's
models use it (KWS: 25x5 -> 1x1, ResNet-8: 8x8 -> 1x1, VALID): the sum of the window's int8
codes divided by the constant count with TFLite's rounding, by a multiply and a shift.

Bit-exact with :func:`nnfab.sim.golden.tflite.average_int8` for the count and clamp of an
:class:`nnfab.tflite_ops.AverageDivider` (which proves the multiply-shift division exact over
every reachable sum when it is built).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib.wiring import In, Out

from nnfab.tflite_ops import AverageDivider

from .add_tflite import INT8
from .checked import CheckedComponent, check_count
from .pipeline import pipeline_advance
from .vector_pipeline import vector_signature

__all__ = ["GlobalAveragePoolTfliteEngine"]


class GlobalAveragePoolTfliteEngine(CheckedComponent):
    """TFLite int8 average of every ``divider.count`` pixels (one frame), channel by channel:
    one output vector per frame.

    Per lane, as ``reference_integer_ops::AveragePool`` with the window covering the map::

        sum = x_0 + ... + x_{count-1}                       # raw int8 codes
        u = |sum| + count // 2
        y = clamp(sign(sum) * (u // count), low, high)      # half away from zero

    with ``u // count == (u * magic) >> shift`` (:class:`~nnfab.tflite_ops.AverageDivider`).
    Stages after the accumulator (which takes one pixel a cycle and restarts at every frame):
    the frame's sum, ``u`` and the sign, the product ``u * magic``, the output register. The
    pipeline stalls as a whole under back-pressure.

    Parameters
    ----------
    divider : AverageDivider
        The count (pixels per frame), clamp and multiply-shift division.
    lanes : int, >= 1
        Channels per pixel (elements per transfer).

    Members
    -------
    i : ``In(vector_signature(fixed<8,8>, lanes))``
        Pixels in order, ``count`` per frame.
    o : ``Out(vector_signature(fixed<8,8>, lanes))``
        One transfer per frame.

    Attributes
    ----------
    latency : int
        ``count + 3`` cycles from the first pixel of a frame to its output (4 after the last).
    initiation_interval : int
        1 cycle per pixel (a frame every ``count`` cycles).
    cycles_per_frame : int
        ``count``.

    Raises
    ------
    TypeError
        If ``divider`` is not an :class:`AverageDivider` or ``lanes`` not an integer.
    ValueError
        If ``lanes`` is below 1.
    """

    @staticmethod
    def _check(divider, *, lanes):
        if not isinstance(divider, AverageDivider):
            raise TypeError(f"Divider must be an AverageDivider, not {divider!r}")
        check_count(lanes, "Lanes", 1)

    def __init__(self, divider, *, lanes):
        self._divider, self._lanes = divider, lanes
        super().__init__({
            "i": In(vector_signature(INT8, lanes)),
            "o": Out(vector_signature(INT8, lanes)),
        })

    def __repr__(self):
        return f"GlobalAveragePoolTfliteEngine({self._divider!r}, lanes={self._lanes})"

    @property
    def divider(self):
        return self._divider

    @property
    def lanes(self):
        return self._lanes

    @property
    def cycles_per_frame(self):
        return self._divider.count

    @property
    def latency(self):
        return self._divider.count + 3

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        d = self._divider
        n = d.count
        advance = pipeline_advance(m, self.o, self.i)
        position = Signal(range(max(n, 2)))
        last = Signal()
        m.d.comb += last.eq(position == n - 1)
        valid_sum, valid_u, valid_product = Signal(), Signal(), Signal()
        with m.If(advance):
            m.d.sync += [valid_sum.eq(self.i.valid & last), valid_u.eq(valid_sum),
                         valid_product.eq(valid_u), self.o.valid.eq(valid_product)]
            with m.If(self.i.valid):
                m.d.sync += position.eq(Mux(last, 0, position + 1))
        sum_shape = signed(max(abs(d.sum_min), d.sum_max).bit_length() + 1)
        for j in range(self._lanes):
            acc = Signal(sum_shape, name=f"acc_{j}")
            total = Signal(sum_shape, name=f"sum_{j}")
            u = Signal(unsigned(d.u_max.bit_length()), name=f"u_{j}")
            negative = [Signal(name=f"negative{s}_{j}") for s in (1, 2)]
            product = Signal(unsigned(len(u) + d.magic.bit_length()), name=f"product_{j}")
            running = Signal(sum_shape, name=f"running_{j}")
            m.d.comb += running.eq(Mux(position == 0, 0, acc) + self.i.payload[j])
            quotient = product >> d.shift
            value = Mux(negative[1], -quotient, quotient)
            with m.If(advance):
                with m.If(self.i.valid):
                    m.d.sync += acc.eq(running)
                    with m.If(last):
                        m.d.sync += total.eq(running)
                m.d.sync += [
                    u.eq(Mux(total < 0, -total, total) + n // 2),
                    negative[0].eq(total < 0),
                    product.eq(u * d.magic),
                    negative[1].eq(negative[0]),
                    self.o.payload[j].eq(Mux(value < d.low, d.low,
                                             Mux(value > d.high, d.high, value))),
                ]
        return m
