"""UART receiver and transmitter (8 data bits, no parity, 1 stop bit), as stream components.

Bits are ``divisor`` clock cycles long (``divisor = round(f_clk / baud)``), least significant
bit first, idle high. The receiver synchronizes its input with two flip-flops, detects the
falling edge of the start bit, checks the start bit at its middle and samples every data bit
and the stop bit at theirs.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "uart_divisor"]


def uart_divisor(clock_hz, baud):
    """Clock cycles per bit, ``round(clock_hz / baud)``.

    Raises
    ------
    ValueError
        If the divisor is below 4 or the rounding error exceeds 2 % (a UART frame tolerates
        about 4 % between both ends).
    """
    divisor = round(clock_hz / baud)
    if divisor < 4:
        raise ValueError(f"Baud rate {baud!r} is too fast for a {clock_hz / 1e6:g} MHz clock "
                         f"(at most {clock_hz / 4:g})")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"Baud rate {baud!r} is off by {error:.1%} at {clock_hz / 1e6:g} MHz "
                         f"(divisor {divisor}); at most 2% is accepted")
    return divisor


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"Divisor must be an integer, not {divisor!r}")
    if divisor < 4:
        raise ValueError(f"Divisor must be an integer of at least 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int, >= 4
        Clock cycles per bit.

    Members
    -------
    rx : ``In(1, init=1)``
        The serial line (asynchronous; synchronized inside).
    o : ``Out(stream.Signature(8))``
        Received bytes. A byte is held until taken; a byte that completes while the previous
        one is still held replaces it and sets ``overrun``.
    overrun : ``Out(1)``
        Sticky: a byte was lost.
    framing_error : ``Out(1)``
        Sticky: a stop bit was low (the byte is dropped).
    """

    def __init__(self, *, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "overrun": Out(1), "framing_error": Out(1)})

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self._divisor * 3 // 2 + 1))
        bits = Signal(9)
        n_bits = Signal(range(10))

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self._divisor - 1), n_bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [bits.eq(Cat(bits[1:], rx)), n_bits.eq(n_bits + 1),
                                 timer.eq(self._divisor - 1)]
                    with m.If(n_bits == 8):  # that was the stop bit
                        m.next = "DONE"
            with m.State("DONE"):
                with m.If(bits[8]):
                    m.d.sync += [self.o.payload.eq(bits[:8]), self.o.valid.eq(1)]
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                with m.Else():
                    m.d.sync += self.framing_error.eq(1)
                m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int, >= 4
        Clock cycles per bit.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : ``Out(1)``
        The serial line.
    """

    def __init__(self, *, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1)})

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)
        n_bits = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += [self.tx.eq(shift[0]), self.i.ready.eq(n_bits == 0)]
        with m.If(n_bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shift.eq(Cat(0, self.i.payload, 1)), n_bits.eq(10),
                             timer.eq(self._divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shift.eq(Cat(shift[1:], 1)), n_bits.eq(n_bits - 1),
                             timer.eq(self._divisor - 1)]
        return m
