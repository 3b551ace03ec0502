"""Fuse dense layers at reuse factor 1 into adder graphs, with the requantizers and activation
around them."""

import dataclasses

from nnfab.hdl.csd import csd_digits

from nnfab.ir import ShiftAddDenseLayer
from .base import Pass, feeds_previous

__all__ = ["FuseShiftAdd"]


def _is_vector_quantizer(layer):
    return layer is not None and layer.kind == "quantize" and len(layer.shape) == 1


def shift_add_eligible(layer, multiplier_threshold=None, explicit_accumulators=True,
                       kinds=("dense",)):
    """Whether ``layer`` is a layer of ``kinds`` (``"dense"``, ``"conv2d"``) whose product
    the adder-graph engine builds: reuse factor 1, exact accumulation (or, with
    ``explicit_accumulators``, a signed explicit accumulator format) and, unless
    ``multiplier_threshold`` is None, every weight at most ``multiplier_threshold``
    canonical signed digits."""
    if layer.kind not in kinds or layer.reuse_factor != 1:
        return False
    spec = layer.spec.dense_spec if layer.kind == "conv2d" else layer.spec
    if not spec.exact_accumulation and not (explicit_accumulators and spec.accumulator.signed):
        return False
    if multiplier_threshold is None:
        return True
    return all(len(csd_digits(int(w))) <= multiplier_threshold
               for w in spec.weights.flat if w)


class FuseShiftAdd(Pass):
    """Replace ``[QuantizeLayer] DenseLayer [ActivationLayer] [QuantizeLayer]`` by one
    :class:`~nnfab.ir.ShiftAddDenseLayer`, and build the window product of a convolution
    (with its cast and fused activation) as one adder graph (``adder_graph`` of
    :class:`~nnfab.ir.Conv2DLayer`), wherever the dense layer runs at reuse
    factor 1 with exact accumulation or a signed explicit accumulator (hls4ml's ``accum_t``;
    :func:`shift_add_eligible`), whatever its weights' digits.

    The fused engine (:class:`nnfab.hdl.shift_add.ShiftAddDense`) shares subexpressions between
    outputs, sizes every adder to its exact range, drops bits a wrapping cast discards and
    places registers by a delay estimate against ``clock_mhz`` instead of every level, so it
    takes fewer adders, flip-flops and cycles than the separate engines, with the same results.
    A fused layer after another one with an output requantizer knows its input lanes' formats
    and drops their unused bits.

    Parameters
    ----------
    multiplier_threshold : int or None
        A layer with a weight of more canonical signed digits than this keeps its separate
        engine (:class:`~nnfab.hdl.dense.DenseEngine`, with multipliers) and is not fused.
        None (the default): layers are fused whatever their weights' digits.
    multiplier_leaf_threshold : int or None
        In the fused engines, weights with more canonical signed digits than this are one
        constant multiplication each, a leaf of the adder graph, rather than shift-add terms
        (``multiplier_threshold`` of :class:`~nnfab.hdl.shift_add.ShiftAddDense`). None (the
        default): every weight is shift-add terms.
    explicit_accumulators : bool
        Also fuse dense layers with an explicit (signed) accumulator format, hls4ml's
        ``accum_t`` (the default): every product and the bias are cast to it, as graph
        leaves, and the sum wraps in it. An unsigned ``accum_t`` keeps the separate engine.
    clock_mhz : float or None
        Target clock of the fused engines: their registers go where the delay model of
        ``family`` says the paths fit its period (None: the family's default,
        :data:`nnfab.hdl.timing_model.DEFAULT_CLOCK_MHZ`).
    family : str
        FPGA family of the delay model, ``"ecp5"`` or ``"ice40"``.
    adder_levels_per_stage : int, >= 1, or None
        Instead of a clock: addition levels between pipeline registers of the fused engines.
    lut_adder_width : int, >= 0
        Adders of at most this many bits in LUT logic rather than carry chains (see
        :class:`~nnfab.hdl.shift_add.ShiftAddDense`).
    convolutions : bool
        Also build eligible convolutions' window products as adder graphs (the default).
    """

    def __init__(self, *, multiplier_threshold=None, multiplier_leaf_threshold=None,
                 adder_levels_per_stage=None, clock_mhz=None, family="ecp5",
                 lut_adder_width=0, explicit_accumulators=True, convolutions=True):
        self.explicit_accumulators = explicit_accumulators
        self.convolutions = convolutions
        self.multiplier_threshold = multiplier_threshold
        self.multiplier_leaf_threshold = multiplier_leaf_threshold
        self.adder_levels_per_stage = adder_levels_per_stage
        self.clock_mhz = clock_mhz
        self.family = family
        self.lut_adder_width = lut_adder_width

    def apply(self, model):
        layers, out, changed = list(model.layers), [], False
        consumers = model.consumers()

        def feeds(k):
            return feeds_previous(layers, consumers, k)

        known_lanes = None
        n = 0
        while n < len(layers):
            layer = layers[n]
            start = n
            if self.convolutions and shift_add_eligible(
                    layer, self.multiplier_threshold, self.explicit_accumulators,
                    kinds=("conv2d",)):
                out.append(dataclasses.replace(layer, adder_graph=self._graph_options()))
                changed, known_lanes, n = True, None, n + 1
                continue
            if _is_vector_quantizer(layer) and feeds(n + 1) and \
                    shift_add_eligible(layers[n + 1], self.multiplier_threshold,
                                       self.explicit_accumulators):
                n += 1
            if not shift_add_eligible(layers[n], self.multiplier_threshold,
                                      self.explicit_accumulators):
                out.append(layer)
                known_lanes = None
                n = start + 1
                continue
            if known_lanes is not None and not feeds(start):
                known_lanes = None
            n += 1
            if feeds(n) and layers[n].kind == "activation":
                n += 1
            if feeds(n) and _is_vector_quantizer(layers[n]):
                n += 1
            parts = tuple(layers[start:n])
            fused = ShiftAddDenseLayer(
                next(p for p in parts if p.kind == "dense").name, parts=parts,
                input_lanes=known_lanes if parts[0].kind == "dense" else None,
                adder_levels_per_stage=self.adder_levels_per_stage,
                clock_mhz=self.clock_mhz, family=self.family,
                lut_adder_width=self.lut_adder_width,
                multiplier_threshold=self.multiplier_leaf_threshold)
            out.append(fused)
            changed = True
            post = fused.output_quantizer
            known_lanes = None if post is None else tuple(
                None if f is None else f.replace(rounding="TRN", overflow="WRAP")
                for f in post.formats)
        return (model.replace_layers(out), True) if changed else (model, False)

    def _graph_options(self):
        """The keyword arguments of a convolution's adder graph, as sorted pairs."""
        return tuple(sorted(dict(
            adder_levels_per_stage=self.adder_levels_per_stage, clock_mhz=self.clock_mhz,
            family=self.family, lut_adder_width=self.lut_adder_width,
            multiplier_threshold=self.multiplier_leaf_threshold).items()))
