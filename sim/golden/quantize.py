"""Golden model of per-element requantization: lane ``j`` of a vector is cast to its own format.

HGQ's ``FixedPointQuantizer`` gives every element of a tensor its own fixed-point format (its own
width, integer bits, signedness; rounding and overflow modes shared). Lane ``j`` is cast from
``fin`` to ``formats[j]`` with that format's rounding and overflow modes (as
:func:`nnfab.casts.cast`), then written exactly into the common format ``fout``. A
lane whose format is None has zero bits: its output is always 0.
"""

import numpy as np

from nnfab.casts import as_codes, cast
from nnfab.fixed import check_lane_formats

__all__ = ["quantize_lanes"]


def quantize_lanes(codes, *, fin, formats, fout):
    """Cast lane ``j`` (last axis) of ``codes`` (raw codes of ``fin``) to ``formats[j]``.

    Parameters
    ----------
    codes : array_like of int, shape (..., n)
    fin : FixedFormat
    formats : sequence of FixedFormat or None, length n
        Per-lane formats with their rounding and overflow modes; None gives 0.
    fout : FixedFormat
        Common format that holds every lane format exactly.

    Returns
    -------
    ndarray, same shape as ``codes``
        Raw codes of ``fout``.
    """
    formats = check_lane_formats(formats, fout)
    x = as_codes(codes, fin)
    if x.shape[-1] != len(formats):
        raise ValueError(f"Codes must have {len(formats)} lanes, not {x.shape[-1]}")
    out = np.zeros(x.shape, dtype=np.int64 if fout.width <= 62 else object)
    groups = {}
    for j, fmt in enumerate(formats):
        if fmt is not None:
            groups.setdefault(fmt, []).append(j)
    for fmt, lanes in groups.items():
        y = cast(x[..., lanes], fin, fmt)
        shift = fout.fraction_width - fmt.fraction_width
        out[..., lanes] = np.asarray(y, dtype=out.dtype) * (1 << shift)
    return out
