"""The golden model of a QONNX import with thresholds against qonnx's ``execute_onnx`` on the
cleaned float graph: the integer codes of every quantizer, and the final accumulator.

Used by the tests and ``bench/qonnx_zoo.py``; needs qonnx.
"""

import copy
from dataclasses import dataclass

import numpy as np

from nnfab.ir import INPUT
from nnfab.sim.golden.network import trace_network

__all__ = ["QonnxComparison", "reference_context", "compare_with_qonnx"]


@dataclass(frozen=True)
class QonnxComparison:
    """Mismatching elements per compared tensor (nnfab layer name, or ``"output"`` for the
    final accumulator), over ``n_inputs`` inputs; ``first`` is ``(tensor, input index)`` of
    the first mismatch or None."""

    n_inputs: int
    compared: dict
    first: tuple = None

    @property
    def n_mismatches(self):
        return sum(self.compared.values())


def reference_context(cleaned, x):
    """Every tensor of qonnx's ``execute_onnx`` of the cleaned graph on the batch ``x`` (float32,
    shape ``(batch, *graph input shape[1:])``): the graph's batch size is set to ``len(x)``
    (qonnx's ``ChangeBatchSize``) on a copy."""
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    model = copy.deepcopy(cleaned)
    model = model.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    name = model.graph.input[0].name
    return execute_onnx(model, {name: np.asarray(x, dtype=np.float32)},
                        return_full_exec_context=True)


def _codes(q, scale, zero):
    return (np.round(np.asarray(q, dtype=np.float64) / scale) + zero).astype(np.int64)


def model_inputs(imported, x, context):
    """nnfab's input codes for graph inputs ``x``: the input quantizer's codes (flattened),
    or the raw codes of ``x`` in the model's input format (which must hold them exactly).

    Raises
    ------
    ValueError
        If an input is not exact in the input format.
    """
    if INPUT in imported.quantizers:
        tensor, scale, zero = imported.quantizers[INPUT]
        return _codes(context[tensor], scale, zero).reshape(len(x), -1)
    fmt = imported.model.input_format
    raw = np.asarray(x, dtype=np.float64).reshape(len(x), -1) / float(fmt.lsb)
    if np.any(raw != np.round(raw)) or raw.min() < fmt.min_code or raw.max() > fmt.max_code:
        raise ValueError(f"Inputs are not exact in the model's input format {fmt}")
    return raw.astype(np.int64)


def compare_with_qonnx(imported, x):
    """Run qonnx and nnfab's golden model on the graph inputs ``x`` and count mismatches.

    Every ``multithreshold`` layer's codes are compared with its quantizer's codes
    (``round(q / scale) + zero_point`` of qonnx's output), and a final accumulator ``acc``
    with qonnx's matrix product ``p`` (``acc == round((p - offset) / scale)``, per channel).

    Returns
    -------
    QonnxComparison
    """
    context = reference_context(imported.cleaned, x)
    codes = model_inputs(imported, x, context)
    golden = trace_network(imported.model, codes)
    compared, first = {}, None
    pairs = [(layer, _codes(context[t], s, z)) for layer, (t, s, z) in
             imported.quantizers.items() if layer != INPUT]
    if imported.output_scale is not None:
        scale = np.array([float(s) for s in imported.output_scale])
        offset = np.array([float(o) for o in imported.output_offset])
        product = np.asarray(context[imported.output_tensor], dtype=np.float64)
        want = np.round((product.reshape(len(x), -1) - offset) / scale).astype(np.int64)
        pairs.append((imported.model.layers[-1].name, want))
    for layer, want in pairs:
        got = np.asarray(golden[layer]).reshape(len(x), -1)
        bad = got != want.reshape(len(x), -1)
        compared[layer] = int(bad.sum())
        if first is None and bad.any():
            first = (layer, int(np.argwhere(bad)[0][0]))
    return QonnxComparison(len(x), compared, first)
