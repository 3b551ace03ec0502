"""Amaranth's "created but never used" warning (:class:`amaranth.hdl.UnusedElaboratable`), kept
for real mistakes.

Amaranth warns when an elaboratable is garbage-collected without having been elaborated. Two
cases in nnfab are no mistake:

- a component whose constructor rejected its parameters: it raised, so it never became a
  design (the caller may well catch the error, as the CLI and the tests do);
- a component built only to read its figures (latency, initiation interval, multipliers).
  Computing such figures without building the component is better where it is possible.

Amaranth 0.5's public switches act on whole files (a first line
``# amaranth: UnusedElaboratable=no`` in the file that creates the object) or on the whole
category (:mod:`warnings` filters, as ``pyproject.toml`` sets for the tests); neither can name
one object. :func:`discard` does, and it is the only place in nnfab that sets Amaranth's own
per-object flag.
"""

from amaranth.hdl import Elaboratable

__all__ = ["discard"]


def discard(elaboratable):
    """Mark ``elaboratable`` as deliberately never elaborated: it will not warn as unused.

    Parameters
    ----------
    elaboratable : Elaboratable

    Returns
    -------
    Elaboratable
        ``elaboratable`` itself.

    Raises
    ------
    TypeError
        If ``elaboratable`` is not an :class:`~amaranth.hdl.Elaboratable`.
    """
    if not isinstance(elaboratable, Elaboratable):
        raise TypeError(f"Object must be an Elaboratable, not {elaboratable!r}")
    elaboratable._MustUse__silence = True
    return elaboratable
