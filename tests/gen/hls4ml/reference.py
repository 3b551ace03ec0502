"""hls4ml's own conversion and C simulation of a project config: the reference the hls4ml
compatibility tests compare nnfab with. Needs the ``hls4ml`` package (test extra) and g++.

Recipes (hls4ml 1.3): Keras ``KerasJson``/``KerasH5`` configs go through
``hls4ml.converters.keras_v2_to_hls`` (``convert_from_config`` does not route them); ONNX
models first through qonnx's clean-up, ``ConvertToChannelsLastAndClean`` and ``GemmToMatMul``,
as hls4ml's ONNX flow expects. Every layer is traced (``Trace: true`` on the original names,
which hls4ml's rewrites copy to the layers they create). The C simulation library is compiled
at ``-O1`` instead of hls4ml's ``-O3`` and as one translation unit (``build_lib.sh``): the
same exact ``ap_fixed`` arithmetic, and the 16-bit jet tagger compiled in 6.6 s instead of
10.0 s at ``-O1``, then 14 s instead of 23 s on two busy cores in one unit."""

import copy
from pathlib import Path

import numpy as np
import yaml


def _keras_config(path, out_dir):
    config = yaml.safe_load(Path(path).read_text())
    base = Path(path).parent
    config["KerasJson"] = str(base / config["KerasJson"])
    if config.get("KerasH5"):
        config["KerasH5"] = str(base / config["KerasH5"])
    config["OutputDir"] = str(out_dir)
    config["Backend"] = config.get("Backend", "Vivado")
    return config


def _trace_everything(config, names):
    layer_names = config["HLSConfig"].setdefault("LayerName", {}) or {}
    config["HLSConfig"]["LayerName"] = layer_names
    for name in names:
        layer_names.setdefault(name, {})["Trace"] = True


def hls4ml_model(path, out_dir, *, compile=True):
    """The hls4ml model of the project config at ``path`` (written in ``out_dir``), compiled
    unless ``compile`` is false."""
    import hls4ml

    config = yaml.safe_load(Path(path).read_text())
    if "OnnxModel" in config:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
        from qonnx.transformation.gemm_to_matmul import GemmToMatMul
        from qonnx.util.cleanup import cleanup_model

        onnx_model = ModelWrapper(str(Path(path).parent / config["OnnxModel"]))
        onnx_model = cleanup_model(onnx_model)
        onnx_model = onnx_model.transform(ConvertToChannelsLastAndClean())
        onnx_model = onnx_model.transform(GemmToMatMul())
        onnx_model = cleanup_model(onnx_model)
        config.update(OnnxModel=onnx_model, OutputDir=str(out_dir),
                      Backend=config.get("Backend", "Vivado"))
        original = [layer["name"] for layer in hls4ml.converters.parse_onnx_model(onnx_model)[0]]
        final = [layer.name for layer in
                 hls4ml.converters.onnx_to_hls(copy.deepcopy(config)).get_layers()]
        _trace_everything(config, original + final)
        model = hls4ml.converters.onnx_to_hls(config)
    else:
        config = _keras_config(path, out_dir)
        names = [layer.name for layer in
                 hls4ml.converters.keras_v2_to_hls(copy.deepcopy(config)).get_layers()]
        _trace_everything(config, names)
        model = hls4ml.converters.keras_v2_to_hls(config)
    _compile_at_o1(model)
    if compile:
        model.compile()
    return model


#: The compile lines of hls4ml 1.3's ``build_lib.sh`` (templates/vivado/build_lib.sh): two
#: translation units, then the shared library.
_BUILD_LIB_LINES = (
    '${CC} ${CFLAGS} ${INCFLAGS} -D WEIGHTS_DIR="${WEIGHTS_DIR}" -c firmware/${PROJECT}.cpp '
    '-o ${PROJECT}.o\n'
    '${CC} ${CFLAGS} ${INCFLAGS} -D WEIGHTS_DIR="${WEIGHTS_DIR}" -c ${PROJECT}_bridge.cpp '
    '-o ${PROJECT}_bridge.o\n'
    '${CC} ${CFLAGS} ${INCFLAGS} -shared ${PROJECT}.o ${PROJECT}_bridge.o '
    '-o firmware/${PROJECT}-${LIB_STAMP}.so\n')
#: The same lines of the Quartus backend's ``build_lib.sh`` (templates/quartus/build_lib.sh):
#: no ``WEIGHTS_DIR`` (the weights are headers), ``ac_types`` and ``ap_types`` includes.
_QUARTUS_BUILD_LIB_LINES = (
    '${CC} ${CFLAGS} ${INCFLAGS} -c firmware/${PROJECT}.cpp -o ${PROJECT}.o\n'
    '${CC} ${CFLAGS} ${INCFLAGS} -c ${PROJECT}_bridge.cpp -o ${PROJECT}_bridge.o\n'
    '${CC} ${CFLAGS} ${INCFLAGS} -shared ${PROJECT}.o ${PROJECT}_bridge.o '
    '-o firmware/${PROJECT}-${LIB_STAMP}.so\n')
#: One translation unit instead: the ap_types and nnet_utils headers are parsed once.
_UNITY_LINES = (
    'printf \'#include "firmware/%s.cpp"\\n#include "%s_bridge.cpp"\\n\' "${PROJECT}" '
    '"${PROJECT}" > ${PROJECT}_unity.cpp\n'
    '${CC} ${CFLAGS} ${INCFLAGS} -D WEIGHTS_DIR="${WEIGHTS_DIR}" -shared ${PROJECT}_unity.cpp '
    '-o firmware/${PROJECT}-${LIB_STAMP}.so\n')
_QUARTUS_UNITY_LINES = _UNITY_LINES.replace(' -D WEIGHTS_DIR="${WEIGHTS_DIR}"', '')


def _compile_at_o1(model):
    """Make every later ``compile()`` (also the one ``trace()`` runs) build at ``-O1`` and in
    one translation unit: hls4ml writes the project, then its ``build_lib.sh`` is edited (the
    Vivado or the Quartus backend's; ``Backend: Quartus`` compiles with g++ and the ``ac_types``
    hls4ml bundles, no Quartus install). The same sources and the same exact ``ap_fixed``
    arithmetic; the keras-config.yml jet tagger compiled in 14 s instead of 23 s (two busy
    cores)."""
    write = model.write

    def write_at_o1():
        write()
        script = Path(model.config.get_output_dir()) / "build_lib.sh"
        text = script.read_text()
        quartus = model.config.get_config_value("Backend").lower() == "quartus"
        lines, unity = ((_QUARTUS_BUILD_LIB_LINES, _QUARTUS_UNITY_LINES) if quartus
                        else (_BUILD_LIB_LINES, _UNITY_LINES))
        if 'CFLAGS="-O3 ' not in text or lines not in text:
            raise RuntimeError(f"{script} no longer sets CFLAGS=\"-O3 ...\" or compiles "
                               f"two translation units as hls4ml 1.3 does; update the tests")
        script.write_text(text.replace('CFLAGS="-O3 ', 'CFLAGS="-O1 ').replace(lines, unity))

    model.write = write_at_o1


def hls4ml_trace(path, x, out_dir):
    """``(outputs, {layer name: outputs})`` of hls4ml's C simulation on ``x`` (float64).

    ``trace()`` compiles the project with tracing and runs the same top function as
    ``predict()``; one compile instead of two (each takes 10-30 s)."""
    model = hls4ml_model(path, out_dir, compile=False)
    y, trace = model.trace(np.ascontiguousarray(x, dtype=np.float64))
    y = np.asarray(y)
    return y, {name: np.asarray(values) for name, values in trace.items()}


_QUANTIZER_KEYS = ("kernel_quantizer", "bias_quantizer", "kernel_range", "bias_range",
                   "quantizer")


def dequantized_twin(config_path, out_dir):
    """A float Keras twin of a QKeras project, for hls4ml without the ``qkeras`` package: the
    same layer names and config, ``QDense``/``QConv2D`` as ``Dense``/``Conv2D`` whose stored
    weights are the QKeras-quantized values (computed by nnfab's QKeras quantizers, checked
    against QKeras in the importer tests), ``QActivation(quantized_relu)`` as a ReLU and
    ``quantized_bits`` as linear. hls4ml converts QKeras weights with the same quantizers and
    takes every type from the config, so its C simulation of the twin is its C simulation of
    the QKeras model. Returns the twin's config path."""
    import json
    import shutil

    import h5py

    from nnfab.gen.importers.qkeras_quantizers import apply_quantizer, parse_quantizer

    config_path = Path(config_path)
    raw = yaml.safe_load(config_path.read_text())
    base = config_path.parent.parent  # the example configs name paths from their parent
    model_json, weights_h5 = base / raw["KerasJson"], base / raw["KerasH5"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = json.loads(model_json.read_text())
    quantizers = {}
    for layer in arch["config"]["layers"]:
        cls, cfg = layer["class_name"], layer["config"]
        if cls in ("QDense", "QConv2D"):
            layer["class_name"] = cls[1:]
            quantizers[cfg["name"]] = {key: cfg.get(f"{key}_quantizer")
                                       for key in ("kernel", "bias")}
        elif cls == "QActivation":
            name, _ = parse_quantizer(cfg["activation"], cfg["name"])
            layer["class_name"] = "Activation"
            cfg["activation"] = "relu" if name == "quantized_relu" else "linear"
        for key in _QUANTIZER_KEYS:
            cfg.pop(key, None)
    twin_json, twin_h5 = out_dir / model_json.name, out_dir / weights_h5.name
    twin_json.write_text(json.dumps(arch))
    shutil.copy(weights_h5, twin_h5)
    with h5py.File(twin_h5, "r+") as file:
        root = file["model_weights"] if "model_weights" in file else file
        for layer, specs in quantizers.items():
            def visit(key, obj, specs=specs, layer=layer):
                short = key.rsplit("/", 1)[-1].split(":")[0]
                if hasattr(obj, "shape") and specs.get(short):
                    fmt, codes = apply_quantizer(*parse_quantizer(specs[short], layer), obj[()])
                    obj[...] = np.ldexp(np.asarray(codes, dtype=np.float64),
                                        -fmt.fraction_width)
            root[layer].visititems(visit)
    raw.update(KerasJson=str(twin_json), KerasH5=str(twin_h5))
    twin_config = out_dir / config_path.name
    twin_config.write_text(yaml.safe_dump(raw))
    return twin_config
