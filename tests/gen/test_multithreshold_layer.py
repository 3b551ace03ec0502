"""The ``multithreshold`` IR layer: its checks, each with its exact message, and its golden
function on the edges (thresholds at both ends of the input codes, repeated thresholds)."""

import numpy as np
import pytest

from nnfab.errors import ModelError
from nnfab.fixed import FixedFormat
from nnfab.ir import MultiThresholdLayer
from nnfab.sim.golden.multithreshold import multithreshold

INT5, UINT2 = FixedFormat(5, 5), FixedFormat(2, 2, signed=False)


def _layer(thresholds, base=0, fin=INT5, fout=UINT2):
    return MultiThresholdLayer("mt", shape=(len(thresholds),), fin=fin,
                               thresholds=np.array(thresholds), base=base, fout=fout)


def test_golden_counts_thresholds_reached():
    layer = _layer([[-16, 0, 16], [3, 3, 3], [16, 16, 16]])
    x = np.array([[-16, 2, 15], [-1, 3, 15], [0, 2, 15], [15, 4, -16]])
    assert multithreshold(x, layer.thresholds, layer.base).tolist() == \
        [[1, 0, 0], [1, 3, 0], [2, 0, 0], [2, 3, 0]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(thresholds=[[0, 17, 1]]), "Layer 'mt': threshold 17 is outside -16 to 16 (the codes "
                                    "of fixed<5,5> and one above)"),
    (dict(thresholds=[[0, 2, 1]]), "Layer 'mt': thresholds of channel 0 are not sorted: "
                                   "[0, 2, 1]"),
    (dict(thresholds=[[0, 1, 2]], base=1), "Layer 'mt': output codes 1 to 4 do not fit "
                                           "ufixed<2,2> (codes 0 to 3)"),
    (dict(thresholds=[[0.5, 1, 2]]), "Layer 'mt': thresholds must be integers of shape "
                                     "(channels, K) with 1 channels and K from 1 to 65535, not "
                                     "float64 of shape (1, 3)"),
    (dict(thresholds=[[0, 1, 2]], fin=FixedFormat(5, 5, signed=False)),
     "Layer 'mt': multithreshold input must be a signed format, not "),
    (dict(thresholds=[[0, 1, 2]], fout=FixedFormat(4, 2)),
     "Layer 'mt': multithreshold output must be an integer format (fixed<W,W> or ufixed<W,W>), "
     "not "),
])
def test_errors(kwargs, message):
    with pytest.raises(ModelError) as info:
        _layer(**kwargs)
    assert str(info.value).startswith(message)
