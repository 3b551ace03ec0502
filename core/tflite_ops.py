"""Parameters of TFLite's int8 ``ADD`` and ``AVERAGE_POOL_2D``, computed once and shared by the
golden model (:mod:`nnfab.sim.golden.tflite`) and the hardware (:mod:`nnfab.hdl.add_tflite`,
:mod:`nnfab.hdl.pool_tflite`).

- :class:`AddParams`: TFLite ``add.cc`` ``Prepare`` for int8 (``PrepareGeneralSubOp``'s
  arithmetic): a left shift of 20, each input's multiplier of ``scale / (2 * max(scale_1,
  scale_2))`` and the output's of ``2 * max(scale_1, scale_2) / (2**20 * output_scale)``, in
  double from the float32 scales, quantized by :func:`nnfab.requantize.quantize_multiplier`.
- :class:`AverageDivider`: the division of ``reference_integer_ops::AveragePool`` by the
  number of in-bounds positions ``count`` (``(sum +- count / 2) / count``, C's truncating
  division: half away from zero), done as a multiply by a magic constant and a right shift,
  proven exact over every reachable sum when it is built.
"""

from dataclasses import dataclass, field

import numpy as np

from .requantize import INT32_MAX, quantize_multiplier

__all__ = ["LEFT_SHIFT", "AddParams", "AverageDivider"]

#: TFLite's ``left_shift`` of int8 ``ADD`` (20; 15 for int16).
LEFT_SHIFT = 20
_INT8_MIN, _INT8_MAX = -128, 127


def _check_code(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or \
            not _INT8_MIN <= value <= _INT8_MAX:
        raise ValueError(f"{name} must be an integer from -128 to 127, not {value!r}")


def _check_clamp(what, low, high):
    _check_code(f"{what} low", low)
    _check_code(f"{what} high", high)
    if low > high:
        raise ValueError(f"{what} clamp must have low <= high, not [{low}, {high}]")


@dataclass(frozen=True)
class AddParams:
    """TFLite's int8 ``ADD`` of two tensors (``reference_integer_ops::Add``)::

        s_k = MultiplyByQuantizedMultiplier((x_k - zero_point_k) << 20, multiplier_k, shift_k)
        y = clamp(MultiplyByQuantizedMultiplier(s_1 + s_2, multiplier_out, shift_out)
                  + zero_point_out, low, high)

    Parameters
    ----------
    zero_points : tuple of 3 int
        Input 1, input 2 and output zero points, -128 to 127.
    multipliers, shifts : tuple of 3 int
        ``(m, e)`` of input 1, input 2 and the output: ``m`` from 0 to ``2**31 - 1``, ``e``
        from -31 to 30.
    low, high : int
        The clamp (the fused activation's range), -128 to 127.
    left_shift : int
        20 (TFLite's int8 value); 0 to 22, so a shifted int8 difference fits int32.

    Raises
    ------
    ValueError
        If a value is out of its range; the message names it and the accepted range.
    """

    zero_points: tuple
    multipliers: tuple
    shifts: tuple
    low: int = _INT8_MIN
    high: int = _INT8_MAX
    left_shift: int = LEFT_SHIFT

    def __post_init__(self):
        for name in ("zero_points", "multipliers", "shifts"):
            values = tuple(getattr(self, name))
            if len(values) != 3:
                raise ValueError(f"Add {name.replace('_', ' ')} must be 3 values (input 1, "
                                 f"input 2, output), not {values!r}")
            object.__setattr__(self, name, tuple(int(v) for v in values))
        for k, what in enumerate(("input 1", "input 2", "output")):
            _check_code(f"Add {what} zero point", self.zero_points[k])
            if not 0 <= self.multipliers[k] <= INT32_MAX:
                raise ValueError(f"Add {what} multiplier must be from 0 to {INT32_MAX}, not "
                                 f"{self.multipliers[k]!r}")
            if not -31 <= self.shifts[k] <= 30:
                raise ValueError(f"Add {what} shift must be from -31 to 30, not "
                                 f"{self.shifts[k]!r}")
        _check_clamp("Add", self.low, self.high)
        if not isinstance(self.left_shift, int) or not 0 <= self.left_shift <= 22:
            raise ValueError(f"Add left shift must be an integer from 0 to 22, not "
                             f"{self.left_shift!r}")

    @classmethod
    def from_scales(cls, scales, zero_points, low=_INT8_MIN, high=_INT8_MAX):
        """The parameters TFLite's ``Prepare`` computes from the tensors' quantization.

        Parameters
        ----------
        scales : tuple of 3 float
            Input 1, input 2 and output scales, as stored (float32 values).
        zero_points : tuple of 3 int
        low, high : int
            The fused activation's range.
        """
        s_1, s_2, s_out = (float(s) for s in scales)
        twice_max_input_scale = 2 * float(max(np.float32(s_1), np.float32(s_2)))
        reals = (s_1 / twice_max_input_scale, s_2 / twice_max_input_scale,
                 twice_max_input_scale / ((1 << LEFT_SHIFT) * s_out))
        pairs = [quantize_multiplier(r) for r in reals]
        return cls(tuple(zero_points), tuple(m for m, _ in pairs), tuple(e for _, e in pairs),
                   low, high)

    def pairs(self):
        """``((m1, e1), (m2, e2), (m, e))``, the form of :func:`~nnfab.sim.golden.tflite.
        add_params`."""
        return tuple(zip(self.multipliers, self.shifts))


def _magic(count, u_max):
    """Smallest ``shift`` and ``magic = ceil(2**shift / count)`` with ``(u * magic) >> shift
    == u // count`` for every ``u`` in ``0..u_max``, checked on all of them."""
    u = np.arange(u_max + 1, dtype=np.int64)
    want = u // count
    for shift in range(count.bit_length() - 1, 48):
        magic = -(-(1 << shift) // count)
        if magic * u_max >= 1 << 62:
            break
        if np.array_equal((u * magic) >> shift, want):
            return magic, shift
    raise ValueError(f"Average count {count!r} has no exact multiply-shift division below "
                     f"2**48")  # pragma: no cover - a shift of log2(count * u_max) + 1 works


@dataclass(frozen=True)
class AverageDivider:
    """TFLite's int8 average of ``count`` codes (``reference_integer_ops::AveragePool``)::

        y = clamp(sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count, low, high)

    with C's truncating division (half away from zero). The hardware divides ``u = |sum| +
    count // 2`` (0 to ``128 * count + count // 2``) by a multiply and a shift, ``u // count ==
    (u * magic) >> shift``; the constructor finds the smallest ``shift`` for which this holds
    and checks it for every ``u`` in that range (at most ``129 * count`` values), so the
    division is proven exact for every reachable sum of ``count`` int8 codes.

    Parameters
    ----------
    count : int, 1 to 65536
        Positions averaged (the window clipped to the image; the whole map for a global
        average).
    low, high : int
        The clamp (the fused activation's range), -128 to 127.

    Attributes
    ----------
    magic, shift : int
        The multiply-shift division.
    sum_min, sum_max : int
        Reachable sums, ``-128 * count`` and ``127 * count``.

    Raises
    ------
    TypeError
        If ``count`` is not an integer.
    ValueError
        If ``count``, ``low`` or ``high`` is out of range.
    """

    count: int
    low: int = _INT8_MIN
    high: int = _INT8_MAX
    magic: int = field(init=False)
    shift: int = field(init=False)

    def __post_init__(self):
        if not isinstance(self.count, (int, np.integer)) or isinstance(self.count, bool):
            raise TypeError(f"Average count must be an integer, not {self.count!r}")
        if not 1 <= self.count <= 1 << 16:
            raise ValueError(f"Average count must be from 1 to 65536, not {self.count!r}")
        object.__setattr__(self, "count", int(self.count))
        _check_clamp("Average", self.low, self.high)
        magic, shift = _magic(self.count, self.u_max)
        object.__setattr__(self, "magic", magic)
        object.__setattr__(self, "shift", shift)

    @property
    def sum_min(self):
        return _INT8_MIN * self.count

    @property
    def sum_max(self):
        return _INT8_MAX * self.count

    @property
    def u_max(self):
        """Largest dividend ``|sum| + count // 2``."""
        return -self.sum_min + self.count // 2
