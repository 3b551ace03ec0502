"""Common parts of the vector pipelines (activations, softmax, argmax): the stream signature
of a vector of fixed-point codes, a base component with the stall rule, and a comparison tree."""

from amaranth.hdl import Mux, Signal, Value
from amaranth.lib import data, stream, wiring

from .cast import fixed_shape
from .pipeline import pipeline_advance
from .unused import discard

__all__ = ["vector_signature", "VectorPipeline", "stage_register", "argmax_tree",
           "argmax_level"]


def vector_signature(fmt, n):
    """The stream signature of a vector of ``n`` raw codes of ``fmt``:
    ``stream.Signature(ArrayLayout(fixed_shape(fmt), n))``."""
    return stream.Signature(data.ArrayLayout(fixed_shape(fmt), n))


class VectorPipeline(wiring.Component):
    """Base of a pipeline from stream ``i`` to stream ``o`` that stalls as a whole
    (:func:`~nnfab.hdl.pipeline.pipeline_advance`), II = 1.

    Subclasses check their parameters through ``_validated(check)`` (a rejected design raises
    without an "unused elaboratable" warning), get the stall signal from ``_advance(m)`` and
    registers that load on it from ``_stages(m, n_stages)``.

    Attributes
    ----------
    initiation_interval : int
        1 cycle.
    """

    def _validated(self, check):
        try:
            return check()
        except (TypeError, ValueError):
            discard(self)  # a rejected design is not an unused one
            raise

    def _advance(self, m):
        return pipeline_advance(m, self.o, self.i)

    def _stages(self, m, n_stages):
        """The stall signal, a valid bit carried through ``n_stages`` registers to ``o.valid``,
        and ``register(expr, name)``: ``expr`` registered while the pipeline advances."""
        advance = self._advance(m)
        valid = [Signal(name=f"valid_{s}") for s in range(1, n_stages)]
        with m.If(advance):
            m.d.sync += valid[0].eq(self.i.valid)
            m.d.sync += [later.eq(earlier) for earlier, later in zip(valid, valid[1:])]
            m.d.sync += self.o.valid.eq(valid[-1])

        return advance, stage_register(m, advance)

    @property
    def initiation_interval(self):
        return 1


def stage_register(m, advance):
    """``register(expr, name)``: a signal of ``expr``'s shape, named ``name``, that loads
    ``expr`` in every cycle the pipeline advances (``advance`` high)."""
    def register(expr, name):
        reg = Signal(Value.cast(expr).shape(), name=name)
        with m.If(advance):
            m.d.sync += reg.eq(expr)
        return reg
    return register


def argmax_tree(items):
    """Reduce ``(value, index)`` pairs to the first maximum: the right group wins only when its
    maximum is strictly greater than the left group's. Combinational, ``ceil(log2(n))``
    comparator levels.

    Parameters
    ----------
    items : list of (Value, Value)
        Non-empty.

    Returns
    -------
    (Value, Value)
        The maximum and its index.
    """
    while len(items) > 1:
        items = argmax_level(items)
    return items[0]


def argmax_level(items):
    """One comparator level of :func:`argmax_tree`: the pairs of ``items`` reduced to their
    first maximum, an odd last item passed on."""
    reduced = []
    for a in range(0, len(items) - 1, 2):
        (av, ai), (bv, bi) = items[a], items[a + 1]
        greater = bv > av
        reduced.append((Mux(greater, bv, av), Mux(greater, bi, ai)))
    if len(items) % 2:
        reduced.append(items[-1])
    return reduced
