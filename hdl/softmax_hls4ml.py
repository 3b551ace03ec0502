"""hls4ml's "stable" softmax in hardware, bit-exact with hls4ml 1.3's C++.

The arithmetic is hls4ml 1.3's ``nnet::softmax_stable`` (``templates/vivado/nnet_utils/
nnet_activation.h``), specified in :mod:`nnfab.softmax_hls4ml` and, bit for bit, by the golden
model :func:`nnfab.sim.golden.softmax_hls4ml.softmax_hls4ml`.
"""

from amaranth.hdl import C, Module, Signal
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.softmax_hls4ml import check_hls4ml_softmax, reduce_order
from nnfab.tables import quantize_exact

from .cast import fit_shape, fixed_shape, requantize
from .vector_pipeline import VectorPipeline, argmax_tree, vector_signature

__all__ = ["Hls4mlSoftmax"]


class Hls4mlSoftmax(VectorPipeline):
    """hls4ml's stable softmax of a vector stream, pipelined, II = 1.

    Six register stages, one cycle each; the pipeline stalls as a whole under back-pressure
    and never drops or duplicates a transfer:

    1. the maximum (a comparison tree), and the inputs alongside;
    2. exp ROM read, one read port per element, at the top ``exp_index_width`` bits of
       ``(max - x_i) mod 2**W'`` (the low bits of a subtraction). The ROM holds the exp table
       entries already cast to ``accum_format`` (hls4ml's ``exp_res_i``), so that cast costs no
       logic;
    3. the sum: hls4ml's reduction tree (:func:`nnfab.softmax_hls4ml.reduce_order`), every
       addition cast to ``accum_format`` with its overflow mode;
    4. inverse ROM read, at the top ``inv_index_width`` bits of the sum cast to
       ``inv_input_format``;
    5. the exact products ``exp_res_i * inv``;
    6. their cast to ``output_format``.

    Parameters
    ----------
    spec : Hls4mlSoftmaxSpec
        Formats, table sizes and ``n``; see :mod:`nnfab.softmax_hls4ml`.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(fixed_shape(spec.input_format), spec.n)))``
    o : ``Out(stream.Signature(ArrayLayout(fixed_shape(spec.output_format), spec.n)))``

    Attributes
    ----------
    latency : int
        6 cycles from an accepted input to its output being valid.
    initiation_interval : int
        1 cycle.

    Raises
    ------
    TypeError
        If ``spec`` is not an :class:`~nnfab.softmax_hls4ml.Hls4mlSoftmaxSpec`.
    """

    def __init__(self, spec):
        self._spec = self._validated(lambda: check_hls4ml_softmax(spec))
        super().__init__({"i": In(vector_signature(spec.input_format, spec.n)),
                          "o": Out(vector_signature(spec.output_format, spec.n))})

    def __repr__(self):
        return f"Hls4mlSoftmax({self._spec!r})"

    @property
    def spec(self):
        return self._spec

    @property
    def n(self):
        return self._spec.n

    @property
    def latency(self):
        return 6

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        n, accum = spec.n, spec.accum_format
        advance, register = self._stages(m, self.latency)

        # Stage 1: the maximum, and the inputs alongside.
        x = [self.i.payload[k] for k in range(n)]
        peak, _ = argmax_tree([(value, C(0, 1)) for value in x])
        peak = register(peak, "peak")
        x1 = [register(value, f"x1_{k}") for k, value in enumerate(x)]

        # Stage 2: exp ROM, holding exp_table_t entries cast to accum_t.
        exp_format = spec.exp_table_format
        m.submodules.exp_table = exp_rom = Memory(
            shape=fixed_shape(accum), depth=spec.exp_table_size,
            init=[quantize_exact(exp_format.value(code), accum)
                  for code in spec.exp_table_codes])
        exps = []
        for k in range(n):
            port = exp_rom.read_port(domain="sync")
            address = (peak - x1[k])[spec.exp_index_shift:spec.norm_format.width]
            m.d.comb += [port.addr.eq(address), port.en.eq(advance)]
            exp = Signal(fixed_shape(accum), name=f"e{k}")
            m.d.comb += exp.eq(port.data)
            exps.append(exp)

        # Stage 3: the sum, in hls4ml's tree order.
        sum_format = accum.add_format(accum)

        def reduce(node):
            """The sum of a subtree, and its first and last leaf."""
            if isinstance(node, int):
                return exps[node], node, node
            (left, first, _), (right, _, last) = reduce(node[0]), reduce(node[1])
            # A named node: the cast refers to its operand several times, and nested casts
            # would otherwise grow exponentially as one expression.
            total = Signal(fixed_shape(accum), name=f"sum_{first}_{last}")
            m.d.comb += total.eq(requantize(fit_shape(left + right, fixed_shape(sum_format)),
                                            src=sum_format, dst=accum))
            return total, first, last

        total = register(reduce(reduce_order(n))[0], "total")
        exps3 = [register(e, f"exp3_{k}") for k, e in enumerate(exps)]

        # Stage 4: inverse ROM.
        m.submodules.inv_table = inv_rom = Memory(
            shape=fixed_shape(spec.inv_table_format), depth=spec.inv_table_size,
            init=spec.inv_table_codes)
        inv_input = requantize(total, src=accum, dst=spec.inv_input_format).as_unsigned()
        port = inv_rom.read_port(domain="sync")
        m.d.comb += [
            port.addr.eq(inv_input[spec.inv_index_shift:spec.inv_input_format.width]),
            port.en.eq(advance),
        ]
        exps4 = [register(e, f"exp4_{k}") for k, e in enumerate(exps3)]

        # Stage 5: products; stage 6: the cast.
        product_format = accum.mul_format(spec.inv_table_format)
        products = [register(fit_shape(e * port.data, fixed_shape(product_format)), f"product_{k}")
                    for k, e in enumerate(exps4)]
        with m.If(advance):
            m.d.sync += [self.o.payload[k].eq(requantize(products[k], src=product_format,
                                                         dst=spec.output_format))
                         for k in range(n)]
        return m
