"""cocotb drivers for nnfab's valid/ready streams, with random idle cycles and back-pressure.

A stream member ``x`` of an Amaranth component becomes the Verilog ports ``x__valid``,
``x__ready`` and ``x__payload``; payloads are packed integers (see :mod:`nnfab.packing`).

Timing: inputs change at the falling clock edge; once the design has settled (``ReadOnly``) the
driver reads whether the transfer will happen at the next rising edge. Every transfer is
recorded with its cycle number (simulation time divided by the clock period), so latency and
initiation interval can be measured on the same time base for all streams.
"""

import random

from cocotb.triggers import FallingEdge, ReadOnly
from cocotb.utils import get_sim_time

__all__ = ["StreamSource", "StreamSink"]


def _cycle(period_ns):
    return int(get_sim_time(unit="ns") // period_ns)


class _Port:
    def __init__(self, dut, name, clock, period_ns, rng):
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._payload = getattr(dut, f"{name}__payload")
        self._clock = clock
        self._period_ns = period_ns
        self._rng = rng or random.Random(0)


class StreamSource(_Port):
    """Drives stream ``name`` of ``dut``, leaving ``valid`` low with chance ``p_idle`` in each
    cycle. ``accepted_at`` lists the cycle of every transfer."""

    def __init__(self, dut, name, clock, *, period_ns, rng=None, p_idle=0.0):
        super().__init__(dut, name, clock, period_ns, rng)
        self._p_idle = p_idle
        self.accepted_at = []
        self._valid.value = 0

    async def send(self, payloads):
        for payload in payloads:
            await FallingEdge(self._clock)
            while self._p_idle and self._rng.random() < self._p_idle:
                self._valid.value = 0
                await FallingEdge(self._clock)
            self._valid.value = 1
            self._payload.value = payload
            while True:
                await ReadOnly()
                if self._ready.value == 1:
                    self.accepted_at.append(_cycle(self._period_ns))
                    break
                await FallingEdge(self._clock)
        await FallingEdge(self._clock)
        self._valid.value = 0


class StreamSink(_Port):
    """Receives from stream ``name`` of ``dut``, leaving ``ready`` low with chance ``p_stall``
    in each cycle. ``produced_at`` lists the cycle of every transfer."""

    def __init__(self, dut, name, clock, *, period_ns, rng=None, p_stall=0.0):
        super().__init__(dut, name, clock, period_ns, rng)
        self._p_stall = p_stall
        self.produced_at = []
        self._ready.value = 0

    async def receive(self, n, *, max_cycles=1_000_000):
        """The next ``n`` payloads, as integers.

        Raises
        ------
        AssertionError
            If they do not all arrive within ``max_cycles`` cycles.
        """
        payloads = []
        for _ in range(max_cycles):
            if len(payloads) == n:
                break
            await FallingEdge(self._clock)
            ready = not (self._p_stall and self._rng.random() < self._p_stall)
            self._ready.value = int(ready)
            await ReadOnly()
            if ready and self._valid.value == 1:
                payloads.append(int(self._payload.value))
                self.produced_at.append(_cycle(self._period_ns))
        else:
            raise AssertionError(f"Only {len(payloads)} of {n} outputs after {max_cycles} "
                                 f"cycles")
        await FallingEdge(self._clock)
        self._ready.value = 0
        return payloads
