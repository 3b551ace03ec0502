"""Per-channel scale and shift (folded BatchNormalization) on a stream of channels-last pixels."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.conv_layers import BatchNormSpec

from .cast import fixed_shape, requantize
from .pipeline import pipeline_advance
from .unused import discard

__all__ = ["BatchNormEngine"]


class BatchNormEngine(wiring.Component):
    """``y[c] = cast(x[c] * scale[c] + shift[c], output_format)`` for every pixel.

    Stage 1 forms the exact product and sum in :attr:`BatchNormSpec.sum_format` (a constant
    multiplication per channel), stage 2 casts with the output format's rounding and
    overflow. The golden model is :func:`nnfab.sim.golden.batchnorm.batchnorm`.

    Parameters
    ----------
    spec : BatchNormSpec

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), C)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), C)))``

    Attributes
    ----------
    latency : int
        2 cycles.
    initiation_interval : int
        1 cycle per pixel.

    Raises
    ------
    TypeError
        If ``spec`` is not a BatchNormSpec.
    """

    def __init__(self, spec):
        if not isinstance(spec, BatchNormSpec):
            discard(self)  # a rejected design is not an unused one
            raise TypeError(f"Layer must be a BatchNormSpec, not {spec!r}")
        self._spec = spec
        c = spec.n_channels
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), c))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), c))),
        })

    def __repr__(self):
        return f"BatchNormEngine(n_channels={self._spec.n_channels})"

    @property
    def spec(self):
        return self._spec

    @property
    def latency(self):
        return 2

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        sum_format = spec.sum_format
        fs, fp = sum_format.fraction_width, spec.product_format.fraction_width
        advance = pipeline_advance(m, self.o, self.i)
        sums = [Signal(fixed_shape(sum_format), name=f"sum{ch}") for ch in range(spec.n_channels)]
        sum_valid = Signal()
        with m.If(advance):
            m.d.sync += [sum_valid.eq(self.i.valid), self.o.valid.eq(sum_valid)]
            for ch, total in enumerate(sums):
                scale = Const(int(spec.scale[ch]), fixed_shape(spec.scale_format))
                shift = int(spec.shift[ch]) << (fs - spec.shift_format.fraction_width)
                m.d.sync += total.eq(((self.i.payload[ch] * scale) << (fs - fp)) + shift)
                m.d.sync += self.o.payload[ch].eq(
                    requantize(total, src=sum_format, dst=spec.output_format))
        return m
