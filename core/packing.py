"""Packing raw codes into one wide bit vector, as a stream payload or port carries them.

Lane 0 sits in the least significant bits, each lane takes exactly its format's width, and a
code is stored as its two's complement bit pattern. The hardware's ``Cat(*lanes)``, the
testbenches and the manifest all use this order.
"""

from .fixed import FixedFormat

__all__ = ["packed_width", "pack", "unpack"]


def _check_formats(formats):
    for fmt in formats:
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")


def packed_width(formats):
    """Total width in bits of the lanes ``formats``."""
    _check_formats(formats)
    return sum(fmt.width for fmt in formats)


def pack(codes, formats):
    """Pack one code per lane into an unsigned integer of :func:`packed_width` bits.

    Raises
    ------
    ValueError
        If the numbers of codes and formats differ, or a code does not fit its format.
    """
    _check_formats(formats)
    codes = list(codes)
    if len(codes) != len(formats):
        raise ValueError(f"Expected {len(formats)} codes, not {len(codes)}")
    word, offset = 0, 0
    for code, fmt in zip(codes, formats):
        word |= fmt.code_to_bits(int(code)) << offset
        offset += fmt.width
    return word


def unpack(word, formats):
    """Split an unsigned integer of :func:`packed_width` bits into one code per lane.

    Raises
    ------
    ValueError
        If ``word`` is negative or wider than the lanes.
    """
    _check_formats(formats)
    width = packed_width(formats)
    if not (0 <= word < (1 << width)):
        raise ValueError(f"Packed word {word!r} does not fit {width} bits")
    codes = []
    for fmt in formats:
        codes.append(fmt.bits_to_code(word & ((1 << fmt.width) - 1)))
        word >>= fmt.width
    return codes
