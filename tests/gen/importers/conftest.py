from pathlib import Path

import pytest

from ...vectors import shared_dir

SHARED = shared_dir()
KERAS = SHARED / "models" / "hls4ml-example-models" / "keras"
ONNX = SHARED / "models" / "hls4ml-example-models" / "onnx"
QONNX = SHARED / "models" / "qonnx-model-zoo"
FRAMEWORKS = SHARED / "vectors" / "frameworks"


def need(path):
    """The path of a shared model or vector file; a missing one fails the test (CI checks
    shared/ out beside the repository; set NNFAB_SHARED_DIR elsewhere)."""
    if not Path(path).exists():
        pytest.fail(f"{path} is not available: shared/ must be beside the repository")
    return Path(path)
