"""The integer output stage of int8 models in hardware: int32 accumulators to int8 codes,
pipelined.

Bit-exact with :func:`nnfab.sim.golden.output_stage.output_stage` (TFLite's
``MultiplyByQuantizedMultiplier``, double rounding, or an exact multiplication rounded half away
from zero, half to even, or as onnxruntime's float32 multiplication rounds; then zero point and
clamp; see :mod:`nnfab.requantize` and :mod:`nnfab.output_stage`).
"""

from amaranth.hdl import C, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.output_stage import FLOAT32_SIGNIFICANT, OutputStage

from .cast import fit_shape
from .vector_pipeline import VectorPipeline, stage_register, vector_signature

__all__ = ["OutputStageEngine", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
           "multiply_by_quantized_multiplier", "half_away_rescale", "half_even_rescale",
           "float32_rescale", "floor_rescale", "round_significant", "rescale_of", "pick",
           "clamped_code"]

_HALF = 1 << 30


def _integer_format(width):
    """Integer codes of ``width`` signed bits as a format: ``fixed<W,W>``."""
    return FixedFormat(width, width)


class OutputStageEngine(VectorPipeline):
    """Requantize every lane of a vector of accumulators on ``n_lanes`` time-shared lanes;
    II = ``ceil(lanes / n_lanes)`` cycles per vector, latency II + 2 cycles.

    ``n_lanes = ceil(lanes / reuse_factor)`` physical lanes take the vector in chunks: chunk
    ``k`` (cycle ``k`` after the vector is accepted) puts channel ``k * n_lanes + l`` on lane
    ``l``, with that channel's multiplier ``m`` and shift ``e`` read from a constant table by
    the chunk counter (a lane whose table holds one value keeps it as a constant, so
    ``reuse_factor=1`` and per-tensor stages have constant multipliers). Chunk 0 comes straight
    from ``i``, the others from a register that holds channels ``n_lanes`` and up, so the
    input is ready again II cycles after a transfer; the results fill ``o.payload`` chunk by
    chunk and ``o.valid`` rises with the last one.

    Each lane is a three-stage pipeline. With ``rounding="half_away"`` (TFLite's fully
    connected layers, :meth:`nnfab.output_stage.OutputStage.fit_real`), ``"half_even"`` or
    ``"float32"`` (onnxruntime's, :meth:`~nnfab.output_stage.OutputStage.fit_float32`), stages 1
    and 2 are the product ``x * m`` and its rounding by ``2**(31 - e)``, ties away from zero or
    to even (:func:`half_away_rescale`, :func:`half_even_rescale`; :func:`float32_rescale` first
    rounds the product to 24 significant bits), then stage 3 as below. Otherwise
    (``"gemmlowp"``):

    1. ``p = wrap32(x << max(e, 0)) * m``, a 63-bit signed product (``m < 2**31``);
    2. ``h = trunc((p + nudge) / 2**31)``: ``nudge`` is ``2**30`` for ``p >= 0`` and
       ``1 - 2**30`` otherwise, and the division truncates toward zero (an arithmetic shift,
       plus one when ``p + nudge`` is negative with a nonzero remainder). gemmlowp's saturation
       of ``INT32_MIN * INT32_MIN`` cannot occur, since ``m >= 0``;
    3. ``q = (h >> r) + (remainder > threshold)`` with ``r = max(-e, 0)``, ``remainder`` the low
       ``r`` bits of ``h`` and ``threshold = 2**(r-1) - 1 + (h < 0)`` (round to nearest, ties
       away from zero), then ``y = clamp(q + zero_point, low, high)``.

    The pipeline stalls as a whole under back-pressure (``~o.valid | o.ready``) and never
    drops or repeats a transfer.

    With ``hold_input`` (board builds, behind a :class:`~nnfab.hdl.dense_rom.DenseRomEngine`
    whose interval is longer than this II), there is no register of the held channels: every
    chunk is read from ``i.payload`` while the source holds it (a stream's payload is stable
    until its transfer), and the transfer is taken with the last chunk. That saves
    ``(lanes - n_lanes) * in_width`` flip-flops (ad01's 640-channel stage: about 17,000) and
    leaves the source's output held for II - 1 more cycles. Latency and II, counted from the
    first cycle the vector is offered, are the same.

    Parameters
    ----------
    stage : OutputStage
        Multipliers, shifts, zero point, clamp and output width.
    lanes : int
        Lanes per transfer; must equal ``stage.channels`` unless the stage is per-tensor.
    in_width : int
        Signed accumulator bits, 2 to 32 (the accumulator is int32 in TFLite; a narrower one
        that holds every reachable sum gives the same results with a smaller multiplier), or
        up to 48 with an exact rounding (``"half_away"``, ``"half_even"``, ``"float32"``; no
        int32 wrap there: an exact accumulator bound wider than 32 bits is accepted as it is).
    reuse_factor : int
        Channels per physical lane, 1 to ``lanes``: ``n_lanes = ceil(lanes / reuse_factor)``.
    hold_input : bool
        Read every chunk from the offered vector and take it with the last (above).

    Members
    -------
    i : ``In(vector_signature(fixed<in_width,in_width>, lanes))``
    o : ``Out(vector_signature(fixed<width,width>, lanes))``

    Raises
    ------
    TypeError
        If ``stage`` is not an :class:`OutputStage`.
    ValueError
        If ``lanes``, ``in_width`` or ``reuse_factor`` is out of range or ``lanes`` does not
        match the stage.
    """

    def __init__(self, stage, *, lanes, in_width=32, reuse_factor=1, hold_input=False):
        self._validated(lambda: self._check(stage, lanes, in_width, reuse_factor))
        self._stage, self._lanes, self._in_width = stage, lanes, in_width
        self._reuse_factor, self._hold_input = reuse_factor, bool(hold_input)
        self._n_lanes = -(-lanes // reuse_factor)
        super().__init__({
            "i": In(vector_signature(_integer_format(in_width), lanes)),
            "o": Out(vector_signature(_integer_format(stage.width), lanes)),
        })

    @staticmethod
    def _check(stage, lanes, in_width, reuse_factor):
        if not isinstance(stage, OutputStage):
            raise TypeError(f"Output stage must be an OutputStage, not {stage!r}")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"Lanes must be a positive integer, not {lanes!r}")
        limit = 32 if stage.rounding == "gemmlowp" else 48
        if not isinstance(in_width, int) or not 2 <= in_width <= limit:
            raise ValueError(f"Accumulator width must be an integer from 2 to {limit}, "
                             f"not {in_width!r}")
        if stage.channels not in (1, lanes):
            raise ValueError(f"Output stage has {stage.channels} channels; a vector of "
                             f"{lanes} lanes needs {lanes} or 1 (per-tensor)")
        if not isinstance(reuse_factor, int) or not 1 <= reuse_factor <= lanes:
            raise ValueError(f"Reuse factor must be an integer from 1 to {lanes} (the lanes), "
                             f"not {reuse_factor!r}")

    def __repr__(self):
        return (f"OutputStageEngine({self._stage!r}, lanes={self._lanes}, "
                f"in_width={self._in_width}, reuse_factor={self._reuse_factor}"
                + (", hold_input=True)" if self._hold_input else ")"))

    @property
    def stage(self):
        return self._stage

    @property
    def reuse_factor(self):
        return self._reuse_factor

    @property
    def n_lanes(self):
        """Physical lanes: ``ceil(lanes / reuse_factor)``."""
        return self._n_lanes

    @property
    def initiation_interval(self):
        """Cycles per vector: ``ceil(lanes / n_lanes)`` (at most ``reuse_factor``)."""
        return -(-self._lanes // self._n_lanes)

    @property
    def latency(self):
        """Cycles from the first cycle a vector is offered (with ``hold_input``: taken II - 1
        cycles later) to its output: II + 2."""
        return self.initiation_interval + 2

    @property
    def hold_input(self):
        return self._hold_input

    def _table(self, lane, values):
        """``values`` (one per channel) of the channel on ``lane`` in each chunk; a chunk past
        the last channel repeats chunk 0's value (its result is never used)."""
        if self._stage.channels == 1:
            return (values[0],)
        chunks = range(self.initiation_interval)
        return tuple(values[c] if (c := k * self._n_lanes + lane) < self._lanes
                     else values[lane] for k in chunks)

    @property
    def n_multipliers(self):
        """Lanes whose multiplier is not a constant zero or power of two."""
        def constant_shift(table):
            return len(set(table)) == 1 and table[0] & (table[0] - 1) == 0
        return sum(not constant_shift(self._table(lane, self._stage.multipliers))
                   for lane in range(self._n_lanes))

    def elaborate(self, platform):
        m = Module()
        stage, n_chunks, n_lanes = self._stage, self.initiation_interval, self._n_lanes
        advance = self._advance(m)
        register = stage_register(m, advance)
        chunk = Signal(range(max(n_chunks, 2)))
        if self._hold_input and n_chunks > 1:
            return self._elaborate_holding(m, advance, register, chunk, rescale_of(stage))
        busy = Signal()                            # chunks 1.. of the held vector issue
        m.d.comb += self.i.ready.eq(advance & ~busy)
        take = self.i.valid & self.i.ready
        held = {c: Signal(signed(self._in_width), name=f"held_{c}")
                for c in range(n_lanes, self._lanes)}
        if n_chunks > 1:
            with m.If(take):
                m.d.sync += [h.eq(self.i.payload[c]) for c, h in held.items()]
                m.d.sync += [busy.eq(1), chunk.eq(1)]
            with m.Elif(busy & advance):
                with m.If(chunk == n_chunks - 1):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += chunk.eq(chunk + 1)
            issued = Mux(busy, chunk, 0)
            chunks = (issued, register(issued, "chunk_1"))
            chunks += (register(chunks[1], "chunk_2"),)
            last = register(register(busy & (chunk == n_chunks - 1), "last_1"), "last_2")
        else:
            chunks, last = (0, 0, 0), 1
        valid = register(register(busy | take, "valid_1"), "valid_2")
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid & last)
        for lane in range(n_lanes):
            x = self.i.payload[lane]
            if n_chunks > 1:
                x = Mux(busy, pick(m, [held.get(k * n_lanes + lane, 0)
                                        for k in range(n_chunks)],
                                    chunk, signed(self._in_width), f"x_{lane}"), x)
            self._lane(m, lane, x, rescale_of(stage), register, chunks, advance & valid)
        return m

    def _lane(self, m, lane, x, rescale, register, chunks, write):
        """Lane ``lane``'s three stages on ``x``: its result written to the output channel of
        the chunk in the last stage (``chunks[2]``) in the cycles ``write`` is high."""
        stage, n_chunks, n_lanes = self._stage, self.initiation_interval, self._n_lanes
        scaled = rescale(m, x, self._table(lane, stage.multipliers),
                         self._table(lane, stage.shifts), register, f"{lane}", chunks=chunks,
                         offset=self._table(lane, stage.offset_values))
        clamped = clamped_code(m, scaled, stage, f"value_{lane}")
        with m.If(write):
            if n_chunks == 1:
                m.d.sync += self.o.payload[lane].eq(clamped)
            else:
                with m.Switch(chunks[2]):
                    for k in range(n_chunks):
                        if (c := k * n_lanes + lane) < self._lanes:
                            with m.Case(k):
                                m.d.sync += self.o.payload[c].eq(clamped)

    def _elaborate_holding(self, m, advance, register, chunk, rescale):
        """``hold_input``: chunk ``chunk`` of the offered vector issues in every cycle the
        pipeline advances with ``i.valid``; the last one takes the transfer."""
        n_chunks, n_lanes = self.initiation_interval, self._n_lanes
        last_chunk = chunk == n_chunks - 1
        m.d.comb += self.i.ready.eq(advance & last_chunk)
        with m.If(advance & self.i.valid):
            m.d.sync += chunk.eq(Mux(last_chunk, 0, chunk + 1))
        chunks = (chunk, register(chunk, "chunk_1"))
        chunks += (register(chunks[1], "chunk_2"),)
        last = register(register(last_chunk, "last_1"), "last_2")
        valid = register(register(self.i.valid, "valid_1"), "valid_2")
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid & last)
        for lane in range(n_lanes):
            x = pick(m, [self.i.payload[c] if (c := k * n_lanes + lane) < self._lanes else 0
                          for k in range(n_chunks)], chunk, signed(self._in_width), f"x_{lane}")
            self._lane(m, lane, x, rescale, register, chunks, advance & valid)
        return m


def rescale_of(stage):
    """The rescale of ``stage``'s rounding: :func:`multiply_by_quantized_multiplier`
    (``"gemmlowp"``), :func:`half_away_rescale`, :func:`half_even_rescale`,
    :func:`float32_rescale` or :func:`floor_rescale`."""
    return {"gemmlowp": multiply_by_quantized_multiplier, "half_away": half_away_rescale,
            "half_even": half_even_rescale, "float32": float32_rescale,
            "floor": floor_rescale}[stage.rounding]


def clamped_code(m, scaled, stage, name):
    """``clamp(scaled + zero_point, low, high)`` of ``stage``: the last step of an output
    stage after its rescale, combinational (a signal named ``name`` holds the sum)."""
    value = Signal(signed(max(35, len(scaled) + 2)), name=name)
    m.d.comb += value.eq(scaled + stage.zero_point)
    return Mux(value < stage.low, stage.low, Mux(value > stage.high, stage.high, value))


def pick(m, values, index, shape, name):
    """``values[index]``: the constant itself when all values are equal (an ``int`` or Value),
    else a signal of ``shape`` driven by a switch on ``index``."""
    if all(isinstance(v, int) for v in values) and len(set(values)) == 1:
        return values[0]
    picked = Signal(shape, name=name)
    with m.Switch(index):
        for k, value in enumerate(values):
            with m.Case(k):
                m.d.comb += picked.eq(value)
    return picked


def _constant(value, width):
    """A picked multiplier as a factor: an ``int`` becomes an unsigned ``width``-bit constant."""
    return C(value, width) if isinstance(value, int) else value


def _per_chunk(values):
    """A constant or a table of constants, as a tuple."""
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def saturating_rounding_doubling_high_mul(m, product, name):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` after its product: ``trunc((product +
    nudge) / 2**31)`` with ``nudge`` ``2**30`` for ``product >= 0`` and ``1 - 2**30`` otherwise
    (:func:`nnfab.requantize.saturating_rounding_doubling_high_mul`). Combinational; the caller
    forms the product of two int32 values and handles ``INT32_MIN * INT32_MIN`` (impossible
    when one factor is a multiplier ``>= 0``).

    Returns a ``signed(33)`` value holding the int32 result.
    """
    nudge = Mux(product >= 0, C(_HALF, signed(32)), C(1 - _HALF, signed(32)))
    total = Signal(signed(64), name=f"total_{name}")
    m.d.comb += total.eq(product + nudge)
    truncate = (total < 0) & (total[:31] != 0)
    return fit_shape((total >> 31) + truncate, signed(33))


def rounding_divide_by_pot(value, exponent):
    """gemmlowp ``RoundingDivideByPOT`` by a constant ``exponent`` (0 to 31): ``value / 2**e``
    rounded to nearest, ties away from zero. Combinational."""
    if not exponent:
        return value
    remainder = value[:exponent]
    threshold = C((1 << (exponent - 1)) - 1, exponent) + (value < 0)
    return (value >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(m, x, multiplier, shift, register, name, *,
                                     chunks=(0, 0, 0), offset=(0,)):
    """TFLite ``MultiplyByQuantizedMultiplier`` of ``x`` in two register stages (product; high
    multiply), the rounding divide left combinational for the caller's third.

    Parameters
    ----------
    m : Module
    x : Value
        A signed value of at most 32 bits (int32).
    multiplier, shift : int, or tuple of int
        ``m`` in ``[0, 2**31)`` and ``e`` in ``[-31, 30]``; a tuple holds one pair per chunk
        of a time-shared lane, read at each stage by that stage's entry of ``chunks``.
    register : callable
        ``register(expr, name)`` of :meth:`VectorPipeline._stages`.
    name : str
        Suffix of the signal names.
    chunks : tuple of three Values (or ints)
        The chunk whose constants apply at the input, after stage 1 and after stage 2.
    """
    multipliers, shifts = _per_chunk(multiplier), _per_chunk(shift)
    left = pick(m, [max(e, 0) for e in shifts], chunks[0], range(31), f"left_{name}")
    if not isinstance(left, int) or left:
        x = fit_shape(x << left, signed(32))   # C's int32 wrap
    factor = pick(m, multipliers, chunks[0], 31, f"multiplier_{name}")
    product = register(x * _constant(factor, 31), f"product_{name}")
    high = register(saturating_rounding_doubling_high_mul(m, product, name), f"high_{name}")
    rights = [max(-e, 0) for e in shifts]
    if len(set(rights)) == 1:
        return rounding_divide_by_pot(high, rights[0])
    right = pick(m, rights, chunks[2], range(32), f"right_{name}")
    mask = pick(m, [(1 << r) - 1 for r in rights], chunks[2], 31, f"mask_{name}")
    remainder = high.as_unsigned()[:31] & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def half_away_rescale(m, x, multiplier, shift, register, name, *, chunks=(0, 0, 0),
                      offset=(0,)):
    """``round_half_away(x * multiplier * 2**(shift - 31))`` exactly, in two register stages
    (product; rounded), for an output stage with ``rounding="half_away"``
    (:func:`nnfab.output_stage.half_away_rescale`). The rounding adds ``2**(k-1)``, less one
    for a negative product, before the arithmetic shift by ``k = 31 - shift``.

    Parameters as :func:`multiply_by_quantized_multiplier`, with multipliers below ``2**53``.
    """
    return _exact_rescale(m, x, multiplier, shift, register, name, chunks, ties="away")


def floor_rescale(m, x, multiplier, shift, register, name, *, chunks=(0, 0, 0), offset=(0,)):
    """``floor((x * multiplier + offset) * 2**(shift - 31))`` exactly, in two register stages,
    for an output stage with ``rounding="floor"`` (the fixed-point form of thresholds,
    :meth:`nnfab.output_stage.OutputStage.fit_thresholds`): the product plus the channel's
    offset, then an arithmetic shift.

    Parameters as :func:`half_away_rescale`; ``offset`` one per chunk, as ``multiplier``.
    """
    return _exact_rescale(m, x, multiplier, shift, register, name, chunks, ties="floor",
                          offset=offset)


def half_even_rescale(m, x, multiplier, shift, register, name, *, chunks=(0, 0, 0),
                      offset=(0,)):
    """``round_half_even(x * multiplier * 2**(shift - 31))`` exactly, in two register stages,
    for an output stage with ``rounding="half_even"`` (onnxruntime's requantization,
    :func:`nnfab.output_stage.half_even_rescale`). The rounding adds ``2**(k-1) - 1``, plus one
    when bit ``k`` of the product is set (the truncated quotient is odd), before the arithmetic
    shift by ``k = 31 - shift``.

    Parameters as :func:`half_away_rescale`.
    """
    return _exact_rescale(m, x, multiplier, shift, register, name, chunks, ties="even")


def float32_rescale(m, x, multiplier, shift, register, name, *, chunks=(0, 0, 0),
                    offset=(0,)):
    """``round_half_even(fl32(x * multiplier) * 2**(shift - 31))`` exactly, in two register
    stages, for an output stage with ``rounding="float32"``
    (:func:`nnfab.output_stage.float32_rescale`): the registered product is rounded to 24
    significant bits (:func:`round_significant`), then rounded as :func:`half_even_rescale`
    rounds.

    Parameters as :func:`half_away_rescale`.
    """
    return _exact_rescale(m, x, multiplier, shift, register, name, chunks, ties="even",
                          significant=FLOAT32_SIGNIFICANT)


def round_significant(m, value, bits, name):
    """``value`` (signed) rounded to ``bits`` significant bits, ties to even, sign and
    magnitude as IEEE rounds (:func:`nnfab.output_stage.round_significant`); combinational.

    The bits dropped, ``d = max(bit_length(|value|) - bits, 0)``, come from a priority chain on
    the magnitude's top bits; the kept part ``|value| >> d`` is rounded up when the dropped
    part is above half, or exactly half with the kept part odd.
    """
    width = len(value)
    top = width - bits
    if top <= 0:
        return value
    magnitude = Signal(width, name=f"magnitude_{name}")
    m.d.comb += magnitude.eq(Mux(value < 0, -value, value))
    drop_value = C(0, range(top + 1))
    for d in range(1, top + 1):
        drop_value = Mux(magnitude[bits + d - 1], d, drop_value)
    drop = Signal(range(top + 1), name=f"drop_{name}")
    m.d.comb += drop.eq(drop_value)
    kept = magnitude >> drop
    rest = magnitude & ((C(1, width + 1) << drop) - 1)
    half = (C(1, width + 1) << drop) >> 1
    up = (rest > half) | ((rest == half) & (drop != 0) & kept[0])
    rounded = Signal(width + 1, name=f"significant_{name}")
    m.d.comb += rounded.eq((kept + up) << drop)
    return Mux(value < 0, -rounded, rounded)


def _exact_rescale(m, x, multiplier, shift, register, name, chunks, *, ties, significant=None,
                   offset=(0,)):
    multipliers, shifts, offsets = _per_chunk(multiplier), _per_chunk(shift), _per_chunk(offset)
    width = max(1, max(v.bit_length() for v in multipliers))
    factor = pick(m, multipliers, chunks[0], width, f"multiplier_{name}")
    product = x * _constant(factor, width)
    if any(offsets):
        product = product + pick(m, offsets, chunks[0],
                                 signed(max(abs(b) for b in offsets).bit_length() + 1),
                                 f"offset_{name}")
    product = register(product, f"product_{name}")
    if significant is not None:
        product = round_significant(m, product, significant, name)

    def nudge(right, rounds=1):
        # Added to the product before the shift by ``right`` (0 when right is 0): 2**(right-1)
        # less one for a negative product (ties away) or for an even quotient (ties to even);
        # nothing for floor.
        if ties == "floor":
            return 0
        half = C(1 << (right - 1), right + 1) if isinstance(right, int) else \
            pick(m, [1 << (r - 1) if r > 0 else 0 for r in rights], chunks[1],
                 max(top, 1), f"half_{name}")
        if ties == "away":
            return half - ((product < 0) & rounds)
        return half - (rounds & ~(product >> right)[0])

    rights = [31 - e for e in shifts]
    top = max(rights)
    if len(set(rights)) == 1:
        right = rights[0]
        if right <= 0:
            return register(product << -right, f"rounded_{name}")
        rounded = (product + nudge(right)) >> right
        return register(rounded, f"rounded_{name}")
    right = pick(m, [max(r, 0) for r in rights], chunks[1], range(max(top, 0) + 1),
                  f"right_{name}")
    left = pick(m, [max(-r, 0) for r in rights], chunks[1], range(max(-min(rights), 0) + 1),
                 f"left_{name}")
    rounds = pick(m, [int(r > 0) for r in rights], chunks[1], 1, f"rounds_{name}")
    rounded = ((product + nudge(right, rounds)) >> right) << left
    return register(rounded, f"rounded_{name}")
