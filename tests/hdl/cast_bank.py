"""A test harness design: many independent casts side by side, inputs and outputs packed.

Used by the Amaranth-simulator test (``tests/hdl/test_cast.py``) and the Verilator test
(``tests/sim/test_cast_verilator.py``) to run every ``ap_fixed`` golden row through the hardware
cast, with one stimulus layout (:mod:`nnfab.packing`) shared by both.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from nnfab.casts import exact_codes
from nnfab.hdl.cast import requantize
from nnfab.packing import pack, packed_width, unpack

from ..vectors import ap_fixed_cases


class CastBank(wiring.Component):
    """``codes_out`` lane ``n`` = ``requantize(codes_in`` lane ``n)``, combinational."""

    def __init__(self, pairs):
        self.pairs = tuple(pairs)
        super().__init__({
            "codes_in": In(packed_width([src for src, _ in self.pairs])),
            "codes_out": Out(packed_width([dst for _, dst in self.pairs])),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, offset = [], 0
        for src, dst in self.pairs:
            raw = self.codes_in[offset:offset + src.width]
            offset += src.width
            lanes.append(requantize(raw.as_signed() if src.signed else raw, src=src, dst=dst))
        m.d.comb += self.codes_out.eq(Cat(*lanes))
        return m


@dataclass(frozen=True)
class CastStimulus:
    """Rows of the golden file as lanes: ``inputs[j, n]`` goes through lane ``n`` at step ``j``."""

    pairs: tuple
    inputs: np.ndarray
    expected: np.ndarray

    def words_in(self):
        srcs = [src for src, _ in self.pairs]
        return [pack(row, srcs) for row in self.inputs]

    def decode(self, word):
        return unpack(word, [dst for _, dst in self.pairs])


def ap_fixed_stimulus():
    """All 168,000 rows as 560 lanes by 300 steps. A cast from double enters the hardware as the
    exact fixed-point value of the double (:func:`~nnfab.casts.exact_codes`)."""
    pairs, inputs, expected = [], [], []
    for case in ap_fixed_cases():
        if case.src is None:
            src, codes = exact_codes(case.inputs)
        else:
            src, codes = case.src, case.inputs
        pairs.append((src, case.dst))
        inputs.append(np.asarray(codes, dtype=object))
        expected.append(case.expected.astype(object))
    return CastStimulus(tuple(pairs), np.stack(inputs, axis=1), np.stack(expected, axis=1))
