"""Activation functions in hardware: combinational "fusable" functions and stream components.

Every activation works on raw codes (see :mod:`nnfab.hdl.cast`): the arithmetic before the final
cast is exact, and the final cast to ``fout`` applies ``fout``'s rounding, then overflow mode,
exactly as :func:`nnfab.casts.cast`. The golden model
:mod:`nnfab.sim.golden.activations` specifies every result bit for bit; parameters are validated
by :func:`nnfab.activation_params.check_activation` (the table softmax is
:mod:`nnfab.hdl.softmax`).

Elementwise activations (``kind``):

================ =================================================================================
``linear``       ``y = cast(x, fout)``
``relu``         ``y = cast(max(x, 0), fout)``: a multiplexer, no arithmetic
``bounded_relu`` ``y = cast(min(max(x, 0), M), fout)``, ``M = relu_max`` (exact); QKeras'
                 ``quantized_relu(bits, integer)`` is ``fout = ufixed<bits,integer>``,
                 ``relu_max = fout.max_value``
``leaky_relu``   ``y = cast(x, fout)`` for ``x >= 0``, ``cast(x * alpha, fout)`` for ``x < 0``
                 (exact product), ``alpha = alpha_code`` in ``alpha_format``
``hard_sigmoid`` ``y = cast(clip(slope * x + offset, 0, 1), fout)``, exact before the cast;
                 ``slope``/``offset`` are ``(FixedFormat, code)`` pairs, by default 0.2 rounded in
                 ``ufixed<18,0,RND>`` (code 52429) and 0.5 (hls4ml's and Keras' constants)
``hard_tanh``    ``y = cast(clip(x, -1, 1), fout)``
``sigmoid``,     ``y = cast(table[j], fout)``, ``j = clamp(floor(x * 2**e) + N/2, 0, N-1)`` on the
``tanh``         code ``x``, ``e = table.index_exponent(fin.fraction_width)``, ``trunc``
                 toward zero for ``index_rounding="zero"`` (hls4ml's index;
                 :mod:`nnfab.tables`); default tables are hls4ml's (N = 1024, ``fixed<18,8>``,
                 R = 8 for sigmoid, 4 for tanh)
``elu``          ``y = cast(x * scale, fout)`` for ``x >= 0`` (exact product), else
                 ``cast(table[j], fout)``, ``j = max(floor(x * 2**e) + N, 0)``: the table holds
                 ``scale * alpha * (exp(x) - 1)`` over ``[-R, 0)`` (:func:`nnfab.tables.elu_table`;
                 SELU is ``alpha = 1.6733``, ``scale = 1.0507``); a table of
                 ``index_rounding="magnitude"`` (hls4ml's selu,
                 :func:`nnfab.tables.hls4ml_selu_table`) is indexed by
                 ``j = min(floor(-x * 2**e), N-1)``
================ =================================================================================
"""

import operator

from amaranth.hdl import Array, C, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from nnfab.activation_params import check_activation, check_count, check_format
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import FixedFormat

from .cast import fit_shape, fixed_shape, floor_shift, requantize
from .fabric_multiplier import fabric_product
from .wires import comb_wire, no_wire
from .timing_model import DEFAULT_CLOCK_MHZ, check_clock, delay_model
from .vector_pipeline import VectorPipeline, argmax_level, argmax_tree, vector_signature

__all__ = ["constant_factor", "has_constant_product", "linear", "relu", "bounded_relu",
           "leaky_relu", "hard_sigmoid", "hard_tanh", "sigmoid", "tanh", "elu", "activation",
           "Activation", "Argmax"]

# -- exact pre-cast arithmetic: (value, format of its codes) --------------------------------------
# ``wire(value, name)`` makes a signal of a value read more than once (see nnfab.hdl.wires).

def _check_value(value, fmt):
    value = Value.cast(value)
    if value.shape() != fixed_shape(fmt):
        raise ValueError(f"Value of shape {value.shape()!r} does not hold codes of {fmt} "
                         f"(expected {fixed_shape(fmt)!r})")
    return value


def _pre_linear(x, p, wire, multiply):
    return x, p.fin


def _pre_relu(x, p, wire, multiply):
    if not p.fin.signed:
        return x, p.fin
    return Mux(x[-1], Const(0, fixed_shape(p.fin)), x), p.fin


def _pre_bounded_relu(x, p, wire, multiply):
    fm = max(0, p.relu_max.denominator.bit_length() - 1)
    f = max(p.fin.fraction_width, fm)
    limit = int(p.relu_max * 2**f)
    aligned = x << (f - p.fin.fraction_width)
    clipped = Mux(aligned < 0, 0, Mux(aligned > limit, limit, aligned))
    width = max(1, limit.bit_length())
    fmt = FixedFormat(width, width - f, signed=False)
    return fit_shape(clipped, fixed_shape(fmt)), fmt


def _pre_leaky_relu(x, p, wire, multiply):
    alpha_format, alpha_code = p.alpha
    fx, fa = p.fin.fraction_width, alpha_format.fraction_width
    f = max(fx, fx + fa)
    positive = x << (f - fx)
    width = max(p.fin.width + f - fx, p.fin.width + alpha_format.width + f - fx - fa) + 1
    fmt = FixedFormat(width, width - f)
    if not p.fin.signed:  # never negative: no product
        return fit_shape(positive, fixed_shape(fmt)), fmt
    negative = multiply(x, Const(alpha_code, fixed_shape(alpha_format))) << (f - fx - fa)
    return fit_shape(wire(Mux(x[-1], negative, positive), "leaky"), fixed_shape(fmt)), fmt


def _pre_hard_sigmoid(x, p, wire, multiply):
    (sf, sc), (of, oc) = p.slope, p.offset
    fp = p.fin.fraction_width + sf.fraction_width
    f = max(fp, of.fraction_width, 0)
    value = wire((multiply(x, Const(sc, fixed_shape(sf))) << (f - fp)) +
                 (Const(oc, fixed_shape(of)) << (f - of.fraction_width)), "affine")
    one = 1 << f
    clipped = Mux(value < 0, 0, Mux(value > one, one, value))
    fmt = FixedFormat(f + 1, 1, signed=False)
    return fit_shape(clipped, fixed_shape(fmt)), fmt


def _pre_hard_tanh(x, p, wire, multiply):
    f = max(p.fin.fraction_width, 0)
    value = x << (f - p.fin.fraction_width)
    one = 1 << f
    clipped = Mux(value < -one, -one, Mux(value > one, one, value))
    fmt = FixedFormat(f + 2, 2)
    return fit_shape(clipped, fixed_shape(fmt)), fmt


def _table_index(x, p, wire=no_wire):
    """Index of ``x`` into the sigmoid/tanh table, an unsigned value of ``index_width`` bits."""
    table = p.table
    n = table.table_size
    e = table.index_exponent(p.fin.fraction_width)
    if table.index_rounding == "magnitude":
        raise UnsupportedLayerError(f"A {table.kind} activation layer with index rounding "
                                    f"'magnitude' (hls4ml Quartus' half table) has no "
                                    f"pipelined hardware yet; only a recurrent layer's gates "
                                    f"read such tables")
    if table.index_rounding == "zero" and e < 0:
        # hls4ml's index truncates toward zero: a negative value rounds up, by adding the
        # dropped bits' all-ones before the arithmetic shift.
        x = Mux(x < 0, x + ((1 << -e) - 1), x)
    t = wire(floor_shift(x, e) + n // 2, "offset")
    return Mux(t < 0, 0, Mux(t > n - 1, n - 1, t))[:table.index_width]


def _pre_table(x, p, wire, multiply):
    rom = Array(Const(code, fixed_shape(p.table.table_format)) for code in p.table.codes)
    return wire(rom[_table_index(x, p, wire)], "entry"), p.table.table_format


def _magnitude_table(x, p, wire):
    """hls4ml Quartus' half table (:mod:`nnfab.tables`): the entry of ``|x|`` cast to
    ``fout``, then ``cast(-y)`` (tanh) or ``cast(1 - y)`` (sigmoid) for a negative ``x``."""
    table, fout = p.table, p.fout
    n, tf = table.table_size, table.table_format
    negative = wire(x < 0, "negative")
    scaled = wire(floor_shift(Mux(negative, -x, x), table.index_exponent(p.fin.fraction_width)),
                  "scaled")
    index = Mux(scaled > n - 1, n - 1, scaled)[:table.index_width]
    rom = Array(Const(code, fixed_shape(tf)) for code in table.codes)
    y = wire(requantize(wire(rom[index], "entry"), src=tf, dst=fout, wire=wire), "positive")
    wide = FixedFormat(fout.width + 2, fout.integer_width + 2)
    mirrored = -y if table.kind == "tanh" else (1 << fout.fraction_width) - y
    mirrored = requantize(fit_shape(mirrored, fixed_shape(wide)), src=wide, dst=fout, wire=wire)
    return Mux(negative, mirrored, y)


def _elu_format(p):
    """The format holding both ELU branches exactly: the product ``x * scale`` and a table
    entry."""
    product_format = p.fin.mul_format(p.scale[0])
    tf = p.table.table_format
    f = max(product_format.fraction_width, tf.fraction_width)
    i = max(product_format.integer_width + (0 if product_format.signed else 1), tf.integer_width)
    return FixedFormat(i + f, i)


def _elu_index(x, p, wire):
    """Index of a negative ``x`` into the ELU table, ``index_width`` bits (for ``x >= 0`` the
    entry is not used)."""
    table = p.table
    n = table.table_size
    e = table.index_exponent(p.fin.fraction_width)
    if table.index_rounding == "magnitude":
        # hls4ml's selu: floor(-x * 2**e) clamped to N-1.
        t = wire(floor_shift(-x, e), "scaled")
        return Mux(t > n - 1, n - 1, t)[:table.index_width]
    t = wire(floor_shift(x, e) + n, "offset")
    return Mux(t < 0, 0, t)[:table.index_width]


def _elu_join(negative, product, entry, p):
    """``entry`` if ``negative`` else ``product`` (``x * scale``), in :func:`_elu_format`."""
    fmt = _elu_format(p)
    f = fmt.fraction_width
    positive = fit_shape(product << (f - p.fin.mul_format(p.scale[0]).fraction_width),
                         fixed_shape(fmt))
    if entry is None:
        return positive
    entry = fit_shape(entry << (f - p.table.table_format.fraction_width), fixed_shape(fmt))
    return Mux(negative, entry, positive)


def _pre_elu(x, p, wire, multiply):
    scale_format, scale_code = p.scale
    product = wire(multiply(x, Const(scale_code, fixed_shape(scale_format))), "product")
    if not p.fin.signed:
        return _elu_join(None, product, None, p), _elu_format(p)
    tf = p.table.table_format
    rom = Array(Const(code, fixed_shape(tf)) for code in p.table.codes)
    # The entry is read once per bit of the sign extension below: a signal, not 27 tables.
    entry = wire(rom[_elu_index(x, p, wire)], "entry")
    return _elu_join(x[-1], product, entry, p), _elu_format(p)


_PRE = {
    "linear": _pre_linear,
    "relu": _pre_relu,
    "bounded_relu": _pre_bounded_relu,
    "leaky_relu": _pre_leaky_relu,
    "hard_sigmoid": _pre_hard_sigmoid,
    "hard_tanh": _pre_hard_tanh,
    "sigmoid": _pre_table,
    "tanh": _pre_table,
    "elu": _pre_elu,
}


def constant_factor(p):
    """The constant ``(FixedFormat, code)`` that activation parameters ``p``
    (:class:`nnfab.activation_params.ActivationParams`) multiply each element by, when it is
    not a power of two or zero (a shift): a ``leaky_relu`` slope (of signed inputs), a
    ``hard_sigmoid`` slope, an ``elu`` scale (only those three multiply); else None."""
    constant = {"leaky_relu": lambda: p.alpha, "hard_sigmoid": lambda: p.slope,
                "elu": lambda: p.scale}.get(p.kind)
    if constant is None or (p.kind == "leaky_relu" and not p.fin.signed):
        return None
    fmt, code = constant()
    return (fmt, code) if abs(code) & (abs(code) - 1) else None


def has_constant_product(p):
    """Whether :func:`constant_factor` of ``p`` is not None."""
    return constant_factor(p) is not None


def _check_fabric(count, n):
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= n:
        raise ValueError(f"Fabric multipliers must be an integer from 0 to the {n} elements, "
                         f"not {count!r}")
    return count


# -- fusable functions ----------------------------------------------------------------------------

def activation(kind, value, *, fin, fout, wire=None, multiply=operator.mul, **params):
    """Combinational elementwise activation ``kind`` of one code (see the module docstring).

    Parameters
    ----------
    kind : str
        One of :data:`nnfab.activation_params.ACTIVATION_KINDS`.
    value : Value of shape ``fixed_shape(fin)``
    fin, fout : FixedFormat
    wire : callable ``(value, name) -> Value`` or None
        Give :func:`nnfab.hdl.wires.comb_wire` ``(m, prefix)`` in a module: the values read
        more than once (the table entry, a product, the value before the cast, the rounded
        value) become signals, each built once. None: one expression, in which Amaranth writes
        such a value out once per read (an ELU's 128-entry table 27 times, 324 times with the
        cast of an unnamed result: tests and tiny uses only).
    multiply : callable ``(value, Const) -> Value``
        How a constant product (a slope or scale) is built: ``*`` (synthesis maps it to a DSP
        block), or :func:`~nnfab.hdl.fabric_multiplier.fabric_product` (shift-add terms in
        LUTs and carry chains). Both give the same value and shape.
    **params
        ``relu_max``, ``alpha_format`` and ``alpha_code``, ``slope`` and ``offset``, ``table``,
        as :func:`nnfab.activation_params.check_activation`.

    Returns
    -------
    Value of shape ``fixed_shape(fout)``
        Sigmoid and tanh become a constant multiplexer (a ROM without clock).

    Raises
    ------
    TypeError, ValueError
        As :func:`nnfab.activation_params.check_activation`; ValueError if ``value``'s shape is not
        ``fixed_shape(fin)``.
    """
    p = check_activation(kind, fin=fin, fout=fout, **params)
    x = _check_value(value, fin)
    if kind in ("sigmoid", "tanh") and p.table.index_rounding == "magnitude":
        return _magnitude_table(x, p, wire or no_wire)
    pre, fmt = _PRE[kind](x, p, wire or no_wire, multiply)
    if wire is not None:
        pre = wire(pre, "pre")
    return requantize(pre, src=fmt, dst=fout, wire=wire)


def elu(value, *, fin, fout, table=None, scale=None):
    """ELU/SELU: ``cast(x * scale, fout)`` for ``x >= 0``, a table for ``x < 0``; see
    :func:`activation`."""
    params = {k: v for k, v in (("table", table), ("scale", scale)) if v is not None}
    return activation("elu", value, fin=fin, fout=fout, **params)


def linear(value, *, fin, fout):
    """``cast(x, fout)``; see :func:`activation`."""
    return activation("linear", value, fin=fin, fout=fout)


def relu(value, *, fin, fout):
    """``cast(max(x, 0), fout)``; see :func:`activation`."""
    return activation("relu", value, fin=fin, fout=fout)


def bounded_relu(value, *, fin, fout, relu_max):
    """``cast(min(max(x, 0), relu_max), fout)``; see :func:`activation`."""
    return activation("bounded_relu", value, fin=fin, fout=fout, relu_max=relu_max)


def leaky_relu(value, *, fin, fout, alpha_format, alpha_code):
    """``cast(x if x >= 0 else x * alpha, fout)``; see :func:`activation`."""
    return activation("leaky_relu", value, fin=fin, fout=fout, alpha_format=alpha_format,
                      alpha_code=alpha_code)


def hard_sigmoid(value, *, fin, fout, **params):
    """``cast(clip(slope * x + offset, 0, 1), fout)``; see :func:`activation`."""
    return activation("hard_sigmoid", value, fin=fin, fout=fout, **params)


def hard_tanh(value, *, fin, fout):
    """``cast(clip(x, -1, 1), fout)``; see :func:`activation`."""
    return activation("hard_tanh", value, fin=fin, fout=fout)


def sigmoid(value, *, fin, fout, table=None):
    """Look-up-table sigmoid; see :func:`activation` and :mod:`nnfab.tables`."""
    return activation("sigmoid", value, fin=fin, fout=fout, table=table)


def tanh(value, *, fin, fout, table=None):
    """Look-up-table tanh; see :func:`activation` and :mod:`nnfab.tables`."""
    return activation("tanh", value, fin=fin, fout=fout, table=table)


# -- stream components ----------------------------------------------------------------------------

class Activation(VectorPipeline):
    """Elementwise activation of a vector stream, pipelined, II = 1.

    Stage 1 computes the exact pre-cast result of every element (for ``sigmoid``/``tanh``, and
    the negative branch of ``elu``: a synchronous read of a ROM, one read port per element,
    holding the table codes); stage 2 casts it to ``fout``. The pipeline stalls as a whole
    under back-pressure and never drops or duplicates a transfer.

    Parameters
    ----------
    kind : str
        One of :data:`nnfab.activation_params.ACTIVATION_KINDS`; semantics in the module docstring.
    n : int, >= 1
        Elements per vector.
    fin, fout : FixedFormat
        Input and output formats; ``fout``'s rounding and overflow apply to the final cast.
    fabric_multipliers : int, 0 to ``n``
        Elements whose constant product (a ``leaky_relu`` slope, a ``hard_sigmoid`` slope, an
        ``elu`` scale) is built from shift-add terms in LUTs and carry chains
        (:func:`~nnfab.hdl.fabric_multiplier.fabric_product`, one term per canonical signed
        digit of the constant) instead of ``*``, which synthesis maps to a DSP block: the
        last ones. Same codes either way. For a function without such a product it builds
        nothing different (:attr:`n_products` is 0).
    **params
        As :func:`nnfab.activation_params.check_activation`.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(fixed_shape(fin), n)))``
    o : ``Out(stream.Signature(ArrayLayout(fixed_shape(fout), n)))``

    Attributes
    ----------
    latency : int
        2 cycles from an accepted input to its output being valid.
    initiation_interval : int
        1 cycle.
    n_products : int
        Constant products: ``n`` for a function with one, else 0.
    n_fabric_multipliers : int
        Those of them built from LUTs.

    Raises
    ------
    TypeError, ValueError
        As :func:`nnfab.activation_params.check_activation` and
        :func:`nnfab.activation_params.check_count`; if ``fabric_multipliers`` is not an
        integer from 0 to ``n``.
    """

    def __init__(self, *, kind, n, fin, fout, fabric_multipliers=0, **params):
        self._params = self._validated(
            lambda: check_activation(kind, fin=fin, fout=fout, **params))
        self._n = self._validated(lambda: check_count(n))
        self._fabric = self._validated(lambda: _check_fabric(fabric_multipliers, self._n))
        self._given = params
        super().__init__({"i": In(vector_signature(fin, n)),
                          "o": Out(vector_signature(fout, n))})

    def __repr__(self):
        extra = "".join(f", {name}={value!r}" for name, value in self._given.items())
        fabric = f", fabric_multipliers={self._fabric}" if self._fabric else ""
        return (f"Activation(kind={self.kind!r}, n={self._n}, fin={self.fin!r}, "
                f"fout={self.fout!r}{fabric}{extra})")

    @property
    def n_products(self):
        return self._n if has_constant_product(self._params) else 0

    @property
    def n_multipliers(self):
        """The constant products (:attr:`n_products`), as a dense engine counts its."""
        return self.n_products

    @property
    def n_fabric_multipliers(self):
        return self._fabric if self.n_products else 0

    @property
    def kind(self):
        return self._params.kind

    @property
    def n(self):
        return self._n

    @property
    def fin(self):
        return self._params.fin

    @property
    def fout(self):
        return self._params.fout

    @property
    def params(self):
        """The validated :class:`nnfab.activation_params.ActivationParams`."""
        return self._params

    @property
    def latency(self):
        return 2

    def elaborate(self, platform):
        m = Module()
        p = self._params
        advance = self._advance(m)
        stage_valid = Signal()
        with m.If(advance):
            m.d.sync += [stage_valid.eq(self.i.valid), self.o.valid.eq(stage_valid)]
        rom = p.kind in ("sigmoid", "tanh") or (p.kind == "elu" and p.fin.signed)
        if rom:
            m.submodules.table = table = Memory(
                shape=fixed_shape(p.table.table_format), depth=p.table.table_size,
                init=p.table.codes)
        for k in range(self._n):
            x = self.i.payload[k]
            wire = comb_wire(m, f"x{k}_")
            multiply = operator.mul
            if k >= self._n - self._fabric:
                def multiply(a, b, k=k):
                    return fabric_product(a, b, m=m, name=f"x{k}_product")
            if p.kind in ("sigmoid", "tanh"):
                port = table.read_port(domain="sync")
                m.d.comb += [port.addr.eq(_table_index(x, p, wire)), port.en.eq(advance)]
                pre, fmt = port.data, p.table.table_format
            elif rom:
                # ELU: the entry read from the ROM beside the registered product and sign.
                port = table.read_port(domain="sync")
                m.d.comb += [port.addr.eq(_elu_index(x, p, wire)), port.en.eq(advance)]
                scale_format, scale_code = p.scale
                product = Signal(fixed_shape(p.fin.mul_format(scale_format)),
                                 name=f"product_{k}")
                negative = Signal(name=f"negative_{k}")
                # built outside the If: a fabric product's adders are wires of m
                full = multiply(x, Const(scale_code, fixed_shape(scale_format)))
                with m.If(advance):
                    m.d.sync += [product.eq(full), negative.eq(x[-1])]
                pre, fmt = wire(_elu_join(negative, product, port.data, p), "pre"), \
                    _elu_format(p)
            else:
                expr, fmt = _PRE[p.kind](x, p, wire, multiply)
                pre = Signal(fixed_shape(fmt), name=f"pre_{k}")
                with m.If(advance):
                    m.d.sync += pre.eq(expr)
            cast = requantize(pre, src=fmt, dst=p.fout, wire=wire)  # wires outside the If
            with m.If(advance):
                m.d.sync += self.o.payload[k].eq(cast)
        return m


class Argmax(VectorPipeline):
    """Index of the largest element of a vector stream, the first one on ties.

    A comparison tree of ``ceil(log2(n))`` comparator levels, registered where the delay model
    of ``family`` (:mod:`nnfab.hdl.timing_model`: a comparator's carry chain and two LUT
    levels of multiplexers per level) says the levels fit the period of ``clock_mhz``, spaced
    evenly, and at the output: II = 1.

    Parameters
    ----------
    n : int, >= 1
        Elements per vector.
    fin : FixedFormat
        Format of the elements.
    clock_mhz : float > 0 or None
        Target clock; None: ``DEFAULT_CLOCK_MHZ[family]``.
    family : str
        ``"ecp5"`` or ``"ice40"``.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(fixed_shape(fin), n)))``
    o : ``Out(stream.Signature(unsigned(index_width)))``, ``index_width = max(1, ceil(log2(n)))``

    Attributes
    ----------
    latency : int
        Register stages, ``ceil(levels / levels_per_stage)`` (at least 1), with
        ``levels_per_stage`` the comparator levels that fit the period (at least 1).

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not a positive integer, ``fin`` not a FixedFormat, ``clock_mhz`` not a
        positive number or the family unknown.
    """

    def __init__(self, *, n, fin, clock_mhz=None, family="ecp5"):
        self._n = self._validated(lambda: check_count(n))
        self._fin = self._validated(lambda: check_format(fin, "Input format"))
        model = self._validated(lambda: delay_model(family))
        self._clock_mhz = self._validated(lambda: check_clock(clock_mhz))
        levels = (self._n - 1).bit_length()
        level_ns = sum(model.adder_ns(fin.width + 1)) + model.lut_levels_ns(2)
        budget = 1e3 / (clock_mhz or DEFAULT_CLOCK_MHZ[family]) - model.register_ns
        per_stage = max(1, int(budget // level_ns))
        self._latency = max(1, -(-levels // per_stage))
        self._cuts = sorted({-(-levels * s // self._latency) for s in range(1, self._latency)})
        super().__init__({"i": In(vector_signature(fin, n)),
                          "o": Out(stream.Signature(unsigned(self.index_width)))})

    def __repr__(self):
        clock = "" if self._clock_mhz is None else f", clock_mhz={self._clock_mhz!r}"
        return f"Argmax(n={self._n}, fin={self._fin!r}{clock})"

    @property
    def n(self):
        return self._n

    @property
    def fin(self):
        return self._fin

    @property
    def index_width(self):
        return max(1, (self._n - 1).bit_length())

    @property
    def latency(self):
        return self._latency

    def elaborate(self, platform):
        m = Module()
        items = [(self.i.payload[k], C(k, self.index_width)) for k in range(self._n)]
        if self._latency == 1:
            advance = self._advance(m)
            _, index = argmax_tree(items)
            with m.If(advance):
                m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(index)]
            return m
        advance, register = self._stages(m, self._latency)
        level = 0
        while len(items) > 1:
            items = argmax_level(items)
            level += 1
            if level in self._cuts:
                items = [(register(v, f"max_s{level}_{k}"), register(i, f"index_s{level}_{k}"))
                         for k, (v, i) in enumerate(items)]
        with m.If(advance):
            m.d.sync += self.o.payload.eq(items[0][1])
        return m
