"""Streaming max and average pooling (1-D and 2-D) and global pooling, channels-last."""

from fractions import Fraction

from amaranth.hdl import C, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec
from nnfab.fixed import FixedFormat

from .cast import fixed_shape, requantize, round_increment, saturate
from .line_buffer import SlidingWindow
from .pipeline import pipeline_advance
from .unused import discard

__all__ = ["divide_cast", "PoolEngine", "GlobalPoolEngine"]


def divide_cast(value, *, src, divisor, dst):
    """Combinational ``cast(value / divisor, dst)`` with the quotient taken exactly: ``dst``'s
    rounding decided from the exact remainder, then its overflow mode; the golden model is
    :func:`nnfab.casts.divide_cast`.

    A power-of-two ``divisor`` is a plain :func:`~nnfab.hdl.cast.requantize` (moving the
    binary point); any other uses a constant division (``//`` and ``%``).

    Parameters
    ----------
    value : Value of shape ``fixed_shape(src)``
    src, dst : FixedFormat
    divisor : int, >= 1
    """
    if divisor & (divisor - 1) == 0:
        k = divisor.bit_length() - 1
        scaled = FixedFormat(src.width, src.integer_width - k, signed=src.signed)
        return requantize(value, src=scaled, dst=dst)
    value = Value.cast(value)
    shift = dst.fraction_width - src.fraction_width
    num = value << max(shift, 0)
    den = divisor << max(-shift, 0)
    q = num // den
    r = num % den
    twice = r << 1
    inc = round_increment(dst.rounding, qb=twice >= den, rest=(r != 0) & (twice != den),
                           neg=num[-1] if src.signed else C(0, 1), odd=q[0])
    return saturate(q + inc, dst=dst)


def _max_tree(values):
    while len(values) > 1:
        values = [Mux(values[n] > values[n + 1], values[n], values[n + 1])
                  if n + 1 < len(values) else values[n] for n in range(0, len(values), 2)]
    return values[0]


class PoolEngine(wiring.Component):
    """Streaming max or average pooling of channels-last pixels (:class:`PoolSpec`).

    A :class:`~nnfab.hdl.line_buffer.SlidingWindow` offers every strided window (padding with
    the input's most negative code for max pooling with ``"same"`` padding); stage 1 reduces
    each channel of the window (a comparator tree, or an exact adder), stage 2 casts (average:
    :func:`divide_cast` of the exact sum by ``ph * pw``). The golden model is
    :func:`nnfab.sim.golden.pooling.pool`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), C)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), C)))``

    Attributes
    ----------
    cycles_per_frame : int
        ``(H + pad_top + pad_bottom) * (W + pad_left + pad_right)`` at full rate.
    latency : int
        Cycles from the first input pixel of a frame to its first output pixel: the padded
        positions from the first pixel to the end of the first window, plus 3.
    initiation_interval : int or Fraction
        ``cycles_per_frame / (H * W)``.
    line_buffer_depth, line_buffer_width : int
        As :class:`~nnfab.hdl.line_buffer.SlidingWindow`.

    Raises
    ------
    TypeError
        If ``spec`` is not a PoolSpec.
    """

    def __init__(self, spec):
        if not isinstance(spec, PoolSpec):
            discard(self)  # a rejected design is not an unused one
            raise TypeError(f"Layer must be a PoolSpec, not {spec!r}")
        self._spec = spec
        shape = fixed_shape(spec.input_format)
        self._window = SlidingWindow(input_shape=spec.input_shape, kernel_size=spec.pool_size,
                                     strides=spec.strides, pads=spec.pads, shape=shape,
                                     pad_code=spec.pad_code)
        c = spec.n_channels
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(shape, c))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), c))),
        })

    def __repr__(self):
        return (f"PoolEngine(kind={self._spec.kind!r}, input_shape={self._spec.input_shape!r}, "
                f"pool_size={self._spec.pool_size!r}, strides={self._spec.strides!r})")

    @property
    def spec(self):
        return self._spec

    @property
    def window(self):
        return self._window

    @property
    def line_buffer_depth(self):
        return self._window.line_buffer_depth

    @property
    def line_buffer_width(self):
        return self._window.line_buffer_width

    def schedule(self, n_frames=1):
        inputs, taken = self._window.schedule(n_frames=n_frames)
        return inputs, [t + 2 for t in taken]

    @property
    def cycles_per_frame(self):
        return self._window.cycles_per_frame

    @property
    def latency(self):
        inputs, outputs = self.schedule()
        return outputs[0] - inputs[0]

    @property
    def initiation_interval(self):
        h, w, _ = self._spec.input_shape
        ii = Fraction(self.cycles_per_frame, h * w)
        return int(ii) if ii.denominator == 1 else ii

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        c, n = spec.n_channels, spec.n_window
        m.submodules.window = window = self._window
        wiring.connect(m, wiring.flipped(self.i), window.i)
        advance = pipeline_advance(m, self.o, window.o)
        reduced_format = spec.input_format if spec.kind == "max" else spec.sum_format
        reduced = [Signal(fixed_shape(reduced_format), name=f"reduced{ch}") for ch in range(c)]
        reduced_valid = Signal()
        with m.If(advance):
            m.d.sync += reduced_valid.eq(window.o.valid)
            for ch in range(c):
                items = [window.o.payload[k * c + ch] for k in range(n)]
                if spec.kind == "max":
                    m.d.sync += reduced[ch].eq(_max_tree(items))
                else:
                    m.d.sync += reduced[ch].eq(sum(items[1:], items[0]))
            m.d.sync += self.o.valid.eq(reduced_valid)
            for ch in range(c):
                if spec.kind == "max":
                    y = requantize(reduced[ch], src=spec.input_format, dst=spec.output_format)
                else:
                    y = divide_cast(reduced[ch], src=reduced_format, divisor=n,
                                    dst=spec.output_format)
                m.d.sync += self.o.payload[ch].eq(y)
        return m


class GlobalPoolEngine(wiring.Component):
    """Global max or average pooling (:class:`GlobalPoolSpec`): one ``(C,)`` output per frame
    of ``H * W`` pixels.

    Stage 1 keeps a running maximum or exact sum per channel (restarted by the first pixel of
    every frame), stage 2 casts (average: :func:`divide_cast` by ``H * W``). The golden model
    is :func:`nnfab.sim.golden.pooling.global_pool`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), C)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), C)))``

    Attributes
    ----------
    cycles_per_frame : int
        ``H * W``.
    latency : int
        ``H * W + 1`` cycles from the first pixel of a frame to its output (2 after the
        last pixel).
    initiation_interval : int
        1 cycle per input pixel.
    """

    def __init__(self, spec):
        if not isinstance(spec, GlobalPoolSpec):
            discard(self)  # a rejected design is not an unused one
            raise TypeError(f"Layer must be a GlobalPoolSpec, not {spec!r}")
        self._spec = spec
        c = spec.n_channels
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), c))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), c))),
        })

    def __repr__(self):
        return f"GlobalPoolEngine(kind={self._spec.kind!r}, input_shape={self._spec.input_shape!r})"

    @property
    def spec(self):
        return self._spec

    @property
    def cycles_per_frame(self):
        return self._spec.n_pixels

    @property
    def latency(self):
        return self._spec.n_pixels + 1

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        c, n = spec.n_channels, spec.n_pixels
        acc_format = spec.input_format if spec.kind == "max" else spec.sum_format
        advance = pipeline_advance(m, self.o, self.i)
        count = Signal(range(max(n, 2)))
        done = Signal()
        accs = [Signal(fixed_shape(acc_format), name=f"acc{ch}") for ch in range(c)]
        with m.If(advance):
            m.d.sync += done.eq(self.i.valid & (count == n - 1))
            with m.If(self.i.valid):
                m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
                for ch in range(c):
                    x = self.i.payload[ch]
                    if spec.kind == "max":
                        update = Mux(x > accs[ch], x, accs[ch])
                    else:
                        update = accs[ch] + x
                    m.d.sync += accs[ch].eq(Mux(count == 0, x, update))
            m.d.sync += self.o.valid.eq(done)
            for ch in range(c):
                if spec.kind == "max":
                    y = requantize(accs[ch], src=acc_format, dst=spec.output_format)
                else:
                    y = divide_cast(accs[ch], src=acc_format, divisor=n, dst=spec.output_format)
                m.d.sync += self.o.payload[ch].eq(y)
        return m
