from ...vectors import shared_dir

HLS4ML_MODELS = shared_dir() / "models" / "hls4ml-example-models"
