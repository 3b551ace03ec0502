"""Per-element requantization of a vector stream (HGQ's per-element fixed-point quantizers)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat, check_lane_formats

from .cast import fixed_shape, requantize
from .pipeline import pipeline_advance
from .unused import discard
from .wires import comb_wire

__all__ = ["LaneQuantizer"]


def _check_formats(fin, formats, fout):
    if not isinstance(fin, FixedFormat):
        raise TypeError(f"Input format must be a FixedFormat, not {fin!r}")
    return check_lane_formats(formats, fout)


class LaneQuantizer(wiring.Component):
    """Cast lane ``j`` of every input vector to its own format ``formats[j]``, then place it
    exactly in the common output format; one register stage, back-pressure honoured.

    The golden model is :func:`nnfab.sim.golden.quantize.quantize_lanes`.

    Parameters
    ----------
    fin : FixedFormat
        Input element format.
    formats : sequence of FixedFormat or None
        One format per lane, with its rounding and overflow modes; None (zero bits) gives 0.
    fout : FixedFormat
        Common output format; every lane format must fit it exactly.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(fixed_shape(fin), n)))``
    o : ``Out(stream.Signature(ArrayLayout(fixed_shape(fout), n)))``

    Attributes
    ----------
    latency : int
        1 cycle.
    initiation_interval : int
        1 cycle.

    Raises
    ------
    TypeError
        If a format is of the wrong type.
    ValueError
        If a lane format does not fit ``fout``.
    """

    def __init__(self, *, fin, formats, fout):
        try:
            self._formats = _check_formats(fin, formats, fout)
        except (TypeError, ValueError):
            discard(self)  # a rejected design is not an unused one
            raise
        self._fin, self._fout = fin, fout
        n = len(self._formats)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(fin), n))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(fout), n))),
        })

    def __repr__(self):
        return (f"LaneQuantizer(fin={self._fin!r}, formats={list(self._formats)!r}, "
                f"fout={self._fout!r})")

    @property
    def formats(self):
        return self._formats

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_advance(m, self.o, self.i)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(self.i.valid)
        for j, fmt in enumerate(self._formats):
            if fmt is None:
                value = 0
            else:
                lane = Signal(fixed_shape(fmt), name=f"lane_{j}")
                m.d.comb += lane.eq(requantize(self.i.payload[j], src=self._fin, dst=fmt,
                                               wire=comb_wire(m, f"lane_{j}_")))
                value = lane << (self._fout.fraction_width - fmt.fraction_width)
            with m.If(advance):
                m.d.sync += self.o.payload[j].eq(value)
        return m
