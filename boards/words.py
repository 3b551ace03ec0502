"""Payload words as bytes on a serial line: ``ceil(width / 8)`` bytes per word, least
significant byte first, unused top bits 0 (the host links' packing, :mod:`nnfab.boards.link`,
:mod:`nnfab.boards.stream_link`)."""

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .uart import UARTRx, UARTTx

__all__ = ["add_uart_words", "word_bytes", "BytesToWords", "WordsToBytes"]


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


def add_uart_words(m, link, *, divisor, in_width, out_width, rx_depth):
    """The byte side both host links share, added to ``m``: the UART receiver into a
    ``rx_depth``-byte FIFO, :class:`BytesToWords` after it (its input left to the link, which
    decides which bytes are payload), :class:`WordsToBytes` and the UART transmitter; ``link``'s
    ``rx``, ``tx`` and sticky ``error`` (framing error or lost byte) are driven.

    Returns
    -------
    (tx, rx_fifo, unpack, pack)
        The transmitter, the receive FIFO, and the ``in_width``-bit unpacker and
        ``out_width``-bit packer.
    """
    m.submodules.uart_rx = rx = UARTRx(divisor=divisor)
    m.submodules.uart_tx = tx = UARTTx(divisor=divisor)
    m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=rx_depth)
    m.submodules.unpack = unpack = BytesToWords(in_width)
    m.submodules.pack = pack = WordsToBytes(out_width)
    m.d.comb += [
        rx.rx.eq(link.rx), link.tx.eq(tx.tx),
        link.error.eq(rx.overrun | rx.framing_error),
        rx_fifo.w_data.eq(rx.o.payload), rx_fifo.w_en.eq(rx.o.valid),
        rx.o.ready.eq(rx_fifo.w_rdy),
    ]
    return tx, rx_fifo, unpack, pack
