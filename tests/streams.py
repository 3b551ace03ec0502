"""Stream drivers for Amaranth-simulator tests: random idle cycles on inputs, back-pressure on
outputs (random, stalls longer than the latency, ``ready`` toggling every cycle), the cycle of
every transfer (to measure latency and II), and a check that a component under all of them
gives exactly its golden outputs, none lost and none repeated."""

import itertools
import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

__all__ = ["StreamRun", "send", "receive", "run_stream", "codes", "STALL_PATTERNS",
           "ready_pattern", "check_stalls"]


@dataclass
class StreamRun:
    outputs: list = field(default_factory=list)
    accepted_at: list = field(default_factory=list)
    produced_at: list = field(default_factory=list)
    #: Transfers after the expected ones, while ``o.ready`` was held high ``drain_cycles``.
    extra: list = field(default_factory=list)

    @property
    def first_latency(self):
        """Cycles from the first accepted input to its output being transferred."""
        return self.produced_at[0] - self.accepted_at[0]


async def send(ctx, port, payloads, *, rng=None, p_idle=0.0, accepted_at=None, cycle=0):
    """Transfer ``payloads`` on stream ``port`` (valid/ready/payload), idling with chance
    ``p_idle`` per cycle; appends the cycle of each transfer to ``accepted_at``, counting from
    ``cycle`` (the caller's cycle count when it calls). Returns the cycle count at the end."""
    for payload in payloads:
        while rng is not None and rng.random() < p_idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        while True:
            _, _, ready = await ctx.tick().sample(port.ready)
            cycle += 1
            if ready:
                if accepted_at is not None:
                    accepted_at.append(cycle - 1)
                break
    ctx.set(port.valid, 0)
    return cycle


async def receive(ctx, port, n, *, rng=None, p_stall=0.0, outputs, produced_at=None,
                  max_cycles=100_000, ready=None, drain_cycles=0, extra=None):
    """Collect ``n`` payloads from stream ``port`` into ``outputs``, holding ``ready`` low
    with chance ``p_stall`` per cycle, or as the iterable of booleans ``ready`` says.

    Then hold ``ready`` high ``drain_cycles`` more cycles and append whatever still arrives to
    ``extra`` (a component that repeats a transfer shows it there)."""
    cycle = 0
    pattern = iter(ready) if ready is not None else None
    while len(outputs) < n:
        if cycle > max_cycles:
            raise AssertionError(f"Only {len(outputs)} of {n} outputs after {cycle} cycles")
        if pattern is not None:
            now = bool(next(pattern))
        else:
            now = not (rng is not None and rng.random() < p_stall)
        ctx.set(port.ready, now)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        cycle += 1
        if valid and now:
            outputs.append(payload)
            if produced_at is not None:
                produced_at.append(cycle - 1)
    ctx.set(port.ready, 1 if drain_cycles else 0)
    for _ in range(drain_cycles):
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid and extra is not None:
            extra.append(payload)
    ctx.set(port.ready, 0)


def run_stream(dut, inputs, *, rng=None, p_idle=0.0, p_stall=0.0, n_outputs=None,
               max_cycles=None, ready=None, drain_cycles=0):
    """Push ``inputs`` (payload values) into ``dut.i`` and collect ``dut.o``'s payloads.

    ``p_idle`` is the chance that the producer leaves ``i.valid`` low in a cycle, ``p_stall``
    the chance that the consumer leaves ``o.ready`` low; both draw from ``rng`` (a
    ``random.Random``). ``ready``, an iterable of booleans, replaces ``p_stall`` with a fixed
    back-pressure pattern (see :func:`ready_pattern`). The run ends once every input has been
    sent and ``n_outputs`` (default ``len(inputs)``) outputs received, followed by
    ``drain_cycles`` cycles of ``o.ready`` high whose transfers go to ``extra``. Returns the
    payloads and the cycle index of every transfer.
    """
    n_outputs = len(inputs) if n_outputs is None else n_outputs
    max_cycles = max_cycles or 20 * (len(inputs) + 50)
    run = StreamRun()

    async def producer(ctx):
        await send(ctx, dut.i, inputs, rng=rng, p_idle=p_idle, accepted_at=run.accepted_at)

    async def consumer(ctx):
        await receive(ctx, dut.o, n_outputs, rng=rng, p_stall=p_stall, outputs=run.outputs,
                      produced_at=run.produced_at, max_cycles=max_cycles, ready=ready,
                      drain_cycles=drain_cycles, extra=run.extra)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return run


def codes(payload):
    """A payload as sampled (an int, or an array view, possibly nested) as plain ints."""
    if isinstance(payload, int):
        return payload
    return [codes(payload[j]) for j in range(len(payload))]


#: Back-pressure patterns of :func:`check_stalls`: random idle cycles on the input and random
#: back-pressure on the output; ``ready`` held low longer than the latency (the whole pipeline
#: fills and waits); ``ready`` toggling every cycle (with inputs at full rate).
STALL_PATTERNS = ("random", "long", "toggle")


def ready_pattern(kind, *, rng, hold=8, p_stall=0.4):
    """An endless iterator of ``o.ready`` values for one of :data:`STALL_PATTERNS`.

    ``"random"``: low with chance ``p_stall`` per cycle. ``"long"``: low for ``hold + 1`` to
    ``2 * hold + 2`` cycles at a time (``hold`` is the latency), then high for 1 to 4 cycles.
    ``"toggle"``: low, high, low, high...
    """
    if kind == "random":
        return (rng.random() >= p_stall for _ in itertools.count())
    if kind == "toggle":
        return itertools.cycle((False, True))
    if kind == "long":
        def runs():
            while True:
                yield from [False] * rng.randint(hold + 1, 2 * hold + 2)
                yield from [True] * rng.randint(1, 4)
        return runs()
    raise ValueError(f"Stall pattern must be one of {', '.join(STALL_PATTERNS)}, not {kind!r}")


def check_stalls(make, inputs, expected, *, seed, patterns=STALL_PATTERNS, p_idle=0.3,
                 latency=None, ahead=0):
    """Assert that the component ``make()`` turns ``inputs`` into exactly ``expected`` (lists
    of integer codes, compared with ``==``; a plain integer payload counts as a list of one) at full rate and under every back-pressure
    pattern, with nothing lost (the count) or repeated (no transfer once all are in, with
    ``o.ready`` held high for ``latency + 8`` more cycles). ``ahead``: outputs of the next
    frame that need no input (zero padding before its first pixel), which the component may
    send before that frame arrives; they must equal the first ``ahead`` expected outputs.

    ``make`` is called once per run. The full-rate run measures the first latency, which
    sets how long ``"long"`` stalls last (at least ``latency`` when given). Returns the
    full-rate :class:`StreamRun`.
    """
    def row(value):
        value = codes(value)
        return value if isinstance(value, list) else [value]

    expected = [row(e) for e in expected]
    n = len(expected)

    def check(run, what):
        got = [row(o) for o in run.outputs]
        assert len(got) == n, f"seed {seed}, {what}: {len(got)} outputs, expected {n}"
        bad = [k for k in range(n) if got[k] != expected[k]]
        assert not bad, (f"seed {seed}, {what}: {len(bad)} of {n} outputs differ, first "
                         f"#{bad[0]}: got {got[bad[0]]}, expected {expected[bad[0]]}")
        extra = [row(o) for o in run.extra]
        allowed = f" ({ahead} allowed: the next frame's leading padding)" if ahead else ""
        assert extra == expected[:ahead], (
            f"seed {seed}, {what}: {len(extra)} transfers after the last expected "
            f"one{allowed}")

    # Up to 200 cycles per transfer at full rate (a recurrent step at a large R takes 60).
    full = run_stream(make(), inputs, n_outputs=n, drain_cycles=(latency or 0) + ahead + 8,
                      max_cycles=200 * (len(inputs) + 50))
    check(full, "full rate")
    hold = max(full.first_latency, latency or 0)
    # Generous bounds on the cycles each pattern needs (so that a lost transfer fails fast):
    # "long" opens ready at least every 2 * hold + 6 cycles, the others slow down by less than
    # a factor of 4.
    budget = 4 * (full.produced_at[-1] + 1) + n * (2 * hold + 6) + 1000
    for k, kind in enumerate(patterns):
        rng = random.Random(seed * 10 + k)
        run = run_stream(make(), inputs, rng=rng, p_idle=p_idle if kind == "random" else 0.0,
                         ready=ready_pattern(kind, rng=rng, hold=hold), n_outputs=n,
                         max_cycles=budget, drain_cycles=hold + ahead + 8)
        check(run, f"{kind} stalls")
    return full
