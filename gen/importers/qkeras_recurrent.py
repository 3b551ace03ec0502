"""QKeras ``QSimpleRNN``, ``QLSTM`` and ``QGRU`` layers as nnfab's ``recurrent`` kind
(:class:`~nnfab.recurrent.RecurrentSpec`), exactly QKeras 0.9's forward pass.

Where each rule comes from (QKeras 0.9, ``qkeras/qrecurrent.py`` and ``qkeras/quantizers.py``):

- ``QSimpleRNNCell.call``, ``QLSTMCell.call``, ``QGRUCell.call``: the ``kernel_quantizer``,
  ``recurrent_quantizer`` and ``bias_quantizer`` are applied to the weights before the
  products (nnfab applies the same quantizers once, :mod:`.qkeras_quantizers`; without a
  quantizer the float weights are taken exactly). GRU's ``reset_after`` bias (2, 3 * units)
  is quantized whole, its rows are the input and recurrent biases; without ``reset_after``
  (QGRU's default) the bias is one row (3 * units,).
- Pre-activations ``W x_t + b + U h_{t-1}`` and the cell updates (LSTM ``c = f * c + i *
  act(p_c)``, ``h = o * act(c)``; GRU ``hh = act(x_h + r * (U_h h + b_rh))``, or without
  ``reset_after`` ``hh = act(x_h + U_h (r * h))``, ``h = z * h + (1 - z) * hh``) are float32
  sums and products with no quantizer: nnfab computes them
  exactly, in formats wide enough for every value over the sequence (bounds from the weight
  codes, the input format and the activations' ranges). That is QKeras' number when each of
  those formats has at most 24 bits (float32's significand), so that every float32 sum and
  product is exact; a layer that needs more is refused, naming the value that grows.
- ``state_quantizer`` is applied to ``h_{t-1}`` (and LSTM's ``c_{t-1}``) as they enter a step,
  while the layer's output and LSTM's ``act(c_t)`` use the unquantized state: the spec's
  ``feedback_format`` (and ``cell_feedback_format``), the quantizer's cast applied to the
  state fed back only. It also bounds the formats, which otherwise grow with every step.
- ``activation`` (default ``quantized_tanh``) and ``recurrent_activation`` (default
  ``hard_sigmoid``) through ``get_quantizer``: ``quantized_tanh(bits)`` is a hard tanh cast
  to ``fixed<bits,1,RND_CONV,SAT>`` and ``quantized_sigmoid(bits)`` QKeras' hard sigmoid
  ``clip(x/2 + 1/2, 0, 1)`` cast to ``ufixed<bits,0,RND_CONV,SAT>`` (with QKeras' default
  ``hard`` internal sigmoid; see :mod:`.qkeras_quantizers`); ``hard_sigmoid`` and
  ``hard_tanh`` are QKeras' own functions (slope 1/2, not Keras' 0.2), in float, exact;
  ``quantized_bits`` and ``quantized_relu`` are casts (with a ReLU); ``linear`` and ``relu``
  are exact. ``quantized_tanh(bits, use_real_tanh=1)`` and ``quantized_sigmoid(bits,
  use_real_sigmoid=1)`` (``K.tanh``/``K.sigmoid``, then the same rounding and clip) are tables
  with one entry per pre-activation code (:func:`_smooth_table`: the index is the code, each
  entry the function at that exact input rounded as QKeras rounds, ``tf.round`` half to
  even), over the smallest power-of-two range beyond which the quantized function is
  constant; accepted when that takes at most :data:`MAX_TABLE_SIZE` entries and no entry lies
  within float32's error of a rounding tie (where QKeras' float32 function could round the
  other way), in a QSimpleRNN, as QLSTM and QGRU gates, and as QGRU's activation (a QLSTM's
  activation also reads the cell state, a second input format: refused). Plain ``tanh`` and
  ``sigmoid`` give float32 values no fixed-point format holds: refused.
- Refused Keras settings: ``go_backwards``, ``stateful``, ``return_state``, ``time_major``,
  and a QGRU without ``recurrent_quantizer`` (QKeras 0.9 then multiplies
  the state by the *input* kernel, ``quantized_recurrent = self.kernel``).
"""

from fractions import Fraction

import numpy as np

from nnfab.errors import ShapeError, UnsupportedLayerError
from nnfab.fixed import FixedFormat
from nnfab.ir import RecurrentLayer
from nnfab.recurrent import RecurrentSpec
from nnfab.tables import sigmoid_table, tanh_table

from ._common import exact
from .qkeras_quantizers import apply_quantizer, parse_quantizer, quantizer_format

__all__ = ["QKERAS_RECURRENT", "qkeras_recurrent"]

#: QKeras classes and their nnfab cell.
QKERAS_RECURRENT = {"QSimpleRNN": "simple_rnn", "QLSTM": "lstm", "QGRU": "gru"}
#: float32's significand: formats up to this width hold QKeras' float32 values exactly.
FLOAT32_BITS = 24
#: QKeras' ``hard_sigmoid`` slope 1/2, exact in ``ufixed<1,0>``.
QKERAS_HARD_SIGMOID_SLOPE = (FixedFormat(1, 0, signed=False), 1)
#: The largest table a smooth activation may take (entries).
MAX_TABLE_SIZE = 4096
_ACCEPTED = ("quantized_tanh, quantized_sigmoid, hard_sigmoid, hard_tanh, quantized_bits, "
             "quantized_relu, relu or linear")


class _Act:
    """One activation: nnfab ``kind``, its output format ``fout`` (None: exact, sized from the
    input) and the value range ``(lo, hi)`` of a fixed ``fout``."""

    def __init__(self, kind, fout=None, spec=None):
        self.kind, self.fout, self.spec = kind, fout, spec

    def apply(self, bound, fraction):
        """``(lo, hi, fraction)`` of the outputs for inputs within ``+-bound`` on a grid of
        ``fraction`` bits."""
        if self.fout is not None:
            lo, hi = self.fout.min_value, self.fout.max_value
            if self.kind == "relu":
                lo = max(lo, 0)
            return Fraction(lo), Fraction(hi), self.fout.fraction_width
        if self.kind == "hard_sigmoid":
            return Fraction(0), Fraction(1), max(fraction + 1, 1)
        if self.kind == "hard_tanh":
            return Fraction(-1), Fraction(1), max(fraction, 0)
        return (Fraction(0) if self.kind == "relu" else -bound), bound, fraction


def _activation(spec, lname, key):
    if spec in (None, "linear"):
        return _Act("linear")
    if spec in ("relu", "hard_sigmoid", "hard_tanh"):
        return _Act(spec)
    if isinstance(spec, str) and "(" not in spec and spec not in (
            "quantized_tanh", "quantized_sigmoid", "quantized_bits", "quantized_relu"):
        raise UnsupportedLayerError(
            f"Layer {lname!r}: {key} {spec!r} is not supported; QKeras computes it in float32, "
            f"which no fixed-point format reproduces; use {_ACCEPTED}")
    name, config = parse_quantizer(spec, lname, activations=True)
    if name == "quantized_po2":
        raise UnsupportedLayerError(f"Layer {lname!r}: {key} 'quantized_po2' is not supported; "
                                    f"use {_ACCEPTED}")
    kind = {"quantized_tanh": "hard_tanh", "quantized_sigmoid": "hard_sigmoid",
            "quantized_relu": "relu"}.get(name, "linear")
    if config.get("use_real_tanh") or config.get("use_real_sigmoid"):
        kind = kind[len("hard_"):]  # the float32 function: a table
    return _Act(kind, quantizer_format(name, config), spec)


def _holding(lo, hi, fraction):
    """The narrowest format with ``fraction`` fraction bits holding ``[lo, hi]`` (unsigned
    when ``lo >= 0``); truncating and wrapping, as its casts never round or overflow."""
    scale = Fraction(2) ** fraction
    low, high = int(np.floor(lo * scale)), int(np.ceil(hi * scale))
    if low >= 0:
        width = max(high.bit_length(), 1)
        return FixedFormat(width, width - fraction, signed=False)
    width = max(high.bit_length(), (-low - 1).bit_length()) + 1
    return FixedFormat(width, width - fraction)


def _check_keras(cls, lname, cfg):
    for key, accepted in (("go_backwards", False), ("stateful", False), ("return_state", False),
                          ("time_major", False)):
        if bool(cfg.get(key, accepted)) != accepted:
            raise UnsupportedLayerError(f"Layer {lname!r}: {key}={cfg[key]!r} is not "
                                        f"supported; only {accepted}")
    if cls == "QGRU" and not cfg.get("recurrent_quantizer"):
        raise UnsupportedLayerError(
            f"Layer {lname!r}: recurrent_quantizer={cfg.get('recurrent_quantizer')!r} is not "
            f"supported in a QGRU (QKeras 0.9 then multiplies the state by the input kernel); "
            f"use a quantizer")


def _weights(lname, cfg, key, values, what):
    quantizer = cfg.get(f"{key}_quantizer")
    if quantizer:
        fmt, codes = apply_quantizer(*parse_quantizer(quantizer, lname), values)
        return fmt.replace(rounding="TRN", overflow="WRAP"), np.asarray(codes, dtype=object)
    fmt, codes = exact(values, lname, what)
    return fmt, np.asarray(codes, dtype=object)


class _Plan:
    """The exact formats of a cell over ``n_steps`` steps (see the module docstring):
    bounds and fraction widths of every value, grown step by step from the zero state."""

    def __init__(self, cell, n_steps, in_fmt, weights, act, rec, feedback, reset_after=True):
        (w, w_fmt), (u, u_fmt), (b, b_fmt) = weights
        x_bound = max(-Fraction(in_fmt.min_value), Fraction(in_fmt.max_value))
        self.preact = self.gate = self.cand = self.cell = self.state = (Fraction(0), 0)
        self.gate_range = self.cand_range = (Fraction(0), Fraction(0))
        h, fh, c, fc = Fraction(0), 0, Fraction(0), 0
        b_abs = np.zeros(len(w), dtype=object) if b is None else np.sum(np.abs(b), axis=0)
        b_frac = 0 if b is None else b_fmt.fraction_width
        for _ in range(n_steps):
            rows = (np.sum(np.abs(w), axis=1) * Fraction(w_fmt.lsb) * x_bound +
                    np.sum(np.abs(u), axis=1) * Fraction(u_fmt.lsb) * h +
                    b_abs * Fraction(b_fmt.lsb if b is not None else 1))
            p = max(Fraction(v) for v in rows)
            fp = max(in_fmt.fraction_width + w_fmt.fraction_width,
                     fh + u_fmt.fraction_width, b_frac)
            self._grow("preact", p, fp)
            if cell == "simple_rnn":
                lo, hi, fh = act.apply(p, fp)
                h = max(-lo, hi)
                self._grow("cand", h, fh, (lo, hi))
            else:
                g_lo, g_hi, fg = rec.apply(p, fp)
                gate = max(-g_lo, g_hi)
                self._grow("gate", gate, fg, (g_lo, g_hi))
                if cell == "lstm":
                    a_lo, a_hi, fa = act.apply(p, fp)
                    a = max(-a_lo, a_hi)
                    c, fc = gate * c + gate * a, max(fg + fc, fg + fa)
                    self._grow("cell", c, fc)
                    ac_lo, ac_hi, fac = act.apply(c, fc)
                    self._grow("cand", a, fa, (a_lo, a_hi))
                    self._grow("cand", max(-ac_lo, ac_hi), fac, (ac_lo, ac_hi))
                    h, fh = gate * max(-ac_lo, ac_hi), fg + fac
                else:
                    # The candidate's input x_h + r * (U_h h + b_rh), in preact_format too;
                    # without reset_after x_h + U_h (r * h), r * h exact.
                    pc, fpc = p + gate * p, fg + fp
                    if not reset_after:
                        n = len(w) // 3
                        pc = max(Fraction(v) for v in (
                            np.sum(np.abs(w[2 * n:]), axis=1) * Fraction(w_fmt.lsb) * x_bound +
                            np.sum(np.abs(u[2 * n:]), axis=1) * Fraction(u_fmt.lsb) * gate * h +
                            b_abs[2 * n:] * Fraction(b_fmt.lsb if b is not None else 1)))
                        fpc = max(in_fmt.fraction_width + w_fmt.fraction_width,
                                  fg + fh + u_fmt.fraction_width, b_frac)
                    self._grow("preact", pc, fpc)
                    a_lo, a_hi, fa = act.apply(pc, fpc)
                    a = max(-a_lo, a_hi)
                    self._grow("cand", a, fa, (a_lo, a_hi))
                    mix = max(h, a) if g_lo >= 0 and g_hi <= 1 else gate * h + (1 + gate) * a
                    h, fh = mix, max(fg + fh, fa, fg + fa)
            self._grow("state", h, fh)
            if feedback is not None:  # the state quantizer's cast: the next step's h, c
                limit = max(-Fraction(feedback.min_value), Fraction(feedback.max_value))
                h, fh = min(h + Fraction(feedback.lsb), limit), feedback.fraction_width
                c, fc = min(c + Fraction(feedback.lsb), limit), feedback.fraction_width

    def _grow(self, name, bound, fraction, value_range=None):
        old, f = getattr(self, name)
        setattr(self, name, (max(old, bound), max(f, fraction)))
        if value_range is not None:
            attr = "gate_range" if name == "gate" else "cand_range"
            lo, hi = getattr(self, attr)
            setattr(self, attr, (min(lo, value_range[0]), max(hi, value_range[1])))

    def fmt(self, name):
        bound, fraction = getattr(self, name)
        if name in ("gate", "cand"):
            lo, hi = getattr(self, f"{name}_range")
            return _holding(lo, hi, fraction)
        return _holding(-bound, bound, fraction)


_WHAT = {"preact": "the pre-activations", "gate": "the gates", "cand": "the candidates",
         "cell": "the cell state", "state": "the state"}


def _formats(plan, lname, cls, n_steps, act, rec, cell):
    """The spec's formats from ``plan``: a quantizing activation's own format, else the exact
    one, each checked to fit float32 (see the module docstring)."""
    names = ["preact", "state"] + (["gate", "cand"] if cell != "simple_rnn" else []) + \
        (["cell"] if cell == "lstm" else [])
    formats = {}
    for name in names:
        fixed = {"gate": rec.fout, "cand": act.fout,
                 "state": act.fout if cell == "simple_rnn" else None}.get(name)
        fmt = fixed or plan.fmt(name)
        if fmt.width > FLOAT32_BITS:
            raise UnsupportedLayerError(
                f"Layer {lname!r}: {_WHAT[name]} of this {cls} would need {fmt} to be exact over "
                f"{n_steps} steps; QKeras computes them in float32 ({FLOAT32_BITS} significant "
                f"bits), which rounds them; use a state_quantizer, quantizing activations "
                f"(quantized_tanh, quantized_sigmoid), narrower weights or fewer steps")
        formats[name] = fmt
    return formats


def _state_quantizer(lname, cfg):
    """The format of the ``state_quantizer`` (None without one)."""
    spec = cfg.get("state_quantizer")
    if not spec:
        return None
    name, config = parse_quantizer(spec, lname)
    if name == "quantized_po2":
        raise UnsupportedLayerError(f"Layer {lname!r}: state_quantizer {spec!r} is not "
                                    f"supported; use quantized_bits or quantized_relu")
    return quantizer_format(name, config)


def qkeras_recurrent(cls, lname, cfg, store, fmt, shape):
    """The :class:`~nnfab.ir.RecurrentLayer` of a ``QSimpleRNN``, ``QLSTM`` or ``QGRU``
    (``reset_after`` true or false) reading sequences of shape ``(n_steps, n_in)`` in ``fmt``, with
    QKeras 0.9's numbers (see the module docstring for each rule).

    Raises
    ------
    UnsupportedLayerError
        For a setting nnfab does not reproduce exactly, naming the layer, the key and its
        value (see the module docstring).
    ShapeError
        If the input is not a sequence or the kernel does not take it.
    """
    _check_keras(cls, lname, cfg)
    if len(shape) != 2:
        raise ShapeError(f"Layer {lname!r}: a {cls} layer reads sequences (n_steps, n_in), not "
                         f"shape {shape}")
    cell = QKERAS_RECURRENT[cls]
    act = _activation(cfg.get("activation", "quantized_tanh"), lname, "activation")
    rec = _activation(cfg.get("recurrent_activation", "hard_sigmoid"), lname,
                      "recurrent_activation") if cell != "simple_rnn" else _Act("sigmoid")
    use_bias = cfg.get("use_bias", True)
    w = store.get(lname, ["kernel", "recurrent_kernel"] + (["bias"] if use_bias else []))
    kernel = np.asarray(w["kernel"], dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != shape[1]:
        raise ShapeError(f"Layer {lname!r}: kernel of shape {kernel.shape} does not take "
                         f"input of shape {shape}")
    w_fmt, w_codes = _weights(lname, cfg, "kernel", kernel.T, "weights")
    u_fmt, u_codes = _weights(lname, cfg, "recurrent", np.asarray(w["recurrent_kernel"]).T,
                              "recurrent weights")
    b_fmt = b_codes = None
    if use_bias:
        b_fmt, b_codes = _weights(lname, cfg, "bias", np.asarray(w["bias"]), "biases")
        b_codes = b_codes.reshape(-1, len(w_codes))
    feedback = _state_quantizer(lname, cfg)
    reset_after = cell != "gru" or bool(cfg.get("reset_after", False))
    plan = _Plan(cell, shape[0], fmt, ((w_codes, w_fmt), (u_codes, u_fmt), (b_codes, b_fmt)),
                 act, rec, feedback, reset_after)
    formats = _formats(plan, lname, cls, shape[0], act, rec, cell)
    biases = recurrent_biases = None
    if b_codes is not None:
        biases = b_codes[0]
        recurrent_biases = b_codes[1] if len(b_codes) == 2 else None
    slope = QKERAS_HARD_SIGMOID_SLOPE if "hard_sigmoid" in (act.kind, rec.kind) else None
    # (QSimpleRNN has no recurrent activation: the spec's unused default stays.)
    tables = _smooth_tables(lname, cell, act, rec, formats["preact"])
    try:
        spec = RecurrentSpec(
            cell, w_codes, u_codes, biases, shape[0], bool(cfg.get("return_sequences", False)),
            fmt, w_fmt, u_fmt, formats["preact"], formats["state"], bias_format=b_fmt,
            gate_format=formats.get("gate"), candidate_format=formats.get("cand"),
            cell_format=formats.get("cell"), recurrent_biases=recurrent_biases,
            activation=act.kind, recurrent_activation=rec.kind, hard_sigmoid_slope=slope,
            feedback_format=feedback,
            cell_feedback_format=feedback if cell == "lstm" else None,
            reset_after=reset_after, **tables)
    except (TypeError, ValueError) as exc:
        raise UnsupportedLayerError(f"Layer {lname!r}: {exc}") from None
    if not reset_after and spec.reset_input_format.width > FLOAT32_BITS:
        raise UnsupportedLayerError(
            f"Layer {lname!r}: r * h of this QGRU would need {spec.reset_input_format} to be "
            f"exact; QKeras computes it in float32 ({FLOAT32_BITS} significant bits), which "
            f"rounds it; use a state_quantizer or a quantizing recurrent_activation")
    return RecurrentLayer(lname, spec=spec)


_SMOOTH = {"sigmoid": (sigmoid_table, lambda v: 1 / (1 + np.exp(-v))),
           "tanh": (tanh_table, np.tanh)}


def _smooth_tables(lname, cell, act, rec, preact):
    """The ``sigmoid_table``/``tanh_table`` arguments of the smooth activations (see the
    module docstring)."""
    used = [("recurrent_activation", rec)] if cell != "simple_rnn" else []
    used.append(("activation", act))
    tables = {}
    for key, a in used:
        if a.kind not in _SMOOTH:
            continue
        if cell == "lstm" and key == "activation":
            raise UnsupportedLayerError(
                f"Layer {lname!r}: activation {a.spec!r} is not supported in a QLSTM (its "
                f"table would read the cell state too, a second input format); use a hard "
                f"quantized_tanh")
        table = _smooth_table(lname, key, a, preact)
        name = f"{a.kind}_table"
        if name in tables and tables[name] != table:
            raise UnsupportedLayerError(f"Layer {lname!r}: activation and recurrent_activation "
                                        f"need two different {a.kind} tables; use one")
        tables[name] = table
    return tables


def _smooth_table(lname, key, a, fin):
    """One entry per code of ``fin`` in ``[-R, R)`` (index exponent 0), ``R`` the smallest
    power of two outside which ``a`` is constant."""
    make, function = _SMOOTH[a.kind]
    fout, lsb = a.fout, float(fin.lsb)
    low, high = float(fout.min_value), float(fout.max_value)
    if fout.overflow.name == "SAT_SYM" and fout.signed:
        low = -high

    def quantized(v):
        return np.clip(np.round(function(v) * 2.0 ** fout.fraction_width) *
                       float(fout.lsb), low, high)

    r = 1
    while quantized(r - lsb) != high or quantized(-r) != low:
        r *= 2
        if r > 2 ** 12:
            break
    size = int(2 * r * 2 ** fin.fraction_width)
    if size > MAX_TABLE_SIZE or fin.fraction_width < 0:
        raise UnsupportedLayerError(
            f"Layer {lname!r}: {key} {a.spec!r} on pre-activations in {fin} needs a table of "
            f"{size} entries to be exact; nnfab accepts up to {MAX_TABLE_SIZE} (fewer fraction "
            f"bits in the pre-activations or a hard activation)")
    x = (np.arange(size) - size // 2) * lsb
    scaled = function(x) * 2.0 ** fout.fraction_width
    margin = 8 * np.finfo(np.float32).eps * max(1.0, float(np.max(np.abs(scaled))))
    near = np.abs(scaled - np.floor(scaled) - 0.5) < margin
    if near.any():
        raise UnsupportedLayerError(
            f"Layer {lname!r}: {key} {a.spec!r} at input {x[near][0]!r} lies within float32's "
            f"error of a rounding tie, where QKeras' float32 result is not known exactly; use "
            f"a hard activation")
    return make(table_size=size, table_format=fout, input_range=r)
