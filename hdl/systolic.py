"""Weight-stationary systolic array for matrix-vector products with weights loaded at run time."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.layers import mac_accumulator_format

from .cast import fixed_shape, requantize
from .unused import discard

__all__ = ["SystolicMatVec"]


class SystolicMatVec(wiring.Component):
    """``y = cast(W @ x)`` on a weight-stationary systolic array of ``n_in x n_out`` processing
    elements, with ``W`` (``n_out x n_in``) loaded at run time.

    Processing element ``(i, j)`` holds ``W[j, i]``. Input element ``x_i`` enters row ``i``
    delayed by ``i`` cycles (input skew) and moves one column right per cycle; the partial sum
    of output ``j`` moves one row down per cycle, adding ``W[j, i] * x_i`` in row ``i`` (H. T.
    Kung, "Why systolic architectures?", IEEE Computer 15(1), 1982). Outputs are de-skewed so a
    whole vector leaves at once. The arithmetic equals :class:`~nnfab.layers.DenseSpec`'s
    without a bias: exact products, an exact sum (or an explicit accumulator's cast and wrap),
    then the output cast. Golden model: :func:`nnfab.sim.golden.dense.dense` (or
    :func:`~nnfab.sim.golden.dense.dense_accumulate` without an output format).

    Weights load through ``w``, ``n_in * n_out`` codes in row-major order of ``W`` (``W[0, 0]``
    first); they shift through a chain of weight registers, so a load is complete after exactly
    that many transfers. A load takes priority over input vectors: ``w`` waits until no vector
    is in flight, and ``i`` waits until a started load is complete.

    Parameters
    ----------
    n_in, n_out : int, >= 1
    input_format, weight_format : FixedFormat
    accumulator_format : FixedFormat or None
        None sums exactly (see :func:`nnfab.layers.mac_accumulator_format`).
    output_format : FixedFormat or None
        Cast applied to each sum; None outputs the accumulator codes.

    Members
    -------
    w : ``In(stream.Signature(fixed_shape(weight_format)))``
    i : ``In(stream.Signature(data.ArrayLayout(fixed_shape(input_format), n_in)))``
    o : ``Out(stream.Signature(data.ArrayLayout(fixed_shape(output), n_out)))``

    Attributes
    ----------
    latency : int
        ``n_in + n_out`` cycles from an accepted vector to its output being valid.
    initiation_interval : int
        1 vector per cycle.

    Raises
    ------
    TypeError, ValueError
        For non-integer or non-positive sizes and non-FixedFormat formats.
    """

    def __init__(self, *, n_in, n_out, input_format, weight_format, accumulator_format=None,
                 output_format=None):
        def reject(error):
            discard(self)  # a rejected design is not an unused one
            raise error

        for name, value in (("N in", n_in), ("N out", n_out)):
            if not isinstance(value, int) or isinstance(value, bool):
                reject(TypeError(f"{name} must be an integer, not {value!r}"))
            if value < 1:
                reject(ValueError(f"{name} must be a positive integer, not {value!r}"))
        for name, fmt, optional in (("Input format", input_format, False),
                                    ("Weight format", weight_format, False),
                                    ("Accumulator format", accumulator_format, True),
                                    ("Output format", output_format, True)):
            if not isinstance(fmt, FixedFormat) and not (optional and fmt is None):
                reject(TypeError(f"{name} must be a FixedFormat, not {fmt!r}"))
        self._n_in, self._n_out = n_in, n_out
        self._input_format, self._weight_format = input_format, weight_format
        self._accumulator = mac_accumulator_format(input_format, weight_format, n_in,
                                                   accumulator_format)
        self._output_format = output_format
        output = output_format if output_format is not None else self._accumulator
        super().__init__({
            "w": In(stream.Signature(fixed_shape(weight_format))),
            "i": In(stream.Signature(data.ArrayLayout(fixed_shape(input_format), n_in))),
            "o": Out(stream.Signature(data.ArrayLayout(fixed_shape(output), n_out))),
        })

    def __repr__(self):
        return (f"SystolicMatVec(n_in={self._n_in}, n_out={self._n_out}, "
                f"accumulator={self._accumulator}, output_format={self._output_format})")

    @property
    def accumulator(self):
        return self._accumulator

    @property
    def latency(self):
        return self._n_in + self._n_out

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        n_in, n_out = self._n_in, self._n_out
        in_shape, w_shape = fixed_shape(self._input_format), fixed_shape(self._weight_format)
        acc_format = self._accumulator
        acc_shape = fixed_shape(acc_format)
        product_format = self._input_format.mul_format(self._weight_format)

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # Valid bits of the vectors in flight, one per register stage before the output.
        stages = n_in + n_out - 1
        in_flight = [Signal(name=f"valid{k}") for k in range(stages)]
        load_index = Signal(range(n_in * n_out + 1))
        m.d.comb += [
            self.w.ready.eq(~(self.o.valid | Cat(*in_flight).any())),
            self.i.ready.eq(advance & (load_index == 0) & ~self.w.valid),
        ]

        # Weight chain: W[0, 0] enters first and ends at the far end of the chain.
        chain = [Signal(w_shape, name=f"w_chain{n}") for n in range(n_in * n_out)]
        with m.If(self.w.valid & self.w.ready):
            m.d.sync += chain[0].eq(self.w.payload)
            m.d.sync += [chain[n].eq(chain[n - 1]) for n in range(1, n_in * n_out)]
            m.d.sync += load_index.eq(Mux(load_index == n_in * n_out - 1, 0, load_index + 1))

        def weight(i, j):  # W[j, i]: loaded at position j * n_in + i, pushed to the far end
            return chain[n_in * n_out - 1 - (j * n_in + i)]

        # Valid pipeline.
        with m.If(advance):
            m.d.sync += in_flight[0].eq(self.i.valid & self.i.ready)
            m.d.sync += [in_flight[k].eq(in_flight[k - 1]) for k in range(1, stages)]
            m.d.sync += self.o.valid.eq(in_flight[-1])

        # Input skew: x_i reaches processing element (i, 0) i cycles after acceptance.
        row_inputs = []
        for i in range(n_in):
            value = self.i.payload[i]
            for d in range(i):
                reg = Signal(in_shape, name=f"skew{i}_{d}")
                with m.If(advance):
                    m.d.sync += reg.eq(value)
                value = reg
            row_inputs.append(value)

        # The array.
        column_sums = []
        for j in range(n_out):
            psum = None
            for i in range(n_in):
                x = row_inputs[i]
                x_next = Signal(in_shape, name=f"x{i}_{j}")
                product = Signal(fixed_shape(product_format), name=f"p{i}_{j}")
                m.d.comb += product.eq(x * weight(i, j))
                if acc_format.holds(product_format):
                    term = product << (acc_format.fraction_width - product_format.fraction_width)
                else:
                    term = requantize(product, src=product_format, dst=acc_format)
                new_psum = Signal(acc_shape, name=f"psum{i}_{j}")
                with m.If(advance):
                    m.d.sync += [x_next.eq(x), new_psum.eq(term if psum is None else psum + term)]
                row_inputs[i] = x_next
                psum = new_psum
            # De-skew: column j is ready j cycles after column 0.
            for d in range(n_out - 1 - j):
                reg = Signal(acc_shape, name=f"deskew{j}_{d}")
                with m.If(advance):
                    m.d.sync += reg.eq(psum)
                psum = reg
            column_sums.append(psum)

        with m.If(advance):
            for j, total in enumerate(column_sums):
                if self._output_format is None:
                    m.d.sync += self.o.payload[j].eq(total)
                else:
                    m.d.sync += self.o.payload[j].eq(
                        requantize(total, src=acc_format, dst=self._output_format))
        return m

