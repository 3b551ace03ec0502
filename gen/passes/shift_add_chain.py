"""Build consecutive fused shift-add dense layers as one pipeline."""

from nnfab.ir import ShiftAddChainLayer
from nnfab.ir.shift_add_chain import CHAIN_TIMING

from .base import Pass, feeds_previous

__all__ = ["ChainShiftAdd"]


class ChainShiftAdd(Pass):
    """Replace every run of two or more consecutive :class:`~nnfab.ir.ShiftAddDenseLayer`
    (made by :class:`FuseShiftAdd`), each reading only the one before and the only reader of
    it, with the same timing (``clock_mhz``, ``family``, ``adder_levels_per_stage``), by one
    :class:`~nnfab.ir.ShiftAddChainLayer` named after its first layer.

    The chain (:class:`nnfab.hdl.shift_add_chain.ShiftAddChain`) computes exactly what its
    layers do, but as one free-running pipeline: its registers are placed by the delay
    model over all the layers (a layer's output logic shares a stage with the next layer's
    first adders), and only the last layer has an output register and a skid FIFO. The HGQ
    jet classifier at 100 MHz: 6 cycles instead of 8.

    A layer that reads several tensors, whose output other layers also read, or whose
    timing differs from the one before starts a new run; a run of one layer stays as it is.
    """

    def apply(self, model):
        layers, consumers = list(model.layers), model.consumers()
        out, run, changed = [], [], False

        def close():
            nonlocal changed
            if len(run) > 1:
                out.append(ShiftAddChainLayer(run[0].name, parts=tuple(run)))
                changed = True
            else:
                out.extend(run)
            run.clear()

        for k, layer in enumerate(layers):
            if layer.kind != "shift_add_dense":
                close()
                out.append(layer)
                continue
            if run and not (feeds_previous(layers, consumers, k) and
                            _timing(layer) == _timing(run[-1])):
                close()
            run.append(layer)
        close()
        return (model.replace_layers(out), True) if changed else (model, False)


def _timing(layer):
    return tuple(getattr(layer, key) for key in CHAIN_TIMING)
