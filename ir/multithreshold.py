"""The ``multithreshold`` layer kind: integer accumulators to output codes by comparison with
per-channel thresholds (FINN's ``MultiThreshold``).

Per channel ``c`` (the last axis), ``y = base + #{k : x >= thresholds[c, k]}`` on the raw
codes ``x`` of the accumulators. Any monotone
non-decreasing map from integers to ``K + 1`` consecutive codes is such a layer; the QONNX
importer (:mod:`nnfab.gen.importers.qonnx_thresholds`) derives the thresholds of the float
arithmetic between a layer's integer accumulator and the next quantizer. Its engine is
:class:`nnfab.hdl.multithreshold.MultiThresholdEngine` (latency 2, II 1; up to 17 cycles
beyond 255 thresholds, which it searches), its golden function
:func:`nnfab.sim.golden.multithreshold.multithreshold`.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat

from .model import Layer
from .native_keys import ARRAY, FORMAT, string
from .registry import register

__all__ = ["MultiThresholdLayer", "threshold_format", "MAX_THRESHOLDS"]

#: Most thresholds per channel (a 16-bit output code has 65,535; beyond an 8-bit code's 255 the
#: engine searches them, see :class:`nnfab.hdl.multithreshold.MultiThresholdEngine`).
MAX_THRESHOLDS = (1 << 16) - 1
_INTEGER = {"type": "integer", "accepted": "an integer"}


def threshold_format(fin):
    """The format thresholds of accumulators in ``fin`` are kept in (raw codes of ``fin``'s
    LSB): one bit wider, so that ``max + 1`` (a threshold never reached) fits."""
    return FixedFormat(fin.width + 1, fin.width + 1 - fin.fraction_width)


def _is_integer(fmt):
    return isinstance(fmt, FixedFormat) and fmt.fraction_width == 0


@register
@dataclass(frozen=True)
class MultiThresholdLayer(Layer):
    """Compare integer accumulators with ``K`` thresholds per channel and count.

    Parameters
    ----------
    shape : tuple of int
        Input and output shape; its last axis has ``thresholds.shape[0]`` channels.
    fin : FixedFormat
        Signed format of the accumulators; thresholds compare with their raw codes.
    thresholds : ndarray of int, shape (channels, K)
        Raw codes of ``fin``, non-decreasing along each row, within ``fin.min_code`` to
        ``fin.max_code + 1``
        (:func:`threshold_format`); ``1 <= K <=`` :data:`MAX_THRESHOLDS`.
    base : int
        Output code below the first threshold.
    fout : FixedFormat
        Integer format (``fixed<W,W>`` or ``ufixed<W,W>``) holding ``base`` to ``base + K``.
    proof : str
        How the thresholds were proven equal to the arithmetic they replace (reported in the
        manifest), or empty.

    Raises
    ------
    ModelError
        If a format is not an integer format, the thresholds have the wrong shape, are not
        sorted or out of range, or the codes do not fit ``fout``.
    """

    kind: ClassVar[str] = "multithreshold"
    native_keys: ClassVar[dict] = {"thresholds": ARRAY, "base": _INTEGER,
                                   "output_format": FORMAT, "proof": string("a string")}
    required_keys: ClassVar[tuple] = ("thresholds", "output_format")
    shape: tuple = ()
    fin: FixedFormat = None
    thresholds: np.ndarray = None
    base: int = 0
    fout: FixedFormat = None
    proof: str = ""

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        where = f"Layer {self.name!r}"
        if not isinstance(self.fin, FixedFormat) or not self.fin.signed:
            raise ModelError(f"{where}: multithreshold input must be a signed format, not "
                             f"{self.fin!r}")
        if not _is_integer(self.fout):
            raise ModelError(f"{where}: multithreshold output must be an integer format "
                             f"(fixed<W,W> or ufixed<W,W>), not {self.fout!r}")
        t = np.asarray(self.thresholds)
        if t.ndim != 2 or t.dtype.kind not in "iu" or not self.shape or \
                t.shape[0] != self.shape[-1] or not 1 <= t.shape[1] <= MAX_THRESHOLDS:
            raise ModelError(f"{where}: thresholds must be integers of shape (channels, K) with "
                             f"{self.shape[-1] if self.shape else '?'} channels and K from 1 "
                             f"to {MAX_THRESHOLDS}, not {t.dtype} of shape {t.shape}")
        t = t.astype(np.int64)
        if t.min() < self.fin.min_code or t.max() > self.fin.max_code + 1:
            bad = int(t[(t < self.fin.min_code) | (t > self.fin.max_code + 1)].flat[0])
            raise ModelError(f"{where}: threshold {bad} is outside {self.fin.min_code} to "
                             f"{self.fin.max_code + 1} (the codes of {self.fin} and one above)")
        if np.any(np.diff(t, axis=1) < 0):
            row = int(np.argmax(np.any(np.diff(t, axis=1) < 0, axis=1)))
            raise ModelError(f"{where}: thresholds of channel {row} are not sorted: "
                             f"{t[row].tolist()}")
        t.setflags(write=False)
        object.__setattr__(self, "thresholds", t)
        object.__setattr__(self, "base", int(self.base))
        top = self.base + t.shape[1]
        if self.base < self.fout.min_code or top > self.fout.max_code:
            raise ModelError(f"{where}: output codes {self.base} to {top} do not fit "
                             f"{self.fout} (codes {self.fout.min_code} to "
                             f"{self.fout.max_code})")

    @property
    def n_thresholds(self):
        """Thresholds per channel, ``K``."""
        return self.thresholds.shape[1]

    input_shape = property(lambda self: self.shape)
    output_shape = property(lambda self: self.shape)
    input_format = property(lambda self: self.fin)
    output_format = property(lambda self: self.fout)

    def describe(self):
        return (f"multithreshold {self.fin} -> {self.fout}, {self.n_thresholds} thresholds x "
                f"{self.shape[-1]} channels, base {self.base}")

    @classmethod
    def from_native(cls, e):
        thresholds = e.codes("thresholds", threshold_format(e.fmt))
        return cls(e.name, shape=e.shape, fin=e.fmt,
               thresholds=np.asarray(thresholds, dtype=np.int64),
               base=int(e.get("base", 0)), fout=e.output_format("multithreshold"),
               proof=str(e.get("proof", "")))

    def to_native(self, entry, out):
        out.array(entry, self, "thresholds", self.thresholds)
        entry.update(base=self.base, output_format=str(self.fout))
        if self.proof:
            entry["proof"] = self.proof

    def manifest_row(self, engine):
        t = self.thresholds
        return dict(thresholds_per_channel=int(t.shape[1]), channels=int(t.shape[0]),
                    base=self.base, threshold_bits=self.fin.width + 1, proof=self.proof)
