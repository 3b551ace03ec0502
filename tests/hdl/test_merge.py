"""Forks and joins in Amaranth's simulator: bit-exact against the golden model, with random idle
cycles on every input (each its own rate and start skew), random back-pressure, ``ready`` held
low longer than the latency and ``ready`` toggling on every output; counts checked (nothing
lost) and no transfer after the last expected one (nothing repeated). Then a fork -> (skip FIFO
| convolution) -> add chain: a too-shallow skip FIFO deadlocks, a deep enough one does not."""

import gc
import itertools
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from nnfab.conv_layers import Conv2DSpec
from nnfab.fixed import FixedFormat
from nnfab.hdl.cast import fixed_shape
from nnfab.hdl.conv import ConvEngine
from nnfab.hdl.fork import Broadcast, SkipFifo
from nnfab.hdl.join import Add, Concatenate
from nnfab.sim.golden.conv import conv2d
from nnfab.sim.golden.merge import add, concatenate

from ..streams import STALL_PATTERNS, check_stalls, codes, ready_pattern, receive, send

F = FixedFormat.parse


# -- a driver for several streams at once ----------------------------------------------------------

def run_ports(dut, sources, sinks, *, max_cycles, drain_cycles=8):
    """Drive ``sources`` (``(port, payloads, rng, p_idle, skew)``: idle with chance ``p_idle``
    per cycle, starting after ``skew`` cycles) and collect ``sinks`` (``(port, n, ready)``,
    ``ready`` an iterable of booleans), then hold every ``ready`` high ``drain_cycles`` more
    cycles. Returns ``(accepted_at, outputs, produced_at, extra)``, one list per port."""
    accepted = [[] for _ in sources]
    outputs, produced, extra = ([[] for _ in sinks] for _ in range(3))

    def producer(k, port, payloads, rng, p_idle, skew):
        async def run(ctx):
            if skew:
                await ctx.tick().repeat(skew)
            await send(ctx, port, payloads, rng=rng, p_idle=p_idle, accepted_at=accepted[k],
                       cycle=skew)
        return run

    def consumer(k, port, n, ready):
        async def run(ctx):
            await receive(ctx, port, n, outputs=outputs[k], produced_at=produced[k],
                          ready=ready, max_cycles=max_cycles, drain_cycles=drain_cycles,
                          extra=extra[k])
        return run

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for k, source in enumerate(sources):
        sim.add_testbench(producer(k, *source), background=True)
    for k, sink in enumerate(sinks):
        sim.add_testbench(consumer(k, *sink))
    sim.run()
    return accepted, outputs, produced, extra


def assert_transfers(outputs, extra, expected, what):
    got = [codes(o) for o in outputs]
    assert len(got) == len(expected), f"{what}: {len(got)} outputs, expected {len(expected)}"
    bad = [k for k in range(len(got)) if got[k] != expected[k]]
    assert not bad, (f"{what}: {len(bad)} of {len(got)} outputs differ, first #{bad[0]}: got "
                     f"{got[bad[0]]}, expected {expected[bad[0]]}")
    assert not extra, f"{what}: {len(extra)} transfers after the last expected one"


def stall_runs(seed, n_ports, *, hold):
    """Per back-pressure pattern: a random generator and ``n_ports`` ready iterators."""
    for k, kind in enumerate(STALL_PATTERNS):
        rng = random.Random(seed * 10 + k)
        yield kind, rng, [ready_pattern(kind, rng=rng, hold=hold) for _ in range(n_ports)]


# -- Broadcast ----------------------------------------------------------------------------------

def test_broadcast_full_rate_latency_0():
    dut = Broadcast(n_outputs=3, lanes=2, shape=signed(5))
    inputs = [[k % 16 - 8, -k % 16 - 8] for k in range(20)]
    acc, outs, prod, extra = run_ports(dut, [(dut.i, inputs, None, 0, 0)],
                                       [(o, 20, itertools.repeat(True)) for o in dut.o],
                                       max_cycles=100)
    for k in range(3):
        assert_transfers(outs[k], extra[k], inputs, f"output {k}")
        assert prod[k] == acc[0] == list(range(20))           # latency 0, II 1
    assert (dut.latency, dut.initiation_interval) == (0, 1)


@pytest.mark.parametrize("n_outputs", [1, 2, 3])
def test_broadcast_under_stalls(n_outputs):
    seed = 100 + n_outputs
    rng = random.Random(seed)
    inputs = [[rng.randint(0, 63) for _ in range(3)] for _ in range(150)]
    for kind, rng, ready in stall_runs(seed, n_outputs, hold=4):
        dut = Broadcast(n_outputs=n_outputs, lanes=3, shape=unsigned(6))
        p_idle = 0.3 if kind == "random" else 0.0
        acc, outs, _, extra = run_ports(dut, [(dut.i, inputs, rng, p_idle, 0)],
                                        [(o, len(inputs), r) for o, r in zip(dut.o, ready)],
                                        max_cycles=5000)
        for k in range(n_outputs):
            assert_transfers(outs[k], extra[k], inputs, f"seed {seed}, {kind}, output {k}")
        assert len(acc[0]) == len(inputs)


def test_broadcast_outputs_take_in_different_cycles():
    """Output 1 is held back 10 cycles: output 0 takes the first payload at once and nothing
    else until output 1 has it too (no buffering, no repeat)."""
    dut = Broadcast(n_outputs=2, lanes=1, shape=signed(8))
    inputs = [[k] for k in range(5)]
    ready0 = itertools.repeat(True)
    ready1 = itertools.chain([False] * 10, itertools.repeat(True))
    acc, outs, prod, extra = run_ports(dut, [(dut.i, inputs, None, 0, 0)],
                                       [(dut.o[0], 5, ready0), (dut.o[1], 5, ready1)],
                                       max_cycles=100)
    assert prod[0] == [0, 11, 12, 13, 14] and prod[1] == [10, 11, 12, 13, 14]
    assert acc[0] == [10, 11, 12, 13, 14]
    for k in range(2):
        assert_transfers(outs[k], extra[k], inputs, f"output {k}")


# -- SkipFifo -----------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 3, 8])
def test_skip_fifo_under_stalls(depth):
    rng = random.Random(depth)
    inputs = [[rng.randint(-128, 127) for _ in range(2)] for _ in range(120)]
    full = check_stalls(lambda: SkipFifo(depth=depth, lanes=2, shape=signed(8)), inputs, inputs,
                        seed=depth, latency=2)
    assert full.first_latency == SkipFifo(depth=depth, lanes=2, shape=signed(8)).latency == 2
    assert full.accepted_at == list(range(120))                # II 1


@pytest.mark.parametrize("depth,fifo_depth", [(1, 3), (2, 3), (3, 3), (7, 7)])
def test_skip_fifo_holds_its_depth(depth, fifo_depth):
    """With ``o.ready`` low the FIFO takes exactly ``fifo_depth`` transfers, then gives them
    back in order."""
    dut = SkipFifo(depth=depth, lanes=1, shape=unsigned(8))
    assert dut.fifo_depth == fifo_depth
    inputs = [[k] for k in range(fifo_depth + 3)]
    ready = itertools.chain([False] * 40, itertools.repeat(True))
    acc, outs, _, extra = run_ports(dut, [(dut.i, inputs, None, 0, 0)],
                                    [(dut.o, len(inputs), ready)], max_cycles=200)
    assert acc[0][:fifo_depth] == list(range(fifo_depth)) and acc[0][fifo_depth] > 40
    assert_transfers(outs[0], extra[0], inputs, f"depth {depth}")


# -- Add and Concatenate ------------------------------------------------------------------------

FINS = (F("fixed<8,3>"), F("ufixed<6,2>"), F("fixed<5,-1>"))
ADD_CASES = {
    "two_sat": (FINS[:2], F("fixed<6,3,RND,SAT>")),
    "two_sat_sym": (FINS[1::-1], F("fixed<6,2,RND_CONV,SAT_SYM>")),
    "three_wrap": (FINS, F("fixed<7,3,RND_ZERO,WRAP>")),
    "three_unsigned_sat_zero": (FINS, F("ufixed<5,2,RND_INF,SAT_ZERO>")),
    "same_format_trn": ((FINS[0], FINS[0]), F("fixed<8,3>")),
}


def join_inputs(fins, lanes, n, seed):
    """Per input, ``n`` transfers of raw codes: first every combination of edge codes (most
    negative, most positive, 0, 1, -1), then random codes."""
    rng = np.random.default_rng(seed)
    edges = [[f.min_code, f.max_code, 0, 1] + ([-1] if f.signed else []) for f in fins]
    combos = np.array(list(itertools.product(*edges))).T           # (n_inputs, n_combos)
    xs = []
    for k, (f, m) in enumerate(zip(fins, lanes)):
        x = rng.integers(f.min_code, f.max_code + 1, (n, m))
        flat = x.reshape(-1)
        flat[:combos.shape[1]] = combos[k][:flat.size]
        xs.append(x)
    return xs


def assert_edges(values, fins, fout):
    """Assert that the exact values (Fractions) hold rounding ties (where ``fout`` drops
    bits), values above ``fout``'s range, and values at or below its most negative one."""
    counts = dict(tie=0, at_min=0, at_max=0, below=0, above=0)
    for v in values:
        counts["tie"] += (v / fout.lsb) % 1 == Fraction(1, 2)
        counts["at_min"] += v == fout.min_value
        counts["at_max"] += v == fout.max_value
        counts["below"] += v < fout.min_value
        counts["above"] += v > fout.max_value
    drops_bits = fout.fraction_width < max(f.fraction_width for f in fins)
    assert (counts["tie"] or not drops_bits) and counts["above"] and \
        (counts["below"] or counts["at_min"]), counts


def check_join(make, xs, expected, seed):
    """Full rate (latency 1, II 1), then every stall pattern with each input idling at its own
    rate and starting at its own skew."""
    dut = make()
    n = len(expected)
    sources = [(port, x.tolist(), None, 0, 0) for port, x in zip(dut.inputs, xs)]
    acc, outs, prod, extra = run_ports(dut, sources, [(dut.o, n, itertools.repeat(True))],
                                       max_cycles=10 * n)
    assert_transfers(outs[0], extra[0], expected, f"seed {seed}, full rate")
    assert all(a == list(range(n)) for a in acc) and prod[0] == list(range(1, n + 1))
    assert (dut.latency, dut.initiation_interval) == (1, 1)
    for kind, rng, (ready,) in stall_runs(seed, 1, hold=4):
        dut = make()
        sources = [(port, x.tolist(), rng, [0.1, 0.5, 0.3][k % 3], [0, 7, 3][k % 3])
                   for k, (port, x) in enumerate(zip(dut.inputs, xs))]
        acc, outs, _, extra = run_ports(dut, sources, [(dut.o, n, ready)], max_cycles=20 * n)
        assert_transfers(outs[0], extra[0], expected, f"seed {seed}, {kind} stalls")
        assert all(len(a) == n for a in acc)


@pytest.mark.parametrize("name", sorted(ADD_CASES))
def test_add_matches_golden(name):
    fins, fout = ADD_CASES[name]
    seed = sorted(ADD_CASES).index(name) + 200
    xs = join_inputs(fins, (3,) * len(fins), 80, seed)
    expected = add(xs, fins, fout).tolist()
    sums = [sum(Fraction(int(c)) * f.lsb for c, f in zip(cs, fins))
            for cs in zip(*[x.flat for x in xs])]
    assert_edges(sums, fins, fout)
    check_join(lambda: Add(lanes=3, fins=fins, fout=fout), xs, expected, seed)


@pytest.mark.parametrize("lanes,fout", [((2, 1), F("fixed<7,3,RND_CONV,SAT>")),
                                        ((1, 3, 2), F("fixed<6,2,RND,SAT_SYM>")),
                                        ((2, 2, 1), F("ufixed<4,1,TRN_ZERO,WRAP>"))],
                         ids=str)
def test_concatenate_matches_golden(lanes, fout):
    fins = FINS[:len(lanes)]
    seed = sum(lanes) * 10 + len(lanes)
    xs = join_inputs(fins, lanes, 60, seed)
    expected = concatenate(xs, fins, fout).tolist()
    assert_edges([Fraction(int(c)) * f.lsb for x, f in zip(xs, fins) for c in x.flat], fins,
                 fout)
    check_join(lambda: Concatenate(lanes=lanes, fins=fins, fout=fout), xs, expected, seed)


def test_join_members():
    dut = Add(lanes=2, fins=[FINS[0], FINS[1]], fout=FINS[0])
    assert dut.fins == FINS[:2] and dut.n_inputs == 2 and dut.inputs == (dut.i0, dut.i1)
    assert dut.sum_format == F("fixed<9,4>")
    assert dut.i1.payload.shape().elem_shape == unsigned(6) and dut.o.payload.shape().length == 2
    cat = Concatenate(lanes=(2, 3), fins=FINS[:2], fout=FINS[2])
    assert cat.o.payload.shape().length == 5 and cat.lanes == (2, 3)
    assert repr(cat) == ("Concatenate(lanes=(2, 3), fins=(FixedFormat.parse('fixed<8,3>'), "
                         "FixedFormat.parse('ufixed<6,2>')), fout=FixedFormat.parse("
                         "'fixed<5,-1>'))")


@pytest.mark.parametrize("make,error,message", [
    (lambda: Broadcast(n_outputs=0, lanes=1, shape=signed(8)), ValueError,
     "Number of outputs must be at least 1, not 0"),
    (lambda: Broadcast(n_outputs=2, lanes=True, shape=signed(8)), TypeError,
     "Lanes must be an integer, not True"),
    (lambda: SkipFifo(depth=0, lanes=1, shape=signed(8)), ValueError,
     "Depth must be at least 1, not 0"),
    (lambda: SkipFifo(depth=2.0, lanes=1, shape=signed(8)), TypeError,
     "Depth must be an integer, not 2.0"),
    (lambda: Add(lanes=0, fins=FINS, fout=FINS[0]), ValueError,
     "Lanes must be at least 1, not 0"),
    (lambda: Add(lanes=1, fins=FINS[:1], fout=FINS[0]), ValueError,
     "Input formats must name at least 2 inputs, not 1"),
    (lambda: Add(lanes=1, fins=FINS[0], fout=FINS[0]), TypeError,
     "Input formats must be a tuple of FixedFormat, not FixedFormat.parse('fixed<8,3>')"),
    (lambda: Add(lanes=1, fins=FINS, fout="fixed<8,3>"), TypeError,
     "Format must be a FixedFormat, not 'fixed<8,3>'"),
    (lambda: Concatenate(lanes=3, fins=FINS, fout=FINS[0]), TypeError,
     "Lanes must be a tuple of integers, one per input, not 3"),
    (lambda: Concatenate(lanes=(1, 2), fins=FINS, fout=FINS[0]), ValueError,
     "Lanes must give one count per input format (3), not (1, 2)"),
    (lambda: Concatenate(lanes=(1, 0), fins=FINS[:2], fout=FINS[0]), ValueError,
     "Lanes must be at least 1, not 0"),
])
def test_errors(make, error, message, recwarn):
    gc.collect()  # warnings of earlier tests' objects are not this test's
    recwarn.clear()
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message
    gc.collect()  # a rejected component never exists, so nothing warns that it is unused
    assert not recwarn.list


# -- fork -> (skip FIFO | convolution) -> add ------------------------------------------------------

FRAME = (5, 6, 2)
PIXEL = F("fixed<6,2>")
CONV_OUT = F("fixed<8,3,RND_CONV,SAT>")
SUM_OUT = F("fixed<8,3,RND,SAT>")


def residual_spec(seed):
    rng = np.random.default_rng(seed)
    c = FRAME[2]
    return Conv2DSpec(rng.integers(-8, 8, (c, 3, 3, c)), rng.integers(-16, 16, c), FRAME, PIXEL,
                      F("fixed<4,1>"), CONV_OUT, padding="same", bias_format=PIXEL)


class Residual(wiring.Component):
    """``o = add(i, conv(i))``: ``i`` forks into a skip FIFO of ``depth`` transfers and a 3x3
    "same" convolution (which takes about a row of pixels before its first output)."""

    def __init__(self, spec, depth):
        self.fork = Broadcast(n_outputs=2, lanes=FRAME[2], shape=fixed_shape(PIXEL))
        self.skip = SkipFifo(depth=depth, lanes=FRAME[2], shape=fixed_shape(PIXEL))
        self.conv = ConvEngine(spec)
        self.add = Add(lanes=FRAME[2], fins=(PIXEL, CONV_OUT), fout=SUM_OUT)
        super().__init__({"i": In(self.fork.i.signature.flip()), "o": Out(self.add.o.signature)})

    @property
    def latency(self):
        return self.conv.latency + self.add.latency

    @property
    def initiation_interval(self):
        return self.conv.initiation_interval

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork, m.submodules.skip = self.fork, self.skip
        m.submodules.conv, m.submodules.add = self.conv, self.add
        wiring.connect(m, wiring.flipped(self.i), self.fork.i)
        wiring.connect(m, self.fork.o[0], self.skip.i)
        wiring.connect(m, self.fork.o[1], self.conv.i)
        wiring.connect(m, self.skip.o, self.add.i0)
        wiring.connect(m, self.conv.o, self.add.i1)
        wiring.connect(m, self.add.o, wiring.flipped(self.o))
        return m


def residual_vectors(seed, n_frames):
    rng = np.random.default_rng(seed)
    spec = residual_spec(seed)
    x = rng.integers(PIXEL.min_code, PIXEL.max_code + 1, (n_frames, *FRAME))
    x.reshape(-1)[::5] = PIXEL.min_code
    want = add([x, conv2d(x, spec)], (PIXEL, CONV_OUT), SUM_OUT)
    return spec, x.reshape(-1, FRAME[2]).tolist(), want.reshape(-1, FRAME[2]).tolist()


# Found by a sweep of depths. The convolution's first output needs input pixel (1, 1), the
# W + 2 = 8th of the frame; with the skip FIFO full, the fork still hands one more pixel to the
# convolution, so 8 - 1 = 7 entries are the least that cannot deadlock. Full rate needs more:
# from 12 entries on (the convolution's latency is 15 cycles), the skip path holds what the
# convolution keeps in flight and the chain runs as fast as with an ample FIFO.
DEADLOCK_DEPTH, SAFE_DEPTH, FULL_RATE_DEPTH = 6, 7, 12


def test_residual_too_shallow_skip_fifo_deadlocks():
    spec, inputs, want = residual_vectors(31, 2)
    dut = Residual(spec, DEADLOCK_DEPTH)
    with pytest.raises(AssertionError, match=r"^Only 0 of 60 outputs after 2001 cycles$"):
        run_ports(dut, [(dut.i, inputs, None, 0, 0)],
                  [(dut.o, len(want), itertools.repeat(True))], max_cycles=2000)


def test_residual_deep_enough_skip_fifo_under_stalls():
    spec, inputs, want = residual_vectors(32, 3)
    full = check_stalls(lambda: Residual(spec, SAFE_DEPTH), inputs, want, seed=32)
    assert full.first_latency == Residual(spec, SAFE_DEPTH).latency


def test_residual_skip_fifo_depth_for_full_rate():
    spec, inputs, want = residual_vectors(33, 2)

    def last_output(depth):
        dut = Residual(spec, depth)
        _, outs, prod, extra = run_ports(dut, [(dut.i, inputs, None, 0, 0)],
                                         [(dut.o, len(want), itertools.repeat(True))],
                                         max_cycles=2000)
        assert_transfers(outs[0], extra[0], want, f"depth {depth}")
        return prod[0][-1]

    ample = last_output(64)
    assert last_output(FULL_RATE_DEPTH) == ample < last_output(FULL_RATE_DEPTH - 1)
