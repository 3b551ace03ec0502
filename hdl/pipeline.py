"""The stall rules of nnfab pipelines: a pipeline that stalls as a whole, or a free-running one
whose output skid FIFO takes the back-pressure."""

from amaranth.hdl import Elaboratable, Module, Signal, Value
from amaranth.lib.fifo import SyncFIFO

__all__ = ["OneEntryFIFO", "pipeline_advance", "skid_output", "skid_depth",
           "free_running_output"]


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


class OneEntryFIFO(Elaboratable):
    """``SyncFIFO(width=width, depth=1)`` as one register and a full bit: the same ports
    (``w_data``, ``w_en``, ``w_rdy``, ``r_data``, ``r_en``, ``r_rdy``, ``level``) and the same
    behaviour cycle for cycle (a write is readable the next cycle; full, it takes no write;
    ``r_data`` is valid while ``r_rdy``). Amaranth's one-entry ``SyncFIFO`` has zero-width
    addresses, which its Verilog back end writes as ``[-1:0]`` vectors: Verilator refuses them
    (ASCRANGE) and other tools read them as two bits.

    Parameters
    ----------
    width : int
        Bits of an entry.
    """

    def __init__(self, width):
        self.width, self.depth = width, 1
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.w_rdy = Signal()
        self.r_data = Signal(width, reset_less=True)
        self.r_en = Signal()
        self.r_rdy = Signal()
        self.level = Signal(range(2))

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        m.d.comb += [self.w_rdy.eq(~full), self.r_rdy.eq(full), self.level.eq(full)]
        with m.If(self.w_en & ~full):
            m.d.sync += [self.r_data.eq(self.w_data), full.eq(1)]
        with m.Elif(self.r_en & full):
            m.d.sync += full.eq(0)
        return m


def skid_depth(latency, initiation_interval=1):
    """Transfers a free-running pipeline of ``latency`` cycles that takes one every
    ``initiation_interval`` cycles must hold to keep its full rate (its credit):
    ``floor(latency / II) + 1``. In the cycle a transfer is accepted, the credit counter (a
    register) still counts every earlier one whose output is valid in that cycle or later,
    ``floor(latency / II)`` of them at full rate (``latency`` at II = 1: one per stage,
    the oldest leaving in that cycle). The output register holds one, the skid FIFO the
    others."""
    return latency // initiation_interval + 1


def skid_output(m, i, o, *, valid, payload, latency, initiation_interval=1, accept=None,
                payload_holds=False, name="skid"):
    """The end of a free-running pipeline: its registers load every cycle (no enable), a valid
    bit travels beside the data, and an output register with a skid FIFO behind it absorbs
    the back-pressure.

    ``valid`` and ``payload`` are the last stage's result (combinational); the output
    register, the pipeline's last, takes it when it is empty or being read and the FIFO is
    empty, else the FIFO does; the register reloads from the FIFO first, so results leave in
    order. The input is ready while fewer than ``skid_depth(latency, initiation_interval)``
    transfers are in flight (a credit counter: accepted at ``i`` and not yet taken at ``o``)
    and ``accept`` is high, so the FIFO, one entry less deep, never overflows, whatever the
    output's stall pattern; at full rate the pipeline takes one transfer every
    ``initiation_interval`` cycles. ``o.valid`` and ``o.payload`` come straight from
    registers; ``i.ready`` from the credit counter and ``accept`` (no combinational path from
    ``o.ready``).

    A pipeline whose result stays in place after its valid cycle until the next transfer
    is accepted (``payload_holds``: a folded engine's accumulators and held slots) needs no
    FIFO when its credit is two (``latency < 2 * II``): the second result waits in place,
    and a pending bit tells the output register to take it, because no third transfer can
    be accepted before the first is taken.

    Parameters
    ----------
    m : Module
    i : the input stream interface (``valid``, ``ready``): ``ready`` is driven here. The
        pipeline's first stage must take ``i.payload`` with ``i.valid & i.ready`` as its valid
        bit.
    o : the output stream interface: ``valid`` and ``payload`` are driven here.
    valid : Value
        Valid bit of the result entering the output register, ``latency - 1`` register stages
        after ``i``.
    payload : Value
        The result, as wide as ``o.payload``.
    latency : int, >= 1
        Register stages from ``i`` to ``o``, the output register included.
    initiation_interval : int, >= 1
        Cycles between transfers the pipeline takes at full rate (a folded engine's reuse
        factor): fewer are in flight, so the credit and the FIFO are smaller.
    accept : Value or None
        The pipeline's own condition for taking an input (a folded engine: its last beat),
        from registers only, or None (always).
    payload_holds : bool
        The payload stays as it is from its valid cycle until the next transfer is accepted
        (above).
    name : str
        Prefix of the FIFO submodule and of the signals made here.

    Returns
    -------
    SyncFIFO or OneEntryFIFO or None
        The skid FIFO (a submodule of ``m``; one entry: :class:`OneEntryFIFO`), or None when
        the held payload takes its place.
    """
    depth = skid_depth(latency, initiation_interval)
    payload = Value.cast(payload)
    in_flight = Signal(range(depth + 1), name=f"{name}_in_flight")
    out_valid = Signal(name=f"{name}_out_valid")
    out_data = Signal(len(payload), name=f"{name}_out", reset_less=True)
    accepted, taken = i.valid & i.ready, o.valid & o.ready
    with m.If(accepted & ~taken):
        m.d.sync += in_flight.eq(in_flight + 1)
    with m.Elif(taken & ~accepted):
        m.d.sync += in_flight.eq(in_flight - 1)
    load = Signal(name=f"{name}_load")  # the output register is empty or being read
    m.d.comb += [
        load.eq(~out_valid | o.ready),
        i.ready.eq((in_flight != depth) & (1 if accept is None else accept)),
        o.valid.eq(out_valid),
        o.payload.eq(out_data),
    ]
    if payload_holds and depth == 2:
        pending = Signal(name=f"{name}_pending")  # a result waits in place
        with m.If(load):
            m.d.sync += [out_valid.eq(valid | pending), out_data.eq(payload), pending.eq(0)]
        with m.Elif(valid):
            m.d.sync += pending.eq(1)
        return None
    fifo = (SyncFIFO(width=len(payload), depth=depth - 1) if depth > 2
            else OneEntryFIFO(len(payload)))
    m.submodules[f"{name}_fifo"] = fifo
    with m.If(load):
        with m.If(fifo.r_rdy):
            m.d.sync += [out_valid.eq(1), out_data.eq(fifo.r_data)]
        with m.Else():
            m.d.sync += [out_valid.eq(valid), out_data.eq(payload)]
    m.d.comb += [
        fifo.r_en.eq(load),
        fifo.w_en.eq(valid & (fifo.r_rdy | ~load)),
        fifo.w_data.eq(payload),
    ]
    return fifo


def free_running_output(m, i, o, *, payload, latency, name="skid"):
    """The control of a free-running pipeline of ``latency`` register stages from ``i`` to
    ``o`` whose last stage computes ``payload``: the valid bit of each transfer accepted at
    ``i`` travels beside the data through ``latency - 1`` registers, and :func:`skid_output`
    (its output register the pipeline's last) takes the back-pressure.

    Returns
    -------
    SyncFIFO or OneEntryFIFO
        The skid FIFO.
    """
    valid = i.valid & i.ready
    for cut in range(1, latency):
        reg = Signal(name=f"valid_s{cut}")
        m.d.sync += reg.eq(valid)
        valid = reg
    return skid_output(m, i, o, valid=valid, payload=payload, latency=latency, name=name)
