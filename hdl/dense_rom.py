"""Quantized fully connected layer with its weights in a block-RAM ROM, at any reuse factor."""


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.layers import (ROM_REQUANTIZER_CYCLES, DenseSpec, rom_folding,
                          rom_requantizer_shortfall, rom_reuse_factors)
from nnfab.output_stage import OutputStage

from .adder_tree import adder_tree_depth, pipelined_sums, register_levels, register_stages
from .cast import fixed_shape, requantize, round_to_lsb, saturate
from .dense import bias_in_accumulator
from .output_stage import clamped_code, pick, rescale_of
from .pipeline import skid_output
from .timing_model import check_clock, delay_model
from .unused import discard
from .vector_pipeline import stage_register
from .wires import comb_wire

__all__ = ["DenseRomEngine", "rom_reuse_factors"]


class DenseRomEngine(wiring.Component):
    """Fully connected layer ``y = cast(W @ x + b)`` whose weights are read from a ROM.

    Same arithmetic, stream contract and golden model (:func:`nnfab.sim.golden.dense.dense`)
    as :class:`~nnfab.hdl.dense.DenseEngine`, but the weights are not elaborated into logic:
    they sit in one :class:`amaranth.lib.memory.Memory` ROM (synchronous read, ``R`` entries,
    one word per beat holding the weights of every multiplier), which synthesis maps to block
    RAM (iCE40 EBR, ECP5 DP16KD) or, when small, to LUTs. This is what makes large layers fit
    small FPGAs: the logic is only the multipliers, the adder trees and the accumulators.

    Structure. The reuse factor ``R = n_chunks * outputs_per_pe`` folds the layer twice: the
    input vector is split into ``n_chunks`` chunks of ``chunk_size = n_in / n_chunks``
    elements, and each of the ``n_pe = n_out / outputs_per_pe`` processing elements (PE)
    computes ``outputs_per_pe`` outputs one after the other (PE ``p`` computes outputs
    ``p * outputs_per_pe + s``). Every beat each PE multiplies one chunk by its weights
    (``chunk_size`` multipliers per PE), sums the products in a pipelined adder tree and adds
    the sum to its accumulator (the first chunk of an output adds the bias). The input vector
    is held in a rotating register; the next input is accepted during the last beat. The
    decomposition takes the most input folding: ``n_chunks`` is the largest divisor of
    ``n_in`` such that ``R / n_chunks`` divides ``n_out``, so ``R`` dividing ``n_in`` gives
    the structure of :class:`~nnfab.hdl.dense.DenseEngine` (all outputs in parallel). Zero
    weights are not pruned (they are ROM contents).

    The pipeline runs free (no stall enable): its registers load every cycle, valid bits
    travel with the data, and the output register with a skid FIFO of
    ``floor(latency / R)`` vectors behind it takes the back-pressure
    (:func:`~nnfab.hdl.pipeline.skid_output`); ``i.ready`` comes from registers only (the
    credit and the last beat), so a network's ready does not chain through its layers. The
    outputs of the slots before the last are held in registers until the last slot's are
    done. At ``R > latency / 2`` (board builds' large R) there is no FIFO: the credit is two
    vectors, and the second waits in the accumulators and the held slots, which nothing
    overwrites before the output register takes it.

    With an ``output_stage`` (TFLite's requantization of the integer accumulators to int8,
    :class:`~nnfab.output_stage.OutputStage`; board builds fuse a ROM layer with the
    ``output_stage`` layer after it), the results are the stage's codes, not the accumulators:
    when the PEs finish their outputs of a slot, their accumulators (cast to
    ``spec.output_format``) are copied to a buffer, and one time-shared requantizer lane (the
    three stages of :class:`~nnfab.hdl.output_stage.OutputStageEngine`, with per-channel
    multipliers and shifts read from a table by the channel) takes them one per cycle into the
    result registers of ``width`` bits. This saves the ``n_out`` accumulator-wide
    result registers and the stage's own: for ad01's 128-to-640 layer 17,088 and 5,255
    register bits became 7,372, and running free adds the output register, ``n_out * width``
    (5,120) more. It needs ``n_pe + 3 <= n_chunks``
    (:func:`nnfab.layers.rom_requantizer_keeps_pace`), so the lane is done before the next
    slot's accumulators and the initiation interval stays ``R``.

    Parameters
    ----------
    spec : DenseSpec
        Weights, biases and formats.
    reuse_factor : int, >= 1
        Products per multiplier per input vector: a divisor of ``n_in`` times a divisor of
        ``n_out`` (see :func:`rom_reuse_factors`). The initiation interval equals it.
    adder_levels_per_stage : int, >= 1
        Addition levels of the adder trees between pipeline registers.
    output_stage : OutputStage, optional
        Requantize the results in place (above). ``spec.output_format`` must then be a signed
        integer format (``fixed<W,W>``) of at most 32 bits (48 with an exact rounding,
        ``"half_away"`` or ``"half_even"``), and the stage per-tensor or of ``n_out`` channels.
    clock_mhz : float, optional
        With ``family``: the clock the delay model (:mod:`nnfab.hdl.timing_model`) places the
        output cast's register for. When the cast (accumulator to output format, rounding and
        saturating) does not fit the period with its registers, the rounded value is
        registered before the saturation (``split_cast``: one cycle more latency). Without
        them the cast is one stage.
    family : str, optional
        ``"ecp5"`` or ``"ice40"``.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format), n_in)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(spec.output_format), n_out)))``
        With ``output_stage``: ``fixed<width,width>`` lanes of the stage's ``width``.

    Attributes
    ----------
    latency : int
        Cycles from an accepted input vector to its output being valid:
        ``R + tree_depth + 4``, one more with ``split_cast``, and ``n_pe + 2`` more with
        ``output_stage``.
    split_cast : bool
        Whether the output cast is two stages (rounding, then saturation; see ``clock_mhz``).
    initiation_interval : int
        Cycles between accepted input vectors at full rate: R.
    n_multipliers : int
        ``n_pe * chunk_size = n_in * n_out / R``.
    rom_depth, rom_width : int
        Entries (R) and bits per entry (``n_multipliers * weight width``) of the weight ROM.

    Raises
    ------
    TypeError
        If ``spec`` is not a DenseSpec, or a parameter is not an integer.
    ValueError
        If ``reuse_factor`` is not a product of a divisor of ``n_in`` and a divisor of
        ``n_out``, ``adder_levels_per_stage`` is not positive, an ``output_stage`` does not
        fit the layer (its channels, the accumulator format, or ``n_pe + 3 > n_chunks``), the
        clock is not a positive frequency, or the family is unknown.
    """

    def __init__(self, spec, *, reuse_factor=1, adder_levels_per_stage=2, output_stage=None,
                 clock_mhz=None, family=None):
        def reject(error):
            discard(self)  # a rejected design is not an unused one
            raise error

        if not isinstance(spec, DenseSpec):
            reject(TypeError(f"Layer must be a DenseSpec, not {spec!r}"))
        for name, value in (("Reuse factor", reuse_factor),
                            ("Adder levels per stage", adder_levels_per_stage)):
            if not isinstance(value, int) or isinstance(value, bool):
                reject(TypeError(f"{name} must be an integer, not {value!r}"))
        split = rom_folding(spec.n_in, spec.n_out, reuse_factor) if reuse_factor >= 1 else None
        if split is None:
            valid = rom_reuse_factors(spec.n_in, spec.n_out)
            reject(ValueError(
                f"Reuse factor must be a divisor of n_in {spec.n_in} times a divisor of n_out "
                f"{spec.n_out} (one of {', '.join(map(str, valid))}), not {reuse_factor!r}"))
        if adder_levels_per_stage < 1:
            reject(ValueError(f"Adder levels per stage must be a positive integer, not "
                              f"{adder_levels_per_stage!r}"))
        if output_stage is not None:
            problem = _stage_problem(spec, reuse_factor, output_stage)
            if problem:
                reject(problem)
        self._spec = spec
        self._reuse_factor = reuse_factor
        self._adder_levels_per_stage = adder_levels_per_stage
        self._n_chunks, self._outputs_per_pe = split
        self._stage = output_stage
        self._split_cast = False
        if clock_mhz is not None and family is not None:
            try:
                period_ns = 1e3 / check_clock(clock_mhz)
                model = delay_model(family)
            except ValueError as error:
                reject(error)
            src, dst = spec.accumulator, spec.output_format
            self._split_cast = output_stage is None and \
                model.round_ns(src, dst) > 0 and model.saturate_ns(src, dst) > 0 and \
                model.register_ns + model.cast_ns(src, dst) > period_ns
        out_format = spec.output_format if output_stage is None else \
            FixedFormat(output_stage.width, output_stage.width)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(spec.input_format),
                                                      spec.n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(out_format), spec.n_out))),
        })

    def __repr__(self):
        return (f"DenseRomEngine(n_in={self._spec.n_in}, n_out={self._spec.n_out}, "
                f"reuse_factor={self._reuse_factor}, "
                f"adder_levels_per_stage={self._adder_levels_per_stage}"
                + (", output_stage=...)" if self._stage is not None else ")"))

    @property
    def output_stage(self):
        """The :class:`~nnfab.output_stage.OutputStage` requantizing the results, or None."""
        return self._stage

    @property
    def spec(self):
        return self._spec

    @property
    def reuse_factor(self):
        return self._reuse_factor

    @property
    def n_chunks(self):
        return self._n_chunks

    @property
    def outputs_per_pe(self):
        return self._outputs_per_pe

    @property
    def chunk_size(self):
        """Input elements each PE multiplies per beat: ``n_in / n_chunks``."""
        return self._spec.n_in // self._n_chunks

    @property
    def n_pe(self):
        """Processing elements: ``n_out / outputs_per_pe``."""
        return self._spec.n_out // self._outputs_per_pe

    @property
    def n_multipliers(self):
        """``n_pe * chunk_size`` products, plus the requantizer lane's multiplier (unless
        every channel's multiplier is a power of two)."""
        stage = self._stage
        requantizer = stage is not None and any(v & (v - 1) for v in stage.multipliers)
        return self.n_pe * self.chunk_size + int(requantizer)

    @property
    def n_shift_add_terms(self):
        return 0

    @property
    def rom_depth(self):
        return self._reuse_factor

    @property
    def rom_width(self):
        return self.n_multipliers * self._spec.weight_format.width

    @property
    def tree_levels(self):
        return adder_tree_depth(self.chunk_size)

    @property
    def tree_depth(self):
        return register_stages(self.tree_levels, self._adder_levels_per_stage)

    @property
    def split_cast(self):
        return self._split_cast

    @property
    def latency(self):
        drain = 0 if self._stage is None else self.n_pe + ROM_REQUANTIZER_CYCLES - 1
        return self._reuse_factor + self.tree_depth + 4 + int(self._split_cast) + drain

    @property
    def initiation_interval(self):
        return self._reuse_factor

    def stage_delays_ns(self, model):
        """The delay model's estimate (:class:`~nnfab.hdl.timing_model.DelayModel` ``model``)
        of each register-to-register path of the datapath, in ns with the registers' clock to
        output, nets and setup, as ``{stage: ns}``:

        - ``"rom_multiply"``: the weight ROM's read (block RAM clock to output) or the held
          input, through a multiplier (and the cast of the product to the accumulator) into
          the product registers; nets into and out of the block columns;
        - ``"adder_tree_K"``: the K-th registered group of adder-tree levels (chained adders
          overlap their carries);
        - ``"accumulate"``: the select of bias or running sum and the accumulator's adder;
        - ``"cast"``: the cast of an accumulator to the output format into the held and
          output registers (:meth:`~nnfab.hdl.timing_model.DelayModel.cast_ns`); with
          ``split_cast`` ``"round"`` and ``"saturate"`` instead.

        The requantizer lane of an ``output_stage`` and the sequencer's counters are not
        counted. Calibration: on the iCEBreaker digits MLP the cast is nextpnr's critical path,
        31.1 ns against 25.8 ns here; on the ULX3S the ROM to multiplier stage, 14.6 ns
        against 14.6 ns here."""
        spec = self._spec
        acc_format, product_format = spec.accumulator, spec.product_format
        source = max(model.ram_clock_to_out_ns, model.clock_to_out_ns)
        product = model.multiplier_ns + 2 * model.block_routing_ns + model.setup_ns
        if spec.exact_accumulation:
            width = product_format.width
        else:
            product += model.cast_ns(product_format, acc_format)
            width = acc_format.width
        delays = {"rom_multiply": source + product}
        start = 0
        for n, last in enumerate(register_levels(self.tree_levels,
                                                 self._adder_levels_per_stage)):
            adders = [model.adder_ns(width + level + 1) for level in range(start, last + 1)]
            delays[f"adder_tree_{n}"] = model.register_ns + sum(head for head, _ in adders) + \
                max(ripple for _, ripple in adders)
            start = last + 1
        delays["accumulate"] = model.register_ns + model.lut_levels_ns(1) + \
            sum(model.adder_ns(acc_format.width))
        if self._split_cast:
            delays["round"] = model.register_ns + model.round_ns(acc_format, spec.output_format)
            delays["saturate"] = model.register_ns + \
                model.saturate_ns(acc_format, spec.output_format)
        else:
            delays["cast"] = model.register_ns + model.cast_ns(acc_format, spec.output_format)
        return {key: round(ns, 3) for key, ns in delays.items()}

    def estimate_f_max_hz(self, model):
        """The clock the delay model ``model`` allows: that of the longest of
        :meth:`stage_delays_ns`."""
        return 1e9 / max(self.stage_delays_ns(model).values())

    # -- ROM contents ----------------------------------------------------------------------------

    def _rom_init(self):
        """One word per beat ``b = slot * n_chunks + chunk``: lane ``p * chunk_size + k`` holds
        the bit pattern of ``W[p * outputs_per_pe + slot, chunk * chunk_size + k]``."""
        spec, fmt = self._spec, self._spec.weight_format
        words = []
        for b in range(self._reuse_factor):
            slot, c = divmod(b, self._n_chunks)
            word, offset = 0, 0
            for p in range(self.n_pe):
                j = p * self._outputs_per_pe + slot
                for k in range(self.chunk_size):
                    word |= fmt.code_to_bits(int(spec.weights[j, c * self.chunk_size + k])) \
                        << offset
                    offset += fmt.width
            words.append(word)
        return words

    # -- hardware ------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        spec, r = self._spec, self._reuse_factor
        n_chunks, ops, chunk, n_pe = (self._n_chunks, self._outputs_per_pe, self.chunk_size,
                                      self.n_pe)
        in_shape = fixed_shape(spec.input_format)
        w_shape = fixed_shape(spec.weight_format)
        w_width = spec.weight_format.width
        acc_format, product_format = spec.accumulator, spec.product_format

        # Sequencer: beat b = slot * n_chunks + chunk over a rotating copy of the input.
        x_reg = [Signal(in_shape, name=f"x_reg{n}") for n in range(spec.n_in)]
        busy = Signal()
        beat = Signal(range(max(r, 2)))
        chunk_index = Signal(range(max(n_chunks, 2)))
        slot = Signal(range(max(ops, 2)))
        # ``final``: the last beat (beat == R - 1), a register of its own (set a beat ahead),
        # so that i.ready is a LUT of registers, not the compare of the counter: the compare
        # was the iCEBreaker digits MLP's critical path at 40 MHz (27 ns, into the UART).
        final = Signal(name="final_beat")
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x_reg[n].eq(self.i.payload[n]) for n in range(spec.n_in)]
            m.d.sync += [busy.eq(1), beat.eq(0), chunk_index.eq(0), slot.eq(0),
                         final.eq(r == 1)]
        with m.Elif(busy):
            m.d.sync += [x_reg[n].eq(x_reg[(n + chunk) % spec.n_in]) for n in range(spec.n_in)]
            m.d.sync += [beat.eq(beat + 1), final.eq(beat == r - 2 if r >= 2 else 0)]
            with m.If(chunk_index == n_chunks - 1):
                m.d.sync += [chunk_index.eq(0), slot.eq(slot + 1)]
            with m.Else():
                m.d.sync += chunk_index.eq(chunk_index + 1)
            with m.If(final):
                m.d.sync += busy.eq(0)

        # The weight ROM, read with the beat's address; its data arrives with stage 1.
        rom = Memory(shape=unsigned(self.rom_width), depth=r, init=self._rom_init())
        m.submodules.weight_rom = rom
        rom_read = rom.read_port(domain="sync")
        m.d.comb += rom_read.addr.eq(beat)

        # Stage 1: the chunk and the beat's flags.
        s1_valid, s1_first, s1_last, s1_final = Signal(), Signal(), Signal(), Signal()
        s1_slot = Signal.like(slot)
        s1_x = [Signal(in_shape, name=f"s1_x{k}") for k in range(chunk)]
        m.d.sync += [s1_valid.eq(busy), s1_first.eq(chunk_index == 0),
                     s1_last.eq(chunk_index == n_chunks - 1), s1_final.eq(final),
                     s1_slot.eq(slot)]
        m.d.sync += [s1_x[k].eq(x_reg[k]) for k in range(chunk)]

        # Stage 2: registered products (multiplier blocks with output registers).
        s2_valid, s2_first, s2_last, s2_final = Signal(), Signal(), Signal(), Signal()
        s2_slot = Signal.like(slot)
        if spec.exact_accumulation:
            term_shape = fixed_shape(product_format)
        else:
            term_shape = fixed_shape(acc_format)
        groups = []
        m.d.sync += [s2_valid.eq(s1_valid), s2_first.eq(s1_first), s2_last.eq(s1_last),
                     s2_final.eq(s1_final), s2_slot.eq(s1_slot)]
        for p in range(n_pe):
            terms = []
            for k in range(chunk):
                lane = p * chunk + k
                weight = rom_read.data[lane * w_width:(lane + 1) * w_width].as_signed() \
                    if w_shape.signed else rom_read.data[lane * w_width:(lane + 1) * w_width]
                product = s1_x[k] * weight
                if not spec.exact_accumulation:
                    # The product is read by the rounding and the rounded value by the
                    # saturation several times: wires, so the Verilog has each once.
                    wire = comb_wire(m, f"product_{p}_{k}_")
                    product = requantize(wire(product, "full"), src=product_format,
                                         dst=acc_format, wire=wire)
                term = Signal(term_shape, name=f"product_{p}_{k}", reset_less=True)
                m.d.sync += term.eq(product)
                terms.append(term)
            groups.append(terms)

        # Adder trees.
        sums = pipelined_sums(m, "sync", groups, depth=self.tree_levels, enable=Const(1, 1),
                              levels_per_stage=self._adder_levels_per_stage)
        tree_valid, tree_first, tree_last, tree_final = s2_valid, s2_first, s2_last, s2_final
        tree_slot = s2_slot
        for level in range(self.tree_depth):
            v, f, l, fin = Signal(name=f"tree_valid{level}"), Signal(), Signal(), Signal()
            s = Signal.like(slot)
            m.d.sync += [v.eq(tree_valid), f.eq(tree_first), l.eq(tree_last),
                         fin.eq(tree_final), s.eq(tree_slot)]
            tree_valid, tree_first, tree_last, tree_final, tree_slot = v, f, l, fin, s

        # Accumulators: chunk sums plus the bias of the output the PE is computing.
        acc_shape = fixed_shape(acc_format)
        accs = [Signal(acc_shape, name=f"acc{p}") for p in range(n_pe)]
        acc_slot = Signal.like(slot)
        acc_done, acc_final = Signal(), Signal()
        if spec.exact_accumulation:
            align = acc_format.fraction_width - product_format.fraction_width
            chunk_sums = [s << align for s in sums]
        else:
            chunk_sums = sums
        m.d.sync += [acc_done.eq(tree_valid & tree_last), acc_final.eq(tree_final),
                     acc_slot.eq(tree_slot)]
        with m.If(tree_valid):
            for p in range(n_pe):
                biases = [bias_in_accumulator(spec, p * ops + s) for s in range(ops)]
                bias = biases[0] if ops == 1 else Array(biases)[tree_slot]
                with m.If(tree_first):
                    m.d.sync += accs[p].eq(chunk_sums[p] + bias)
                with m.Else():
                    m.d.sync += accs[p].eq(chunk_sums[p] + accs[p])

        if self._stage is not None:
            valid, payload = self._requantize(m, accs, acc_done, acc_final, acc_slot)
        else:
            valid, payload = self._cast(m, accs, acc_done, acc_final, acc_slot)
        skid_output(m, self.i, self.o, valid=valid, payload=payload, latency=self.latency,
                    initiation_interval=r, accept=~busy | final, payload_holds=True)
        return m

    def _cast(self, m, accs, acc_done, acc_final, acc_slot):
        """The output vector: each slot's accumulators cast to the output format, the slots
        before the last held in registers (output ``p * outputs_per_pe + slot`` of PE ``p``)
        until the last slot's are done. Returns its valid bit and payload (``n_out`` codes),
        which holds until the next vector's first slot is done."""
        spec, n_pe, ops = self._spec, self.n_pe, self._outputs_per_pe
        src, dst = spec.accumulator, spec.output_format
        out_shape = fixed_shape(dst)
        lanes = [None] * spec.n_out
        finished = acc_done  # the accumulators hold a slot's results
        if self._split_cast:  # the rounded accumulators registered, one cycle later
            done, final, slot = Signal(name="rounded_done"), Signal(name="rounded_final"), \
                Signal.like(acc_slot, name="rounded_slot")
            m.d.sync += [done.eq(acc_done), final.eq(acc_final), slot.eq(acc_slot)]
            acc_done, acc_final, acc_slot = done, final, slot
        for p in range(n_pe):
            cast = Signal(out_shape, name=f"cast{p}")
            if self._split_cast:
                rounded = round_to_lsb(accs[p], src=src, dst=dst)
                rounded_reg = Signal(rounded.shape(), name=f"rounded{p}", reset_less=True)
                with m.If(finished):
                    m.d.sync += rounded_reg.eq(rounded)
                m.d.comb += cast.eq(saturate(rounded_reg, dst=dst))
            else:
                m.d.comb += cast.eq(requantize(accs[p], src=src, dst=dst))
            lanes[p * ops + ops - 1] = cast
            for s in range(ops - 1):
                held = lanes[p * ops + s] = Signal(out_shape, name=f"y{p * ops + s}",
                                                   reset_less=True)
                with m.If(acc_done & (acc_slot == s)):
                    m.d.sync += held.eq(cast)
        return acc_done & acc_final, Cat(*lanes)

    def _requantize(self, m, accs, acc_done, acc_final, acc_slot):
        """The results through the output stage: each slot's accumulators (cast to the output
        format) copied to a buffer when done, then one per cycle through the requantizer lane
        into the result registers (channel ``p * outputs_per_pe + slot`` of PE ``p``).
        Returns the output vector's valid bit and payload (``n_out`` codes), which holds until
        the next vector's first: the lane writes channel ``n_out - 1`` last, in the cycle the
        vector is done."""
        spec, stage, n_pe, ops = self._spec, self._stage, self.n_pe, self._outputs_per_pe
        n_out = spec.n_out
        acc_format, out_format = spec.accumulator, spec.output_format
        buffer = [Signal(fixed_shape(out_format), name=f"done{p}") for p in range(n_pe)]
        draining, last_slot = Signal(), Signal()
        index = Signal(range(max(n_pe, 2)))
        channel = Signal(range(max(n_out, 2)))
        with m.If(acc_done):
            m.d.sync += [buffer[p].eq(requantize(accs[p], src=acc_format, dst=out_format))
                         for p in range(n_pe)]
            m.d.sync += [draining.eq(1), index.eq(0), channel.eq(acc_slot),
                         last_slot.eq(acc_final)]
        with m.Elif(draining):
            m.d.sync += [index.eq(index + 1), channel.eq(channel + ops)]
            with m.If(index == n_pe - 1):
                m.d.sync += draining.eq(0)

        register = stage_register(m, Const(1))
        x = pick(m, buffer, index, signed(out_format.width), "requantize_x")
        channels = (channel, register(channel, "requantize_channel_1"))
        channels += (register(channels[1], "requantize_channel_2"),)
        valid = register(register(draining, "requantize_valid_1"), "requantize_valid_2")
        done = register(register(draining & last_slot & (index == n_pe - 1),
                                 "requantize_last_1"), "requantize_last_2")

        def table(values):
            return tuple(values) if stage.channels > 1 else (values[0],)

        scaled = rescale_of(stage)(m, x, table(stage.multipliers), table(stage.shifts),
                                   register, "requantize", chunks=channels,
                                   offset=table(stage.offset_values))
        code = clamped_code(m, scaled, stage, "requantize_value")
        code_shape = fixed_shape(FixedFormat(stage.width, stage.width))
        held = [Signal(code_shape, name=f"y{j}", reset_less=True) for j in range(n_out)]
        with m.If(valid):
            with m.Switch(channels[2]):
                for j in range(n_out):
                    with m.Case(j):
                        m.d.sync += held[j].eq(code)
        last = Signal(code_shape, name="y_last")  # the last code, and then its register
        m.d.comb += last.eq(Mux(done, code, held[-1]))
        return done, Cat(*held[:-1], last)


def _stage_problem(spec, reuse_factor, stage):
    """Why ``stage`` cannot requantize a ROM layer of ``spec`` at ``reuse_factor`` in place,
    as an exception, or None."""
    if not isinstance(stage, OutputStage):
        return TypeError(f"Output stage must be an OutputStage, not {stage!r}")
    if stage.channels not in (1, spec.n_out):
        return ValueError(f"Output stage has {stage.channels} channels; a layer of "
                          f"{spec.n_out} outputs needs {spec.n_out} or 1 (per-tensor)")
    fmt, limit = spec.output_format, 32 if stage.rounding == "gemmlowp" else 48
    if fmt.fraction_width != 0 or not fmt.signed or fmt.width > limit:
        return ValueError(f"Output stage input must be a signed integer format of at most "
                          f"{limit} bits (fixed<W,W>), not {fmt}")
    shortfall = rom_requantizer_shortfall(spec.n_in, spec.n_out, reuse_factor)
    if shortfall:
        return ValueError(f"Output stage in a ROM layer needs {shortfall} at reuse factor "
                          f"{reuse_factor}")
    return None

