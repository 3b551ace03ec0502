"""Components whose parameters are checked before they exist."""

from amaranth.lib import wiring

__all__ = ["CheckedComponent", "check_count"]


def check_count(value, what, minimum):
    """Raise ``TypeError`` unless ``value`` is an integer (not a bool), ``ValueError`` unless
    it is at least ``minimum``; ``what`` names it in the message (sentence case)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, not {value!r}")


class CheckedComponent(wiring.Component):
    """A :class:`~amaranth.lib.wiring.Component` whose subclass checks its constructor's
    parameters in a static method ``_check`` (same parameters as ``__init__``), called before
    the object exists: rejected parameters raise and leave no object behind, so Amaranth has
    no component to report as never elaborated (``UnusedElaboratable``)."""

    def __new__(cls, *args, src_loc_at=0, **kwargs):
        cls._check(*args, **kwargs)
        return super().__new__(cls, src_loc_at=src_loc_at + 1)
