"""The streaming host link: a stream component (the on-chip trainer) behind a UART, every
input transfer from bytes in, every output transfer as bytes out, without request framing.

Protocol (also in ``boards/host_link.md``), 8N1 at the build's baud rate: each transfer of the
component's ``i`` is ``ceil(W_in / 8)`` bytes (its payload's bits, least significant byte
first, unused top bits 0) and each transfer of ``o`` comes back as ``ceil(W_out / 8)`` bytes
the same way (:mod:`nnfab.boards.words`, the packing of :class:`~nnfab.boards.link.HostLink`).
There is no start byte: the line is in step from reset. The received bytes go through a FIFO
of ``rx_depth`` bytes and the component's output waits for the transmitter, so no byte is
lost as long as the host has at most ``rx_depth`` bytes sent and not yet consumed (e.g. it
sends a sample and reads that sample's outputs before the next one).
"""

from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nnfab.hdl.unused import discard

from .words import add_uart_words, word_bytes

__all__ = ["StreamLink"]


class StreamLink(wiring.Component):
    """A stream component driven through a UART, transfer for transfer.

    Parameters
    ----------
    component : wiring.Component
        With stream members ``i`` and ``o`` (e.g. :class:`nnfab.hdl.trainable_mlp.TrainableMLP`).
    divisor : int, >= 4
        Clock cycles per UART bit.
    rx_depth : int, optional
        Bytes of the receive FIFO (default: two input transfers, at least 16).

    Members
    -------
    rx : ``In(1, init=1)``
    tx : ``Out(1)``
    busy : ``Out(1)``
        Bytes are waiting in the receive FIFO or being assembled, or an output is being sent.
    answered : ``Out(1)``
        Toggles after every output transfer sent (drive an LED with it).
    error : ``Out(1)``
        Sticky: the UART saw a framing error or lost a byte (receive FIFO full).

    Raises
    ------
    ValueError
        If ``rx_depth`` is not a positive integer, or as :class:`~nnfab.boards.uart.UARTRx`.
    """

    def __init__(self, component, *, divisor, rx_depth=None):
        self._component = component
        self._divisor = divisor
        self._in_width = Shape.cast(component.i.payload.shape()).width
        self._out_width = Shape.cast(component.o.payload.shape()).width
        if rx_depth is None:
            rx_depth = max(16, 2 * word_bytes(self._in_width))
        if not isinstance(rx_depth, int) or isinstance(rx_depth, bool) or rx_depth < 1:
            discard(self)  # a rejected design is not an unused one
            discard(component)
            raise ValueError(f"Receive FIFO depth must be a positive integer, not {rx_depth!r}")
        self._rx_depth = rx_depth
        super().__init__({"rx": In(1, init=1), "tx": Out(1), "busy": Out(1),
                          "answered": Out(1), "error": Out(1)})

    @property
    def input_bytes(self):
        """Bytes per input transfer."""
        return word_bytes(self._in_width)

    @property
    def output_bytes(self):
        """Bytes per output transfer."""
        return word_bytes(self._out_width)

    @property
    def rx_depth(self):
        return self._rx_depth

    def elaborate(self, platform):
        m = Module()
        comp = self._component
        m.submodules.component = comp
        tx, rx_fifo, unpack, pack = add_uart_words(
            m, self, divisor=self._divisor, in_width=self._in_width, out_width=self._out_width,
            rx_depth=self._rx_depth)
        m.d.comb += [
            unpack.i.payload.eq(rx_fifo.r_data), unpack.i.valid.eq(rx_fifo.r_rdy),
            rx_fifo.r_en.eq(unpack.i.ready),
        ]
        for src, dst in ((unpack.o, comp.i), (comp.o, pack.i)):  # payload shapes differ
            m.d.comb += [dst.payload.eq(src.payload), dst.valid.eq(src.valid),
                         src.ready.eq(dst.ready)]
        wiring.connect(m, pack.o, tx.i)
        with m.If(pack.o.valid & pack.o.ready & pack.last_byte):
            m.d.sync += self.answered.eq(~self.answered)
        m.d.comb += self.busy.eq(rx_fifo.r_rdy | unpack.o.valid | pack.o.valid)
        return m
