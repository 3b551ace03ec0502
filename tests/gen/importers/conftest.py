from pathlib import Path

import pytest

SHARED = Path("/work/shared")
KERAS = SHARED / "models" / "hls4ml-example-models" / "keras"
ONNX = SHARED / "models" / "hls4ml-example-models" / "onnx"
QONNX = SHARED / "models" / "qonnx-model-zoo"
FRAMEWORKS = SHARED / "vectors" / "frameworks"


def need(path):
    if not Path(path).exists():
        pytest.skip(f"{path} is not available")
    return Path(path)
