from pathlib import Path

import yaml

from ...vectors import shared_dir

HLS4ML_MODELS = shared_dir() / "models" / "hls4ml-example-models"
#: The configs hls4ml's config_from_onnx_model writes (make_onnx_configs.py).
ONNX_CONFIGS = Path(__file__).parent / "onnx_configs"


def onnx_config(tmp_path, name):
    """The generated config ``onnx_configs/NAME.yml`` as written, its ``OnnxModel`` made
    absolute (it is relative to ``shared/models/hls4ml-example-models``), in ``tmp_path``."""
    raw = yaml.safe_load((ONNX_CONFIGS / f"{name}.yml").read_text())
    raw["OnnxModel"] = str(HLS4ML_MODELS / raw["OnnxModel"])
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(raw))
    return path
