"""Activation parameters that the hardware (:mod:`nnfab.hdl.activations`,
:mod:`nnfab.hdl.softmax`) and the golden model (:mod:`nnfab.sim.golden.activations`) share: the
activation kinds, the default constants, and :func:`check_activation`/:func:`check_softmax`, the
single source of the error messages of both.

The look-up tables that the sigmoid, tanh, elu and softmax parameters name are built in
:mod:`nnfab.tables`.
"""

from dataclasses import dataclass
from fractions import Fraction

from .fixed import FixedFormat
from .tables import (SELU_SCALE, LookupTable, _check_format, _check_int, _exact, elu_table,
                     exp_table, quantize_exact, reciprocal_table, sigmoid_table, tanh_table)

__all__ = [
    "ACTIVATION_KINDS", "HARD_SIGMOID_SLOPE", "HARD_SIGMOID_OFFSET", "ELU_SCALE",
    "HLS4ML_SELU_LAMBDA", "ActivationParams",
    "check_activation", "check_softmax", "check_table", "check_count", "check_format",
]

#: Every elementwise activation kind that :class:`nnfab.hdl.activations.Activation` and
#: :func:`nnfab.sim.golden.activations.activation` accept.
ACTIVATION_KINDS = ("linear", "relu", "bounded_relu", "leaky_relu", "hard_sigmoid", "hard_tanh",
                    "sigmoid", "tanh", "elu")

#: hls4ml's / Keras' hard sigmoid slope 0.2, rounded to nearest in ``ufixed<18,0,RND>``:
#: code 52429, i.e. 0.2000007629...
HARD_SIGMOID_SLOPE = (FixedFormat(18, 0, signed=False, rounding="RND"), 52429)
#: ELU's positive-branch slope 1, exact in ``ufixed<1,1>``: code 1.
ELU_SCALE = (FixedFormat(1, 1, signed=False), 1)
#: hls4ml's SELU slope of the positive branch in ``io_parallel`` (``nnet_activation.h``
#: ``selu``: ``ap_ufixed<16,1> lambda = 1.0507009873554805``, truncated): code 34429, i.e.
#: 1.050689697265625. (``io_stream`` casts the constant to the input type instead.)
HLS4ML_SELU_LAMBDA = (FixedFormat(16, 1, signed=False),
                      quantize_exact(Fraction(SELU_SCALE), FixedFormat(16, 1, signed=False)))
#: hls4ml's / Keras' hard sigmoid offset 0.5, exact in ``ufixed<1,0>``: code 1.
HARD_SIGMOID_OFFSET = (FixedFormat(1, 0, signed=False), 1)

_PARAMETERS = {
    "linear": (),
    "relu": (),
    "bounded_relu": ("relu_max",),
    "leaky_relu": ("alpha_format", "alpha_code"),
    "hard_sigmoid": ("slope", "offset"),
    "hard_tanh": (),
    "sigmoid": ("table",),
    "tanh": ("table",),
    "elu": ("table", "scale"),
}


@dataclass(frozen=True)
class ActivationParams:
    """Validated parameters of one elementwise activation (see :func:`check_activation`)."""

    kind: str
    fin: FixedFormat
    fout: FixedFormat
    relu_max: Fraction = None
    alpha: tuple = None
    slope: tuple = None
    offset: tuple = None
    table: LookupTable = None
    scale: tuple = None


def _check_constant(pair, what):
    if (not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], FixedFormat)
            or not isinstance(pair[1], int) or isinstance(pair[1], bool)):
        raise TypeError(f"{what} must be a (FixedFormat, code) pair, not {pair!r}")
    pair[0].check_code(pair[1])
    return pair


def check_activation(kind, *, fin, fout, **params):
    """Validate an elementwise activation and its parameters; the single source of the error
    messages of the hardware and the golden model.

    Parameters
    ----------
    kind : str
        One of :data:`ACTIVATION_KINDS`.
    fin, fout : FixedFormat
        Input and output formats; ``fout``'s rounding and overflow apply to the final cast.
    relu_max : int, float or Fraction, >= 0
        ``bounded_relu`` only: the clip value M, taken at its exact binary value.
    alpha_format, alpha_code : FixedFormat, int
        ``leaky_relu`` only, both required: the slope for negative inputs.
    slope, offset : (FixedFormat, int)
        ``hard_sigmoid`` only: defaults :data:`HARD_SIGMOID_SLOPE`, :data:`HARD_SIGMOID_OFFSET`.
    table : LookupTable
        ``sigmoid``/``tanh``/``elu`` only: defaults :func:`~nnfab.tables.sigmoid_table`/
        :func:`~nnfab.tables.tanh_table`/:func:`~nnfab.tables.elu_table` ``()``.
    scale : (FixedFormat, int)
        ``elu`` only: the slope of the positive branch, default 1 (``ufixed<1,1>`` code 1);
        SELU's is :data:`~nnfab.tables.SELU_SCALE` rounded into a format.

    Returns
    -------
    ActivationParams

    Raises
    ------
    TypeError
        If ``kind`` is not a string, a format not a FixedFormat, a parameter of the wrong
        type, missing or not taken by ``kind``.
    ValueError
        If ``kind`` is unknown, ``relu_max`` negative, a constant code out of its format's range
        or a table of another kind.
    """
    if not isinstance(kind, str):
        raise TypeError(f"Activation kind must be a string, not {kind!r}")
    if kind not in ACTIVATION_KINDS:
        accepted = ", ".join(repr(k) for k in ACTIVATION_KINDS)
        raise ValueError(f"Activation kind must be one of {accepted}, not {kind!r}")
    _check_format(fin, "Input format")
    _check_format(fout, "Output format")
    for name in params:
        if name not in _PARAMETERS[kind]:
            raise TypeError(f"Activation {kind!r} does not take parameter {name!r}")
    result = dict(kind=kind, fin=fin, fout=fout)
    if kind == "bounded_relu":
        if "relu_max" not in params:
            raise TypeError("Activation 'bounded_relu' needs parameter 'relu_max'")
        relu_max = _exact(params["relu_max"], "ReLU maximum")
        if relu_max < 0:
            raise ValueError(f"ReLU maximum must be non-negative, not {params['relu_max']!r}")
        result["relu_max"] = relu_max
    elif kind == "leaky_relu":
        for name in ("alpha_format", "alpha_code"):
            if name not in params:
                raise TypeError(f"Activation 'leaky_relu' needs parameter {name!r}")
        _check_format(params["alpha_format"], "Alpha format")
        _check_int(params["alpha_code"], "Alpha code")
        params["alpha_format"].check_code(params["alpha_code"])
        result["alpha"] = (params["alpha_format"], params["alpha_code"])
    elif kind == "hard_sigmoid":
        result["slope"] = _check_constant(params.get("slope", HARD_SIGMOID_SLOPE), "Slope")
        result["offset"] = _check_constant(params.get("offset", HARD_SIGMOID_OFFSET), "Offset")
    elif kind in ("sigmoid", "tanh", "elu"):
        table = params.get("table")
        if table is None:
            table = {"sigmoid": sigmoid_table, "tanh": tanh_table, "elu": elu_table}[kind]()
        result["table"] = check_table(table, kind)
        if kind == "elu":
            result["scale"] = _check_constant(params.get("scale", ELU_SCALE), "Scale")
    return ActivationParams(**result)


def check_table(table, kind):
    """``table`` if it is a :class:`~nnfab.tables.LookupTable` of ``kind``; TypeError or
    ValueError else."""
    if not isinstance(table, LookupTable):
        raise TypeError(f"Table must be a LookupTable, not {table!r}")
    if table.kind != kind:
        raise ValueError(f"Table kind must be {kind!r}, not {table.kind!r}")
    return table


def check_count(n, what="Number of elements"):
    """``n`` if it is a positive integer; TypeError or ValueError else."""
    _check_int(n, what)
    if n < 1:
        raise ValueError(f"{what} must be a positive integer, not {n!r}")
    return n


def check_format(fmt, what="Format"):
    """``fmt`` if it is a FixedFormat; TypeError else."""
    _check_format(fmt, what)
    return fmt


def check_softmax(*, n, fin, fout, exp_table=None, inv_table=None):
    """Validate softmax parameters; returns ``(exp_table, inv_table)`` with the defaults filled
    in: :func:`~nnfab.tables.exp_table` ``()`` and :func:`~nnfab.tables.reciprocal_table`
    ``(input_range=R)`` with R the smallest power of two at least ``n``.

    Raises
    ------
    TypeError
        As :func:`check_count`, :func:`check_format`, :func:`check_table`.
    ValueError
        As those, or if the exp table has a negative entry (its format cannot hold 0 to 1).
    """
    check_count(n)
    check_format(fin, "Input format")
    check_format(fout, "Output format")
    if exp_table is None:
        exp_table = globals()["exp_table"]()
    check_table(exp_table, "exp")
    if inv_table is None:
        inv_table = reciprocal_table(input_range=1 << (n - 1).bit_length())
    check_table(inv_table, "reciprocal")
    if min(exp_table.codes) < 0:
        raise ValueError(f"Exp table entries must be non-negative, not {min(exp_table.codes)!r} "
                         f"(format {exp_table.table_format})")
    return exp_table, inv_table
