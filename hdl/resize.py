"""Nearest-neighbour upsampling of channels-last frames streamed one pixel per transfer."""

from amaranth.hdl import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checked import CheckedComponent

__all__ = ["Upsample2D"]


def _check_ints(value, what, n):
    if (not isinstance(value, tuple) or len(value) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"{what} must be a tuple of {n} integers, not {value!r}")
    if min(value) < 1:
        raise ValueError(f"{what} must hold positive integers, not {value!r}")


class Upsample2D(CheckedComponent):
    """Nearest-neighbour upsampling by integer factors: ``out[r, c] = in[r // sh, c // sw]``
    for ``(H, W, C)`` frames in raster order, one pixel per transfer (ONNX ``Resize`` with
    ``mode="nearest"`` and integer scales, Keras ``UpSampling2D(interpolation="nearest")``).
    Codes pass unchanged. The golden model is :func:`nnfab.sim.golden.resize.upsample_nearest`.

    Each input row is sent ``sh`` times, each pixel ``sw`` times in a row. A pixel is taken
    from the input when its first copy leaves; while the first copy of a row leaves, its pixels
    are written to a row buffer (an ``amaranth.lib.memory.Memory`` of ``W`` entries of
    ``C`` elements, only when ``sh > 1``), from which the ``sh - 1`` other copies are read.
    One output pixel per cycle unless the output stalls; the input waits meanwhile.

    Parameters
    ----------
    input_shape : (int, int, int)
        ``(H, W, C)``.
    size : (int, int)
        ``(sh, sw)``, each >= 1.
    shape : Shape
        Element shape (``fixed_shape`` of the format).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, C)))``
    o : ``Out(stream.Signature(data.ArrayLayout(shape, C)))``

    Attributes
    ----------
    output_shape : (int, int, int)
        ``(H * sh, W * sw, C)``.
    cycles_per_frame : int
        ``H * sh * W * sw``: one cycle per output pixel at full rate.
    latency : int
        1 cycle from an input pixel accepted to its first copy at the output.
    initiation_interval : int
        ``sh * sw`` cycles per input pixel on average (``cycles_per_frame / (H * W)``): the
        input is taken every ``sw`` cycles during the first copy of a row, then waits
        ``(sh - 1) * W * sw`` cycles.
    row_buffer_depth : int
        ``W`` entries of ``C * shape.width`` bits, or 0 when ``sh`` is 1.

    Raises
    ------
    TypeError
        If ``input_shape`` or ``size`` is not a tuple of integers.
    ValueError
        If a dimension or factor is below 1.
    """

    @staticmethod
    def _check(*, input_shape, size, shape):
        _check_ints(input_shape, "Input shape", 3)
        _check_ints(size, "Size", 2)

    def __init__(self, *, input_shape, size, shape):
        self._input_shape, self._size, self._shape = input_shape, size, Shape.cast(shape)
        signature = stream.Signature(data.ArrayLayout(self._shape, input_shape[2]))
        super().__init__({"i": In(signature), "o": Out(signature)})

    def __repr__(self):
        return (f"Upsample2D(input_shape={self._input_shape!r}, size={self._size!r}, "
                f"shape={self._shape!r})")

    @property
    def input_shape(self):
        return self._input_shape

    @property
    def size(self):
        return self._size

    @property
    def output_shape(self):
        (h, w, c), (sh, sw) = self._input_shape, self._size
        return (h * sh, w * sw, c)

    @property
    def cycles_per_frame(self):
        h, w, _ = self.output_shape
        return h * w

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return self._size[0] * self._size[1]

    @property
    def row_buffer_depth(self):
        return self._input_shape[1] if self._size[0] > 1 else 0

    def schedule(self, n_frames=1):
        """Full-rate cycles of the input pixel transfers and the output pixel transfers,
        counted from the first input transfer, for ``n_frames`` frames back to back."""
        (h, w, _), (sh, sw) = self._input_shape, self._size
        row = sh * w * sw
        inputs = [f * self.cycles_per_frame + r * row + c * sw
                  for f in range(n_frames) for r in range(h) for c in range(w)]
        outputs = [t + 1 for t in range(n_frames * self.cycles_per_frame)]
        return inputs, outputs

    def elaborate(self, platform):
        m = Module()
        (_, w, _), (sh, sw) = self._input_shape, self._size
        width = Shape.cast(self.i.payload.shape()).width
        rep, col, crep = Signal(range(max(sh, 2))), Signal(range(max(w, 2))), \
            Signal(range(max(sw, 2)))
        advance, first, load = Signal(), Signal(), Signal()
        pixel, from_buffer = Signal(width), Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            first.eq((rep == 0) & (crep == 0)),        # this output needs a new input pixel
            load.eq(advance & (~first | self.i.valid)),
            self.i.ready.eq(advance & first),
        ]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(load)
        with m.If(load):
            m.d.sync += [
                from_buffer.eq(rep != 0),
                crep.eq(Mux(crep == sw - 1, 0, crep + 1)),
            ]
            with m.If(crep == sw - 1):
                m.d.sync += col.eq(Mux(col == w - 1, 0, col + 1))
                with m.If(col == w - 1):
                    m.d.sync += rep.eq(Mux(rep == sh - 1, 0, rep + 1))
            with m.If(first):
                m.d.sync += pixel.eq(self.i.payload.as_value())
        if sh == 1:
            m.d.comb += self.o.payload.as_value().eq(pixel)
            return m
        m.submodules.row_buffer = row_buffer = Memory(shape=unsigned(width), depth=w, init=[])
        write = row_buffer.write_port()
        read = row_buffer.read_port(domain="sync")
        m.d.comb += [
            write.addr.eq(col),
            write.data.eq(self.i.payload.as_value()),
            write.en.eq(load & first),
            read.addr.eq(col),
            read.en.eq(load & (rep != 0)),
            self.o.payload.as_value().eq(Mux(from_buffer, read.data, pixel)),
        ]
        return m
