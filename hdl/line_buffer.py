"""Line buffers and the sliding-window generator that feeds convolution and pooling engines.

A frame arrives as a stream of pixels (all channels of one pixel per transfer) in raster order,
channels-last. :class:`SlidingWindow` walks the *padded* frame one position per cycle: a
position inside the image consumes an input pixel, a padding position inserts the pad code
without consuming anything. The last ``kh - 1`` padded rows are kept in one
``amaranth.lib.memory.Memory`` (the line buffer); a ``kh x kw`` register window shifts one
column per position, and every window position that the stride selects is offered on the
output stream.
"""

from amaranth.hdl import C, Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["window_positions", "window_schedule", "inside_region", "SlidingWindow"]


def inside_region(row, col, top, h, hp, left, w, wp):
    """Whether padded position (row, col) lies in the image; only the comparisons that can
    be false are built (Verilator rejects constant ones)."""
    terms = []
    if top > 0:
        terms.append(row >= top)
    if top + h < hp:
        terms.append(row < top + h)
    if left > 0:
        terms.append(col >= left)
    if left + w < wp:
        terms.append(col < left + w)
    result = C(1, 1)
    for term in terms:
        result = result & term
    return result


def window_positions(padded_shape, kernel_size, strides):
    """For every padded position in raster order, whether a window ends there (the stride
    selects it); a list of ``padded_height * padded_width`` bools."""
    (hp, wp), (kh, kw), (sh, sw) = padded_shape, kernel_size, strides
    rows = [r >= kh - 1 and (r - kh + 1) % sh == 0 for r in range(hp)]
    cols = [c >= kw - 1 and (c - kw + 1) % sw == 0 for c in range(wp)]
    return [rows[r] and cols[c] for r in range(hp) for c in range(wp)]


def window_schedule(padded_shape, kernel_size, strides, pads, input_hw, *, accept_interval=1,
                    n_frames=1):
    """Cycle-exact timing of :class:`SlidingWindow` at full rate.

    The rule: one padded position per cycle; a window becomes valid the cycle after its
    position and the generator waits until it is taken; the consumer takes a window at most
    every ``accept_interval`` cycles (a dense engine's reuse factor).

    Returns
    -------
    (list of int, list of int)
        The cycles at which input pixels are accepted and at which windows are taken, for
        ``n_frames`` back-to-back frames, counted from the first padded position.
    """
    (_, wp), ((top, _), (left, _)), (h, w) = padded_shape, pads, input_hw
    emits = window_positions(padded_shape, kernel_size, strides)
    inputs, taken = [], []
    t, pending, last = 0, -1, -10**9
    for _ in range(n_frames):
        for p, emit in enumerate(emits):
            r, c = divmod(p, wp)
            s = max(t, pending)
            t = s + 1
            if top <= r < top + h and left <= c < left + w:
                inputs.append(s)
            if emit:
                last = pending = max(s + 1, last + accept_interval)
                taken.append(last)
    return inputs, taken


class SlidingWindow(wiring.Component):
    """Sliding ``kh x kw`` windows over a stream of channels-last pixels, with zero (or
    ``pad_code``) padding and strides.

    Parameters
    ----------
    input_shape : (int, int, int)
        ``(H, W, C)`` of one frame; frames follow each other with no gap needed and share no
        state (a window never reaches into the previous frame).
    kernel_size, strides : (int, int)
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))``.
    shape : Shape
        Shape of one element (``fixed_shape`` of the input format).
    pad_code : int
        Value of the padding elements.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, C)))``
        One pixel per transfer, raster order.
    o : ``Out(stream.Signature(data.ArrayLayout(shape, kh * kw * C)))``
        One window per transfer, elements in (row, column, channel) order; window ``(i, j)``
        covers padded rows ``i*sh .. i*sh+kh-1`` and columns ``j*sw .. j*sw+kw-1``.

    Attributes
    ----------
    line_buffer_depth, line_buffer_width : int
        The line buffer memory: ``W + left + right`` entries of ``(kh - 1) * C *
        element_width`` bits (no memory when ``kh == 1``).
    cycles_per_frame : int
        ``(H + top + bottom) * (W + left + right)`` when the consumer is always ready.
    """

    def __init__(self, *, input_shape, kernel_size, strides, pads, shape, pad_code=0):
        self._input_shape = tuple(input_shape)
        self._kernel_size = tuple(kernel_size)
        self._strides = tuple(strides)
        self._pads = tuple(tuple(p) for p in pads)
        self._shape = Shape.cast(shape)
        self._pad_code = pad_code
        kh, kw = self._kernel_size
        c = self._input_shape[2]
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self._shape, c))),
            "o": Out(stream.Signature(data.ArrayLayout(self._shape, kh * kw * c))),
        })

    def __repr__(self):
        return (f"SlidingWindow(input_shape={self._input_shape!r}, kernel_size="
                f"{self._kernel_size!r}, strides={self._strides!r}, pads={self._pads!r})")

    @property
    def padded_shape(self):
        (h, w, _), ((t, b), (l, r)) = self._input_shape, self._pads
        return (h + t + b, w + l + r)

    @property
    def line_buffer_depth(self):
        return self.padded_shape[1]

    @property
    def line_buffer_width(self):
        return (self._kernel_size[0] - 1) * self._input_shape[2] * self._shape.width

    @property
    def cycles_per_frame(self):
        hp, wp = self.padded_shape
        return hp * wp

    def schedule(self, *, accept_interval=1, n_frames=1):
        """See :func:`window_schedule`."""
        return window_schedule(self.padded_shape, self._kernel_size, self._strides, self._pads,
                               self._input_shape[:2], accept_interval=accept_interval,
                               n_frames=n_frames)

    def elaborate(self, platform):
        m = Module()
        (h, w, c), (kh, kw) = self._input_shape, self._kernel_size
        ((top, _), (left, _)), (hp, wp) = self._pads, self.padded_shape
        pixel_width = c * self._shape.width

        row = Signal(range(max(hp, 2)))
        col = Signal(range(max(wp, 2)))
        inside = Signal()
        step = Signal()
        advance = Signal()
        m.d.comb += [
            inside.eq(inside_region(row, col, top, h, hp, left, w, wp)),
            advance.eq(~self.o.valid | self.o.ready),
            step.eq(advance & (~inside | self.i.valid)),
            self.i.ready.eq(advance & inside),
        ]
        last_col, next_col = col == wp - 1, Signal.like(col)
        m.d.comb += next_col.eq(Mux(last_col, 0, col + 1))
        with m.If(step):
            m.d.sync += col.eq(next_col)
            with m.If(last_col):
                m.d.sync += row.eq(Mux(row == hp - 1, 0, row + 1))

        pad_bits = Const(self._pad_code, self._shape).as_unsigned().replicate(c)
        pixel = Signal(pixel_width)
        m.d.comb += pixel.eq(Mux(inside, self.i.payload.as_value(), pad_bits))

        # The column entering the window: rows r-kh+1 .. r at the current column.
        column = [None] * kh
        column[kh - 1] = pixel
        if kh > 1:
            memory = Memory(shape=unsigned(self.line_buffer_width), depth=wp, init=[])
            m.submodules.line_buffer = memory
            write = memory.write_port()
            read = memory.read_port(transparent_for=(write,))
            m.d.comb += [
                read.addr.eq(Mux(step, next_col, col)),
                write.addr.eq(col),
                write.en.eq(step),
            ]
            older = [read.data[j * pixel_width:(j + 1) * pixel_width] for j in range(kh - 1)]
            m.d.comb += write.data.eq(Cat(pixel, *older[:kh - 2]))
            for ky in range(kh - 1):
                column[ky] = older[kh - 2 - ky]

        window = [[Signal(pixel_width, name=f"window_{ky}_{kx}") for kx in range(kw)]
                  for ky in range(kh)]
        with m.If(step):
            for ky in range(kh):
                m.d.sync += [window[ky][kx].eq(window[ky][kx + 1]) for kx in range(kw - 1)]
                m.d.sync += window[ky][kw - 1].eq(column[ky])
        m.d.comb += self.o.payload.as_value().eq(Cat(*(px for rw in window for px in rw)))

        emits = window_positions(self.padded_shape, self._kernel_size, self._strides)
        emit_rows = Const(sum(1 << r for r in range(hp) if emits[r * wp + wp - 1] or
                              any(emits[r * wp:(r + 1) * wp])), hp)
        emit_cols = Const(sum(1 << k for k in range(wp) if any(emits[k::wp])), wp)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(step & emit_rows.bit_select(row, 1)
                                        & emit_cols.bit_select(col, 1))
        return m
