"""Values of the native format that are not arrays: format strings and activation parameters
(formats, ``(format, code)`` constants, look-up tables, Fractions) in their JSON form."""

from fractions import Fraction

from nnfab.errors import FormatError, ModelError
from nnfab.fixed import FixedFormat
from nnfab.tables import LookupTable

__all__ = ["format_from_json", "param_from_json", "param_to_json"]


def format_from_json(text, where, **limits):
    """``text`` parsed as a FixedFormat (None stays None); FormatError names ``where``."""
    if text is None:
        return None
    try:
        return FixedFormat.parse(text, **limits)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: {exc}") from None


def param_to_json(value):
    """An activation parameter as JSON: formats as strings, ``(format, code)`` constants as
    ``{"format", "code"}``, look-up tables with their codes, Fractions as strings."""
    if isinstance(value, FixedFormat):
        return str(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], FixedFormat):
        return {"format": str(value[0]), "code": int(value[1])}
    if isinstance(value, LookupTable):
        return {"table": value.kind, "table_size": value.table_size,
                "table_format": str(value.table_format), "input_range": str(value.input_range),
                "codes": [int(c) for c in value.codes],
                **({"index_rounding": value.index_rounding}
                   if value.index_rounding != "floor" else {})}
    if isinstance(value, Fraction):
        return str(value)
    return value


def param_from_json(name, value, where):
    try:
        if name == "alpha_format":
            return format_from_json(value, where)
        if name == "relu_max" and isinstance(value, str):
            return Fraction(value)
        if isinstance(value, dict) and "code" in value:
            if not isinstance(value["code"], int) or isinstance(value["code"], bool):
                raise TypeError(f"code must be an integer, not {value['code']!r}")
            return (format_from_json(value["format"], where), value["code"])
        if isinstance(value, dict) and "table" in value:
            return _table(value, where)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        detail = f"{exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc)
        raise ModelError(f"{where}: parameter {name!r} is not valid ({detail})") from None
    return value


def _table(value, where):
    """A look-up table parameter, checked whole (:class:`~nnfab.tables.LookupTable` itself
    holds what it is given)."""
    size, fmt = value["table_size"], format_from_json(value["table_format"], where)
    input_range, codes = Fraction(value["input_range"]), tuple(value["codes"])
    if size & (size - 1):
        raise ValueError(f"table_size must be a power of two, not {size!r}")
    if len(codes) != size:
        raise ValueError(f"a table of table_size {size} needs {size} codes, not {len(codes)}")
    if input_range <= 0 or input_range.numerator & (input_range.numerator - 1) or \
            input_range.denominator & (input_range.denominator - 1):
        raise ValueError(f"input_range must be a power of two, not {value['input_range']!r}")
    bad = [c for c in codes if not fmt.min_code <= c <= fmt.max_code]
    if bad:
        raise ValueError(f"code {bad[0]!r} does not fit {fmt} (codes {fmt.min_code} to "
                         f"{fmt.max_code})")
    return LookupTable(value["table"], size, fmt, input_range, codes,
                       value.get("index_rounding", "floor"))
