"""Write the configs hls4ml 1.3's ``config_from_onnx_model`` gives the shared ONNX example
models, at granularity ``model``, ``type`` and ``name``, as ``yaml.safe_dump`` writes them,
into ``onnx_configs/MODEL-GRANULARITY.yml`` (the test fixtures of
``test_onnx_generated_configs.py``; run once, needs hls4ml and qonnx):

    python tests/gen/hls4ml/make_onnx_configs.py [SHARED_DIR]

(SHARED_DIR: default ``$NNFAB_SHARED_DIR``, else ``shared/`` beside the repository.)

Each model goes through qonnx's clean-up, ``ConvertToChannelsLastAndClean`` and
``GemmToMatMul`` first, as hls4ml's ONNX flow expects (and as ``reference.py`` does). Beside
hls4ml's ``HLSConfig`` the file names the model (``OnnxModel``, relative to
``shared/models/hls4ml-example-models``), ``IOType: io_parallel`` and ``ProjectName``, the keys
an hls4ml project config has.
"""

import os
import sys
from pathlib import Path

import yaml

#: The shared ONNX example models (``three_layer_keras`` is the jet tagger).
MODELS = ("three_layer_keras", "three_layer_pytorch", "conv2d_small_keras",
          "conv2d_small_mp_keras")
GRANULARITIES = ("model", "type", "name")
HERE = Path(__file__).parent


def cleaned(path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    model = model.transform(ConvertToChannelsLastAndClean())
    model = model.transform(GemmToMatMul())
    return cleanup_model(model)


def main(shared):
    import hls4ml

    models = Path(shared) / "models" / "hls4ml-example-models"
    out = HERE / "onnx_configs"
    out.mkdir(exist_ok=True)
    for name in MODELS:
        onnx_model = cleaned(models / "onnx" / f"{name}.onnx")
        for granularity in GRANULARITIES:
            config = hls4ml.utils.config_from_onnx_model(onnx_model, granularity=granularity,
                                                         backend="Vivado")
            project = {"HLSConfig": config, "IOType": "io_parallel",
                       "ProjectName": "myproject", "OnnxModel": f"onnx/{name}.onnx"}
            header = (f"# hls4ml {hls4ml.__version__}'s config_from_onnx_model(granularity="
                      f"{granularity!r}, backend='Vivado') of {name}.onnx after qonnx's\n"
                      f"# clean-up and GemmToMatMul, as written by yaml.safe_dump; "
                      f"written by make_onnx_configs.py.\n")
            (out / f"{name}-{granularity}.yml").write_text(header + yaml.safe_dump(project))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.environ.get("NNFAB_SHARED_DIR", HERE.resolve().parents[3] / "shared"))
