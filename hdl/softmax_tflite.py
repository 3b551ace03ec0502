"""TFLite's int8 ``SOFTMAX`` in hardware, bit-exact with its reference kernel.

The arithmetic is ``reference_ops::Softmax`` for int8 (gemmlowp fixed point), specified in
:mod:`nnfab.gemmlowp` and, code for code, by the golden model
:func:`nnfab.sim.golden.tflite_softmax.softmax_int8`. Since the inputs are int8, every
difference to the row maximum is one of 256 values: the exponentials are a table
(:func:`nnfab.gemmlowp.softmax_exp_table`, computed by the golden functions); the reciprocal of
their sum and the outputs are computed.
"""

import math

from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.gemmlowp import (ACCUMULATION_INTEGER_BITS, CONSTANT_48_OVER_17,
                            CONSTANT_NEG_32_OVER_17, MAX_DEPTH, NEWTON_RAPHSON_STEPS,
                            OUTPUT_BITS, softmax_exp_table)
from nnfab.requantize import INT32_MAX, INT32_MIN

from .cast import fit_shape
from .output_stage import saturating_rounding_doubling_high_mul
from .vector_pipeline import VectorPipeline, argmax_tree, vector_signature

__all__ = ["TfliteSoftmax", "PipelineBuilder", "get_reciprocal", "RECIPROCAL_LATENCY"]

#: int8 codes, in and out.
INT8 = FixedFormat(8, 8)
#: Largest vector (:data:`nnfab.gemmlowp.MAX_DEPTH`).
MAX_N = MAX_DEPTH
#: Q12.19 summand of the row maximum: ``RoundingDivideByPOT(INT32_MAX, 12)``.
_ONE = 1 << (31 - ACCUMULATION_INTEGER_BITS)
_LATENCY_BEFORE_RECIPROCAL = 4      # max, term ROM, sum, normalization
_LATENCY_RECIPROCAL = 2 + 4 * NEWTON_RAPHSON_STEPS   # after the normalization
_LATENCY_AFTER_RECIPROCAL = 3       # product, high multiply, rounding shift


def _wrap32(value):
    """``value`` wrapped to int32 (C's int32 arithmetic): its low 32 bits, or ``value`` itself
    when it is narrower (a slice, unlike a sign extension, keeps the simulator's expressions
    small)."""
    value = Value.cast(value)
    return value[:32].as_signed() if len(value) >= 32 else value


def _saturating_shift_left(value, exponent):
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` of an int32 ``value``."""
    threshold = (1 << (31 - exponent)) - 1
    return Mux(value > threshold, INT32_MAX,
               Mux(value < -threshold, INT32_MIN, _wrap32(value << exponent)))


class PipelineBuilder:
    """Helpers of a pipeline that stalls as a whole: ``register(expr, name)`` of
    :meth:`VectorPipeline._stages` and the module."""

    def __init__(self, m, register):
        self.m, self.register = m, register

    def delay(self, value, cycles, name):
        """``value`` through ``cycles`` pipeline registers."""
        for c in range(cycles):
            value = self.register(value, f"{name}_d{c}")
        return value

    def named(self, expr, name):
        """``expr`` as an int32 signal (keeps expressions that reuse it from growing)."""
        signal = Signal(signed(32), name=name)
        self.m.d.comb += signal.eq(expr)
        return signal

    def high_mul(self, a, b, name, *, may_saturate=True):
        """gemmlowp ``SaturatingRoundingDoublingHighMul(a, b)`` of int32 values: the product
        registered (one stage), the rounding combinational after it; ``INT32_MIN * INT32_MIN``
        gives ``INT32_MAX`` unless ``may_saturate`` is false (an operand that cannot be
        ``INT32_MIN``)."""
        product = self.register(a * b, f"product_{name}")
        high = _wrap32(saturating_rounding_doubling_high_mul(self.m, product, name))
        if not may_saturate:
            return self.named(high, f"high_{name}")
        both_min = self.register((a == INT32_MIN) & (b == INT32_MIN), f"saturate_{name}")
        return self.named(Mux(both_min, INT32_MAX, high), f"high_{name}")


#: Register stages of :func:`get_reciprocal` from its input to its (combinational) reciprocal.
RECIPROCAL_LATENCY = 1 + 2 + 4 * NEWTON_RAPHSON_STEPS


def get_reciprocal(build, total):
    """TFLite ``GetReciprocal`` of a registered Q12.19 sum ``total`` (``2**19 <= total <
    2**28``, unsigned): ``(reciprocal, num_bits_over_unit)``.

    ``num_bits_over_unit`` (unsigned, 0 to 8) is registered one stage after ``total``;
    ``reciprocal`` (int32, Q0.31, ``one_over_one_plus_x_for_x_in_0_1`` of the normalized sum
    minus one) is combinational after :data:`RECIPROCAL_LATENCY` stages: the normalization
    (count leading zeros, a shift), the initial guess (a product by a constant and its
    rounding) and three Newton-Raphson steps of four stages (two 32x32 products, each
    registered, then rounded). The additions wrap and the shifts saturate as gemmlowp's int32
    arithmetic does.

    Parameters
    ----------
    build : PipelineBuilder
    total : Value
        Unsigned, at most 28 bits wide.
    """
    m, register, delay, high_mul = build.m, build.register, build.delay, build.high_mul
    sum_width = len(total)
    # Stage 1: the normalization. The sum is at least 2**19 (the maximum's own summand), so
    # its bit length is 20 to sum_width.
    leading_zeros = Signal(range(33), name="leading_zeros")  # of the sum as a uint32
    for b in range(sum_width):
        with m.If(total[b]):
            m.d.comb += leading_zeros.eq(31 - b)
    normalized = Signal(32, name="normalized_sum")       # leading one at bit 31
    m.d.comb += normalized.eq((total << leading_zeros)[:32])
    # RoundingHalfSum(a, One) with a = normalized - 2**31 >= 0: (a + 2**31 + 1 - 1) / 2.
    half_denominator = register(Cat(normalized[1:31], C(1, 2)).as_signed(),
                                "half_denominator")
    num_bits_over_unit = register(fit_shape(ACCUMULATION_INTEGER_BITS - leading_zeros,
                                            unsigned(5)), "num_bits_over_unit")

    # Stages 2 and 3: the initial guess 48/17 - 32/17 * h in Q2.29.
    estimate = register(_wrap32(C(CONSTANT_48_OVER_17, signed(32))
                                + high_mul(half_denominator,
                                           C(CONSTANT_NEG_32_OVER_17, signed(32)),
                                           "guess", may_saturate=False)), "x_0")
    h = delay(half_denominator, 2, "h0")
    # Stages 4 to 15: Newton-Raphson, four stages per step.
    for step in range(1, NEWTON_RAPHSON_STEPS + 1):
        h_times_x = high_mul(h, estimate, f"hx_{step}", may_saturate=False)   # h > 0
        x_a = register(estimate, f"x_{step}_a")
        one_minus = register(_wrap32((1 << 29) - h_times_x), f"one_minus_{step}")
        x_b = register(x_a, f"x_{step}_b")
        correction = _saturating_shift_left(high_mul(x_b, one_minus, f"x_one_minus_{step}"), 2)
        x_c = register(x_b, f"x_{step}_c")
        estimate = register(_wrap32(x_c + correction), f"x_{step}")
        if step < NEWTON_RAPHSON_STEPS:
            h = delay(h, 4, f"h{step}")
    reciprocal = Signal(signed(32), name="reciprocal")    # Q0.31: ExactMulByPot<-1>, Rescale<0>
    m.d.comb += reciprocal.eq(_saturating_shift_left(estimate, 1))
    return reciprocal, num_bits_over_unit


class TfliteSoftmax(VectorPipeline):
    """TFLite's int8 ``SOFTMAX`` of a vector stream (output scale 1/256, zero point -128),
    pipelined, II = 1.

    ``4 + (2 + 4 * 3) + 3 = 21`` register stages, one cycle each; the pipeline stalls as a
    whole under back-pressure and never drops or repeats a transfer:

    1. the row maximum (a comparison tree), the inputs alongside;
    2. ROM read of the Q12.19 summand at ``d_k = max - x_k`` (0 to 255; 0 below ``diff_min``);
    3. their sum (at most ``n * 2**19 < 2**28``);
    4. ``GetReciprocal``'s normalization: ``num_bits_over_unit`` from the sum's bit length
       (a priority encoder: count leading zeros) and ``half_denominator = (a + 2**31) / 2`` of
       the normalized sum minus one ``a`` (``RoundingHalfSum(a, 1)``, exact for ``a >= 0``);
    5. to 18. ``one_over_one_plus_x_for_x_in_0_1``: the initial guess ``48/17 - 32/17 * h``,
       then three Newton-Raphson steps ``x += 4 * x * (1 - h * x)``, every
       ``SaturatingRoundingDoublingHighMul`` a 32x32 product registered, then its rounding,
       the additions wrapping and the shifts saturating as gemmlowp's int32 do; the Q0.31
       exponentials are read from a second ROM at stage 18, alongside;
    19. the products ``exp_k * 1/sum`` (Q0.31, 32x31 bits);
    20. their high multiply;
    21. ``RoundingDivideByPOT`` by ``num_bits_over_unit + 23``, then ``- 128`` and the clamp to
        int8.

    Multipliers: ``7 + n`` (seven 32x32 in the reciprocal, one of them by a constant; one
    32x31 per lane). ROMs: two of 256 entries (20 and 31 bits) with ``n`` read ports each.

    Parameters
    ----------
    n : int
        Lanes per vector (the softmax depth), 1 to 511.
    input_scale : float
        The input tensor's scale (the float32 of the file), > 0.
    beta : float
        The operator's ``beta`` (float32 of the file), > 0.

    Members
    -------
    i : ``In(vector_signature(fixed<8,8>, n))``
        int8 codes.
    o : ``Out(vector_signature(fixed<8,8>, n))``
        int8 codes of the probabilities (``code + 128`` in units of 1/256).

    Attributes
    ----------
    latency : int
        21 cycles from an accepted input to its output being valid.
    initiation_interval : int
        1 cycle.

    Raises
    ------
    TypeError
        If ``n`` is not an integer or a scale is not a number.
    ValueError
        If ``n`` is outside 1 to 511, or ``input_scale`` or ``beta`` is not a finite number
        above 0.
    """

    def __init__(self, *, n, input_scale, beta):
        self._validated(lambda: self._check(n, input_scale, beta))
        self._n, self._input_scale, self._beta = n, float(input_scale), float(beta)
        self._table = softmax_exp_table(self._input_scale, self._beta)
        super().__init__({"i": In(vector_signature(INT8, n)),
                          "o": Out(vector_signature(INT8, n))})

    @staticmethod
    def _check(n, input_scale, beta):
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"Softmax depth must be an integer, not {n!r}")
        if not 1 <= n <= MAX_N:
            raise ValueError(f"Softmax depth must be from 1 to {MAX_N}, not {n!r}")
        for what, value in (("Input scale", input_scale), ("Beta", beta)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{what} must be a number, not {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{what} must be a finite number above 0, not {value!r}")

    def __repr__(self):
        return (f"TfliteSoftmax(n={self._n}, input_scale={self._input_scale!r}, "
                f"beta={self._beta!r})")

    @property
    def n(self):
        return self._n

    @property
    def input_scale(self):
        return self._input_scale

    @property
    def beta(self):
        return self._beta

    @property
    def latency(self):
        return _LATENCY_BEFORE_RECIPROCAL + _LATENCY_RECIPROCAL + _LATENCY_AFTER_RECIPROCAL

    @property
    def n_multipliers(self):
        """Multipliers in the circuit: 7 in the reciprocal and one per lane."""
        return 1 + 2 * NEWTON_RAPHSON_STEPS + self._n

    def elaborate(self, platform):
        m = Module()
        n = self._n
        advance, register = self._stages(m, self.latency)

        build = PipelineBuilder(m, register)
        delay, high_mul = build.delay, build.high_mul

        # Stage 1: the maximum, and the inputs alongside.
        x = [self.i.payload[k] for k in range(n)]
        peak, _ = argmax_tree([(value, C(0, 1)) for value in x])
        peak = register(peak, "peak")
        x1 = [register(value, f"x1_{k}") for k, value in enumerate(x)]
        d = [Signal(8, name=f"d_{k}") for k in range(n)]
        m.d.comb += [d[k].eq(peak - x1[k]) for k in range(n)]

        # Stage 2: the Q12.19 summands from their ROM.
        table = self._table
        m.submodules.term_rom = term_rom = Memory(
            shape=unsigned(_ONE.bit_length()), depth=256, init=[int(v) for v in table.terms])
        terms = []
        for k in range(n):
            port = term_rom.read_port(domain="sync")
            m.d.comb += [port.addr.eq(d[k]), port.en.eq(advance)]
            terms.append(port.data)

        # Stage 3: the sum (below 2**28, so int32 never wraps).
        sum_width = (n * _ONE).bit_length()
        while len(terms) > 1:                               # a balanced adder tree
            terms = [a + b for a, b in zip(terms[::2], terms[1::2])] + terms[len(terms) & ~1:]
        total = register(fit_shape(terms[0], unsigned(sum_width)), "sum")

        # Stages 4 to 18: GetReciprocal.
        reciprocal, num_bits_over_unit = get_reciprocal(build, total)
        nbou = delay(num_bits_over_unit, _LATENCY_RECIPROCAL + 2, "num_bits_over_unit")

        # Stage 18: the Q0.31 exponentials from their ROM, at the differences delayed alongside.
        m.submodules.exp_rom = exp_rom = Memory(
            shape=unsigned(31), depth=256, init=[int(v) for v in table.exps])
        exps = []
        for k in range(n):
            port = exp_rom.read_port(domain="sync")
            address = delay(d[k], _LATENCY_BEFORE_RECIPROCAL + _LATENCY_RECIPROCAL - 2, f"d_{k}")
            m.d.comb += [port.addr.eq(address), port.en.eq(advance)]
            exps.append(port.data)

        # Stages 19 and 20: exp * 1/sum (exp >= 0 is never INT32_MIN); stage 21: the rounding
        # shift by num_bits_over_unit + 31 - 8 (23 to 31), the offset and the clamp.
        for k in range(n):
            high = high_mul(reciprocal, exps[k], f"out_{k}", may_saturate=False)
            high = register(high, f"high_{k}_r")
            exponent = nbou + (31 - OUTPUT_BITS)
            mask = Signal(32, name=f"mask_{k}")
            m.d.comb += mask.eq((C(1, 33) << exponent) - 1)
            remainder = high.as_unsigned() & mask
            threshold = (mask >> 1) + (high < 0)
            unsat = Signal(signed(33), name=f"unsat_{k}")
            m.d.comb += unsat.eq((high >> exponent) + (remainder > threshold) - 128)
            with m.If(advance):
                m.d.sync += self.o.payload[k].eq(
                    Mux(unsat < -128, -128, Mux(unsat > 127, 127, unsat)))
        return m
