"""Delay estimates of the logic nnfab builds, per FPGA family, and the placement of pipeline
registers in a graph of such logic against a target clock.

The constants are nextpnr's own (its timing report's cell and net delays), read from the
critical paths of nnfab designs: ECP5 speed grade 6 from the HGQ jet classifier out of context
(``bench/hgq_jet_synth.py``), iCE40 UP5K from the digits MLP on the iCEBreaker. Routing
dominates on both (a net between slices costs about as much as a 16-bit carry chain), so the
model counts a net into every cell it crosses and treats placement as average.
"""

from dataclasses import dataclass
import math

__all__ = ["DelayModel", "DELAY_MODELS", "DEFAULT_CLOCK_MHZ", "WIDE_LUT_BITS", "check_clock",
           "delay_model", "lut_tree_levels", "Schedule", "schedule"]


def _rounded_width(src, dst):
    """Bits of a ``src`` value in units of ``dst``'s LSB after rounding (the kept bits, and a
    carry when it rounds)."""
    dropped = src.fraction_width - dst.fraction_width
    width = src.width - dropped
    if dropped > 0 and dst.rounding.value != "TRN":
        width = max(width, 1) + 1
    return width


def lut_tree_levels(n_inputs):
    """LUT4 levels of a function of ``n_inputs`` bits (a reduction or a compare): one per
    factor of four."""
    levels = 1
    while 4 ** levels < n_inputs:
        levels += 1
    return levels


@dataclass(frozen=True)
class DelayModel:
    """Delays (ns) of one FPGA family's cells and nets, as nextpnr estimates them.

    Attributes
    ----------
    family : str
        ``"ecp5"`` or ``"ice40"``.
    clock_to_out_ns, setup_ns : float
        A flip-flop's (or distributed RAM's write port's) clock-to-output and setup.
    routing_ns : float
        One net between cells of different slices (average over nnfab designs).
    carry_in_ns, carry_bit_ns, carry_out_ns : float
        A carry-chain adder: operand to the first carry out, each further bit, carry in to the
        last sum bit.
    lut_ns : float
        One LUT level (its net counted apart).
    multiplier_ns : float
        A constant multiplication (a DSP block or its LUT form), input to output.
    mux_ns : float
        A wide-function mux after a LUT (ECP5 PFUMX/L6MUX21; on iCE40 a LUT level).
    ram_clock_to_out_ns : float
        A block RAM's synchronous read: clock to data out (ECP5 DP16KD, iCE40 SB_RAM40_4K).
    block_routing_ns : float
        A net into or out of a column of block RAMs or DSP blocks.
    """

    family: str
    clock_to_out_ns: float
    setup_ns: float
    routing_ns: float
    carry_in_ns: float
    carry_bit_ns: float
    carry_out_ns: float
    lut_ns: float
    multiplier_ns: float
    mux_ns: float
    ram_clock_to_out_ns: float
    block_routing_ns: float

    def adder_ns(self, width, *, lut=False):
        """A ``width``-bit adder with the net into it, as ``(delay, ripple)``: the delay of its
        first sum bits and the time its carry takes through the rest. A carry chain, or with
        ``lut`` the ripple-carry logic that synthesis maps to LUTs: a LUT level per three bits
        with half a net between them (a 7-bit one: 3.0 ns on ECP5; nextpnr gave 3.7 ns for one
        with long nets, and less than that for chains of them feeding carry chains)."""
        if lut:
            levels = max(1, math.ceil(width / 3))
            return self.routing_ns + self.lut_ns, \
                (levels - 1) * (0.5 * self.routing_ns + self.lut_ns)
        return self.routing_ns + self.carry_in_ns + self.carry_out_ns, \
            self.carry_bit_ns * max(width - 2, 0)

    def lut_levels_ns(self, levels):
        """``levels`` LUT levels, each with the net into it."""
        return levels * (self.routing_ns + self.lut_ns)

    def cast_ns(self, src, dst):
        """A cast from ``src`` to ``dst`` (FixedFormats, :func:`nnfab.hdl.cast.requantize`).

        When it rounds: the increment's logic (LUT levels over the half bit, the bits below
        it, the sign and the kept LSB as the mode reads them; none for ``RND``, whose
        increment is the half bit) and an incrementer over the kept bits and a carry. When it
        saturates and the value can overflow: the compare of the bits from ``dst``'s sign bit
        up (a LUT tree) and the select of the result (a LUT level). Nothing when it only drops
        or wraps bits. The cast of ``fixed<20,10>`` to ``fixed<10,4,RND_CONV,SAT>`` between
        two registers: on iCE40 25.8 ns here, 25.3 ns in nextpnr alone, 31.1 ns inside the
        iCEBreaker's digits MLP (its critical path: a full device's nets are longer); on ECP5
        11.2 ns here, 7.7 ns in nextpnr out of context (its nets there are 0.4-0.7 ns against
        the average :attr:`routing_ns`, and it compares on a carry chain), so the model errs
        towards an extra register on ECP5."""
        return self.round_ns(src, dst) + self.saturate_ns(src, dst)

    def round_ns(self, src, dst):
        """The rounding part of :meth:`cast_ns`: the increment's logic and the incrementer (0
        when the cast does not round)."""
        dropped = src.fraction_width - dst.fraction_width
        if dropped <= 0 or dst.rounding.value == "TRN":
            return 0.0
        reads = {"RND": 0, "TRN_ZERO": dropped + 1}.get(dst.rounding.value, dropped + 2)
        ns = self.lut_levels_ns(lut_tree_levels(reads)) if reads else 0.0
        return ns + sum(self.adder_ns(_rounded_width(src, dst)))

    def saturate_ns(self, src, dst):
        """The saturation part of :meth:`cast_ns`: the compare and the select (0 when the
        cast wraps or the value cannot overflow)."""
        if dst.overflow.value == "WRAP" or (src.min_value >= dst.min_value and
                                             src.max_value <= dst.max_value):
            return 0.0
        compared = max(_rounded_width(src, dst) - dst.width + 1, 1)
        return self.lut_levels_ns(lut_tree_levels(compared) + 1)

    def activation_ns(self, kind, params):
        """An elementwise activation :func:`nnfab.hdl.activations.activation` builds: ReLU
        a LUT level, clamps two, tables (a constant multiplexer) three, and a multiplier for a
        slope or scale."""
        levels = {"linear": 0, "relu": 1, "bounded_relu": 2, "hard_tanh": 2,
                  "hard_sigmoid": 2, "leaky_relu": 1}.get(kind, 3)
        multiplies = kind in ("leaky_relu", "hard_sigmoid") or "scale" in params
        return self.lut_levels_ns(levels) + (self.multiplier_ns if multiplies else 0.0)

    @property
    def wide_lut_ns(self):
        """A function of up to :data:`WIDE_LUT_BITS` bits: a LUT level and two muxes."""
        return self.routing_ns + self.lut_ns + 2 * self.mux_ns

    @property
    def register_ns(self):
        """What a register stage costs beside its logic: clock to output, the net into the
        next register and its setup."""
        return self.clock_to_out_ns + self.routing_ns + self.setup_ns


DELAY_MODELS = {
    # ECP5-85F speed 6 (nextpnr-ecp5): TRELLIS_FF clk-to-q 0.52; CCU2C A->FCO 0.45, 0.07 per
    # CCU2C (two bits), FCI->F 0.44; LUT4 0.24; nets 0.8-1.5 ns between slices; DP16KD
    # clk-to-q 5.61 (a probe), nets to and from it and MULT18X18D 2.4-3.1 (the ULX3S digits MLP).
    "ecp5": DelayModel("ecp5", clock_to_out_ns=0.52, setup_ns=0.05, routing_ns=1.15,
                       carry_in_ns=0.45, carry_bit_ns=0.035, carry_out_ns=0.44, lut_ns=0.24,
                       multiplier_ns=4.0, mux_ns=0.17, ram_clock_to_out_ns=5.61,
                       block_routing_ns=2.45),
    # iCE40 UP5K (nextpnr-ice40): DFF clk-to-q 1.39, setup ~1.15 (through the LUT input);
    # LUT4 0.87-1.28; SB_CARRY 0.28 per bit; nets 1.76 within a column, up to 5 across;
    # SB_RAM40_4K clk-to-q 1.18 (a probe).
    "ice40": DelayModel("ice40", clock_to_out_ns=1.39, setup_ns=1.15, routing_ns=1.76,
                        carry_in_ns=0.87, carry_bit_ns=0.28, carry_out_ns=0.87, lut_ns=1.0,
                        multiplier_ns=8.0, mux_ns=1.0, ram_clock_to_out_ns=1.18,
                        block_routing_ns=1.76),
}

#: The clock the generator pipelines for when none is given. A faster target costs cycles and
#: flip-flops: the HGQ jet classifier on ECP5 takes 8 cycles and 754 FF at 100 MHz (nextpnr:
#: 131.8 MHz), 13 cycles and 1,455 FF at 150 MHz (166.3 MHz), 20 cycles and 2,136 FF at
#: 200 MHz (190.3 MHz).
DEFAULT_CLOCK_MHZ = {"ecp5": 100.0, "ice40": 30.0}

#: Resolution (ns) of :func:`schedule`'s search for the shortest budget. The constants of
#: :data:`DELAY_MODELS` are multiples of :data:`DELAY_GRID_NS`, so every path delay is too and
#: two different ones differ by at least that much: any budget within this of the shortest
#: places every node as the shortest does (14 halvings of a 10 ns period instead of 24).
BISECT_NS = 0.001
#: The grid of :data:`DELAY_MODELS`' constants (tested), coarser than :data:`BISECT_NS`.
DELAY_GRID_NS = 0.005


def check_clock(clock_mhz):
    """``clock_mhz`` as a float, if it is a positive, finite frequency (MHz) or None.

    Raises
    ------
    ValueError
        If it is not.
    """
    if clock_mhz is None:
        return None
    if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) or \
            not 0 < clock_mhz < math.inf:
        raise ValueError(f"Clock must be a positive frequency in MHz, not {clock_mhz!r}")
    return float(clock_mhz)


def delay_model(family):
    """The :class:`DelayModel` of ``family`` (``"ecp5"``, ``"ice40"``).

    Raises
    ------
    ValueError
        If the family is unknown.
    """
    if family not in DELAY_MODELS:
        raise ValueError(f"FPGA family must be one of {', '.join(map(repr, DELAY_MODELS))}, "
                         f"not {family!r}")
    return DELAY_MODELS[family]


@dataclass(frozen=True)
class Schedule:
    """Pipeline stages of a graph: ``stages[key]`` is the stage (0-based) in which node
    ``key`` computes, ``output_stage`` the last one (where the outputs' logic computes; its
    end is the output register), ``latency = output_stage + 1`` register stages, and
    ``period_ns`` the estimated longest register-to-register path."""

    stages: dict
    output_stage: int
    period_ns: float

    @property
    def latency(self):
        return self.output_stage + 1

    @property
    def f_max_hz(self):
        return 1e9 / self.period_ns


#: LUT logic of at most this many input bits synthesis maps to one LUT4 with PFUMX/L6MUX
#: muxes (or a LUT4 pair on iCE40), however many adders it is written as.
WIDE_LUT_BITS = 6


def _arrive(node, s, stage, arrival, cone, width, wide_lut_ns):
    """Arrival ``(head, ripple)`` (ns into stage ``s``) of ``node``'s result, and its cone.

    ``head + ripple`` is when its last bit settles: chained adders overlap their carries (the
    low bits of a sum feed the next adder before its high bits settle), so along a path each
    adder adds its ``delay`` to the head and the ripple is the longest one's. The cone: the
    values of stage ``s`` (or registers) that its LUT logic reads, when they are at most
    :data:`WIDE_LUT_BITS` bits (logic that synthesis collapses into one wide LUT), else None."""
    key, operands, delay, ripple, _, lut = node
    same = [k for k in operands if stage[k] == s]
    head = max((arrival[k][0] for k in same), default=0.0) + delay
    ripple = max([ripple] + [arrival[k][1] for k in same])
    if not lut:
        return (head, ripple), None
    inputs = set()
    for k in operands:
        inputs |= cone[k] if stage[k] == s and cone.get(k) is not None else {k}
    if sum(width[k] for k in inputs) > WIDE_LUT_BITS:
        return (head, ripple), None
    wide = max((sum(arrival[k]) for k in inputs if stage[k] == s), default=0.0) + wide_lut_ns
    return min((head, ripple), (wide, 0.0), key=sum), inputs


def _asap(nodes, outputs, budget, wide_lut_ns):
    """Each node as early as it can go: in its latest operand's stage if it still fits within
    ``budget`` there, else at the start of the next."""
    stage, arrival, cone = {}, {}, {}
    width = {node[0]: node[4] for node in nodes}
    for node in nodes:
        key, operands = node[:2]
        s = max((stage[k] for k in operands), default=0)
        t, c = _arrive(node, s, stage, arrival, cone, width, wide_lut_ns)
        if sum(t) > node[2] + node[3] and sum(t) > budget:
            s = s + 1
            t, c = _arrive(node, s, stage, arrival, cone, width, wide_lut_ns)
        stage[key], arrival[key], cone[key] = s, t, c
    last = 0
    for key, delay in outputs:
        s, t = (stage[key], sum(arrival[key])) if key is not None else (0, 0.0)
        last = max(last, s + 1 if t > 0 and t + delay > budget else s)
    return stage, last


def _alap(nodes, outputs, budget, last):
    """Each node as late as it can go with the outputs' logic in stage ``last``: in its
    earliest reader's stage if it fits before that reader's path to the end of the stage, else
    at the end of the stage before; nodes that read nothing (the inputs) stay in stage 0. None
    if that needs a stage before the first."""
    readers = {node[0]: [] for node in nodes}
    for key, delay in outputs:
        if key is not None:
            readers[key].append((None, delay))
    for key, operands, _, _, _, _ in nodes:
        for k in operands:
            readers[k].append((key, None))
    stage, tail = {}, {}  # tail: from a node's input to the end of its stage
    for key, operands, delay, ripple, _, _ in reversed(nodes):
        options = []
        for reader, reader_delay in readers[key]:
            if reader is None:
                s_r, t_r = last, reader_delay
            else:
                s_r, t_r = stage[reader], tail[reader]
            options.append((s_r, t_r))
        s = min((s_r if delay + ripple + t_r <= budget else s_r - 1
                 for s_r, t_r in options), default=last)
        if not operands:
            s = 0
        if s < 0:
            return None
        stage[key] = s
        tail[key] = delay + ripple + max((t_r for s_r, t_r in options if s_r == s),
                                         default=0.0)
    return stage


def _register_bits(nodes, outputs, stage, last):
    """Flip-flops of the pipeline registers: each value's width times the stages it is held
    across to its last reader."""
    latest = {node[0]: stage[node[0]] for node in nodes}
    for key, operands, _, _, _, _ in nodes:
        for k in operands:
            latest[k] = max(latest[k], stage[key])
    for key, _ in outputs:
        if key is not None:
            latest[key] = last
    return sum(width * (latest[key] - stage[key]) for key, _, _, _, width, _ in nodes)


def _stage_delays(nodes, outputs, stage, last, wide_lut_ns):
    """Longest logic path of each stage (ns, registers excluded) under ``stage``."""
    arrival, cone = {}, {}
    width = {node[0]: node[4] for node in nodes}
    longest = [0.0] * (last + 1)
    for node in nodes:
        s = stage[node[0]]
        arrival[node[0]], cone[node[0]] = _arrive(node, s, stage, arrival, cone, width,
                                                  wide_lut_ns)
        longest[s] = max(longest[s], sum(arrival[node[0]]))
    for key, delay in outputs:
        t = (sum(arrival[key]) if key is not None and stage[key] == last else 0.0) + delay
        longest[last] = max(longest[last], t)
    return longest


def schedule(nodes, outputs, *, period_ns, model, levels_per_stage=None, levels=None):
    """Place pipeline registers in a graph of combinational nodes.

    With ``period_ns``: the fewest stages in which every register-to-register path's estimated
    delay fits the period (nodes placed as early as they fit), then the shortest period that
    still gives that many stages (so the registers spread evenly and the margin is the
    largest), and for it, of the nodes placed as early or as late as they go, the placement
    with fewer register bits. A node longer than the period alone gets a stage of its own. With ``levels_per_stage`` (and ``levels``,
    each node's addition level): a register after every ``levels_per_stage`` levels, spaced
    evenly over the deepest level, the outputs' logic in the last stage (the placement before
    delay models).

    Parameters
    ----------
    nodes : list of (key, tuple of keys, float, float, int, bool)
        In dependency order: a node, the nodes it reads, its delay (ns) with its input net,
        its ripple (ns: a carry's way through the bits, which overlaps with the ripple of the
        adders it feeds; the node takes the two together), its width (bits) and whether it
        is LUT logic (which synthesis merges with the LUT logic it reads while they read at
        most :data:`WIDE_LUT_BITS` bits in all). Nodes that read nothing are inputs, in the
        first stage.
    outputs : list of (key or None, float)
        Per output, the node it reads (None: a constant) and the delay (ns) of the logic after
        it, computed in the last stage.
    period_ns : float or None
    model : DelayModel
    levels_per_stage : int or None
    levels : dict of key to int, or None

    Returns
    -------
    Schedule
    """
    wide = model.wide_lut_ns
    if levels_per_stage is not None:
        depth = max(levels.values(), default=0)
        n_stages = max(1, -(-depth // levels_per_stage))
        cuts = sorted({-(-depth * s // n_stages) for s in range(1, n_stages)})
        stage = {node[0]: sum(c < levels[node[0]] for c in cuts) for node in nodes}
        last = len(cuts)
    else:
        budget = period_ns - model.register_ns
        stage, last = _asap(nodes, outputs, budget, wide)
        # Bisect the shortest budget that keeps this many stages, to within BISECT_NS.
        lo, hi = 0.0, budget
        while hi - lo > BISECT_NS:
            mid = (lo + hi) / 2
            if _asap(nodes, outputs, mid, wide)[1] <= last:
                hi = mid
            else:
                lo = mid
        stage = _asap(nodes, outputs, hi, wide)[0]
        candidates = [stage] + [c for c in [_alap(nodes, outputs, hi, last)] if c is not None]
        limit = max(_stage_delays(nodes, outputs, stage, last, wide)) + 1e-9
        scored = []
        for n, c in enumerate(candidates):
            longest = max(_stage_delays(nodes, outputs, c, last, wide))
            if longest <= limit:
                scored.append((_register_bits(nodes, outputs, c, last), longest, n))
        stage = candidates[min(scored)[2]]
    longest = _stage_delays(nodes, outputs, stage, last, wide)
    return Schedule(stages=stage, output_stage=last,
                    period_ns=max(longest) + model.register_ns)
