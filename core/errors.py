"""Exception types raised by nnfab."""

__all__ = ["NnfabError", "ToolchainError", "SimulationError"]


class NnfabError(Exception):
    """Base class of every error nnfab raises on purpose."""


class ToolchainError(NnfabError):
    """An external tool that nnfab needs (Verilator, g++, make, perl, ...) is missing or broken."""


class SimulationError(NnfabError):
    """An RTL simulation could not be built or ended without results."""
