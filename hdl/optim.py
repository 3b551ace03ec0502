"""Fixed-point weight-update units (SGD, SGD with momentum, Adagrad, Adam) with stream interfaces
and their optimizer state in memories.

The arithmetic is the integer algorithm of :mod:`nnfab.training` (module docstring), the
contract that :mod:`nnfab.sim.golden.optim` implements independently.
"""

from amaranth.hdl import C, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.training import LFSR_TAPS, LFSR_WIDTH, OptimizerSpec

from .cast import fixed_shape
from .unused import discard

__all__ = ["update_layout", "UpdateUnit", "UPDATE_LATENCY"]


def update_layout(spec, depth, step_width=16):
    """Payload layout of an update unit's input: ``index`` (parameter), ``weight``,
    ``gradient`` (codes of the spec's formats) and ``step`` (Adam's ``t``, from 1)."""
    return data.StructLayout({
        "index": unsigned(max(1, (depth - 1).bit_length())),
        "weight": fixed_shape(spec.weight_format),
        "gradient": fixed_shape(spec.gradient_format),
        "step": unsigned(step_width),
    })


def _signed(value):
    """``value`` as a signed value of the same numeric value (zero-extended when unsigned)."""
    return value if value.shape().signed else Cat(value, C(0, 1)).as_signed()


def _rs(value, k):
    """Round half up by a constant ``k`` bits (``k <= 0``: exact left shift)."""
    value = _signed(value)
    if k <= 0:
        return value << -k
    return (value + (1 << (k - 1))) >> k


#: Cycles from an accepted input of an :class:`UpdateUnit` to its output.
UPDATE_LATENCY = 6


def _clamp(value, fmt):
    return Mux(value > fmt.max_code, fmt.max_code,
               Mux(value < fmt.min_code, fmt.min_code, value))


class UpdateUnit(wiring.Component):
    """One optimizer step per parameter: ``(index, weight, gradient, step)`` in, updated weight
    out; the optimizer state of ``depth`` parameters lives in memories addressed by ``index``
    (first state ``M`` and second state ``A`` of :class:`~nnfab.training.OptimizerSpec`, both
    zero after configuration; reset does not clear them).

    Algorithms and formats: :mod:`nnfab.training` (SGD; momentum after Polyak 1964 and Sutskever
    et al. 2013; Adagrad after Duchi et al. 2011; Adam after Kingma and Ba 2015; stochastic
    rounding after Gupta et al. 2015). The reciprocal square root and Adam's bias correction are
    ROMs (``Memory`` without write port) holding :attr:`OptimizerSpec.rsqrt_codes` and
    :attr:`OptimizerSpec.correction_codes`.

    Pipelined, one input per cycle (II 1): stage 1 receives the state read at the input's
    acceptance and computes and writes the new state (and ``a' + eps``); stage 2 finds the
    leading one and reads the ROMs; stage 3 registers the ROM data and the first product
    (Adam's ``m' c``); stage 4 the product with the reciprocal square root; stage 5 computes
    the weight (shift, rounding, clamp) into the output register: at most one multiplier
    between registers. The whole pipeline holds while the output is valid and not taken
    (``i.ready = ~o.valid | o.ready``), so nothing is lost or duplicated under back-pressure.
    The state memories' read ports are transparent to their write ports, so an input may
    name the parameter of the input just before it: the codes are those of
    :func:`nnfab.sim.golden.optim.update` for any order of indices. The LFSR steps once per
    update, as each output is produced.

    Parameters
    ----------
    spec : OptimizerSpec
    depth : int, >= 1
        Number of parameters (state memory depth).
    step_width : int, >= 1
        Bits of the ``step`` field.

    Members
    -------
    i : ``In(stream.Signature(update_layout(spec, depth, step_width)))``
    o : ``Out(stream.Signature(fixed_shape(spec.weight_format)))``

    Attributes
    ----------
    latency : int
        6 cycles from an accepted input to its output being valid.
    initiation_interval : int
        1 cycle between accepted inputs at full rate.

    Raises
    ------
    TypeError
        If ``spec`` is not an OptimizerSpec or ``depth``/``step_width`` not an integer.
    ValueError
        If ``depth`` or ``step_width`` is not positive.
    """

    def __init__(self, spec, *, depth, step_width=16):
        try:
            if not isinstance(spec, OptimizerSpec):
                raise TypeError(f"Optimizer must be an OptimizerSpec, not {spec!r}")
            for value, what in ((depth, "Depth"), (step_width, "Step width")):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise TypeError(f"{what} must be an integer, not {value!r}")
                if value < 1:
                    raise ValueError(f"{what} must be a positive integer, not {value!r}")
        except (TypeError, ValueError):
            discard(self)  # a rejected design is not an unused one
            raise
        self._spec, self._depth, self._step_width = spec, depth, step_width
        super().__init__({
            "i": In(stream.Signature(update_layout(spec, depth, step_width))),
            "o": Out(stream.Signature(fixed_shape(spec.weight_format))),
        })

    def __repr__(self):
        return f"UpdateUnit({self._spec!r}, depth={self._depth!r})"

    @property
    def spec(self):
        return self._spec

    @property
    def depth(self):
        return self._depth

    @property
    def latency(self):
        return UPDATE_LATENCY

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        W, G = spec.weight_format, spec.gradient_format
        fw, fg, s = W.fraction_width, G.fraction_width, spec.lr_shift

        advance = Signal()  # every stage moves on (the output register is free or taken)
        accept = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
            accept.eq(self.i.valid & advance),
        ]
        lfsr = Signal(LFSR_WIDTH, init=spec.lfsr_seed)

        def stage(value, name):
            """``value`` registered into the next stage (held while the pipeline holds)."""
            reg = Signal(value.shape(), name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        def carry(value, first, last, name):
            """``value`` (a stage ``first`` register) carried to stage ``last``."""
            for k in range(first + 1, last + 1):
                value = stage(value, f"{name}{k}")
            return value

        payload = self.i.payload
        valid = [None, stage(accept, "valid1")]
        index1 = stage(payload.index, "index1")
        weight1 = stage(payload.weight, "weight1")
        grad1 = stage(payload.gradient, "grad1")
        step1 = stage(payload.step, "step1")

        def state_memory(fmt, name):
            mem = Memory(shape=fixed_shape(fmt), depth=self._depth, init=[])
            m.submodules[name] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=(wr,))
            m.d.comb += [rd.addr.eq(payload.index), rd.en.eq(advance),
                         wr.addr.eq(index1), wr.en.eq(valid[1] & advance)]
            return rd, wr

        def step_round(value, k):
            """Final rounding of the weight step by ``k`` (constant or Value) bits."""
            value = _signed(value)
            if isinstance(k, int) and k <= 0:
                return value << -k
            if spec.stochastic_rounding:
                offset = (lfsr << k)[LFSR_WIDTH:]
            elif isinstance(k, int):
                offset = C(1 << (k - 1))
            else:
                offset = (C(1, 1) << k)[1:]
            return (value + offset) >> k

        # Stage 1: the state as read at acceptance; the new state is written back.
        state2 = x2 = None
        if spec.has_state:
            M = spec.state_format
            state_rd, state_wr = state_memory(M, "state")
            new_state = Signal(fixed_shape(M))
            if spec.kind == "momentum":
                k = spec.momentum_shift
                expr = state_rd.data - _rs(state_rd.data, k) + _rs(grad1, fg - M.fraction_width)
            else:
                k1 = spec.beta1_shift
                expr = (state_rd.data - _rs(state_rd.data, k1)
                        + _rs(grad1, fg + k1 - M.fraction_width))
            m.d.comb += [new_state.eq(_clamp(expr, M)), state_wr.data.eq(new_state)]
            state2 = stage(new_state, "state2")
        if spec.has_square:
            A = spec.square_format
            fa = A.fraction_width
            square_rd, square_wr = state_memory(A, "square")
            new_square = Signal(fixed_shape(A))
            prev = _signed(square_rd.data)
            if spec.kind == "adagrad":
                expr = prev + _rs(grad1 * grad1, 2 * fg - fa)
            else:
                k2 = spec.beta2_shift
                expr = prev - _rs(square_rd.data, k2) + _rs(grad1 * grad1, 2 * fg + k2 - fa)
            m.d.comb += [new_square.eq(_clamp(expr, A)), square_wr.data.eq(new_square)]
            x2 = Signal(A.width + 1, name="x2")  # a' + eps
            with m.If(advance):
                m.d.sync += x2.eq(new_square + spec.epsilon_code)
        valid.append(stage(valid[1], "valid2"))
        weight = carry(weight1, 1, 5, "weight")
        step2 = stage(step1, "step2")

        # Stage 2: leading one of x, the ROMs' addresses, the step's shift.
        if spec.has_square:
            lead = Signal(range(x2.shape().width))
            for bit in range(x2.shape().width):
                with m.If(x2[bit]):
                    m.d.comb += lead.eq(bit)
            top = x2.shape().width - 1
            normalised = Signal(x2.shape().width)
            m.d.comb += normalised.eq(x2 << (top - lead).as_unsigned())
            b = spec.rsqrt_bits
            mantissa = normalised[max(0, top - b):top]
            if top < b:
                mantissa = Cat(C(0, b - top), mantissa)
            parity = lead[0] ^ (fa & 1)
            rsqrt_rom = Memory(shape=unsigned(spec.rsqrt_fraction_width + 1),
                               depth=len(spec.rsqrt_codes), init=spec.rsqrt_codes)
            m.submodules.rsqrt_rom = rsqrt_rom
            rsqrt_rd = rsqrt_rom.read_port()
            m.d.comb += [rsqrt_rd.addr.eq(Cat(mantissa, parity)), rsqrt_rd.en.eq(advance)]
            # Weight step shift: base + h with h = (lead - Fa - parity) / 2, never negative.
            shift = Signal(range(spec.max_step_shift + 1))
            twice = Signal(signed(x2.shape().width.bit_length() + fa.bit_length() + 3))
            m.d.comb += [twice.eq(lead - fa - parity + 2 * spec.step_shift_base),
                         shift.eq(twice >> 1)]
            shift5 = carry(stage(shift, "shift3"), 3, 5, "shift")
        if spec.kind == "adam":
            depth = len(spec.correction_codes)
            codes = list(spec.correction_codes) + [spec.correction_one]
            corr_rom = Memory(shape=unsigned(max(codes).bit_length()), depth=depth + 1,
                              init=codes)
            m.submodules.correction_rom = corr_rom
            corr_rd = corr_rom.read_port()
            m.d.comb += [corr_rd.addr.eq(Mux(step2 > depth, depth,
                                             Mux(step2 == 0, 0, step2 - 1))),
                         corr_rd.en.eq(advance)]
        valid.append(stage(valid[2], "valid3"))

        # Stages 3 and 4 register the products (ROM data and the first product), so that no
        # clock period holds more than one multiplier before the final shift and clamp.
        if spec.kind == "sgd":
            delta = step_round(carry(grad1, 1, 5, "grad"), s + fg - fw)
        elif spec.kind == "momentum":
            delta = step_round(carry(state2, 2, 5, "state"),
                               s + spec.state_format.fraction_width - fw)
        else:
            rsqrt4 = stage(rsqrt_rd.data, "rsqrt4")
            if spec.kind == "adagrad":
                first4 = carry(grad1, 1, 4, "grad")
            else:
                state3 = stage(state2, "state3")
                first4 = stage(state3 * corr_rd.data, "first4")
            product5 = stage(first4 * rsqrt4, "product5")
            delta = step_round(product5, shift5)
        valid.append(stage(valid[3], "valid4"))
        valid.append(stage(valid[4], "valid5"))

        # Stage 5: the weight into the output register.
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(valid[5]), self.o.payload.eq(_clamp(weight - delta, W))]
            with m.If(valid[5]):
                m.d.sync += lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], Const(LFSR_TAPS, LFSR_WIDTH), 0))
        return m
