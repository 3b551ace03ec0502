"""The top level of a board build: clock (PLL), reset, the host link and status LEDs."""

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from .clocking import ecp5_pll, ice40_pll
from .link import HostLink
from .uart import uart_divisor

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """A stream component (a network, the trainer) behind a host link, on a board.

    Clock: the board's oscillator when ``clock_mhz`` equals it, else a PLL (``SB_PLL40_PAD``
    on iCE40, ``EHXPLLL`` on ECP5) with the closest frequency it can make (``f_clock_mhz``).
    Reset: held until the PLL locks, released synchronously. LEDs: LED 0 toggles after every
    answer, LED 1 is on while a request is in flight, LED 2 (where the board has one) shows a
    UART error.

    Parameters
    ----------
    network : wiring.Component
        With stream members ``i`` and ``o``.
    target : BoardTarget
    clock_mhz : float
    baud : int
    link : callable
        ``link(network, divisor=..., **link_args)`` makes the host link, a component with
        ``rx``, ``tx``, ``answered``, ``busy`` and ``error`` (:class:`~nnfab.boards.link.HostLink`,
        :class:`~nnfab.boards.stream_link.StreamLink`).
    **link_args
        For the link, e.g. HostLink's ``input_transfers``, ``output_transfers``.

    Raises
    ------
    BoardError
        If the PLL cannot make ``clock_mhz``.
    ValueError
        If the baud rate cannot be made at the clock (:func:`~nnfab.boards.uart.uart_divisor`).
    """

    def __init__(self, network, *, target, clock_mhz, baud, link=HostLink, **link_args):
        self._target = target
        if clock_mhz == target.oscillator_mhz:
            self._pll = None
            self.f_clock_mhz = float(clock_mhz)
        else:
            make = ice40_pll if target.family == "ice40" else ecp5_pll
            self._pll = make(target.oscillator_mhz, clock_mhz)
            self.f_clock_mhz = self._pll.f_out_mhz
        self.divisor = uart_divisor(self.f_clock_mhz * 1e6, baud)
        self.link = link(network, divisor=self.divisor, **link_args)

    def elaborate(self, platform):
        m = Module()
        if self._pll is not None:
            m.domains.sync = ClockDomain("sync")
            locked = Signal()
            clk_out = Signal()
            m.d.comb += ClockSignal("sync").eq(clk_out)
            clk_name = platform.default_clk
            if self._target.family == "ice40":
                clk_pin = platform.request(clk_name, dir="-")
                m.submodules.pll = Instance(
                    "SB_PLL40_PAD",
                    **{f"p_{k}": v for k, v in self._pll.params.items()},
                    i_PACKAGEPIN=clk_pin.io, i_RESETB=1, i_BYPASS=0,
                    o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
            else:
                clk = platform.request(clk_name)
                m.submodules.pll = Instance(
                    "EHXPLLL",
                    **{f"a_{k}": v for k, v in self._pll.attrs.items()},
                    **{f"p_{k}": v for k, v in self._pll.params.items()},
                    i_CLKI=clk.i, i_CLKFB=clk_out, i_RST=0, i_STDBY=0,
                    i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                    i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                    o_CLKOP=clk_out, o_LOCK=locked)
            platform.add_clock_constraint(clk_out, self.f_clock_mhz * 1e6)
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        m.submodules.link = link = self.link
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        status = [link.answered, link.busy, link.error]
        for k, value in enumerate(status):
            try:
                led = platform.request("led", k)
            except Exception:  # the board has fewer LEDs  # noqa: BLE001
                break
            m.d.comb += led.o.eq(value)
        return m
