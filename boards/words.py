"""Payload words as bytes on a serial line: ``ceil(width / 8)`` bytes per word, least
significant byte first, unused top bits 0 (the host links' packing, :mod:`nnfab.boards.link`,
:mod:`nnfab.boards.stream_link`)."""

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["word_bytes", "BytesToWords", "WordsToBytes"]


def word_bytes(width):
    """Bytes of a ``width``-bit word on the line: ``ceil(width / 8)``."""
    return -(-width // 8)


class BytesToWords(wiring.Component):
    """Assembles ``word_bytes(width)`` bytes, least significant first, into one word.

    Not pipelined: one byte per cycle in; the word waits in ``o`` until taken, and no byte is
    accepted meanwhile (back-pressure).

    Members
    -------
    i : ``In(stream.Signature(8))``
    o : ``Out(stream.Signature(width))``
    """

    def __init__(self, width):
        self._width = width
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        n = word_bytes(self._width)
        word = Signal(8 * n)
        count = Signal(range(n + 1))
        m.d.comb += [self.o.payload.eq(word[:self._width]), self.o.valid.eq(count == n),
                     self.i.ready.eq(count != n)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [word.eq((word >> 8) | (self.i.payload << (8 * (n - 1)))),
                         count.eq(count + 1)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(0)
        return m


class WordsToBytes(wiring.Component):
    """Sends each word as ``word_bytes(width)`` bytes, least significant first.

    Members
    -------
    i : ``In(stream.Signature(width))``
        Taken when its last byte has gone (ready while idle).
    o : ``Out(stream.Signature(8))``
    last_byte : ``Out(1)``
        ``o`` holds a word's last byte.
    """

    def __init__(self, width):
        self._width = width
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(8)),
                          "last_byte": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n = word_bytes(self._width)
        word = Signal(8 * n)
        left = Signal(range(n + 1))
        m.d.comb += [self.i.ready.eq(left == 0), self.o.valid.eq(left != 0),
                     self.o.payload.eq(word[:8]), self.last_byte.eq(left == 1)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [word.eq(Value.cast(self.i.payload)), left.eq(n)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [word.eq(word >> 8), left.eq(left - 1)]
        return m
