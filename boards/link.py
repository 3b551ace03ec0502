"""The host link: a network behind a UART, one request frame in, one answer frame out.

Protocol (also in ``boards/host_link.md``), 8N1 at the build's baud rate:

- Request, host to board: the start byte ``0xA5``, then for each input transfer of one
  inference (``manifest["input"]["transfers_per_inference"]``, 1 for vector models) the
  packed payload word (:func:`nnfab.packing.pack`, lane 0 in the least significant bits) as
  ``ceil(payload_width / 8)`` bytes, least significant byte first; unused top bits are 0.
- Answer, board to host: the start byte ``0x5A``, then each output transfer's packed word in
  the same way.

Bytes before a request's start byte are ignored, so a host can resynchronize by waiting for
the answer or a time-out and sending the request again. The received bytes go through a FIFO
that holds one whole request, and the answer waits for the transmitter (the network's output
stream is back-pressured), so no byte is lost at any baud rate as long as the host sends the
next request only after the previous answer (or the network keeps up with the line).
"""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .words import add_uart_words, word_bytes

__all__ = ["REQUEST_START", "ANSWER_START", "HostLink"]

#: First byte of a request (host to board).
REQUEST_START = 0xA5
#: First byte of an answer (board to host).
ANSWER_START = 0x5A


class HostLink(wiring.Component):
    """A stream component (the network) driven through a UART.

    Parameters
    ----------
    network : wiring.Component
        With stream members ``i`` and ``o`` (e.g. :class:`nnfab.gen.assemble.Network`).
    divisor : int, >= 4
        Clock cycles per UART bit.
    input_transfers, output_transfers : int
        Transfers of ``network.i`` and ``network.o`` per inference.

    Members
    -------
    rx : ``In(1, init=1)``
    tx : ``Out(1)``
    busy : ``Out(1)``
        A request is being received or computed, or its answer sent.
    answered : ``Out(1)``
        Toggles after every answer (drive an LED with it).
    error : ``Out(1)``
        Sticky: the UART saw a framing error or lost a byte.
    """

    def __init__(self, network, *, divisor, input_transfers=1, output_transfers=1):
        self._network = network
        self._divisor = divisor
        self._input_transfers = input_transfers
        self._output_transfers = output_transfers
        self._in_width = Shape.cast(network.i.payload.shape()).width
        self._out_width = Shape.cast(network.o.payload.shape()).width
        super().__init__({"rx": In(1, init=1), "tx": Out(1), "busy": Out(1),
                          "answered": Out(1), "error": Out(1)})

    @property
    def request_bytes(self):
        """Bytes of a request, start byte included."""
        return 1 + self._input_transfers * word_bytes(self._in_width)

    @property
    def answer_bytes(self):
        """Bytes of an answer, start byte included."""
        return 1 + self._output_transfers * word_bytes(self._out_width)

    def elaborate(self, platform):
        m = Module()
        net = self._network
        m.submodules.network = net
        tx, rx_fifo, unpack, pack = add_uart_words(
            m, self, divisor=self._divisor, in_width=self._in_width, out_width=self._out_width,
            rx_depth=max(4, self.request_bytes))
        m.d.comb += [
            net.i.payload.eq(unpack.o.payload), net.i.valid.eq(unpack.o.valid),
            unpack.o.ready.eq(net.i.ready),
        ]

        # Request: start byte, then the little-endian bytes of each input word.
        n_bytes = self._input_transfers * word_bytes(self._in_width)
        bytes_left = Signal(range(n_bytes + 1))
        m.d.comb += unpack.i.payload.eq(rx_fifo.r_data)
        with m.If(bytes_left == 0):
            m.d.comb += rx_fifo.r_en.eq(1)
            with m.If(rx_fifo.r_rdy & (rx_fifo.r_data == REQUEST_START)):
                m.d.sync += bytes_left.eq(n_bytes)
        with m.Else():
            m.d.comb += [unpack.i.valid.eq(rx_fifo.r_rdy), rx_fifo.r_en.eq(unpack.i.ready)]
            with m.If(rx_fifo.r_rdy & unpack.i.ready):
                m.d.sync += bytes_left.eq(bytes_left - 1)
        transfer_in = Signal(range(max(self._input_transfers, 2)))
        in_flight = Signal()
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += transfer_in.eq(Mux(transfer_in == self._input_transfers - 1, 0,
                                           transfer_in + 1))
            with m.If(transfer_in == 0):
                m.d.sync += in_flight.eq(1)

        # Answer: start byte before the first output word, then each word's bytes.
        header_sent = Signal()
        transfer_out = Signal(range(max(self._output_transfers, 2)))
        m.d.comb += [pack.i.payload.eq(net.o.payload),
                     pack.i.valid.eq(net.o.valid & header_sent),
                     net.o.ready.eq(pack.i.ready & header_sent)]
        with m.If(header_sent):
            wiring.connect(m, pack.o, tx.i)
        with m.Else():
            m.d.comb += [tx.i.valid.eq(net.o.valid), tx.i.payload.eq(ANSWER_START)]
            with m.If(tx.i.valid & tx.i.ready):
                m.d.sync += header_sent.eq(1)
        with m.If(pack.o.valid & pack.o.ready & pack.last_byte):
            with m.If(transfer_out == self._output_transfers - 1):
                m.d.sync += [transfer_out.eq(0), header_sent.eq(0), in_flight.eq(0),
                             self.answered.eq(~self.answered)]
            with m.Else():
                m.d.sync += transfer_out.eq(transfer_out + 1)
        receiving = (bytes_left != 0) | unpack.o.valid
        sending = (net.o.valid & ~header_sent) | pack.o.valid
        m.d.comb += self.busy.eq(receiving | sending | in_flight)
        return m
