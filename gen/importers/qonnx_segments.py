"""Thresholds of the float arithmetic between an integer accumulator and the next quantizer of a
QONNX graph, found and proven by evaluating that arithmetic as qonnx evaluates it.

A *segment* is the float part of a QONNX graph from a layer's accumulator to the next
``Quant`` or ``BipolarQuant``: per output channel ``c`` the matrix product's float value is
``v = scale[c] * acc + offset[c]`` (``scale``, ``offset`` exact rationals of the float32
constants), then the graph's own nodes (bias ``Add``, ``Mul``, ``Div``, ``Sub``,
``BatchNormalization``, ``Relu``, ...) and the quantizer. The reference is qonnx's
``execute_onnx``, so the segment is run by it (its nodes copied into a small ONNX graph, run node
by node on onnxruntime, the quantizer by qonnx's own ``quant``), on ``v`` rounded once to float32
(what the float graph's ``MatMul`` yields up to its own float32 summation order).

:func:`segment_thresholds` finds, per channel, the thresholds ``T[c, k]`` with
``code = base + #{k : acc >= T[c, k]}`` (FINN's ``MultiThreshold``) by bisection on the
reachable accumulator range, then proves them: exhaustively (every reachable accumulator of
every channel evaluated and compared) when the widest channel range has at most
``max_exhaustive`` values, else at ``T - 1`` and ``T`` of every threshold. A channel whose
codes fall as the accumulator grows (a negative scale, BatchNormalization's negative gamma) is
*flipped*: its thresholds are on ``-acc`` and its weights must be negated. Thresholds whose
code changes when ``v`` moves by 64 float32 ulps are counted as *near ties* (there the float
graph's summation order could decide the code).
"""

from dataclasses import dataclass

import numpy as np

from nnfab.errors import UnsupportedLayerError

__all__ = ["Segment", "SegmentProof", "segment_thresholds"]

#: Rows of one execute_onnx call (times the channels, the floats evaluated at once).
_CELLS = 1 << 22
#: Relative move of v that counts a threshold as a near tie (64 float32 ulps).
_NEAR = 64 * 2.0 ** -23


@dataclass(frozen=True)
class Segment:
    """The float arithmetic from one layer's accumulator to the codes of a quantizer.

    Parameters
    ----------
    name : str
        The quantizer node, named in errors and proofs.
    start : str
        ONNX tensor name of the float accumulator (the segment's input).
    nodes : list of onnx.NodeProto
        The segment's nodes in order; the last is the quantizer.
    initializers : dict of str to ndarray
        Every constant the nodes read.
    opset_imports : list
        The model's opset imports.
    scale, offset : list of Fraction
        Per channel: the float accumulator is ``scale[c] * acc + offset[c]``.
    code_scale : float or ndarray
        The quantizer's scale: codes are ``round(q / code_scale) + zero_point`` (an array: one
        per channel).
    zero_point : float or ndarray
    """

    name: str
    start: str
    nodes: list
    initializers: dict
    opset_imports: list
    scale: list
    offset: list
    code_scale: float
    zero_point: float

    @property
    def channels(self):
        return len(self.scale)


@dataclass(frozen=True)
class SegmentProof:
    """How a segment's thresholds were proven: ``method`` ``"exhaustive"`` (``n_values``
    accumulators evaluated in all) or ``"thresholds"`` (checks at ``T - 1`` and ``T``),
    ``n_flipped`` channels, ``n_near_ties`` thresholds within 64 ulps."""

    method: str
    n_values: int
    widest_range: int
    n_flipped: int
    n_near_ties: int

    def __str__(self):
        how = (f"exhaustive: all {self.n_values} reachable accumulator values evaluated by qonnx "
               f"execute_onnx (widest channel range {self.widest_range})"
               if self.method == "exhaustive" else
               f"thresholds: bisection, each checked at T-1 and T (widest channel range "
               f"{self.widest_range}, too wide to evaluate every value)")
        return f"{how}; {self.n_flipped} flipped channels; {self.n_near_ties} near ties"


class _Evaluator:
    """Codes of a segment for integer accumulators of shape (rows, channels)."""

    def __init__(self, segment):
        self._segment = segment
        self._models = {}
        self._scale = np.array([float(s) for s in segment.scale])
        self._offset = np.array([float(o) for o in segment.offset])

    def _model(self, rows):
        if rows not in self._models:
            from onnx import TensorProto, helper, numpy_helper
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.transformation.infer_shapes import InferShapes
            from qonnx.util.basic import qonnx_make_model

            s = self._segment
            names = {i for node in s.nodes for i in node.input}
            inits = [numpy_helper.from_array(np.asarray(v), k)
                     for k, v in s.initializers.items() if k in names]
            shape = [rows, s.channels]
            graph = helper.make_graph(
                list(s.nodes), "segment",
                [helper.make_tensor_value_info(s.start, TensorProto.FLOAT, shape)],
                [helper.make_tensor_value_info(s.nodes[-1].output[0], TensorProto.FLOAT, shape)],
                initializer=inits)
            model = ModelWrapper(qonnx_make_model(graph, opset_imports=s.opset_imports))
            self._models[rows] = model.transform(InferShapes())
        return self._models[rows]

    def __call__(self, acc, *, nudge=0.0):
        """Codes for ``acc`` (int64, shape (rows, channels)); ``nudge`` scales the float
        accumulator by ``1 + nudge``."""
        from qonnx.core.onnx_exec import execute_onnx

        s = self._segment
        acc = np.asarray(acc, dtype=np.int64)
        out = np.empty(acc.shape, dtype=np.int64)
        step = max(1, _CELLS // s.channels)
        for first in range(0, len(acc), step):
            part = acc[first:first + step]
            rows = len(part)
            size = step if len(acc) > step else rows
            padded = np.concatenate([part, np.repeat(part[-1:], size - rows, axis=0)])
            v = padded.astype(np.float64) * self._scale + self._offset
            v = (v * (1.0 + nudge)).astype(np.float32)
            model = self._model(size)
            q = execute_onnx(model, {s.start: v})[s.nodes[-1].output[0]]
            codes = np.round(q.astype(np.float64) / s.code_scale) + s.zero_point
            out[first:first + rows] = codes[:rows].astype(np.int64)
        return out


def segment_thresholds(segment, low, high, *, base, n_levels, max_exhaustive=1 << 20):
    """Thresholds of ``segment`` on the accumulators ``low[c]`` to ``high[c]``.

    Parameters
    ----------
    segment : Segment
    low, high : ndarray of int, shape (channels,)
        The reachable accumulator range of each channel.
    base : int
        The smallest code of the quantizer.
    n_levels : int
        Thresholds per channel ``K``: codes ``base`` to ``base + K``.
    max_exhaustive : int
        Largest channel range proven by evaluating every value.

    Returns
    -------
    thresholds : ndarray of int64, shape (channels, K)
        On ``sign[c] * acc``, within ``sign * range`` and one above.
    sign : ndarray of int64, shape (channels,)
        ``-1`` for a flipped channel, else ``1``.
    proof : SegmentProof

    Raises
    ------
    UnsupportedLayerError
        If the codes of some channel are not monotone in the accumulator (no thresholds
        describe them), naming the quantizer, the channel and the accumulators.
    """
    evaluate = _Evaluator(segment)
    low, high = np.asarray(low, dtype=np.int64), np.asarray(high, dtype=np.int64)
    ends = evaluate(np.stack([low, high]))
    sign = np.where(ends[0] > ends[1], -1, 1).astype(np.int64)
    lo, hi = np.where(sign > 0, low, -high), np.where(sign > 0, high, -low)

    def codes(acc):  # on sign * acc, acc within [lo, hi]
        return evaluate(np.clip(acc, lo, hi) * sign)

    levels = base + 1 + np.arange(n_levels)[:, None]
    left = np.broadcast_to(lo, (n_levels, len(lo))).copy()
    right = np.broadcast_to(hi + 1, (n_levels, len(lo))).copy()
    while np.any(left < right):
        mid = (left + right) // 2
        above = codes(mid) >= levels
        open_ = left < right
        right = np.where(open_ & above, mid, right)
        left = np.where(open_ & ~above, mid + 1, left)
    thresholds = left.T.copy()
    widest = int((hi - lo).max()) + 1
    if widest <= max_exhaustive:
        method, n_values = "exhaustive", int((hi - lo + 1).sum())
        for first in range(0, widest, max(1, _CELLS // len(lo))):
            acc = lo + np.arange(first, min(widest, first + max(1, _CELLS // len(lo))))[:, None]
            got = codes(acc)
            want = _counts(np.minimum(acc, hi), thresholds, base)
            _check(segment, got, want, np.minimum(acc, hi), sign)
    else:
        method, n_values = "thresholds", 2 * thresholds.size
        for delta in (-1, 0):
            acc = (thresholds + delta).T
            inside = (acc >= lo) & (acc <= hi)
            got = codes(acc)
            want = _counts(np.clip(acc, lo, hi), thresholds, base)
            _check(segment, np.where(inside, got, want), want, acc, sign)
    near = np.zeros(left.shape, dtype=bool)
    for delta in (-1, 0):
        acc = np.clip((thresholds + delta).T, lo, hi)
        plain = codes(acc)
        for nudge in (_NEAR, -_NEAR):
            near |= evaluate(acc * sign, nudge=nudge) != plain
    proof = SegmentProof(method, n_values, widest, int((sign < 0).sum()), int(near.sum()))
    return thresholds, sign, proof


def _counts(acc, thresholds, base):
    """``base + #{k : acc[:, c] >= thresholds[c, k]}`` (sorted rows: a binary search per
    channel)."""
    out = np.empty(acc.shape, dtype=np.int64)
    for c in range(acc.shape[1]):
        out[:, c] = np.searchsorted(thresholds[c], acc[:, c], side="right")
    return out + base


def _check(segment, got, want, acc, sign):
    if np.array_equal(got, want):
        return
    bad = np.argwhere(got != want)
    if len(bad):
        r, c = bad[0]
        raise UnsupportedLayerError(
            f"Node {segment.name!r}: codes of channel {c} are not monotone in the accumulator "
            f"(at accumulator {int(acc[r, c] * sign[c])} the float graph gives code "
            f"{int(got[r, c])}, thresholds give {int(want[r, c])}); nnfab maps the float "
            f"arithmetic between quantizers to thresholds only when it is monotone per channel")
