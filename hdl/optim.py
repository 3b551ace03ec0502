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


_LAST_PHASE = 5
#: Cycles from an accepted input of an :class:`UpdateUnit` to its output (also its II).
UPDATE_LATENCY = _LAST_PHASE + 1


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

    Not pipelined: cycle 1 accepts and reads the state, cycle 2 computes and writes the state
    (and registers ``a' + eps``), cycle 3 finds its leading one and reads the ROMs, cycle 4
    registers the ROM data and the first product (Adam's ``m' c``), cycle 5 the product with
    the reciprocal square root, cycle 6 computes the weight (shift, rounding, clamp), which is
    valid from cycle 7 until taken: at most one multiplier between registers. The LFSR steps
    once per update.

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
        6 cycles between accepted inputs at full rate.

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
        return UPDATE_LATENCY

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        W, G = spec.weight_format, spec.gradient_format
        fw, fg, s = W.fraction_width, G.fraction_width, spec.lr_shift

        index = Signal.like(self.i.payload.index)
        weight = Signal(fixed_shape(W))
        grad = Signal(fixed_shape(G))
        step = Signal(self._step_width)
        lfsr = Signal(LFSR_WIDTH, init=spec.lfsr_seed)
        phase = Signal(3)  # 0 idle, 1 state, 2 ROM address, 3 ROM data, 4 product, 5 weight
        accept = Signal()
        m.d.comb += [
            self.i.ready.eq((phase == 0) & (~self.o.valid | self.o.ready)),
            accept.eq(self.i.valid & self.i.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(accept):
            m.d.sync += [
                index.eq(self.i.payload.index), weight.eq(self.i.payload.weight),
                grad.eq(self.i.payload.gradient), step.eq(self.i.payload.step), phase.eq(1),
            ]
        read_addr = Mux(phase == 0, self.i.payload.index, index)

        def state_memory(fmt, name):
            mem = Memory(shape=fixed_shape(fmt), depth=self._depth, init=[])
            m.submodules[name] = mem
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(read_addr), wr.addr.eq(index), wr.en.eq(phase == 1)]
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

        new_state = new_square = None
        if spec.has_state:
            M = spec.state_format
            state_rd, state_wr = state_memory(M, "state")
            new_state = Signal(fixed_shape(M))
            if spec.kind == "momentum":
                k = spec.momentum_shift
                expr = state_rd.data - _rs(state_rd.data, k) + _rs(grad, fg - M.fraction_width)
            else:
                k1 = spec.beta1_shift
                expr = (state_rd.data - _rs(state_rd.data, k1)
                        + _rs(grad, fg + k1 - M.fraction_width))
            m.d.comb += [new_state.eq(_clamp(expr, M)), state_wr.data.eq(new_state)]
            state_reg = Signal.like(new_state)
            with m.If(phase == 1):
                m.d.sync += state_reg.eq(new_state)
        if spec.has_square:
            A = spec.square_format
            fa = A.fraction_width
            square_rd, square_wr = state_memory(A, "square")
            new_square = Signal(fixed_shape(A))
            prev = _signed(square_rd.data)
            if spec.kind == "adagrad":
                expr = prev + _rs(grad * grad, 2 * fg - fa)
            else:
                k2 = spec.beta2_shift
                expr = prev - _rs(square_rd.data, k2) + _rs(grad * grad, 2 * fg + k2 - fa)
            m.d.comb += [new_square.eq(_clamp(expr, A)), square_wr.data.eq(new_square)]
            # Reciprocal square root of x = a' + eps (registered in phase 1): leading one,
            # table address and exponent in phase 2.
            x = Signal(A.width + 1)
            with m.If(phase == 1):
                m.d.sync += x.eq(new_square + spec.epsilon_code)
            lead = Signal(range(x.shape().width))
            for bit in range(x.shape().width):
                with m.If(x[bit]):
                    m.d.comb += lead.eq(bit)
            top = x.shape().width - 1
            normalised = Signal(x.shape().width)
            m.d.comb += normalised.eq(x << (top - lead).as_unsigned())
            b = spec.rsqrt_bits
            mantissa = normalised[max(0, top - b):top]
            if top < b:
                mantissa = Cat(C(0, b - top), mantissa)
            parity = lead[0] ^ (fa & 1)
            rsqrt_rom = Memory(shape=unsigned(spec.rsqrt_fraction_width + 1),
                               depth=len(spec.rsqrt_codes), init=spec.rsqrt_codes)
            m.submodules.rsqrt_rom = rsqrt_rom
            rsqrt_rd = rsqrt_rom.read_port()
            m.d.comb += rsqrt_rd.addr.eq(Cat(mantissa, parity))
            # Weight step shift: base + h with h = (lead - Fa - parity) / 2, never negative.
            shift = Signal(range(spec.max_step_shift + 1))
            twice = Signal(signed(x.shape().width.bit_length() + fa.bit_length() + 3))
            m.d.comb += twice.eq(lead - fa - parity + 2 * spec.step_shift_base)
            with m.If(phase == 2):
                m.d.sync += shift.eq(twice >> 1)
        if spec.kind == "adam":
            depth = len(spec.correction_codes)
            codes = list(spec.correction_codes) + [spec.correction_one]
            corr_rom = Memory(shape=unsigned(max(codes).bit_length()), depth=depth + 1,
                              init=codes)
            m.submodules.correction_rom = corr_rom
            corr_rd = corr_rom.read_port()
            m.d.comb += corr_rd.addr.eq(Mux(step > depth, depth, Mux(step == 0, 0, step - 1)))

        # Phases 3 and 4 register the products (ROM data and the first product), so that no
        # clock period holds more than one multiplier before the final shift and clamp.
        if spec.kind == "sgd":
            delta = step_round(grad, s + fg - fw)
        elif spec.kind == "momentum":
            delta = step_round(state_reg, s + spec.state_format.fraction_width - fw)
        else:
            rsqrt_reg = Signal.like(rsqrt_rd.data)
            with m.If(phase == 3):
                m.d.sync += rsqrt_reg.eq(rsqrt_rd.data)
            if spec.kind == "adagrad":
                first = grad
            else:
                first = Signal((state_reg * corr_rd.data).shape())
                with m.If(phase == 3):
                    m.d.sync += first.eq(state_reg * corr_rd.data)
            product = Signal((first * rsqrt_reg).shape())
            with m.If(phase == 4):
                m.d.sync += product.eq(first * rsqrt_reg)
            delta = step_round(product, shift)

        with m.If((phase != 0) & (phase != _LAST_PHASE)):
            m.d.sync += phase.eq(phase + 1)
        with m.If(phase == _LAST_PHASE):
            m.d.sync += [
                phase.eq(0),
                self.o.valid.eq(1),
                self.o.payload.eq(_clamp(weight - delta, W)),
                lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], Const(LFSR_TAPS, LFSR_WIDTH), 0)),
            ]
        return m
