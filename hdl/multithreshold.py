"""Multi-threshold requantization in hardware: each lane compares its integer accumulator with
the lane's constant thresholds and counts the comparisons that hold (FINN's
``MultiThreshold``), pipelined.

Bit-exact with :func:`nnfab.sim.golden.multithreshold.multithreshold`.
"""

from amaranth.hdl import C, Cat, Module, signed
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat

from .vector_pipeline import VectorPipeline, vector_signature

__all__ = ["MultiThresholdEngine"]


class MultiThresholdEngine(VectorPipeline):
    """``y[j] = base + #{k : x[j] >= thresholds[j, k]}`` on every lane (raw codes); latency 2
    cycles, II 1.

    Stage 1 registers the ``K`` comparison bits of each lane (a comparison with a threshold at
    or below the smallest input code is the constant 1, one above the largest code the
    constant 0, so they cost nothing); stage 2 registers ``base`` plus their count. The
    pipeline stalls as a whole under back-pressure and never drops or repeats a transfer.

    Parameters
    ----------
    thresholds : ndarray of int, shape (lanes, K)
        Thresholds of each lane, in any order (sorted in practice).
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
        if base < fout.min_code or base + thresholds.shape[1] > fout.max_code:
            raise ValueError(f"Output codes {base} to {base + thresholds.shape[1]} do not fit "
                             f"{fout}")

    def __repr__(self):
        return (f"MultiThresholdEngine(<{len(self._thresholds)}x{len(self._thresholds[0])} "
                f"thresholds>, base={self._base}, fin={self._fin}, fout={self._fout})")

    @property
    def latency(self):
        return 2

    def elaborate(self, platform):
        m = Module()
        advance, register = self._stages(m, self.latency)
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


def _popcount(bits):
    """The number of set ``bits``: a balanced tree of adders (combinational)."""
    while len(bits) > 1:
        pairs = [bits[n] + bits[n + 1] for n in range(0, len(bits) - 1, 2)]
        bits = pairs + bits[len(pairs) * 2:]
    return bits[0]
