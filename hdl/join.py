"""Stream joins for model graphs: one transfer from every input stream at once, merged into
one output transfer, by element-wise sum (:class:`Add`) or by concatenation of the lanes
(:class:`Concatenate`).

A join waits until all inputs are valid and its output register can load, then reads them all
in the same cycle. Paths of different latency into a join need a skip FIFO
(:class:`nnfab.hdl.fork.SkipFifo`). The golden models are :mod:`nnfab.sim.golden.merge`.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat, common_format

from .cast import fixed_shape, requantize
from .checked import CheckedComponent, check_count
from .vector_pipeline import vector_signature
from .wires import comb_wire

__all__ = ["Add", "Concatenate"]


def _check_formats(fins, fout):
    if not isinstance(fins, (tuple, list)):
        raise TypeError(f"Input formats must be a tuple of FixedFormat, not {fins!r}")
    if len(fins) < 2:
        raise ValueError(f"Input formats must name at least 2 inputs, not {len(fins)!r}")
    for fmt in (*fins, fout):
        if not isinstance(fmt, FixedFormat):
            raise TypeError(f"Format must be a FixedFormat, not {fmt!r}")


def _join(m, inputs, o, payload):
    """Registered join: when the output register is empty or being read and every input is
    valid, read every input and load ``payload`` (a Value) into the output register."""
    advance, all_valid = Signal(), Signal()
    m.d.comb += [
        advance.eq(~o.valid | o.ready),
        all_valid.eq(Cat(i.valid for i in inputs).all()),
    ]
    m.d.comb += [i.ready.eq(advance & all_valid) for i in inputs]
    with m.If(advance):
        m.d.sync += [o.valid.eq(all_valid), o.payload.as_value().eq(payload)]


class _Join(CheckedComponent):
    """The members and handshake shared by :class:`Add` and :class:`Concatenate`."""

    def __init__(self, lanes, fins, fout, out_lanes):
        self._lanes, self._fins, self._fout = lanes, fins, fout
        members = {f"i{k}": In(vector_signature(fin, n))
                   for k, (fin, n) in enumerate(zip(fins, lanes))}
        members["o"] = Out(vector_signature(fout, out_lanes))
        super().__init__(members)

    @property
    def n_inputs(self):
        return len(self._fins)

    @property
    def inputs(self):
        """The input streams in order: ``(i0, i1, ...)``."""
        return tuple(getattr(self, f"i{k}") for k in range(self.n_inputs))

    @property
    def fins(self):
        return self._fins

    @property
    def fout(self):
        return self._fout

    @property
    def latency(self):
        return 1

    @property
    def initiation_interval(self):
        return 1

    def _cast(self, m, value, src):
        result = Signal(fixed_shape(self._fout))
        m.d.comb += result.eq(requantize(value, src=src, dst=self._fout, wire=comb_wire(m)))
        return result


class Add(_Join):
    """Join: element-wise sum of two or more streams, ``o = cast(i0 + i1 + ..., fout)``.

    The sum of the inputs' values is exact (binary points aligned, every bit kept, in
    :attr:`sum_format`), then cast once to ``fout`` with its rounding and overflow modes, as
    hls4ml's ``add`` (``res = data1 + data2`` assigned to ``res_T``). The golden model is
    :func:`nnfab.sim.golden.merge.add`.

    A transfer happens when every input is valid and the output register is empty or being
    read; then every input is read in the same cycle. ``i{k}.ready`` depends on every input's
    ``valid`` and on ``o.ready`` combinationally.

    Parameters
    ----------
    lanes : int, >= 1
        Elements per transfer, on every input and the output.
    fins : tuple of FixedFormat, at least 2
        Format of each input.
    fout : FixedFormat
        Output format; its rounding and overflow modes apply.

    Members
    -------
    i0, i1, ... : ``In(stream.Signature(data.ArrayLayout(fixed_shape(fins[k]), lanes)))``
        One per input format; :attr:`inputs` lists them in order.
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(fout), lanes)))``

    Attributes
    ----------
    sum_format : FixedFormat
        The exact sum, :func:`~nnfab.fixed.common_format` of ``fins`` with
        ``ceil(log2(len(fins)))`` more integer bits.
    latency : int
        1 cycle (the output register).
    initiation_interval : int
        1 cycle between transfers at full rate.

    Raises
    ------
    TypeError
        If ``lanes`` is not an integer, ``fins`` not a tuple or list, or a format not a
        FixedFormat.
    ValueError
        If ``lanes`` is below 1 or ``fins`` names fewer than two inputs.
    """

    @staticmethod
    def _check(*, lanes, fins, fout):
        check_count(lanes, "Lanes", 1)
        _check_formats(fins, fout)

    def __init__(self, *, lanes, fins, fout):
        fins = tuple(fins)
        super().__init__((lanes,) * len(fins), fins, fout, lanes)

    def __repr__(self):
        return f"Add(lanes={self.lanes!r}, fins={self._fins!r}, fout={self._fout!r})"

    @property
    def lanes(self):
        return self._lanes[0]

    @property
    def sum_format(self):
        return common_format(self._fins).sum_format(len(self._fins))

    def elaborate(self, platform):
        m = Module()
        exact = self.sum_format
        results = []
        for j in range(self.lanes):
            total = Signal(fixed_shape(exact), name=f"sum{j}")
            m.d.comb += total.eq(sum(i.payload[j] << (exact.fraction_width - fin.fraction_width)
                                     for i, fin in zip(self.inputs, self._fins)))
            results.append(self._cast(m, total, exact))
        _join(m, self.inputs, self.o, Cat(*results))
        return m


class Concatenate(_Join):
    """Join: concatenation of the inputs' lanes, ``o = (cast(i0), cast(i1), ...)`` with input
    0's lanes first (Keras ``Concatenate(axis=-1)``, ONNX ``Concat`` on the channel axis of
    channels-last tensors).

    Each input element is cast to ``fout`` with its rounding and overflow modes, as hls4ml's
    ``concatenate`` assigns every element to ``res_T``; :func:`~nnfab.fixed.common_format`
    of ``fins`` holds every input exactly. The golden model is
    :func:`nnfab.sim.golden.merge.concatenate`. The handshake is :class:`Add`'s.

    Parameters
    ----------
    lanes : tuple of int, each >= 1
        Elements per transfer of each input.
    fins : tuple of FixedFormat, one per input, at least 2
    fout : FixedFormat

    Members
    -------
    i0, i1, ... : ``In(stream.Signature(data.ArrayLayout(fixed_shape(fins[k]), lanes[k])))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(fout), sum(lanes))))``

    Attributes
    ----------
    latency : int
        1 cycle (the output register).
    initiation_interval : int
        1 cycle between transfers at full rate.

    Raises
    ------
    TypeError
        If ``lanes`` is not a tuple or list of integers, ``fins`` not a tuple or list, or a
        format not a FixedFormat.
    ValueError
        If a lane count is below 1, ``fins`` names fewer than two inputs, or ``lanes`` and
        ``fins`` differ in length.
    """

    @staticmethod
    def _check(*, lanes, fins, fout):
        if not isinstance(lanes, (tuple, list)):
            raise TypeError(f"Lanes must be a tuple of integers, one per input, not {lanes!r}")
        for n in lanes:
            check_count(n, "Lanes", 1)
        _check_formats(fins, fout)
        if len(lanes) != len(fins):
            raise ValueError(f"Lanes must give one count per input format ({len(fins)}), not "
                             f"{tuple(lanes)!r}")

    def __init__(self, *, lanes, fins, fout):
        super().__init__(tuple(lanes), tuple(fins), fout, sum(lanes))

    def __repr__(self):
        return f"Concatenate(lanes={self._lanes!r}, fins={self._fins!r}, fout={self._fout!r})"

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        results = [self._cast(m, i.payload[j], fin)
                   for i, fin, n in zip(self.inputs, self._fins, self._lanes) for j in range(n)]
        _join(m, self.inputs, self.o, Cat(*results))
        return m
