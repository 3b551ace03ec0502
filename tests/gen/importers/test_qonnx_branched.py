"""The QONNX branched model of hls4ml's examples (``branched_model_ch_last.onnx``: 256x256x3
channels-last input, depthwise-separable convolutions, LeakyReLU, max pooling, a nearest
``Resize`` and a ``Concat`` of a skip branch): nnfab's golden model of the imported graph
equals qonnx's ``execute_onnx`` on seeded full-size images, every layer that qonnx also
computes and the output, value for value (each nnfab code times its LSB)."""

import numpy as np
import pytest

from nnfab.gen.importers.qonnx import load_qonnx
from nnfab.casts import quantize, to_float
from nnfab.sim.golden.network import trace_network

from .conftest import SHARED, need

pytest.importorskip("qonnx")


def _qonnx_context(path, x):
    from onnx.helper import make_opsetid
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapper = ModelWrapper(str(path))
    # qonnx runs a channels-last op at its domain's opset, 1 when the file names none
    # (MaxPool-1 has no ceil_mode): name opset 17, the file's standard opset.
    wrapper.model.opset_import.append(make_opsetid("qonnx.custom_op.channels_last", 17))
    return execute_onnx(wrapper, {"global_in": x.astype(np.float32)},
                        return_full_exec_context=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed,kind", [(0, "normal"), (1, "saturating")])
def test_branched_golden_equals_qonnx_on_full_images(seed, kind):
    path = need(SHARED / "models" / "hls4ml-example-models" / "onnx" /
                "branched_model_ch_last.onnx")
    model = load_qonnx(path)
    assert model.input_shape == (256, 256, 3) and model.output_shape == (256, 256, 2)
    kinds = {layer.kind for layer in model.layers}
    assert {"conv2d", "pool", "upsample", "concatenate", "activation"} <= kinds
    assert [layer.inputs for layer in model.layers if layer.kind == "concatenate"] == \
        [("Quant_108", "Quant_64")]
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, (1, 256, 256, 3)) if kind == "normal" else \
        rng.uniform(-1.5, 1.5, (1, 256, 256, 3))  # beyond the input range: saturation
    context = _qonnx_context(path, x)
    ours = trace_network(model, quantize(x, model.input_format))
    compared = 0
    for layer in model.layers:
        want = context.get(f"{layer.name}_out0")
        if want is None:
            continue
        got = to_float(ours[layer.name], layer.output_format)
        assert np.array_equal(got, want), f"{layer.name}: {int(np.sum(got != want))} differ"
        compared += 1
    assert compared >= 30
    got = to_float(ours[model.layers[-1].name], model.output_format)
    assert np.array_equal(got, context["global_out"])
