"""Stream layout engines: zero padding of channels-last frames, and flatten (pixels to one
vector)."""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring

from .line_buffer import inside_region
from .unused import discard
from amaranth.lib.wiring import In, Out

__all__ = ["ZeroPadding", "Flatten"]


def _check_shape(shape):
    if (not isinstance(shape, tuple) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
        raise TypeError(f"Input shape must be a tuple of 3 integers, not {shape!r}")
    if min(shape) < 1:
        raise ValueError(f"Input shape must hold positive integers, not {shape!r}")


class ZeroPadding(wiring.Component):
    """Zero padding of ``(H, W, C)`` frames to ``(H + top + bottom, W + left + right, C)``
    (Keras ``ZeroPadding2D``; ``ZeroPadding1D`` is height 1 with ``top = bottom = 0``).

    One output pixel per cycle: a padding position emits code 0 without consuming input, an
    image position forwards the next input pixel. So the padding before a frame's first pixel
    (``top`` rows and ``left`` columns) leaves as soon as the previous frame is done, before
    that frame's first pixel arrives. The golden model is
    :func:`nnfab.sim.golden.layout.zero_pad`.

    Parameters
    ----------
    input_shape : (int, int, int)
    padding : ((int, int), (int, int))
        ``((top, bottom), (left, right))``, each >= 0.
    shape : Shape
        Element shape (``fixed_shape`` of the format).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, C)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, C)))``

    Attributes
    ----------
    latency : int
        1 cycle from an input pixel to its output.
    initiation_interval : int
        1 cycle per output pixel; ``cycles_per_frame = (H + top + bottom) * (W + left +
        right)``.

    Raises
    ------
    TypeError
        If ``input_shape`` or ``padding`` is not made of integers.
    ValueError
        If a size is not positive or a padding negative.
    """

    def __init__(self, *, input_shape, padding, shape):
        try:
            _check_shape(input_shape)
            if (not isinstance(padding, tuple) or len(padding) != 2
                    or not all(isinstance(p, tuple) and len(p) == 2 for p in padding)
                    or not all(isinstance(v, int) and not isinstance(v, bool)
                               for p in padding for v in p)):
                raise TypeError(f"Padding must be ((top, bottom), (left, right)) integers, "
                                f"not {padding!r}")
            if min(v for p in padding for v in p) < 0:
                raise ValueError(f"Padding must be non-negative, not {padding!r}")
        except (TypeError, ValueError):
            discard(self)  # a rejected design is not an unused one
            raise
        self._input_shape = input_shape
        self._padding = padding
        self._shape = Shape.cast(shape)
        c = input_shape[2]
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self._shape, c))),
            "o": Out(stream.Signature(data.ArrayLayout(self._shape, c))),
        })

    def __repr__(self):
        return f"ZeroPadding(input_shape={self._input_shape!r}, padding={self._padding!r})"

    @property
    def output_shape(self):
        (h, w, c), ((t, b), (l, r)) = self._input_shape, self._padding
        return (h + t + b, w + l + r, c)

    @property
    def cycles_per_frame(self):
        h, w, _ = self.output_shape
        return h * w

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        (h, w, _), ((top, _), (left, _)) = self._input_shape, self._padding
        hp, wp, _ = self.output_shape
        row, col = Signal(range(max(hp, 2))), Signal(range(max(wp, 2)))
        inside, advance, step = Signal(), Signal(), Signal()
        m.d.comb += [
            inside.eq(inside_region(row, col, top, h, hp, left, w, wp)),
            advance.eq(~self.o.valid | self.o.ready),
            step.eq(advance & (~inside | self.i.valid)),
            self.i.ready.eq(advance & inside),
        ]
        with m.If(step):
            m.d.sync += col.eq(Mux(col == wp - 1, 0, col + 1))
            with m.If(col == wp - 1):
                m.d.sync += row.eq(Mux(row == hp - 1, 0, row + 1))
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(step),
                self.o.payload.as_value().eq(Mux(inside, self.i.payload.as_value(), 0)),
            ]
        return m


class Flatten(wiring.Component):
    """Flatten ``(H, W, C)`` frames, one pixel per transfer, into one ``H * W * C`` vector per
    frame in (row, column, channel) order (Keras ``Flatten``, channels-last).

    Pixels are collected in registers that are also the output payload; the input waits while
    a finished vector has not been taken. The golden model is
    :func:`nnfab.sim.golden.layout.flatten`.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, C)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, H * W * C)))``

    Attributes
    ----------
    latency : int
        ``H * W`` cycles from the first pixel of a frame to the vector (1 after the last).
    initiation_interval : int
        1 cycle per input pixel; ``cycles_per_frame = H * W``.

    Raises
    ------
    TypeError, ValueError
        If ``input_shape`` is not three positive integers.
    """

    def __init__(self, *, input_shape, shape):
        try:
            _check_shape(input_shape)
        except (TypeError, ValueError):
            discard(self)  # a rejected design is not an unused one
            raise
        self._input_shape = input_shape
        self._shape = Shape.cast(shape)
        h, w, c = input_shape
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self._shape, c))),
            "o": Out(stream.Signature(data.ArrayLayout(self._shape, h * w * c))),
        })

    def __repr__(self):
        return f"Flatten(input_shape={self._input_shape!r})"

    @property
    def cycles_per_frame(self):
        return self._input_shape[0] * self._input_shape[1]

    @property
    def latency(self):
        return self.cycles_per_frame

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        n = self.cycles_per_frame
        width = self._input_shape[2] * self._shape.width
        pixels = [Signal(width, name=f"pixel{k}") for k in range(n)]
        count = Signal(range(max(n, 2)))
        m.d.comb += [
            self.i.ready.eq(~self.o.valid | self.o.ready),
            self.o.payload.as_value().eq(Cat(*pixels)),
        ]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
            with m.Switch(count):
                for k in range(n):
                    with m.Case(k):
                        m.d.sync += pixels[k].eq(self.i.payload.as_value())
            with m.If(count == n - 1):
                m.d.sync += self.o.valid.eq(1)
        return m
