"""Quantized fully connected layer with constant weights, at any reuse factor."""

from amaranth.hdl import C, Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.layers import DenseSpec, reuse_factors

from .adder_tree import adder_tree_depth, pipelined_sums, register_levels
from .cast import fixed_shape, requantize
from .csd import csd_digits
from .fabric_multiplier import fabric_adder_levels, fabric_product, fabric_product_rows
from .pipeline import skid_output
from .timing_model import DEFAULT_CLOCK_MHZ, check_clock, delay_model
from .wires import comb_wire

__all__ = ["DenseEngine"]


class DenseEngine(wiring.Component):
    """Fully connected layer with constant weights: ``y = cast(W @ x + b)``.

    The arithmetic is :class:`~nnfab.layers.DenseSpec`'s: exact products, an exact (or, with an
    explicit accumulator format, hls4ml ``accum_t``-style wrapping) sum, then one cast to the
    output format with its rounding and overflow modes. The golden model is
    :func:`nnfab.sim.golden.dense.dense`.

    Structure. The input vector is split into ``reuse_factor`` R chunks of ``n_in / R``
    elements, one chunk per cycle (with R = 1 the whole vector at once). For every output, the
    products of a chunk enter a pipelined adder tree (registered where the delay model puts
    them, or every ``adder_levels_per_stage`` levels);
    an accumulator adds the chunk sums and the bias; a last stage casts. Zero weights are
    pruned at elaboration. With R = 1 each weight is a constant: a weight with at most
    ``multiplier_threshold`` non-zero canonical-signed-digit digits becomes shifted copies of
    the input fed straight into the adder tree (no multiplier); other weights use a constant
    multiplication (``*``, which synthesis maps to a multiplier block or LUTs). With R > 1 each
    multiplier handles R products: a processing element per (output, chunk position) whose
    weights are not all zero, its weight selected by the beat counter from R constants.
    With R = g * n_in (g > 1 dividing n_out; hls4ml's reuse factors above n_in) the outputs
    are computed in g groups of ``n_out / g``, one after another, each over the n_in inputs
    one per cycle: ``n_out / g`` processing elements, each serving g outputs, and the first
    g - 1 groups' results held until the last is done.

    Stalls. The pipeline runs free: its registers load every cycle, a valid bit travels
    beside the data, and a skid FIFO behind the output register takes the back-pressure
    (:func:`nnfab.hdl.pipeline.skid_output`, ``floor(latency / R)`` entries: the results in
    flight at full rate); ``i.ready`` comes from its credit and, at R > 1, the sequencer's
    state, all registers, so no enable fans out to the registers and no combinational path
    runs from ``o.ready`` to ``i.ready`` (at R > 1 the pipeline stalled as a whole before,
    and a network's ready chained through all its engines).

    Parameters
    ----------
    spec : DenseSpec
        Weights, biases and formats.
    reuse_factor : int, >= 1, dividing ``n_in``, or ``n_in`` times a divisor of ``n_out``
        Products per multiplier per input vector (hls4ml's reuse factor;
        :func:`~nnfab.layers.reuse_factors`). The initiation interval equals it.
    multiplier_threshold : int, >= 0
        With R = 1, weights with more CSD digits than this use a multiplier. 0 puts every
        non-zero weight on a multiplier.
    fabric_multipliers : int, >= 0, at most the multipliers
        How many of the multipliers (the last ones, in output order) are built from LUTs and
        carry chains (:func:`~nnfab.hdl.fabric_multiplier.fabric_product`) instead of ``*``,
        which synthesis maps to DSP blocks: the ones a device's DSP blocks cannot take
        (:class:`nnfab.gen.passes.BudgetDspBlocks`). The same products, so the same codes.
    adder_levels_per_stage : int, >= 1, or None
        Addition levels of the adder trees between pipeline registers. None (the default):
        registers where the delay model of ``family`` says the next level would not fit the
        period of ``clock_mhz`` (a product and the first addition, then as many additions
        as fit). Every adder is a carry chain of its own either way (unregistered sums are
        kept wires: merged into multi-operand adders, two levels per stage cost a 16x64 layer
        4.5 times the LUTs on ECP5).
    clock_mhz : float > 0 or None
        Target clock of the register placement (None: the family's default,
        :data:`nnfab.hdl.timing_model.DEFAULT_CLOCK_MHZ`); not with ``adder_levels_per_stage``.
    family : str
        FPGA family of the delay model, ``"ecp5"`` or ``"ice40"``.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), n_in)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), n_out)))``

    Attributes
    ----------
    latency : int
        Cycles from an accepted input vector to its output being valid:
        ``tree_depth + 3`` for R = 1, ``R + tree_depth + 3`` for R > 1.
    initiation_interval : int
        Cycles between accepted input vectors at full rate: R.
    n_multipliers : int
        Multipliers after pruning (shift-add weights excluded), fabric ones included.
    n_fabric_multipliers : int
        Those of them built from LUTs (``fabric_multipliers``).
    n_shift_add_terms : int
        Shifted input copies entering the adder trees in place of multipliers.

    Raises
    ------
    TypeError
        If ``spec`` is not a DenseSpec, or a parameter is not an integer.
    ValueError
        If ``reuse_factor`` is not one of :func:`~nnfab.layers.reuse_factors`, or
        ``multiplier_threshold`` is negative.
    """

    def __init__(self, spec, *, reuse_factor=1, multiplier_threshold=3,
                 adder_levels_per_stage=None, clock_mhz=None, family="ecp5",
                 fabric_multipliers=0):
        def reject(error):
            self._MustUse__silence = True  # a rejected design is not an unused one
            raise error

        if not isinstance(spec, DenseSpec):
            reject(TypeError(f"Layer must be a DenseSpec, not {spec!r}"))
        integers = [("Reuse factor", reuse_factor), ("Multiplier threshold", multiplier_threshold),
                    ("Fabric multipliers", fabric_multipliers)]
        if adder_levels_per_stage is not None:  # None: placed by the delay model
            integers.append(("Adder levels per stage", adder_levels_per_stage))
        for name, value in integers:
            if not isinstance(value, int) or isinstance(value, bool):
                reject(TypeError(f"{name} must be an integer, not {value!r}"))
        valid = reuse_factors(spec.n_in, spec.n_out)
        if reuse_factor not in valid:
            reject(ValueError(
                f"Reuse factor must divide n_in {spec.n_in} or be n_in times a divisor of "
                f"n_out {spec.n_out} (one of {', '.join(map(str, valid))}), "
                f"not {reuse_factor!r}"))
        if multiplier_threshold < 0:
            reject(ValueError(f"Multiplier threshold must be a non-negative integer, not "
                              f"{multiplier_threshold!r}"))
        if adder_levels_per_stage is not None and adder_levels_per_stage < 1:
            reject(ValueError(f"Adder levels per stage must be a positive integer, not "
                              f"{adder_levels_per_stage!r}"))
        if clock_mhz is not None and adder_levels_per_stage is not None:
            reject(ValueError(f"Give a clock or adder levels per stage, not both: "
                              f"{clock_mhz!r} MHz and {adder_levels_per_stage!r} levels"))
        try:
            check_clock(clock_mhz)
            self._timing = delay_model(family)
        except (TypeError, ValueError) as error:
            reject(error)
        self._clock_mhz = None if adder_levels_per_stage is not None else \
            float(clock_mhz or DEFAULT_CLOCK_MHZ[family])
        self._adder_levels_per_stage = adder_levels_per_stage
        self._spec = spec
        self._reuse_factor = reuse_factor
        self._multiplier_threshold = multiplier_threshold
        self._plan = self._make_plan()
        multipliers = self.n_multipliers
        if not 0 <= fabric_multipliers <= multipliers:
            reject(ValueError(f"Fabric multipliers must be between 0 and the layer's "
                              f"{multipliers} multipliers, not {fabric_multipliers!r}"))
        self._plan = self._to_fabric(self._plan, fabric_multipliers)
        self._registered_levels = self._place_registers()
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format),
                                                      spec.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format),
                                                       spec.n_out))),
        })

    def __repr__(self):
        timing = f"clock_mhz={self._clock_mhz}" if self._clock_mhz is not None else \
            f"adder_levels_per_stage={self._adder_levels_per_stage}"
        return (f"DenseEngine(n_in={self._spec.n_in}, n_out={self._spec.n_out}, "
                f"reuse_factor={self._reuse_factor}, "
                f"multiplier_threshold={self._multiplier_threshold}, "
                f"fabric_multipliers={self.n_fabric_multipliers}, {timing})")

    # -- the elaboration plan (plain Python, also used for reports) ---------------------------

    def _make_plan(self):
        """Per output of a group (every output when R <= n_in), the leaves of its adder tree:
        ``("mul", k, weights_by_beat)`` or ``("csd", k, weight, digits)`` where ``k`` is the
        position within the chunk. Beat ``b`` is chunk ``b % beats_per_group`` of group
        ``b // beats_per_group``."""
        spec, r, chunk = self._spec, self._reuse_factor, self.chunk_size
        r0, per_group = self.beats_per_group, spec.n_out // self.output_groups
        plan = []
        for j in range(per_group):
            leaves = []
            for k in range(chunk):
                weights = [int(spec.weights[(b // r0) * per_group + j, (b % r0) * chunk + k])
                           for b in range(r)]
                if not any(weights):
                    continue
                if r == 1:
                    digits = csd_digits(weights[0])
                    if len(digits) <= self._multiplier_threshold:
                        leaves.append(("csd", k, weights[0], digits))
                        continue
                leaves.append(("mul", k, weights))
            plan.append(leaves)
        return plan

    @staticmethod
    def _to_fabric(plan, count):
        """``plan`` with its last ``count`` ``"mul"`` leaves made ``"fabric"`` leaves."""
        plan = [list(leaves) for leaves in plan]
        for leaves in reversed(plan):
            for n in reversed(range(len(leaves))):
                if count and leaves[n][0] == "mul":
                    leaves[n] = ("fabric",) + leaves[n][1:]
                    count -= 1
        return plan

    def _multiplier_ns(self):
        """Delay of the slowest multiplier of the plan (0 without multipliers): a DSP block's,
        or a fabric multiplier's adder tree over the product's width."""
        model, spec = self._timing, self._spec
        kinds = {leaf[0] for leaves in self._plan for leaf in leaves}
        delay = model.multiplier_ns if "mul" in kinds else 0.0
        if "fabric" in kinds:
            rows = max(fabric_product_rows(spec.input_format.width, spec.weight_format.width,
                                           leaf[2][0] if self._reuse_factor == 1 else None)
                       for leaves in self._plan for leaf in leaves if leaf[0] == "fabric")
            width = spec.product_format.width
            delay = max(delay, model.routing_ns + fabric_adder_levels(rows) *
                        sum(model.adder_ns(width)))
        return delay

    def _place_registers(self):
        """The addition levels after which the adder trees are registered: every
        ``adder_levels_per_stage``, or from the delay model. The model: the leaves (a
        constant or time-shared multiplication, and the cast of a product to an explicit
        accumulator) and then one carry-chain adder per level, one bit wider each level,
        greedily up to the period less a register's overhead (clock to output, net, setup);
        the last level is always registered."""
        levels = self.tree_levels
        if self._adder_levels_per_stage is not None:
            return register_levels(levels, self._adder_levels_per_stage)
        model, spec = self._timing, self._spec
        budget = 1e3 / self._clock_mhz - model.register_ns
        arrival = self._multiplier_ns()
        width = spec.product_format.width
        if not spec.exact_accumulation:
            arrival += model.cast_ns(spec.product_format, spec.accumulator)
            width = spec.accumulator.width
        registered = []
        for level in range(levels):
            delay = sum(model.adder_ns(width + level + 1))
            if level > 0 and arrival + delay > budget:  # level 0 goes with its leaves
                registered.append(level - 1)
                arrival = 0.0
            arrival += delay
        if levels:
            registered.append(levels - 1)
        return tuple(dict.fromkeys(registered))

    def _n_tree_terms(self, leaves):
        if not self._spec.exact_accumulation:
            return len(leaves)  # each product is cast to the accumulator before the tree
        return sum(len(leaf[3]) if leaf[0] == "csd" else 1 for leaf in leaves)

    @property
    def spec(self):
        return self._spec

    @property
    def reuse_factor(self):
        return self._reuse_factor

    @property
    def multiplier_threshold(self):
        return self._multiplier_threshold

    @property
    def output_groups(self):
        """Groups of outputs computed one after another: ``reuse_factor / n_in`` above n_in,
        else 1."""
        return max(1, self._reuse_factor // self._spec.n_in)

    @property
    def beats_per_group(self):
        """Cycles per output group: ``min(reuse_factor, n_in)``."""
        return self._reuse_factor // self.output_groups

    @property
    def chunk_size(self):
        """Input elements consumed per cycle: ``n_in / beats_per_group``."""
        return self._spec.n_in // self.beats_per_group

    @property
    def tree_levels(self):
        """Addition levels of the adder trees (of the deepest output)."""
        return max((adder_tree_depth(self._n_tree_terms(leaves)) for leaves in self._plan),
                   default=0)

    @property
    def tree_depth(self):
        """Register stages of the adder trees (``ceil(tree_levels / adder_levels_per_stage)``,
        or as the delay model placed them)."""
        return len(self._registered_levels)

    @property
    def clock_mhz(self):
        """The target clock the registers are placed for (None with adder levels per
        stage)."""
        return self._clock_mhz

    @property
    def n_multipliers(self):
        return sum(leaf[0] in ("mul", "fabric") for leaves in self._plan for leaf in leaves)

    @property
    def n_fabric_multipliers(self):
        return sum(leaf[0] == "fabric" for leaves in self._plan for leaf in leaves)

    @property
    def n_shift_add_terms(self):
        return sum(len(leaf[3]) for leaves in self._plan for leaf in leaves
                   if leaf[0] == "csd")

    @property
    def latency(self):
        r = self._reuse_factor
        return self.tree_depth + 3 + (r if r > 1 else 0)

    @property
    def initiation_interval(self):
        return self._reuse_factor

    # -- hardware ------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        spec, r, chunk = self._spec, self._reuse_factor, self.chunk_size
        n_groups, r0 = self.output_groups, self.beats_per_group
        per_group = spec.n_out // n_groups
        in_shape = fixed_shape(spec.input_format)
        acc_format = spec.accumulator
        product_format = spec.product_format

        # The pipeline runs free (its registers load every cycle, a valid bit travels with the
        # data) and a skid FIFO at the output takes the back-pressure: no enable fans out to
        # the registers, and i.ready is not a combinational function of o.ready (at R > 1 it
        # was, through every engine of a network: 22 ns of KERAS_3layer's 50 MHz period).
        def load(*statements):
            m.d.sync += statements

        # Sequencer: one beat per chunk.
        beat_valid, beat_first, beat_last = Signal(), Signal(), Signal()
        beat_index = Signal(range(max(r, 2)))
        beat_x = [Signal(in_shape, name=f"beat_x{k}") for k in range(chunk)]
        if r == 1:
            m.d.comb += [
                beat_valid.eq(self.i.valid & self.i.ready),
                beat_first.eq(1),
                beat_last.eq(1),
            ]
            m.d.comb += [beat_x[k].eq(self.i.payload[k]) for k in range(chunk)]
        else:
            x_reg = [Signal(in_shape, name=f"x_reg{n}", reset_less=True) for n in range(spec.n_in)]
            busy = Signal()
            beat_end = Signal()  # the vector's last beat (of its last group)
            # Position of the beat within its group (with one group, the beat counter).
            beat_pos = beat_index if n_groups == 1 else Signal(range(max(r0, 2)))
            m.d.comb += [
                beat_valid.eq(busy),
                beat_first.eq(beat_pos == 0),
                beat_last.eq(beat_pos == r0 - 1),
                beat_end.eq(beat_index == r - 1),
            ]
            m.d.comb += [beat_x[k].eq(x_reg[k]) for k in range(chunk)]
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [x_reg[n].eq(self.i.payload[n]) for n in range(spec.n_in)]
                m.d.sync += [busy.eq(1), beat_index.eq(0)]
                if n_groups > 1:
                    m.d.sync += beat_pos.eq(0)
            with m.Elif(busy):
                if n_groups == 1:  # shift: each chunk is used once
                    m.d.sync += [x_reg[n].eq(x_reg[n + chunk])
                                 for n in range(spec.n_in - chunk)]
                else:  # rotate: every group walks the whole vector
                    m.d.sync += [x_reg[n].eq(x_reg[(n + chunk) % spec.n_in])
                                 for n in range(spec.n_in)]
                    m.d.sync += beat_pos.eq(Mux(beat_last, 0, beat_pos + 1))
                m.d.sync += beat_index.eq(beat_index + 1)
                with m.If(beat_end):
                    m.d.sync += busy.eq(0)

        # Stage 1: the chunk register.
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_index = Signal.like(beat_index)
        # Data registers need no reset: the valid bits beside them have one.
        s1_x = [Signal(in_shape, name=f"s1_x{k}", reset_less=True) for k in range(chunk)]
        if r == 1:
            load(s1_valid.eq(beat_valid))
        else:
            load(s1_valid.eq(beat_valid), s1_first.eq(beat_first), s1_last.eq(beat_last),
                 s1_index.eq(beat_index))
        load(*[s1_x[k].eq(beat_x[k]) for k in range(chunk)])

        # Leaves of the adder trees. In an exact sum a negative digit -(x << s) enters as
        # (~x) << s (= -(x << s) - 2**s, no negation) and the 2**s goes into the bias constant.
        groups, offsets = [], []
        signed_x = [x if spec.input_format.signed else Cat(x, C(0, 1)).as_signed()
                    for x in s1_x]
        for j, leaves in enumerate(self._plan):
            terms, offset = [], 0
            for leaf in leaves:
                x = s1_x[leaf[1]]
                if leaf[0] == "csd" and spec.exact_accumulation:
                    product_terms = []
                    for sign, shift in leaf[3]:
                        if sign > 0:
                            product_terms.append(x << shift)
                        else:
                            product_terms.append((~signed_x[leaf[1]]) << shift)
                            offset += 1 << shift
                elif leaf[0] == "csd":
                    product_terms = [(x << shift) if sign > 0 else -(x << shift)
                                     for sign, shift in leaf[3]]
                elif r == 1:
                    weight = Const(leaf[2][0], fixed_shape(spec.weight_format))
                    product_terms = [fabric_product(x, weight, m=m, name=f"product_{j}_{leaf[1]}")
                                     if leaf[0] == "fabric" else x * weight]
                else:
                    # The weight is registered beside the chunk (selected by the beat
                    # counter a cycle ahead), so synthesis sees a multiplier of two
                    # registers; from the counter, it merged ROM and product into one cone.
                    weight = Signal(fixed_shape(spec.weight_format), name=f"w_{j}_{leaf[1]}",
                                    reset_less=True)
                    load(weight.eq(Array(Const(w, fixed_shape(spec.weight_format))
                                         for w in leaf[2])[beat_index]))
                    product_terms = [fabric_product(x, weight, m=m, name=f"product_{j}_{leaf[1]}")
                                     if leaf[0] == "fabric" else x * weight]
                if spec.exact_accumulation:
                    terms.extend(product_terms)
                else:
                    product = Signal(fixed_shape(product_format), name=f"product_{j}_{leaf[1]}")
                    m.d.comb += product.eq(sum(product_terms[1:], product_terms[0]))
                    terms.append(requantize(product, src=product_format, dst=acc_format,
                                            wire=comb_wire(m, f"product_{j}_{leaf[1]}_")))
            groups.append(terms)
            offsets.append(offset)
        depth = self.tree_depth
        sums = pipelined_sums(m, "sync", groups, depth=self.tree_levels,
                              enable=C(1, 1),
                              registered=self._registered_levels)
        if r == 1:
            s1_first, s1_last = C(1, 1), C(1, 1)
        tree_valid, tree_first, tree_last = s1_valid, s1_first, s1_last
        for level in range(depth):
            v = Signal(name=f"tree_valid{level}")
            if r == 1:
                load(v.eq(tree_valid))
                tree_valid = v
                continue
            f, l = Signal(name=f"tree_first{level}"), Signal(name=f"tree_last{level}")
            load(v.eq(tree_valid), f.eq(tree_first), l.eq(tree_last))
            tree_valid, tree_first, tree_last = v, f, l

        # Accumulator: chunk sums plus the bias, in the accumulator format.
        acc_shape = fixed_shape(acc_format)
        accs = [Signal(acc_shape, name=f"acc{j}", reset_less=True) for j in range(per_group)]
        acc_done = Signal()
        if spec.exact_accumulation:
            align = acc_format.fraction_width - product_format.fraction_width
            chunk_sums = [s << align for s in sums]
        else:
            chunk_sums = sums
        biases = [bias_in_accumulator(spec, j, offsets[j]) for j in range(per_group)]
        if n_groups > 1:
            # The group being accumulated and the one just completed.
            acc_group = Signal(range(n_groups))
            done_group = Signal.like(acc_group)
            biases = [Array(bias_in_accumulator(spec, g * per_group + j) for g in range(n_groups))
                      [acc_group] for j in range(per_group)]
            with m.If(tree_valid & tree_last):
                m.d.sync += [done_group.eq(acc_group),
                             acc_group.eq(Mux(acc_group == n_groups - 1, 0, acc_group + 1))]
        load(acc_done.eq(tree_valid & tree_last))
        if r == 1:  # every beat is a first beat: no multiplexer, no enable
            load(*[accs[j].eq(chunk_sums[j] + biases[j]) for j in range(per_group)])
        else:
            with m.If(tree_valid):
                for j in range(per_group):
                    with m.If(tree_first):
                        m.d.sync += accs[j].eq(chunk_sums[j] + biases[j])
                    with m.Else():
                        m.d.sync += accs[j].eq(chunk_sums[j] + accs[j])

        # Output cast.
        # The rounded sum is read three times by the saturation: a wire of its own, so the
        # Verilog has its adder once (nnfab.hdl.wires).
        casts = [requantize(accs[j], src=acc_format, dst=spec.output_format,
                            wire=comb_wire(m, f"cast{j}_")) for j in range(per_group)]
        # Into the output register of the skid buffer; groups before the last are held until
        # the last is cast beside them.
        out_shape = fixed_shape(spec.output_format)
        held = [[Signal(out_shape, name=f"held{g}_{j}", reset_less=True)
                 for j in range(per_group)]
                for g in range(n_groups - 1)]
        for g in range(n_groups - 1):
            with m.If(acc_done & (done_group == g)):
                m.d.sync += [held[g][j].eq(casts[j]) for j in range(per_group)]
        last = acc_done if n_groups == 1 else acc_done & (done_group == n_groups - 1)
        out = Signal(self.o.payload.shape(), name="out")
        m.d.comb += [out[g * per_group + j].eq(held[g][j] if g < n_groups - 1 else casts[j])
                     for g in range(n_groups) for j in range(per_group)]
        skid_output(m, self.i, self.o, valid=last, payload=out, latency=self.latency,
                    initiation_interval=r, accept=None if r == 1 else ~busy | beat_end)
        return m


def bias_in_accumulator(spec, j, offset=0):
    """Bias ``j`` of ``spec`` as a constant in the accumulator format: shifted exactly, or cast
    like a product when the accumulator is explicit (hls4ml ``accum_t``). ``offset`` (exact
    sums only) is added in units of the product LSB; the constant wraps modulo
    ``2**acc_format.width`` (the accumulator's arithmetic is modular, and its final value
    fits)."""
    acc_format = spec.accumulator
    acc_shape = fixed_shape(acc_format)
    if spec.exact_accumulation:
        bias = 0 if spec.biases is None else \
            int(spec.biases[j]) << (acc_format.fraction_width - spec.bias_format.fraction_width)
        bias += offset << (acc_format.fraction_width - spec.product_format.fraction_width)
        bias %= 1 << acc_format.width
        if acc_format.signed and bias >= 1 << (acc_format.width - 1):
            bias -= 1 << acc_format.width
        return Const(bias, acc_shape)
    if spec.biases is None:
        return Const(0, acc_shape)
    bias = int(spec.biases[j])
    return requantize(Const(bias, fixed_shape(spec.bias_format)), src=spec.bias_format,
                      dst=acc_format)
