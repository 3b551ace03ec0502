"""Exception types raised by nnfab."""

__all__ = ["NnfabError", "ToolchainError", "SimulationError", "ModelError",
           "UnsupportedLayerError", "FormatError", "ShapeError", "BoardError",
           "OutputError", "SweepError", "Interrupted"]


class NnfabError(Exception):
    """Base class of every error nnfab raises on purpose."""


class ToolchainError(NnfabError):
    """An external tool that nnfab needs (Verilator, g++, make, perl, ...) is missing or broken."""


class SimulationError(NnfabError):
    """An RTL simulation could not be built or ended without results."""


class ModelError(NnfabError):
    """A model file or model description is malformed or inconsistent."""


class UnsupportedLayerError(ModelError):
    """A model uses a layer type or a layer setting that nnfab cannot build."""


class FormatError(ModelError):
    """A value does not fit its fixed-point format, or a format is missing or malformed."""


class ShapeError(ModelError):
    """Tensor shapes of consecutive layers do not agree."""


class BoardError(NnfabError):
    """A design cannot be built for the requested board (unknown board, does not fit, ...)."""


class OutputError(NnfabError):
    """An output folder or file cannot be written, or would replace something that is not
    nnfab's."""


class SweepError(NnfabError):
    """A sweep file, a sweep flag or a ``--pick`` constraint is malformed."""


class Interrupted(KeyboardInterrupt):
    """nnfab was stopped by SIGINT or SIGTERM while an external tool ran; the tool and the
    processes it started have been ended. The argument names the signal."""
