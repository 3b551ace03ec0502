"""Analytic skip-FIFO depths: how far each input of a join can run ahead of the others,
bounded from the engines' dataflow and schedules instead of simulated.

A join (``add``, ``concatenate``) takes item ``k`` of every input at once. While it waits for
the slowest input's item ``k``, the network input keeps streaming and every faster branch
keeps producing: those items wait in the faster branch's skip FIFO. Two figures per tensor
``X``, both in network-input transfers and both for two frames back to back:

``need[X][k]``
    Input transfers without which item ``k`` of ``X`` cannot exist: the dataflow demand. A
    3x3 "same" convolution's output pixel ``(r, c)`` needs its input pixel
    ``(r + 1, c + 1)``; a 2x2 max pool's ``(r, c)`` needs ``(2r + 1, 2c + 1)``; a nearest
    upsampling's first copy of a row needs ``(r // sh, c // sw)`` and its other copies the
    whole input row (they are read from the row buffer); an element-wise engine needs item
    ``k``; a flatten or global pool the whole frame. Exact for in-order engines: no engine
    can do better, so a FIFO smaller than what this implies can deadlock.
``accepted[X][k]``
    An upper bound on the input transfers accepted by the time item ``k`` of ``X`` leaves
    its engine at full rate: ``need`` plus what the pipelines take in meanwhile. Engines with a
    ``schedule`` (convolution, pooling, upsampling) give it cycle-exactly in isolation (the
    inputs accepted up to each output's cycle); the others add one transfer per cycle of
    their ``latency``.

The FIFO before input ``j`` of a join holds, when the join takes item ``k``, the items of
input ``j`` produced by then minus the ``k`` already taken: at most
``produced_j(max over i != j of accepted[P_i][k]) - k`` (``produced_j(m)``: the items of
input ``j`` whose ``need`` is at most ``m``), or 1 when input ``j`` is itself the last to
arrive. Its depth is the largest such fill over two frames plus ``slack``; an input whose
fill never exceeds 1 (the item its engine holds on its output anyway) gets no FIFO. The
``need`` part alone, less the one transfer a fork can hold for the slowest branch, is the
least depth that cannot deadlock; ``accepted`` adds what full rate
needs. Cost: NumPy over two frames (more when the pipelines hold more than a frame) of every
tensor up to the last join.
"""

import math

import numpy as np

from nnfab.hdl.line_buffer import window_positions
from nnfab.ir import INPUT

__all__ = ["analytic_skip_fifo_depths", "JOIN_PATH_LATENCY"]

#: Cycles a join input may spend beyond its tensor's engine: the skip FIFO's latency.
JOIN_PATH_LATENCY = 2


def _transfers(shape):
    return math.prod(shape[:-1])


def _inside_counts(input_hw, pads):
    """For every padded position in raster order, the input pixels at or before it."""
    (h, w), ((top, bottom), (left, right)) = input_hw, pads
    inside = np.zeros((h + top + bottom, w + left + right), dtype=np.int64)
    inside[top:top + h, left:left + w] = 1
    return np.cumsum(inside.reshape(-1))


def _window_need(input_hw, kernel_size, strides, pads):
    """Input pixels each window of one frame needs: those up to its last padded position."""
    (h, w), ((top, bottom), (left, right)) = input_hw, pads
    ends = np.flatnonzero(window_positions((h + top + bottom, w + left + right), kernel_size,
                                           strides))
    return _inside_counts(input_hw, pads)[ends]


def _upsample_need(input_hw, size):
    (h, w), (sh, sw) = input_hw, size
    r, c = np.divmod(np.arange(h * sh * w * sw), w * sw)
    return np.where(r % sh == 0, (r // sh) * w + c // sw + 1, (r // sh + 1) * w)


def _local_need(layer, n_in, n_out):
    """Input items needed by each output item of one frame of ``layer``, or None when the
    layer is element-wise in its transfers."""
    kind = layer.kind
    if kind == "conv2d":
        spec = layer.spec
        return _window_need(spec.input_shape[:2], spec.kernel_size, spec.strides, spec.pads)
    if kind == "pool":
        spec = layer.spec
        return _window_need(spec.input_shape[:2], spec.pool_size, spec.strides, spec.pads)
    if kind == "upsample":
        return _upsample_need(tuple(layer.shape[:2]), tuple(layer.size))
    if kind == "zero_pad":
        (top, bottom), (left, right) = layer.padding
        return _inside_counts(tuple(layer.shape[:2]), ((top, bottom), (left, right)))
    if n_in == n_out:
        return None
    return np.full(n_out, n_in, dtype=np.int64)  # flatten, global pooling: the whole frame


def _frames(per_frame, n_in, n_frames):
    return np.concatenate([per_frame + f * n_in for f in range(n_frames)])


def _local_demand(layer, engine, n_frames=2):
    """``(need, accepted)``: per output item of ``n_frames`` frames of one engine in
    isolation, the input items it needs and (an upper bound on) the input items it has
    accepted when the item leaves at full rate."""
    n_in = _transfers(layer.input_shape)
    n_out = _transfers(layer.output_shape)
    per_frame = _local_need(layer, n_in, n_out)
    if per_frame is None:
        need = np.arange(1, n_frames * n_out + 1, dtype=np.int64)
    else:
        need = _frames(np.maximum.accumulate(per_frame), n_in, n_frames)
    if hasattr(engine, "schedule"):
        inputs, outputs = engine.schedule(n_frames=n_frames)
        accepted = np.searchsorted(np.asarray(inputs), np.asarray(outputs), side="right")
    else:
        accepted = need + math.ceil(engine.latency)
    return need, np.maximum(accepted, need)


def _at(values, index):
    return values[np.minimum(index, len(values) - 1)]


def analytic_skip_fifo_depths(model, engine_of, *, slack=2, full_rate=True):
    """Skip-FIFO depth of every join input of ``model`` that needs one (see the module).

    Parameters
    ----------
    model : nnfab.ir.Model
    engine_of : callable
        ``engine_of(layer)`` gives the layer's engine (for its ``latency`` and
        ``schedule``).
    slack : int
        Transfers added to every depth.
    full_rate : bool
        Whether the depths keep the network at full rate (the default), or are only the
        least that cannot deadlock (the ``need`` part alone, for tests).

    Returns
    -------
    dict of (str, int) to int
        ``(layer name, input index)`` to depth in transfers; inputs without a FIFO are left
        out.
    """
    joins = [layer for layer in model.layers if len(layer.inputs) > 1]
    if not joins:
        return {}
    last = max(model.layers.index(layer) for layer in joins)
    layers = model.layers[:last + 1]
    engines = [engine_of(layer) for layer in layers]
    n = _transfers(model.input_shape)
    # Enough frames that every path's in-flight items (at most one transfer per cycle of
    # latency) stay within the frames modelled, whatever the frame size (one for vectors).
    in_flight = sum(math.ceil(engine.latency) + JOIN_PATH_LATENCY for engine in engines)
    n_frames = 2 + math.ceil(in_flight / n)
    need = {INPUT: np.arange(1, n_frames * n + 1, dtype=np.int64)}
    accepted = {INPUT: need[INPUT]}
    depths = {}
    for layer, engine in zip(layers, engines):
        if len(layer.inputs) > 1:
            # Without the full-rate term, the last input that the slowest branch needs may
            # wait in the fork (a Broadcast hands it to that branch alone): one less.
            depths.update(_join_depths(layer, need, accepted if full_rate else need,
                                       slack, JOIN_PATH_LATENCY if full_rate else -1))
        local_need, local_accepted = _local_demand(layer, engine, n_frames)
        if len(layer.inputs) > 1:
            local_accepted = local_accepted + JOIN_PATH_LATENCY
        # Item c - 1 of an input is needed for a count of c (none for 0); by the time item c
        # is asked for, at most what that item's engine accepted before emitting it.
        need[layer.name] = np.max([np.concatenate([[0], need[p]])[local_need]
                                   for p in layer.inputs], axis=0)
        accepted[layer.name] = np.maximum(
            np.max([_at(accepted[p], local_accepted) for p in layer.inputs], axis=0),
            need[layer.name])
    return depths


def _join_depths(layer, need, arrived, slack, offset):
    """Depths of the FIFOs before ``layer``'s inputs: when the join takes item ``k``, the
    faster inputs hold what ``arrived[P_i][k] + offset`` network-input transfers give, for the
    input ``i`` that came last."""
    depths = {}
    items = len(need[layer.inputs[0]])
    k = np.arange(items)
    for j, tensor in enumerate(layer.inputs):
        others = [arrived[p][:items] for i, p in enumerate(layer.inputs) if i != j]
        moment = np.max(others, axis=0) + offset
        produced = np.searchsorted(need[tensor], moment, side="right")
        fill = int(np.max(produced - k))
        if fill > 1:
            depths[(layer.name, j)] = fill + slack
    return depths
