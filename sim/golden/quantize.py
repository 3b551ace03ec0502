"""Golden model of per-element requantization: lane ``j`` of a vector is cast to its own format.

HGQ's ``FixedPointQuantizer`` gives every element of a tensor its own fixed-point format (its own
width, integer bits, signedness; rounding and overflow modes shared). Lane ``j`` is cast from
``fin`` to ``formats[j]`` with that format's rounding and overflow modes (as
:func:`nnfab.casts.cast`), then written exactly into the common format ``fout``. A
lane whose format is None has zero bits: its output is always 0.
"""

import numpy as np

from nnfab.casts import as_codes, cast
from nnfab.fixed import FixedFormat

__all__ = ["check_lane_formats", "quantize_lanes"]


def check_lane_formats(formats, fout):
    """Validate per-lane formats against the common output format.

    Raises
    ------
    TypeError
        If a lane format is neither a FixedFormat nor None, or ``fout`` not a FixedFormat.
    ValueError
        If there are no lanes, or a lane's values do not all fit ``fout`` exactly (its LSB finer
        than ``fout``'s, or its range wider).
    """
    if not isinstance(fout, FixedFormat):
        raise TypeError(f"Output format must be a FixedFormat, not {fout!r}")
    formats = tuple(formats)
    if not formats:
        raise ValueError("Lane formats must name at least one lane")
    for j, fmt in enumerate(formats):
        if fmt is None:
            continue
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Lane {j} format must be a FixedFormat or None, not {fmt!r}")
        if (fmt.fraction_width > fout.fraction_width or fmt.max_value > fout.max_value
                or fmt.min_value < fout.min_value):
            raise ValueError(f"Lane {j} format {fmt} does not fit the output format {fout} "
                             f"exactly")
    return formats


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
