"""iCEBreaker (Lattice iCE40UP5K-SG48, 12 MHz oscillator, FTDI UART)."""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from .board import BoardTarget

__all__ = ["ICEBREAKER"]

ICEBREAKER = BoardTarget(
    name="icebreaker", description="1BitSquared iCEBreaker", family="ice40",
    device="iCE40UP5K", package="SG48", nextpnr_device=("--up5k",), nextpnr_package="sg48",
    luts=5280, flip_flops=5280, dsps=8, block_rams=30, block_ram_kbits=120,
    oscillator_mhz=12.0, default_clock_mhz=12.0, max_multipliers=4,
    platform_class=ICEBreakerPlatform, bitstream_suffix=".bin")
