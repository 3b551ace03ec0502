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


def discard(elaboratable, *, deep=False):
    """Mark ``elaboratable`` as deliberately never elaborated: it will not warn as unused.

    Parameters
    ----------
    elaboratable : Elaboratable
    deep : bool
        Also mark the elaboratables it holds in its attributes (directly or in lists, tuples
        and dicts), at any depth: the parts an engine builds in its constructor.

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
    if deep:
        seen = {id(elaboratable)}
        pending = list(vars(elaboratable).values())
        while pending:
            value = pending.pop()
            if isinstance(value, (list, tuple)):
                pending.extend(value)
            elif isinstance(value, dict):
                pending.extend(value.values())
            elif isinstance(value, Elaboratable) and id(value) not in seen:
                seen.add(id(value))
                value._MustUse__silence = True
                pending.extend(vars(value).values())
    return elaboratable
