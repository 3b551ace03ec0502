"""hls4ml compatibility: an hls4ml project config (YAML) and its model, built with hls4ml's
arithmetic so that nnfab's Verilog gives, code for code, what hls4ml's C simulation gives.
See ``docs/hls4ml.md`` for every setting and what nnfab does with it."""

from .config import ConfigError, Hls4mlConfig, load_hls4ml_config
from .convert import convert

__all__ = ["ConfigError", "Hls4mlConfig", "load_hls4ml_config", "convert", "load_hls4ml"]


def load_hls4ml(path):
    """``(config, model)``: the checked config at ``path`` and its IR model.

    Raises
    ------
    nnfab.errors.ModelError
        :class:`ConfigError` for settings nnfab cannot honour, naming setting and layer;
        :class:`~nnfab.errors.UnsupportedLayerError` for layers hls4ml mode does not build.
    """
    config = load_hls4ml_config(path)
    return config, convert(config)
