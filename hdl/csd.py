"""Canonical signed digit (CSD) form of integer constants, for shift-add multiplication.

The CSD form writes an integer as a sum of signed powers of two, ``sum(sign * 2**shift)``, with
no two adjacent non-zero digits; it has the fewest non-zero digits of any signed-digit form
(G. W. Reitwiesner, "Binary arithmetic", Advances in Computers 1, 1960). Multiplying by a
constant with ``n`` non-zero digits costs ``n - 1`` adders and no multiplier.
"""

__all__ = ["csd_digits"]


def csd_digits(value):
    """The non-zero CSD digits of integer ``value`` as ``[(sign, shift), ...]``, LSB first.

    ``value == sum(sign << shift for sign, shift in csd_digits(value))``; 0 has no digits.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Constant must be an integer, not {value!r}")
    digits, shift = [], 0
    while value != 0:
        if value & 1:
            digit = 2 - (value & 3)  # +1 when value = 1 (mod 4), -1 when value = 3 (mod 4)
            digits.append((digit, shift))
            value -= digit
        value >>= 1
        shift += 1
    return digits
