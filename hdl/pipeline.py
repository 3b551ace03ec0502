"""The stall rule every nnfab pipeline follows."""

from amaranth.hdl import Signal

__all__ = ["pipeline_advance"]


def pipeline_advance(m, o, *inputs):
    """The advance signal of a pipeline that stalls as a whole: high when the output register is
    empty or being read (``~o.valid | o.ready``). Every register of the pipeline loads only when
    it is high, so back-pressure never drops or duplicates a transfer; each stream in
    ``inputs`` is ready exactly then.

    Parameters
    ----------
    m : Module
    o : the output stream interface (``valid``, ``ready``)
    *inputs : stream interfaces whose ``ready`` is driven with the advance signal

    Returns
    -------
    Signal
    """
    advance = Signal()
    m.d.comb += advance.eq(~o.valid | o.ready)
    m.d.comb += [stream.ready.eq(advance) for stream in inputs]
    return advance
