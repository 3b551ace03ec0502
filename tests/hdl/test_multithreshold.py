"""The multi-threshold engine against its golden model, under back-pressure: thresholds below,
at and above both ends of the input codes, repeated thresholds, negative and unsigned outputs,
and the error messages."""

import numpy as np
import pytest

from nnfab.fixed import FixedFormat
from nnfab.hdl.multithreshold import MultiThresholdEngine
from nnfab.sim.golden.multithreshold import multithreshold
from tests.streams import check_stalls

INT6 = FixedFormat(6, 6)


def _inputs(rng, lanes, n_random):
    edges = [[v] * lanes for v in (INT6.min_code, INT6.min_code + 1, -1, 0, 1, INT6.max_code)]
    return np.array(edges + rng.integers(INT6.min_code, INT6.max_code + 1,
                                         (n_random, lanes)).tolist())


@pytest.mark.parametrize("base, fout", [(-4, FixedFormat(3, 3)), (0, FixedFormat(3, 3,
                                                                                  signed=False))])
def test_engine_matches_golden_under_stalls(base, fout):
    thresholds = np.array([[-32, -5, -5, 0, 3, 9, 33], [-31, -31, -31, 0, 1, 2, 3],
                           [-1, 0, 1, 2, 3, 4, 32], [-6, -4, -2, 0, 2, 4, 6],
                           [31, 31, 32, 32, 32, 32, 32]])
    x = _inputs(np.random.default_rng(7), len(thresholds), 60)
    want = multithreshold(x, thresholds, base)
    assert set(np.unique(want)) >= {base, base + 7}
    check_stalls(lambda: MultiThresholdEngine(thresholds, base=base, fin=INT6, fout=fout),
                 x.tolist(), want.tolist(), seed=7, latency=2)


def test_many_thresholds_bipolar_duplicates():
    """255 thresholds (an 8-bit code) and a bipolar output (one threshold twice: -1 or +1)."""
    rng = np.random.default_rng(3)
    wide = np.sort(rng.integers(-33, 34, (2, 255)), axis=1)
    x = _inputs(rng, 2, 40)
    check_stalls(lambda: MultiThresholdEngine(wide, base=0, fin=INT6,
                                              fout=FixedFormat(8, 8, signed=False)),
                 x.tolist(), multithreshold(x, wide, 0).tolist(), seed=3, latency=2)
    bipolar = np.array([[0, 0], [5, 5]])
    want = multithreshold(x, bipolar, -1)
    assert set(np.unique(want)) == {-1, 1}
    check_stalls(lambda: MultiThresholdEngine(bipolar, base=-1, fin=INT6, fout=FixedFormat(2, 2)),
                 x.tolist(), want.tolist(), seed=4, latency=2)


@pytest.mark.parametrize("k", [256, 300, 4095])
def test_searched_thresholds_match_golden_under_stalls(k):
    """More than 255 thresholds (a 9- to 12-bit code) are searched, one halving per stage:
    thresholds below, at and above the input range, repeated ones, a count that is not
    2**L - 1, and every position of the search (16-bit inputs cover all 4,095)."""
    fin = FixedFormat(16, 16)
    rng = np.random.default_rng(k)
    rows = np.sort(rng.integers(fin.min_code - 50, fin.max_code + 2, (3, k)), axis=1)
    rows[1] = np.sort(np.repeat(rng.integers(-2000, 2000, (k + 1) // 2), 2)[:k])
    rows[2, :5], rows[2, -5:] = fin.min_code, fin.max_code + 1
    x = np.concatenate([rows[:, rng.integers(0, k, 60)].T + rng.integers(-1, 2, (60, 3)),
                        rng.integers(fin.min_code, fin.max_code + 1, (40, 3)),
                        [[fin.min_code] * 3, [fin.max_code] * 3]])
    x = np.clip(x, fin.min_code, fin.max_code)
    want = multithreshold(x, rows, -2048)
    engine = MultiThresholdEngine(rows, base=-2048, fin=fin, fout=FixedFormat(13, 13))
    assert engine.searches and engine.latency == k.bit_length() + 1
    check_stalls(lambda: MultiThresholdEngine(rows, base=-2048, fin=fin,
                                              fout=FixedFormat(13, 13)),
                 x.tolist(), want.tolist(), seed=k, latency=k.bit_length() + 1)
    with pytest.raises(ValueError, match=r"^Thresholds must be sorted along each lane to be "
                                         r"searched \(more than 255 per lane\)$"):
        MultiThresholdEngine(rows[:, ::-1], base=-2048, fin=fin, fout=FixedFormat(13, 13))


def test_errors():
    t = np.zeros((2, 3), dtype=int)
    with pytest.raises(ValueError, match=r"^Output codes -4 to -1 do not fit ufixed<3,3"):
        MultiThresholdEngine(t, base=-4, fin=INT6, fout=FixedFormat(3, 3, signed=False))
    with pytest.raises(ValueError, match=r"^Output format must be an integer format, not "
                                         r"fixed<6,2"):
        MultiThresholdEngine(t, base=0, fin=INT6, fout=FixedFormat(6, 2))
    with pytest.raises(ValueError, match=r"^Thresholds must be a non-empty 2-D integer array, "
                                         r"not float64 of shape \(3,\)"):
        MultiThresholdEngine(np.zeros(3), base=0, fin=INT6, fout=FixedFormat(3, 3))
    with pytest.raises(TypeError, match=r"^Output format must be a FixedFormat, not 3$"):
        MultiThresholdEngine(t, base=0, fin=INT6, fout=3)
