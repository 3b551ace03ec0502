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

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .uart import UARTRx, UARTTx

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
        return 1 + self._input_transfers * -(-self._in_width // 8)

    @property
    def answer_bytes(self):
        """Bytes of an answer, start byte included."""
        return 1 + self._output_transfers * -(-self._out_width // 8)

    def elaborate(self, platform):
        m = Module()
        net = self._network
        m.submodules.network = net
        m.submodules.uart_rx = rx = UARTRx(divisor=self._divisor)
        m.submodules.uart_tx = tx = UARTTx(divisor=self._divisor)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(
            width=8, depth=max(4, self.request_bytes))
        m.d.comb += [
            rx.rx.eq(self.rx), self.tx.eq(tx.tx),
            self.error.eq(rx.overrun | rx.framing_error),
            rx_fifo.w_data.eq(rx.o.payload), rx_fifo.w_en.eq(rx.o.valid),
            rx.o.ready.eq(rx_fifo.w_rdy),
        ]

        # Request: start byte, then the little-endian bytes of each input word.
        in_bytes = -(-self._in_width // 8)
        word_in = Signal(8 * in_bytes)
        byte_in = Signal(range(max(in_bytes, 2)))
        transfer_in = Signal(range(max(self._input_transfers, 2)))
        receiving = Signal()
        m.d.comb += net.i.payload.eq(word_in[:self._in_width])
        with m.FSM(name="request"):
            with m.State("WAIT_START"):
                m.d.comb += rx_fifo.r_en.eq(1)
                with m.If(rx_fifo.r_rdy & (rx_fifo.r_data == REQUEST_START)):
                    m.d.sync += [byte_in.eq(0), transfer_in.eq(0)]
                    m.next = "COLLECT"
            with m.State("COLLECT"):
                m.d.comb += [rx_fifo.r_en.eq(1), receiving.eq(1)]
                with m.If(rx_fifo.r_rdy):
                    m.d.sync += [word_in.eq((word_in >> 8) | (rx_fifo.r_data
                                                                << (8 * (in_bytes - 1)))),
                                 byte_in.eq(byte_in + 1)]
                    with m.If(byte_in == in_bytes - 1):
                        m.d.sync += byte_in.eq(0)
                        m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += [net.i.valid.eq(1), receiving.eq(1)]
                with m.If(net.i.ready):
                    m.d.sync += transfer_in.eq(transfer_in + 1)
                    with m.If(transfer_in == self._input_transfers - 1):
                        m.next = "WAIT_START"
                    with m.Else():
                        m.next = "COLLECT"

        # Answer: start byte before the first output word, then each word's bytes.
        out_bytes = -(-self._out_width // 8)
        word_out = Signal(8 * out_bytes)
        byte_out = Signal(range(max(out_bytes, 2)))
        transfer_out = Signal(range(max(self._output_transfers, 2)))
        sending = Signal()
        in_flight = Signal()
        with m.If(net.i.valid & net.i.ready & (transfer_in == 0)):
            m.d.sync += in_flight.eq(1)
        with m.FSM(name="answer"):
            with m.State("IDLE"):
                m.d.comb += net.o.ready.eq(1)
                with m.If(net.o.valid):
                    m.d.sync += [word_out.eq(net.o.payload), byte_out.eq(0)]
                    with m.If(transfer_out == 0):
                        m.next = "HEADER"
                    with m.Else():
                        m.next = "BYTES"
            with m.State("HEADER"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(ANSWER_START), sending.eq(1)]
                with m.If(tx.i.ready):
                    m.next = "BYTES"
            with m.State("BYTES"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(word_out[:8]), sending.eq(1)]
                with m.If(tx.i.ready):
                    m.d.sync += [word_out.eq(word_out >> 8), byte_out.eq(byte_out + 1)]
                    with m.If(byte_out == out_bytes - 1):
                        m.next = "IDLE"
                        with m.If(transfer_out == self._output_transfers - 1):
                            m.d.sync += [transfer_out.eq(0), self.answered.eq(~self.answered),
                                         in_flight.eq(0)]
                        with m.Else():
                            m.d.sync += transfer_out.eq(transfer_out + 1)
        m.d.comb += self.busy.eq(receiving | sending | in_flight)
        return m
