"""Multiply-accumulate processing elements and an output-stationary MAC array."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.layers import mac_accumulator_format

from .cast import fixed_shape, requantize
from .pipeline import pipeline_advance

__all__ = ["MacPE", "MacArray"]


def _check_formats(reject, **formats):
    for name, fmt in formats.items():
        if fmt is not None and not isinstance(fmt, FixedFormat):
            reject(TypeError(f"{name.replace('_', ' ').capitalize()} must be a FixedFormat, "
                             f"not {fmt!r}"))


def _check_positive(reject, **values):
    for name, value in values.items():
        label = name.replace("_", " ").capitalize()
        if not isinstance(value, int) or isinstance(value, bool):
            reject(TypeError(f"{label} must be an integer, not {value!r}"))
        if value < 1:
            reject(ValueError(f"{label} must be a positive integer, not {value!r}"))


class _Checked(wiring.Component):
    def _reject(self, error):
        self._MustUse__silence = True  # a rejected design is not an unused one
        raise error


class MacPE(_Checked):
    """One multiply-accumulate processing element: ``acc = (first ? 0 : acc) + a * b``.

    The product is registered (so synthesis can use a multiplier block's output register),
    then added to the accumulator. Every register advances only when ``en`` is high, so a
    surrounding pipeline stalls the element as a whole.

    Parameters
    ----------
    a_format, b_format : FixedFormat
        Operand formats.
    accumulator_format : FixedFormat
        Format of ``acc``. If it is wider than the exact product sum it never overflows; an
        explicit narrower format gets every product cast to it (its rounding and overflow
        modes) and the sum wraps.

    Members
    -------
    en : ``In(1)``
        Advance the pipeline.
    valid : ``In(1)``
        ``a`` and ``b`` carry a product to accumulate this cycle.
    first : ``In(1)``
        This product starts a new sum.
    a : ``In(fixed_shape(a_format))``
    b : ``In(fixed_shape(b_format))``
    acc : ``Out(fixed_shape(accumulator_format))``
        The sum, 2 advancing cycles after its last product.

    Attributes
    ----------
    latency : int
        2: from a product on the inputs to the sum including it on ``acc``.
    """

    def __init__(self, *, a_format, b_format, accumulator_format):
        _check_formats(self._reject, a_format=a_format, b_format=b_format,
                       accumulator_format=accumulator_format)
        self._a_format = a_format
        self._b_format = b_format
        self._accumulator_format = accumulator_format
        super().__init__({
            "en": In(1),
            "valid": In(1),
            "first": In(1),
            "a": In(fixed_shape(a_format)),
            "b": In(fixed_shape(b_format)),
            "acc": Out(fixed_shape(accumulator_format)),
        })

    @property
    def latency(self):
        return 2

    def elaborate(self, platform):
        m = Module()
        product_format = self._a_format.mul_format(self._b_format)
        product = Signal(fixed_shape(product_format))
        product_valid, product_first = Signal(), Signal()
        with m.If(self.en):
            m.d.sync += [product.eq(self.a * self.b), product_valid.eq(self.valid),
                         product_first.eq(self.first)]
        acc_format = self._accumulator_format
        shift = acc_format.fraction_width - product_format.fraction_width
        term = (product << shift) if acc_format.holds(product_format) else \
            requantize(product, src=product_format, dst=acc_format)
        with m.If(self.en & product_valid):
            m.d.sync += self.acc.eq(Mux(product_first, 0, self.acc) + term)
        return m


class MacArray(_Checked):
    """Output-stationary array of rows x columns MAC processing elements: an outer-product
    accumulator, ``C[r, c] = sum over beats of a[r] * b[c]``, for matrix products.

    Each input beat carries a column of ``A`` (``a``, ``rows`` elements) and a row of ``B``
    (``b``, ``columns`` elements); a beat with ``last`` set ends the sum, and the next beat
    starts a new one. The result is the matrix ``C`` (``rows * columns`` elements, row-major)
    in the accumulator format, one output per sum. The golden model is
    :func:`nnfab.sim.golden.mac.mac_array`.

    Parameters
    ----------
    rows, columns : int, >= 1
        Array size: ``rows * columns`` processing elements.
    a_format, b_format : FixedFormat
    max_terms : int, >= 1
        Longest sum, in beats; sizes the exact accumulator (ignored with an explicit one).
        A longer sum wraps.
    accumulator_format : FixedFormat or None
        See :func:`nnfab.layers.mac_accumulator_format`.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"a": ArrayLayout(a, rows), "b": ArrayLayout(b,
        columns), "last": 1})))``
    o : ``Out(stream.Signature(ArrayLayout(fixed_shape(accumulator), rows * columns)))``

    Attributes
    ----------
    latency : int
        3 cycles from the accepted ``last`` beat to the output being valid.
    initiation_interval : int
        1 beat per cycle; one output per sum.

    Raises
    ------
    TypeError, ValueError
        For non-integer or non-positive sizes and non-FixedFormat formats.
    """

    def __init__(self, *, rows, columns, a_format, b_format, max_terms,
                 accumulator_format=None):
        _check_positive(self._reject, rows=rows, columns=columns, max_terms=max_terms)
        _check_formats(self._reject, a_format=a_format, b_format=b_format,
                       accumulator_format=accumulator_format)
        self._rows, self._columns = rows, columns
        self._a_format, self._b_format = a_format, b_format
        self._accumulator = mac_accumulator_format(a_format, b_format, max_terms,
                                                   accumulator_format)
        beat = data.StructLayout({
            "a": data.ArrayLayout(fixed_shape(a_format), rows),
            "b": data.ArrayLayout(fixed_shape(b_format), columns),
            "last": 1,
        })
        super().__init__({
            "i": In(stream.Signature(beat)),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(self._accumulator),
                                                       rows * columns))),
        })

    def __repr__(self):
        return (f"MacArray(rows={self._rows}, columns={self._columns}, "
                f"accumulator={self._accumulator})")

    @property
    def accumulator(self):
        return self._accumulator

    @property
    def latency(self):
        return 3

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_advance(m, self.o, self.i)

        # Stage 1: operand registers, and whether the beat starts a sum.
        starts_sum = Signal(init=1)
        s1 = Signal.like(self.i.payload)
        s1_valid, s1_first = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [s1.eq(self.i.payload), s1_valid.eq(self.i.valid),
                         s1_first.eq(starts_sum)]
            with m.If(self.i.valid):
                m.d.sync += starts_sum.eq(self.i.payload.last)

        # Stages 2 and 3: the processing elements; a sum is complete with its last beat.
        s2_last, s3_done = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [s2_last.eq(s1_valid & s1.last), s3_done.eq(s2_last)]
        for r in range(self._rows):
            for c in range(self._columns):
                pe = MacPE(a_format=self._a_format, b_format=self._b_format,
                           accumulator_format=self._accumulator)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.en.eq(advance), pe.valid.eq(s1_valid), pe.first.eq(s1_first),
                             pe.a.eq(s1.a[r]), pe.b.eq(s1.b[c]),
                             self.o.payload[r * self._columns + c].eq(pe.acc)]
        m.d.comb += self.o.valid.eq(s3_done)
        return m
