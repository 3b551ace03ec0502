"""TFLite's int8 ``ADD`` in hardware: a join of two int8 vector streams, pipelined, II = 1.

Bit-exact with :func:`nnfab.sim.golden.tflite.add_int8` (``reference_integer_ops::Add``) for
the same :class:`nnfab.tflite_ops.AddParams`.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from nnfab.fixed import FixedFormat
from nnfab.tflite_ops import AddParams

from .cast import fit_shape
from .checked import CheckedComponent, check_count
from .output_stage import multiply_by_quantized_multiplier
from .vector_pipeline import stage_register, vector_signature

__all__ = ["INT8", "AddTfliteEngine"]

#: int8 codes as a format: ``fixed<8,8>``.
INT8 = FixedFormat(8, 8)


def _join_stages(m, inputs, o, n_stages):
    """The handshake and valid chain of a join pipeline that stalls as a whole.

    The pipeline advances when its output register is empty or being read (``~o.valid |
    o.ready``); then, when every input is valid, it reads them all in the same cycle (each
    ``ready`` is ``advance & all valid``, as :class:`nnfab.hdl.join.Add`'s handshake), so the
    inputs are consumed together and none alone.

    Returns ``(advance, register)``: ``register(expr, name)`` is ``expr`` registered while the
    pipeline advances; ``n_stages`` registers, the output one included, carry the valid bit.
    """
    advance, all_valid = Signal(), Signal()
    m.d.comb += [advance.eq(~o.valid | o.ready), all_valid.eq(Cat(i.valid for i in inputs).all())]
    m.d.comb += [i.ready.eq(advance & all_valid) for i in inputs]
    valid = [Signal(name=f"valid_{s}") for s in range(1, n_stages)]
    chain = [all_valid, *valid, o.valid]
    with m.If(advance):
        m.d.sync += [later.eq(earlier) for earlier, later in zip(chain, chain[1:])]

    return advance, stage_register(m, advance)


class AddTfliteEngine(CheckedComponent):
    """TFLite int8 ``ADD`` of two streams of int8 vectors, lane by lane; latency 6 cycles,
    II = 1.

    Every lane computes, as ``reference_integer_ops::AddElementwise``::

        s_k = MultiplyByQuantizedMultiplier((x_k - zero_point_k) << 20, m_k, e_k)   # k = 1, 2
        y = clamp(MultiplyByQuantizedMultiplier(s_1 + s_2, m, e) + zero_point_out, low, high)

    with gemmlowp's double rounding (:func:`nnfab.hdl.output_stage.
    multiply_by_quantized_multiplier`). Stages: 1-2 the input multiplies (product, high
    multiply), 3 the sum (after the rounding divides), 4-5 the output multiply, 6 the output
    register (rounding divide, zero point, clamp). The pipeline stalls as a whole under
    back-pressure; a transfer reads both inputs in the same cycle, when both are valid.

    Parameters
    ----------
    params : AddParams
        Zero points, multipliers, shifts, clamp and left shift (TFLite's, from the tensors'
        scales: :meth:`AddParams.from_scales`).
    lanes : int, >= 1
        Elements per transfer (the channels of a pixel).

    Members
    -------
    i0, i1 : ``In(vector_signature(fixed<8,8>, lanes))``
        Input 1 and input 2 codes (``ADD``'s first and second operands).
    o : ``Out(vector_signature(fixed<8,8>, lanes))``

    Attributes
    ----------
    latency : int
        6 cycles from the inputs accepted to the output valid.
    initiation_interval : int
        1 cycle.

    Raises
    ------
    TypeError
        If ``params`` is not an :class:`AddParams` or ``lanes`` not an integer.
    ValueError
        If ``lanes`` is below 1.
    """

    @staticmethod
    def _check(params, *, lanes):
        if not isinstance(params, AddParams):
            raise TypeError(f"Add parameters must be an AddParams, not {params!r}")
        check_count(lanes, "Lanes", 1)

    def __init__(self, params, *, lanes):
        self._params, self._lanes = params, lanes
        super().__init__({
            "i0": In(vector_signature(INT8, lanes)),
            "i1": In(vector_signature(INT8, lanes)),
            "o": Out(vector_signature(INT8, lanes)),
        })

    def __repr__(self):
        return f"AddTfliteEngine({self._params!r}, lanes={self._lanes})"

    @property
    def params(self):
        return self._params

    @property
    def lanes(self):
        return self._lanes

    @property
    def inputs(self):
        """The input streams in order: ``(i0, i1)``."""
        return self.i0, self.i1

    @property
    def latency(self):
        return 6

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        p = self._params
        advance, register = _join_stages(m, self.inputs, self.o, self.latency)
        (m1, e1), (m2, e2), (m_out, e_out) = p.pairs()
        z1, z2, z_out = p.zero_points
        for j in range(self._lanes):
            scaled = []
            for k, (port, zero_point, mult, shift) in enumerate(
                    ((self.i0, z1, m1, e1), (self.i1, z2, m2, e2)), start=1):
                difference = Signal(signed(10), name=f"difference{k}_{j}")
                m.d.comb += difference.eq(port.payload[j] - zero_point)
                shifted = fit_shape(difference << p.left_shift, signed(32))
                scaled.append(multiply_by_quantized_multiplier(m, shifted, mult, shift, register,
                                                               f"{k}_{j}"))
            total = register(fit_shape(scaled[0] + scaled[1], signed(32)), f"sum_{j}")
            result = multiply_by_quantized_multiplier(m, total, m_out, e_out, register,
                                                      f"out_{j}")
            value = Signal(signed(35), name=f"value_{j}")
            m.d.comb += value.eq(result + z_out)
            clamped = Mux(value < p.low, p.low, Mux(value > p.high, p.high, value))
            with m.If(advance):
                m.d.sync += self.o.payload[j].eq(clamped)
        return m
