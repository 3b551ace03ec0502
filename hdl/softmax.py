"""Look-up-table softmax of a vector stream (hls4ml's "stable" softmax, exact integers):
:class:`Softmax`; the golden model is :func:`nnfab.sim.golden.activations.softmax`, its
parameters checked by :func:`nnfab.activation_params.check_softmax`."""

from amaranth.hdl import C, Module, Mux
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.activation_params import check_softmax

from .cast import fit_shape, fixed_shape, floor_shift, requantize
from .vector_pipeline import VectorPipeline, argmax_tree, vector_signature

__all__ = ["Softmax", "SOFTMAX_LATENCY"]

#: Latency of :class:`Softmax` at any size (its six pipeline stages).
SOFTMAX_LATENCY = 6


def _sum_tree(values):
    while len(values) > 1:
        values = [values[a] + values[a + 1] for a in range(0, len(values) - 1, 2)] + \
            ([values[-1]] if len(values) % 2 else [])
    return values[0]


class Softmax(VectorPipeline):
    """Look-up-table softmax of a vector stream (hls4ml's "stable" softmax, exact integers).

    With ``x`` the ``n`` input codes (format ``fin``, fraction width ``F``), the exp table
    ``(N1 entries, format Fe)`` and the reciprocal table ``(N2 entries)``
    (:mod:`nnfab.tables`):

    1. ``m = max(x)``; ``t_i = m - x_i >= 0`` exact;
    2. ``E_i = exp_table.codes[min(floor(t_i * 2**e1), N1 - 1)]``,
       ``e1 = exp_table.index_exponent(F)``;
    3. ``S = sum(E_i)`` exact;
    4. ``r = inv_table.codes[min(floor(S * 2**e2), N2 - 1)]``,
       ``e2 = inv_table.index_exponent(Fe)``;
    5. ``y_i = cast(E_i * r, fout)`` from the exact product format.

    Pipeline, one stage per cycle, II = 1: max tree; exp ROM read (one read port per element);
    adder tree; reciprocal ROM read; products; cast. Latency 6.

    Parameters
    ----------
    n : int, >= 1
    fin, fout : FixedFormat
    exp_table, inv_table : LookupTable, optional
        Defaults as :func:`nnfab.activation_params.check_softmax`.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(fixed_shape(fin), n)))``
    o : ``Out(stream.Signature(ArrayLayout(fixed_shape(fout), n)))``

    Raises
    ------
    TypeError, ValueError
        As :func:`nnfab.activation_params.check_softmax`.
    """

    def __init__(self, *, n, fin, fout, exp_table=None, inv_table=None):
        self._exp, self._inv = self._validated(lambda: check_softmax(
            n=n, fin=fin, fout=fout, exp_table=exp_table, inv_table=inv_table))
        self._n, self._fin, self._fout = n, fin, fout
        super().__init__({"i": In(vector_signature(fin, n)),
                          "o": Out(vector_signature(fout, n))})

    def __repr__(self):
        return f"Softmax(n={self._n}, fin={self._fin!r}, fout={self._fout!r})"

    @property
    def n(self):
        return self._n

    @property
    def fin(self):
        return self._fin

    @property
    def fout(self):
        return self._fout

    @property
    def exp_table(self):
        return self._exp

    @property
    def inv_table(self):
        return self._inv

    @property
    def latency(self):
        return SOFTMAX_LATENCY

    def elaborate(self, platform):
        m = Module()
        n, fin, exp_t, inv_t = self._n, self._fin, self._exp, self._inv
        advance, register = self._stages(m, self.latency)

        # Stage 1: the maximum, and the inputs alongside.
        x = [self.i.payload[k] for k in range(n)]
        peak, _ = argmax_tree([(value, C(0, 1)) for value in x])
        peak = register(peak, "peak")
        x1 = [register(value, f"x1_{k}") for k, value in enumerate(x)]
        # Stage 2: exp ROM.
        m.submodules.exp_table = exp_rom = Memory(
            shape=fixed_shape(exp_t.table_format), depth=exp_t.table_size, init=exp_t.codes)
        e1 = exp_t.index_exponent(fin.fraction_width)
        exps = []
        for k in range(n):
            index = floor_shift(peak - x1[k], e1)
            port = exp_rom.read_port(domain="sync")
            m.d.comb += [
                port.addr.eq(Mux(index > exp_t.table_size - 1, exp_t.table_size - 1,
                                 index)[:exp_t.index_width]),
                port.en.eq(advance),
            ]
            exps.append(port.data)
        # Stage 3: the sum.
        total = register(_sum_tree(list(exps)), "total")
        exps3 = [register(e, f"exp3_{k}") for k, e in enumerate(exps)]
        # Stage 4: reciprocal ROM.
        m.submodules.inv_table = inv_rom = Memory(
            shape=fixed_shape(inv_t.table_format), depth=inv_t.table_size, init=inv_t.codes)
        index = floor_shift(total, inv_t.index_exponent(exp_t.table_format.fraction_width))
        port = inv_rom.read_port(domain="sync")
        m.d.comb += [
            port.addr.eq(Mux(index > inv_t.table_size - 1, inv_t.table_size - 1,
                             index)[:inv_t.index_width]),
            port.en.eq(advance),
        ]
        exps4 = [register(e, f"exp4_{k}") for k, e in enumerate(exps3)]
        # Stage 5: products; stage 6: the cast.
        product_format = exp_t.table_format.mul_format(inv_t.table_format)
        products = [register(fit_shape(e * port.data, fixed_shape(product_format)), f"product_{k}")
                    for k, e in enumerate(exps4)]
        with m.If(advance):
            m.d.sync += [self.o.payload[k].eq(requantize(products[k], src=product_format,
                                                         dst=self._fout))
                         for k in range(n)]
        return m
