"""The stall rules of nnfab pipelines: a pipeline that stalls as a whole, or a free-running one
whose output skid FIFO takes the back-pressure."""

from amaranth.hdl import Mux, Signal, Value
from amaranth.lib.fifo import SyncFIFO

__all__ = ["pipeline_advance", "skid_output", "skid_depth"]


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


def skid_depth(latency):
    """Entries of the skid FIFO of a free-running pipeline of ``latency`` cycles: ``latency +
    1``, the transfers in flight at full rate (one per pipeline stage, plus the one accepted in
    the cycle its predecessor leaves)."""
    return latency + 1


def skid_output(m, i, o, *, valid, payload, latency, name="skid"):
    """The end of a free-running pipeline: its registers load every cycle (no enable), a valid
    bit travels beside the data, and this skid FIFO absorbs the back-pressure.

    The input is ready while fewer than ``skid_depth(latency)`` transfers are in flight (a
    credit counter: accepted at ``i`` and not yet taken at ``o``), so the FIFO, as deep, can
    never overflow, whatever the output's stall pattern; at full rate the pipeline takes one
    transfer a cycle. A result leaves straight from the pipeline's last register when the FIFO
    is empty and ``o`` is ready (the FIFO adds no latency), else it is queued; results leave in
    order. ``o.valid`` depends on registers only; ``i.ready`` on the credit counter only (no
    combinational path from ``o.ready`` to ``i.ready``).

    Parameters
    ----------
    m : Module
    i : the input stream interface (``valid``, ``ready``): ``ready`` is driven here. The
        pipeline's first stage must take ``i.payload`` with ``i.valid & i.ready`` as its valid
        bit.
    o : the output stream interface: ``valid`` and ``payload`` are driven here.
    valid : Value
        Valid bit of the pipeline's last register, ``latency`` cycles after ``i``.
    payload : Value
        Its data, as wide as ``o.payload``.
    latency : int, >= 1
        Register stages from ``i`` to ``valid``.
    name : str
        Prefix of the FIFO submodule and of the credit counter.

    Returns
    -------
    SyncFIFO
        The skid FIFO (a submodule of ``m``).
    """
    depth = skid_depth(latency)
    payload = Value.cast(payload)
    fifo = SyncFIFO(width=len(payload), depth=depth)
    m.submodules[f"{name}_fifo"] = fifo
    in_flight = Signal(range(depth + 1), name=f"{name}_in_flight")
    accepted, taken = i.valid & i.ready, o.valid & o.ready
    with m.If(accepted & ~taken):
        m.d.sync += in_flight.eq(in_flight + 1)
    with m.Elif(taken & ~accepted):
        m.d.sync += in_flight.eq(in_flight - 1)
    m.d.comb += [
        i.ready.eq(in_flight != depth),
        o.valid.eq(fifo.r_rdy | valid),
        o.payload.eq(Mux(fifo.r_rdy, fifo.r_data, payload)),
        fifo.r_en.eq(o.ready),
        fifo.w_en.eq(valid & (fifo.r_rdy | ~o.ready)),
        fifo.w_data.eq(payload),
    ]
    return fifo
