"""Multi-threshold requantization in hardware: each lane compares its integer accumulator with
the lane's constant thresholds and counts the comparisons that hold (FINN's
``MultiThreshold``), pipelined.

Bit-exact with :func:`nnfab.sim.golden.multithreshold.multithreshold`.
"""

import numpy as np
from amaranth.hdl import C, Cat, Module, signed
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat

from .vector_pipeline import VectorPipeline, vector_signature

__all__ = ["MultiThresholdEngine", "MAX_COMPARATORS"]

#: Most thresholds per lane compared at once (an 8-bit code's 255); more are searched.
MAX_COMPARATORS = 255


class MultiThresholdEngine(VectorPipeline):
    """``y[j] = base + #{k : x[j] >= thresholds[j, k]}`` on every lane (raw codes); latency 2
    cycles (``bit_length(K) + 1`` for more than :data:`MAX_COMPARATORS` thresholds), II 1.

    Up to :data:`MAX_COMPARATORS` thresholds: stage 1 registers the ``K`` comparison bits of
    each lane (a comparison with a threshold at or below the smallest input code is the
    constant 1, one above the largest code the constant 0, so they cost nothing); stage 2
    registers ``base`` plus their count. More thresholds (a code of 9 to 16 bits) are searched:
    ``bit_length(K)`` stages of one comparison each (:meth:`_elaborate_search`), as FINN's
    binary-search thresholding does. The pipeline stalls as a whole under back-pressure and
    never drops or repeats a transfer.

    Parameters
    ----------
    thresholds : ndarray of int, shape (lanes, K)
        Thresholds of each lane, in any order up to :data:`MAX_COMPARATORS` per lane, sorted
        beyond.
    base : int
        Output code when no comparison holds.
    fin : FixedFormat
        Signed format of the inputs; the thresholds are raw codes of it.
    fout : FixedFormat
        Integer format of the outputs, holding ``base`` to ``base + K``.

    Members
    -------
    i : ``In(vector_signature(fin, lanes))``
    o : ``Out(vector_signature(fout, lanes))``

    Raises
    ------
    TypeError
        If a format is not a :class:`FixedFormat`.
    ValueError
        If ``thresholds`` is not a non-empty 2-D integer array, a format is not an integer
        format, or the codes do not fit ``fout``.
    """

    def __init__(self, thresholds, *, base, fin, fout):
        import numpy as np

        thresholds = np.asarray(thresholds)
        self._validated(lambda: self._check(thresholds, base, fin, fout))
        self._thresholds = [[int(t) for t in row] for row in thresholds]
        self._base, self._fin, self._fout = int(base), fin, fout
        super().__init__({
            "i": In(vector_signature(fin, len(self._thresholds))),
            "o": Out(vector_signature(fout, len(self._thresholds))),
        })

    @staticmethod
    def _check(thresholds, base, fin, fout):
        for what, fmt in (("Input", fin), ("Output", fout)):
            if not isinstance(fmt, FixedFormat):
                raise TypeError(f"{what} format must be a FixedFormat, not {fmt!r}")
        if fout.fraction_width != 0:
            raise ValueError(f"Output format must be an integer format, not {fout}")
        if not fin.signed:
            raise ValueError(f"Input format must be signed, not {fin}")
        if thresholds.ndim != 2 or thresholds.dtype.kind not in "iu" or 0 in thresholds.shape:
            raise ValueError(f"Thresholds must be a non-empty 2-D integer array, not "
                             f"{thresholds.dtype} of shape {thresholds.shape}")
        if thresholds.shape[1] > MAX_COMPARATORS and np.any(np.diff(thresholds, axis=1) < 0):
            raise ValueError(f"Thresholds must be sorted along each lane to be searched (more "
                             f"than {MAX_COMPARATORS} per lane)")
        if base < fout.min_code or base + thresholds.shape[1] > fout.max_code:
            raise ValueError(f"Output codes {base} to {base + thresholds.shape[1]} do not fit "
                             f"{fout}")

    def __repr__(self):
        return (f"MultiThresholdEngine(<{len(self._thresholds)}x{len(self._thresholds[0])} "
                f"thresholds>, base={self._base}, fin={self._fin}, fout={self._fout})")

    @property
    def searches(self):
        """Whether the lanes search their thresholds (more than :data:`MAX_COMPARATORS`)."""
        return len(self._thresholds[0]) > MAX_COMPARATORS

    @property
    def latency(self):
        """2 cycles; ``bit_length(K) + 1`` when the lanes search."""
        return len(self._thresholds[0]).bit_length() + 1 if self.searches else 2

    def elaborate(self, platform):
        m = Module()
        advance, register = self._stages(m, self.latency)
        if self.searches:
            return self._elaborate_search(m, advance, register)
        low, high = self._fin.min_code, self._fin.max_code
        k = len(self._thresholds[0])
        for j, row in enumerate(self._thresholds):
            x = self.i.payload[j]
            bits = [C(1, 1) if t <= low else C(0, 1) if t > high
                    else x >= C(t, signed(self._fin.width)) for t in row]
            held = register(Cat(*bits), f"above_{j}")
            count = _popcount([held[b] for b in range(k)])
            with m.If(advance):
                m.d.sync += self.o.payload[j].eq(count + self._base)
        return m


    def _elaborate_search(self, m, advance, register):
        """Binary search of each lane's sorted thresholds, one halving per stage: with ``L =
        bit_length(K)`` and the thresholds padded to ``2**L - 1`` with one above the largest
        input code, stage ``s`` adds ``2**(L-1-s)`` to the count ``p`` when ``x >= T[p +
        2**(L-1-s) - 1]``; its table, a ROM read combinationally, holds the ``2**s``
        thresholds that index can reach."""
        low, high = self._fin.min_code, self._fin.max_code
        k = len(self._thresholds[0])
        depth = k.bit_length()
        shape = signed(self._fin.width + 1)
        for j, row in enumerate(self._thresholds):
            padded = [min(max(t, low), high + 1) for t in row] + [high + 1] * (2**depth - 1 - k)
            x, count = self.i.payload[j], C(0, depth)
            for stage in range(depth):
                step = 1 << (depth - 1 - stage)
                table = [padded[p * 2 * step + step - 1] for p in range(1 << stage)]
                if stage == 0:
                    threshold = C(table[0], shape)
                else:
                    # A ROM read combinationally (a case statement of 2**stage arms takes
                    # Verilator minutes to compile; a memory is one array).
                    rom = m.submodules[f"t_{j}_{stage}"] = Memory(shape=shape, depth=len(table),
                                                                  init=table)
                    port = rom.read_port(domain="comb")
                    m.d.comb += port.addr.eq(count[depth - stage:])
                    threshold = port.data
                above = x >= threshold
                count = register(count | (above << (depth - 1 - stage)), f"count_{j}_{stage}")
                x = register(x, f"x_{j}_{stage}")
            with m.If(advance):
                m.d.sync += self.o.payload[j].eq(count + self._base)
        return m


def _popcount(bits):
    """The number of set ``bits``: a balanced tree of adders (combinational)."""
    while len(bits) > 1:
        pairs = [bits[n] + bits[n + 1] for n in range(0, len(bits) - 1, 2)]
        bits = pairs + bits[len(pairs) * 2:]
    return bits[0]
