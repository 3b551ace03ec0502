"""A dense layer as one adder graph (shift-add terms, optionally multiplier leaves), fused
with the requantizers and activation around it."""

from amaranth.hdl import C, Cat, Const, Module, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat, Overflow, check_lane_formats
from nnfab.layers import DenseSpec

from .activations import activation
from .adder_graph import Leaf, integer_shape
from .bit_slices import low_bits, ripple_carry, shift_left, shift_right
from .cast import fixed_shape, requantize
from .csd import csd_digits
from .fabric_multiplier import fabric_product
from .pipeline import free_running_output
from .shift_add_plan import plan_dense_terms
from .shift_add_timing import place_registers
from .timing_model import DEFAULT_CLOCK_MHZ, check_clock, delay_model
from .wires import comb_wire

__all__ = ["ShiftAddDense"]


def _wrap_top(fmt):
    """The exponent above which a cast to ``fmt`` ignores its input (the value modulo
    ``2**I``), or None when the cast saturates."""
    return fmt.integer_width if fmt.overflow is Overflow.WRAP else None


class ShiftAddDense(wiring.Component):
    """``y = post(act(cast(W @ pre(x) + b)))``: a dense layer with constant weights, each a sum
    of canonical signed digits, in one pipelined adder graph with the per-lane requantizers
    before and after it and an elementwise activation.

    The arithmetic is that of the separate layers, so the golden model is their composition:
    :func:`nnfab.sim.golden.quantize.quantize_lanes` (``input_lanes``),
    :func:`nnfab.sim.golden.dense.dense` (``spec``),
    :func:`nnfab.sim.golden.activations.activation` and ``quantize_lanes`` (``output_lanes``).

    Structure (:mod:`nnfab.hdl.adder_graph` plans it). Input lane ``k`` is cast to its own
    format and enters as an integer of exactly that width (zero-bit lanes are dropped); every
    weight digit is a shifted lane; common two-term subexpressions are computed once for all
    outputs; each output's terms and its bias are summed by a tree that pairs the shallowest,
    narrowest terms first. Every adder gets the bits of its exact range and no more: below the
    LSB of the more significant operand the bits of the other pass through without an adder,
    and when the output cast wraps (or the output requantizer wraps with no cast or activation
    between) the bits above the cast's MSB are never formed. A difference is a subtraction, not
    a negation. The sum is cast to ``spec.output_format``, goes through the activation and
    the output requantizer, all in the last stage. Pipeline registers are placed by a delay
    estimate (:mod:`nnfab.hdl.timing_model`: each adder's carry chain or LUT levels, each
    multiplier, the output logic, a net into each, for ``family``): the fewest stages whose
    every register-to-register path fits ``1 / clock_mhz``, spread evenly; or, with
    ``adder_levels_per_stage``, after every that many addition levels (spaced evenly). A
    register closes the last stage, at the output. The pipeline
    runs free: its registers load every cycle with a valid bit beside the data, and a skid
    FIFO of ``latency`` entries behind the output register takes the back-pressure
    (:func:`nnfab.hdl.pipeline.skid_output`; ``i.ready`` comes from its credit). Adder outputs
    carry the ``keep`` attribute so synthesis builds each adder on its own (a carry chain, or
    LUTs up to ``lut_adder_width`` bits) rather than merging unregistered sums into LUTs; a
    tree adder whose only user is a pipeline register goes without (the register separates
    it). Signals are named after the tree: ``y3_abb`` is the node reached from output 3's
    root by its first, second and second operand, ``y3_abb_s1`` its register at the end of
    the first stage.

    Parameters
    ----------
    spec : DenseSpec
        Weights, biases and formats. With an explicit (signed) ``accumulator_format``
        (hls4ml's ``accum_t``) every product and the bias are cast to it, each cast product a
        leaf of the graph shared by the outputs with the same input and weight, and the sum
        wraps in it (adders hold no bits above its MSB).
    fin : FixedFormat or None
        Format of the input stream's codes; default ``spec.input_format``.
    input_lanes : sequence of FixedFormat or None, or None
        Per input element, the format it is cast to (with its modes; None: zero bits, always
        0); the cast value enters the dense layer exactly in ``spec.input_format``. None:
        every lane is ``spec.input_format``.
    activation : tuple ``(kind, fout, params)`` or None
        An elementwise activation of :func:`nnfab.hdl.activations.activation` after the cast.
    output_lanes : sequence of FixedFormat or None, or None
        Per output, the format it is cast to (None: 0); placed exactly in ``fout``.
    fout : FixedFormat or None
        Output stream format: required with ``output_lanes``; else the activation's or
        ``spec.output_format``.
    clock_mhz : float > 0 or None
        Target clock: registers go where the delay model says the paths fit its period.
        None: ``DEFAULT_CLOCK_MHZ[family]`` (100 MHz for ECP5, 30 for iCE40), unless
        ``adder_levels_per_stage`` is given.
    family : str
        FPGA family of the delay model, ``"ecp5"`` or ``"ice40"``.
    adder_levels_per_stage : int, >= 1, or None
        Instead of a clock: a register after every this many addition levels, spaced evenly.
    share_subexpressions : bool
        Compute common two-term subexpressions once (fewer adders, deeper trees).
    lut_adder_width : int, >= 0
        Adders of at most this many bits are written as ripple-carry XOR/AND/OR logic, which
        synthesis maps to LUTs, instead of ``+`` (a carry chain): fewer carry cells for more
        LUTs (the HGQ jet classifier on ECP5: 842 CCU2C at 0, 668 CCU2C and 847 LUT4 at 7).
    multiplier_threshold : int >= 0 or None
        Weights with more CSD digits than this are not shift-add terms but one constant
        multiplication each (``x * odd``, the weight's odd part, shared by the outputs that
        use the same input and odd part; a DSP block or LUTs in synthesis), a leaf of the
        same adder graph one addition level deep. None (the default): every weight is
        shift-add terms, whatever its digits.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(fin), n_in)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(fout), n_out)))``

    Attributes
    ----------
    latency : int
        Register stages: as the delay model places them, or ``max(1, ceil(levels /
        adder_levels_per_stage))`` cycles.
    estimated_f_max_hz : float
        The delay model's Fmax: 1 / its longest register-to-register path.
    initiation_interval : int
        1.
    n_adders : int
        Two-input adders and subtractors of the adder graph.
    n_shift_add_terms : int
        Shifted lanes the weights are made of, before subexpression sharing.
    n_multipliers : int
        Constant multiplications (product leaves).

    Raises
    ------
    TypeError
        If ``spec`` is not a DenseSpec or a format is not a FixedFormat.
    ValueError
        If the accumulator format is explicit and unsigned, the lane counts do not match the
        layer, ``adder_levels_per_stage`` is not a positive integer, ``clock_mhz`` not a
        positive number, both are given, the family is unknown or ``multiplier_threshold``
        not a non-negative integer or None.
    """

    def __init__(self, spec, *, fin=None, input_lanes=None, activation=None,
                 output_lanes=None, fout=None, clock_mhz=None, family="ecp5",
                 adder_levels_per_stage=None, share_subexpressions=True, lut_adder_width=0,
                 multiplier_threshold=None):
        try:
            self._validate(spec, fin, input_lanes, activation, output_lanes, fout,
                           adder_levels_per_stage, lut_adder_width, multiplier_threshold)
            self._timing = delay_model(family)
            if clock_mhz is not None and adder_levels_per_stage is not None:
                raise ValueError(f"Give a clock or adder levels per stage, not both: "
                                 f"{clock_mhz!r} MHz and {adder_levels_per_stage!r} levels")
            check_clock(clock_mhz)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected design is not an unused one
            raise
        self._spec = spec
        self._fin = fin or spec.input_format
        self._input_lanes = tuple(input_lanes) if input_lanes is not None else \
            (spec.input_format,) * spec.n_in
        self._activation = activation
        self._output_lanes = tuple(output_lanes) if output_lanes is not None else None
        self._fout = fout or (activation[1] if activation else spec.output_format)
        self._levels_per_stage = adder_levels_per_stage
        self._clock_mhz = None if adder_levels_per_stage is not None else \
            float(clock_mhz or DEFAULT_CLOCK_MHZ[family])
        self._family = family
        self._share = share_subexpressions
        self._lut_adder_width = lut_adder_width
        self._multiplier_threshold = multiplier_threshold
        self._plan = self._make_plan()
        self._schedule = self._place_registers()
        self._stages = self._schedule.latency
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(self._fin), spec.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(self._fout), spec.n_out))),
        })

    @staticmethod
    def _validate(spec, fin, input_lanes, activation, output_lanes, fout, levels_per_stage,
                  lut_adder_width, multiplier_threshold):
        if not isinstance(spec, DenseSpec):
            raise TypeError(f"Layer must be a DenseSpec, not {spec!r}")
        if not spec.exact_accumulation and not spec.accumulator.signed:
            raise ValueError(f"Shift-add dense layers need a signed accumulator format, not "
                             f"{spec.accumulator_format}")
        for what, fmt in (("Input", fin), ("Output", fout)):
            if fmt is not None and not isinstance(fmt, FixedFormat):
                raise TypeError(f"{what} format must be a FixedFormat or None, not {fmt!r}")
        for what, lanes, n in (("Input", input_lanes, spec.n_in),
                               ("Output", output_lanes, spec.n_out)):
            if lanes is None:
                continue
            if len(lanes) != n:
                raise ValueError(f"{what} lanes must give {n} formats, not {len(lanes)}")
            for fmt in lanes:
                if fmt is not None and not isinstance(fmt, FixedFormat):
                    raise TypeError(f"{what} lane format must be a FixedFormat or None, not "
                                    f"{fmt!r}")
        if output_lanes is not None and fout is None:
            raise ValueError("Output format must be given with output lanes")
        if input_lanes is not None:
            check_lane_formats(input_lanes, spec.input_format)
        if output_lanes is not None:
            check_lane_formats(output_lanes, fout)
        if levels_per_stage is not None and (
                not isinstance(levels_per_stage, int) or isinstance(levels_per_stage, bool) or
                levels_per_stage < 1):
            raise ValueError(f"Adder levels per stage must be a positive integer, not "
                             f"{levels_per_stage!r}")
        if not isinstance(lut_adder_width, int) or isinstance(lut_adder_width, bool) or \
                lut_adder_width < 0:
            raise ValueError(f"LUT adder width must be a non-negative integer, not "
                             f"{lut_adder_width!r}")
        if multiplier_threshold is not None and (
                not isinstance(multiplier_threshold, int) or
                isinstance(multiplier_threshold, bool) or multiplier_threshold < 0):
            raise ValueError(f"Multiplier threshold must be a non-negative integer or None, "
                             f"not {multiplier_threshold!r}")

    def __repr__(self):
        return (f"ShiftAddDense(n_in={self._spec.n_in}, n_out={self._spec.n_out}, "
                f"{self._timing_repr()}, "
                f"share_subexpressions={self._share}, "
                f"lut_adder_width={self._lut_adder_width}, "
                f"multiplier_threshold={self._multiplier_threshold})")

    def _timing_repr(self):
        if self._levels_per_stage is not None:
            return f"adder_levels_per_stage={self._levels_per_stage}"
        return f"clock_mhz={self._clock_mhz:g}, family={self._family!r}"

    # -- the plan ------------------------------------------------------------------------------

    def _make_plan(self):
        plan = plan_dense_terms(self._spec, self._input_lanes, self._output_lanes,
                                multiplier_threshold=self._multiplier_threshold,
                                share_subexpressions=self._share)
        self._input_lane = plan.lanes
        self._n_multipliers, self._n_terms = plan.n_multipliers, plan.n_terms
        return plan.adders

    def _graph_options(self):
        """The keyword arguments of :func:`~nnfab.hdl.shift_add_timing.place_registers` and
        :func:`~nnfab.hdl.shift_add_timing.layer_graph` for this layer."""
        return dict(
            model=self._timing, lut_adder_width=self._lut_adder_width, spec=self._spec,
            fin=self._fin, input_lanes=self._input_lanes, activation=self._activation,
            output_lanes=self._output_lanes,
            tops=[None if self._output_lanes is not None and self._output_lanes[j] is None
                  else self._top(j) for j in range(self._spec.n_out)])

    def _place_registers(self):
        """The stage of every lane and tree node (:func:`nnfab.hdl.timing_model.schedule`)."""
        period = None if self._clock_mhz is None else 1e3 / self._clock_mhz
        return place_registers(self._plan, period_ns=period,
                               levels_per_stage=self._levels_per_stage, **self._graph_options())

    def _stage(self, item):
        """The pipeline stage in which a lane, leaf or tree node is computed."""
        return self._stages_of[id(item.lane if isinstance(item, Leaf) else item)]

    @property
    def spec(self):
        return self._spec

    @property
    def clock_mhz(self):
        """The target clock the registers are placed for (None with adder levels per
        stage)."""
        return self._clock_mhz

    @property
    def estimated_f_max_hz(self):
        return self._schedule.f_max_hz

    @property
    def levels(self):
        """Addition levels of the deepest output."""
        return self._plan.levels

    @property
    def n_adders(self):
        return self._plan.n_adders

    @property
    def n_shared_subexpressions(self):
        return self._plan.n_shared

    @property
    def n_shift_add_terms(self):
        return self._n_terms

    @property
    def n_multipliers(self):
        """Constant multipliers (product leaves), one per input and weight odd part."""
        return self._n_multipliers

    @property
    def multiplier_threshold(self):
        return self._multiplier_threshold

    @property
    def latency(self):
        return self._stages

    @property
    def initiation_interval(self):
        return 1

    # -- hardware ------------------------------------------------------------------------------

    def _top(self, j):
        """Exponent (in the sum's unit) above which output ``j`` ignores the sum, or None."""
        spec = self._spec
        e0 = -spec.accumulator.fraction_width
        if spec.output_format != spec.accumulator:
            top = _wrap_top(spec.output_format)
        elif self._activation is None and self._output_lanes is not None:
            top = _wrap_top(self._output_lanes[j])
        else:
            top = None
        if not spec.exact_accumulation:  # the sum wraps in the accumulator (accum_t)
            acc_top = spec.accumulator.integer_width
            top = acc_top if top is None else min(top, acc_top)
        return None if top is None else top - e0

    def _adder(self, m, p, q, sign, lo, hi, name, e, top):
        """A signal of ``p + sign * q``, whose values lie in [lo, hi] (at exponent ``e``), as
        wide as that range or, when ``top`` is given, as the bits below it: a carry chain, or
        LUT logic up to ``lut_adder_width`` bits."""
        width, signed_ = integer_shape(lo, hi)
        if top is not None and width > top - e:
            width, signed_ = max(top - e, 1), True
        sig = Signal(signed(width) if signed_ else unsigned(width), name=name,
                     attrs={"keep": Const(1, 1)})
        if width <= self._lut_adder_width:
            m.d.comb += sig.eq(ripple_carry(p, q, sign, width))
        else:
            m.d.comb += sig.eq(p + q if sign > 0 else p - q)
        self._adders[name] = sig
        return sig

    def _delay(self, m, key, value, stage_from, stage_to):
        """``value`` (computed in stage ``stage_from``) registered at the end of every stage
        before ``stage_to``; registers are shared between the users of one value."""
        if isinstance(value, Const):
            return value
        for cut in range(stage_from + 1, stage_to + 1):
            if (key, cut) not in self._registers:
                # Data registers need no reset: the valid bits beside them have one.
                reg = Signal(value.shape(), name=f"{self._names[key]}_s{cut}",
                             reset_less=True)
                m.d.sync += reg.eq(value)  # free-running: no enable
                self._registers[key, cut] = reg
                if key[0] == "node" and key[1] in self._adders:
                    # A tree node's only user is this register, which already keeps
                    # synthesis from merging the adder into the next one.
                    self._adders[key[1]].attrs.pop("keep", None)
            value = self._registers[key, cut]
        return value

    def _lane(self, m, lane):
        if lane.key in self._lane_values:
            return self._lane_values[lane.key]
        if lane.constant is not None:
            value = Const(lane.constant, unsigned(max(lane.constant.bit_length(), 1)))
        elif lane.cast is not None:
            value = self._cast_lane(m, lane)
        elif lane.product is not None:
            a, factor = lane.product
            va = self._delay(m, ("lane", a.key), self._lane(m, a), self._stage(a),
                             self._stage(lane))
            width, signed_ = integer_shape(lane.lo, lane.hi)
            value = Signal(signed(width) if signed_ else unsigned(width),
                           name=f"product{lane.key[1]}_{factor}")
            m.d.comb += value.eq(va * factor)
        else:
            a, b, sa, sb, sign = lane.parts  # (a << sa) ± (b << sb), planned with sa == 0
            va = self._delay(m, ("lane", a.key), self._lane(m, a), self._stage(a),
                             self._stage(lane))
            vb = self._delay(m, ("lane", b.key), self._lane(m, b), self._stage(b),
                             self._stage(lane))
            name = f"shared{lane.key[1]}"
            if sa == 0 and sb > 0:
                # a ± (b << d) = Cat(a[:d], (a >> d) ± b): no adder below bit d
                high = self._adder(m, shift_right(va, sb), vb, sign, lane.lo >> sb, lane.hi >> sb, name,
                                   sb, None)
                value = Cat(low_bits(va, sb), high)
                value = value.as_signed() if high.shape().signed else value
            else:
                value = self._adder(m, shift_left(va, sa), shift_left(vb, sb), sign,
                                    lane.lo, lane.hi, name, 0, None)
        self._names["lane", lane.key] = f"lane{lane.key}" if isinstance(lane.key, int) \
            else "_".join(map(str, lane.key)).replace("-", "m") \
            if lane.product is not None or lane.cast is not None \
            else f"{lane.key[0]}{lane.key[1]}"
        self._lane_values[lane.key] = value
        return value

    def _cast_lane(self, m, lane):
        """A product (or the bias) cast to the explicit accumulator format, as
        :func:`nnfab.sim.golden.dense.dense` casts it: the product is formed exactly in
        ``spec.product_format`` (shift-add terms, or a multiplication beyond
        ``multiplier_threshold`` digits), then cast."""
        spec = self._spec
        acc = spec.accumulator
        a, factor = lane.cast
        if a is None:
            src, code = spec.bias_format, Const(factor, fixed_shape(spec.bias_format))
            name = f"bias{lane.key[1]}"
        else:
            va = self._delay(m, ("lane", a.key), self._lane(m, a), self._stage(a),
                             self._stage(lane))
            x = shift_left(va, spec.input_format.fraction_width -
                            self._input_lanes[a.index].fraction_width)
            digits = csd_digits(factor)
            threshold = self._multiplier_threshold
            if threshold is None or len(digits) <= threshold:
                terms = [shift_left(x, shift) if sign > 0 else -shift_left(x, shift)
                         for sign, shift in digits]
                expr = sum(terms[1:], terms[0])
            else:
                expr = x * Const(factor, fixed_shape(spec.weight_format))
            src = spec.product_format
            code = Signal(fixed_shape(src), name=f"product{a.index}_{factor}".replace("-", "m"))
            m.d.comb += code.eq(expr)
            name = f"cast{a.index}_{factor}".replace("-", "m")
        value = Signal(fixed_shape(acc), name=name)
        m.d.comb += value.eq(requantize(code, src=src, dst=acc, wire=comb_wire(m, f"{name}_")))
        return value

    def _node(self, m, node, s, top, path):
        """Signal of ``s * value`` of subtree ``node`` (integer at exponent ``node.e``)."""
        if isinstance(node, Leaf):
            return self._lane(m, node.lane), ("lane", node.lane.key)
        a, b = node.a, node.b

        def cost(signs):
            sa, sb = signs
            if sa == s and sb == s:
                return 0
            high = b if a.e <= b.e else a
            subtrahend = a if sa != s else b
            return 1 if subtrahend is high else 2
        options = [(sa, sb) for sa in sorted(a.signs, reverse=True)
                   for sb in sorted(b.signs, reverse=True) if not (sa != s and sb != s)]
        sa, sb = min(options, key=cost)
        va, ka = self._node(m, a, sa, top, path + "a")
        vb, kb = self._node(m, b, sb, top, path + "b")
        va = self._delay(m, ka, va, self._stage(a), self._stage(node))
        vb = self._delay(m, kb, vb, self._stage(b), self._stage(node))
        # Order the operands: x has the lower exponent, y is d bits more significant.
        (x, ex, gx), (y, ey, gy) = sorted(((va, a.e, sa * s), (vb, b.e, sb * s)),
                                          key=lambda t: t[1])
        d = ey - ex
        lo, hi = (node.lo, node.hi) if s > 0 else (-node.hi, -node.lo)
        key = ("node", path)
        self._names[key] = path
        if gx > 0 and d > 0:
            # (y << d) ± x = Cat(x[:d], y ± (x >> d)) when x is added
            high_lo, high_hi = (lo >> d), (hi >> d)
            high = self._adder(m, shift_right(x, d), y, gy, high_lo, high_hi, path,
                               node.e + d, top)
            value = Cat(low_bits(x, d), high)
            return (value.as_signed() if high.shape().signed else value), key
        if gx > 0:  # d == 0
            return self._adder(m, x, y, gy, lo, hi, path, node.e, top), key
        return self._adder(m, shift_left(y, d), x, -1, lo, hi, path, node.e, top), key

    def elaborate(self, platform):
        m = Module()
        last = self._schedule.output_stage
        # Plain bits rather than the payload's layout, which would add a wire per element.
        out = Signal(len(Value.cast(self.o.payload)), name="out")
        out_width = fixed_shape(self._fout).width
        self._datapath(m, [(self.i.payload[k], 0) for k in range(self._spec.n_in)],
                       self._schedule.stages, [(last,) * 3] * self._spec.n_out,
                       lambda j, code: out.word_select(j, out_width).eq(code))
        free_running_output(m, self.i, self.o, payload=out, latency=self._stages)
        return m

    def _datapath(self, m, sources, stages, output_stages, sink):
        """Build the layer's free-running data path in ``m``; ``m.d.comb += sink(j, code)``
        for output ``j``'s code in ``fout`` (none for an output that is always 0).

        ``sources[k]`` is ``(value, stage)``: the code of input element ``k`` in ``fin`` and
        the stage that computes it; ``stages`` the stage of every lane and tree node (by
        ``id``); ``output_stages[j]`` the stages of output ``j``'s cast, activation and
        output lane (:func:`~nnfab.hdl.shift_add_timing.layer_graph`'s steps). A value is
        registered at the end of every stage between the one computing it and its reader's.
        """
        spec = self._spec
        self._stages_of = stages
        self._registers, self._lane_values, self._names, self._adders = {}, {}, {}, {}
        for k, fmt in enumerate(self._input_lanes):
            if fmt is not None:
                value, stage = sources[k]
                self._names["src", k] = f"in{k}"
                # The lane is needed where the schedule computes it (unused: in stage 0).
                at = stages.get(id(self._input_lane[k]), stage)
                value = self._delay(m, ("src", k), value, stage, at)
                lane = Signal(fixed_shape(fmt), name=f"lane{k}")
                m.d.comb += lane.eq(requantize(value, src=self._fin, dst=fmt,
                                               wire=comb_wire(m, f"lane{k}_")))
                self._lane_values[k] = lane
                self._names["lane", k] = f"lane{k}"
        e0 = -spec.accumulator.fraction_width
        for j, root in enumerate(self._plan.roots):
            if self._output_lanes is not None and self._output_lanes[j] is None:
                continue  # always 0
            cast_stage, act_stage, lane_stage = output_stages[j]
            top = self._top(j)
            if root is None:
                value, e, signed_ = C(0, 1), 0, False
            else:
                s = 1 if 1 in root.signs else -1
                value, key = self._node(m, root, s, top, f"y{j}_")
                value = self._delay(m, key, value, self._stage(root), cast_stage)
                if s < 0:
                    value = -value
                e, signed_ = root.e, value.shape().signed
            code, fmt = self._cast_sum(m, j, value, e + e0, signed_, top,
                                       comb_wire(m, f"y{j}_"))
            # Each step in a signal of its own: the next one reads its input several times,
            # and Amaranth writes an expression out once per read (nnfab.hdl.wires).
            code = comb_wire(m)(code, f"cast{j}")
            self._names["cast", j], self._names["act", j] = f"cast{j}", f"act{j}"
            code = self._delay(m, ("cast", j), code, cast_stage, act_stage)
            if self._activation is not None:
                kind, act_out, params = self._activation
                # A slope or scale as shift-add terms too: this engine has no DSP products
                # (nnfab.gen.passes.BudgetDspBlocks counts none for it).
                code, fmt = activation(
                    kind, code, fin=fmt, fout=act_out, wire=comb_wire(m, f"act{j}_"),
                    multiply=lambda a, b, j=j: fabric_product(a, b, m=m, name=f"act{j}_product"),
                    **params), act_out
                code = comb_wire(m)(code, f"act{j}")
            code = self._delay(m, ("act", j), code, act_stage, lane_stage)
            if self._output_lanes is not None:
                lane_fmt = self._output_lanes[j]
                code = requantize(code, src=fmt, dst=lane_fmt,
                                  wire=comb_wire(m, f"out{j}_")) << \
                    (self._fout.fraction_width - lane_fmt.fraction_width)
            m.d.comb += sink(j, code)

    def _cast_sum(self, m, j, value, e, signed_, top, wire):
        """The sum (integer ``value`` at exponent ``e``) as a code of the dense output format;
        with no cast (exact output) and bits above ``top`` dropped, a code of the format the
        value is kept in."""
        spec = self._spec
        value = Value.cast(value)
        width = len(value)
        src = FixedFormat(width, width + e, signed=signed_)
        if spec.output_format != spec.accumulator:
            fmt = spec.output_format
            return requantize(value, src=src, dst=fmt, wire=wire), fmt
        if top is None:
            fmt = spec.output_format
            return requantize(value, src=src, dst=fmt.replace(rounding="TRN",
                                                              overflow="WRAP")), fmt
        return value, src
