"""The description of one board target: its FPGA, its resources and how to build for it."""

from dataclasses import dataclass

__all__ = ["BoardTarget", "DEFAULT_PNR_TIMEOUT_MINUTES"]

#: Wall-clock minutes nextpnr may place and route before a board build stops it, unless the
#: build names another limit (``nnfab build --board --pnr-timeout``).
DEFAULT_PNR_TIMEOUT_MINUTES = 60


@dataclass(frozen=True)
class BoardTarget:
    """A board: its FPGA, its resources and how to build for it.

    Attributes
    ----------
    name : str
        The name ``nnfab build --board`` takes.
    description : str
    family : str
        ``"ice40"`` or ``"ecp5"``.
    device, package : str
        As the vendor names them (``iCE40UP5K``/``SG48``, ``LFE5U-85F``/``CABGA381``).
    nextpnr_device : tuple of str
        Device options of nextpnr (``("--up5k",)``, ``("--85k",)``).
    nextpnr_package : str
    luts, flip_flops, dsps, block_rams : int
        Capacities: LUT4s, flip-flops, multiplier blocks (SB_MAC16 / MULT18X18D), block RAMs
        (4 Kb EBR / 18 Kb DP16KD).
    block_ram_kbits : int
    oscillator_mhz : float
        The board's clock.
    default_clock_mhz : float
        The network's clock when the build names none (a PLL makes it from the oscillator).
    max_multipliers : int
        Multipliers per dense layer when the build chooses reuse factors.
    platform_class : type
        The amaranth-boards platform.
    """

    name: str
    description: str
    family: str
    device: str
    package: str
    nextpnr_device: tuple
    nextpnr_package: str
    luts: int
    flip_flops: int
    dsps: int
    block_rams: int
    block_ram_kbits: int
    oscillator_mhz: float
    default_clock_mhz: float
    max_multipliers: int
    platform_class: type
    bitstream_suffix: str

    def platform(self):
        """A fresh amaranth-boards platform instance."""
        return self.platform_class()
