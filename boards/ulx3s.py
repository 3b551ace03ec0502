"""ULX3S with the ECP5-85F (Lattice LFE5U-85F-6BG381C, 25 MHz oscillator, FTDI UART)."""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from .board import BoardTarget

__all__ = ["ULX3S_85F"]

ULX3S_85F = BoardTarget(
    name="ulx3s-85f", description="Radiona ULX3S (ECP5-85F)", family="ecp5",
    device="LFE5U-85F", package="CABGA381", nextpnr_device=("--85k",),
    nextpnr_package="CABGA381",
    luts=83640, flip_flops=83640, dsps=156, block_rams=208, block_ram_kbits=3744,
    oscillator_mhz=25.0, default_clock_mhz=25.0, max_multipliers=16,
    platform_class=ULX3S_85F_Platform, bitstream_suffix=".bit")
