"""Keras LSTM and GRU layers of an hls4ml config, with hls4ml 1.3's arithmetic, as nnfab's
``recurrent`` kind (:class:`~nnfab.recurrent.RecurrentSpec`).

Where each rule comes from (hls4ml 1.3, ``templates/vivado/nnet_utils`` and
``backends/vivado/passes/recurrent_templates.py``):

- ``nnet_recurrent.h`` ``lstm_static``/``gru_static`` (``use_static`` is the default): the
  input product ``W x_t + b`` and the recurrent product ``U h_{t-1} + b_r`` are two
  ``nnet::dense`` calls whose ``accum_t`` and result type are the layer's ``accum_t``
  (``recr_mult_config_template_1``/``_2``): every product and the bias cast to ``accum_t``,
  sums in ``accum_t``. Their sum is cast to ``accum_t`` again (``inputacc_ifo``,
  ``inputacc_zr``). For a wrapping ``accum_t`` nnfab sums both in one accumulator over
  ``[x_t, h_{t-1}]`` with the two biases cast to ``accum_t`` first: the same number.
  A saturating ``accum_t`` is accepted only where no sum can reach its limits.
- Keras' LSTM has no recurrent bias: hls4ml gives it zeros (``model/layers.py`` ``LSTM``);
  GRU's ``reset_after`` bias rows are ``b`` and ``b_r`` (``converters/keras/recurrent.py``).
- The activations are ``nnet::activation::sigmoid``/``tanh`` (``nnet_recr_activations.h``)
  on ``accum_t`` inputs with ``accum_t`` outputs: gates and candidates are the table entry
  cast to ``accum_t``. The tables are ``nnet_activation.h``'s ``init_sigmoid_table`` and
  ``init_tanh_table`` with the layer's ``table_size`` (default 1024) and ``table_t`` (default
  ``ap_fixed<18,8>``), indexed by ``int(x * N / 16) + N/2`` (sigmoid) and ``int(x * N / 8)
  + N/2`` (tanh), which truncates toward zero (nnfab's ``index_rounding="zero"``).
- LSTM: the cell state ``s_state`` and the state ``h_state`` are of the layer's result type
  ``res_T``: ``c = (res_T)(g * i + c * f)``, ``h = (res_T)(o * tanh(c))`` with ``tanh(c)``
  read from ``res_T`` into ``accum_t`` (exact products and sums, one cast each).
- GRU: ``tmpres_state_h = r * (U_h h + b_rh)`` is cast to ``accum_t`` on its own, then
  ``(accum_t)(W_h x + b_h + tmpres_state_h)`` feeds the tanh; ``h = (res_T)(g * (1 - z) +
  h * z)``, exact before the cast.
- Static and non-static (``static: false``) compute the same numbers: both keep the state in
  ``res_T`` and reset it to zero at the first step (measured equal); the key is noted as
  without effect. The non-static ``lstm`` is instantiated whatever ``use_static`` says, and it
  compiles only when the input, result and ``accum_t`` types are one type.
- SimpleRNN: hls4ml 1.3's Vivado backend has no template for it and writes no call, so its C
  simulation leaves the layer out; nnfab refuses it. Its Quartus backend has one
  (:mod:`nnfab.gen.hls4ml.quartus`).
"""

import numpy as np

from nnfab.casts import cast
from nnfab.errors import UnsupportedLayerError
from nnfab.recurrent import RecurrentSpec

from nnfab.ir import RecurrentLayer
from .config import ConfigError
from .convert import activation_table, hls4ml_weight_codes

__all__ = ["recurrent", "RECURRENT_CLASSES", "check_keras", "layer_type", "check_sums"]

#: Keras classes hls4ml mode builds as recurrent layers, and their nnfab cell.
RECURRENT_CLASSES = {"LSTM": "lstm", "GRU": "gru"}
_ACTIVATIONS = ("sigmoid", "tanh")


def check_keras(name, cls, cfg):
    for key, accepted in (("go_backwards", False), ("stateful", False), ("return_state", False),
                          ("time_major", False), ("use_bias", True)):
        if key in cfg and bool(cfg[key]) != accepted:
            raise UnsupportedLayerError(f"Layer {name!r}: {key}={cfg[key]!r} is not supported "
                                        f"in hls4ml mode; only {accepted}")
    if cls == "GRU" and not cfg.get("reset_after", True):
        raise UnsupportedLayerError(f"Layer {name!r}: reset_after=False is not supported in "
                                    f"hls4ml mode (hls4ml's GRU applies the reset gate after "
                                    f"the recurrent product); only True")
    for key, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        if cfg.get(key, default) not in _ACTIVATIONS:
            raise UnsupportedLayerError(f"Layer {name!r}: {key.replace('_', ' ')} "
                                        f"{cfg.get(key)!r} is not supported in hls4ml mode; "
                                        f"use sigmoid or tanh")


def layer_type(builder, name, cls, var):
    value = builder.config.precision(name, cls, var)
    return builder._default_if_auto(value)


def _tables(builder, name, cls):
    return {f"{kind}_table": activation_table(builder.config, name, cls, kind)
            for kind in ("sigmoid", "tanh")}


def recurrent(builder, name, cls, cfg, kernel, recurrent_kernel, bias):
    """Add Keras layer ``name`` (``LSTM`` or ``GRU``; ``kernel`` (n_in, G * units),
    ``recurrent_kernel`` (units, G * units), ``bias`` (G * units,) or GRU's (2, 3 * units))
    to ``builder`` with hls4ml's types and arithmetic (see the module docstring).

    Raises
    ------
    UnsupportedLayerError
        For a Keras setting hls4ml mode does not build (``go_backwards``, ``stateful``,
        ``return_state``, ``use_bias=False``, GRU ``reset_after=False``, activations other
        than sigmoid and tanh) or an input that is not a sequence.
    ConfigError
        For a table size that is not a power of two, a reuse factor that does not divide
        ``n_in + units``, or a saturating ``accum_t`` that a sum could reach.
    """
    check_keras(name, cls, cfg)
    if len(builder.shape) != 2:
        raise UnsupportedLayerError(f"Layer {name!r}: a {cls} layer reads sequences (n_steps, "
                                    f"n_in), not shape {builder.shape}")
    w_fmt, u_fmt, b_fmt, rb_fmt = (layer_type(builder, name, cls, var) for var in
                                   ("weight", "recurrent_weight", "bias", "recurrent_bias"))
    accum = builder.config.layer_setting(name, cls, "accum_t") or \
        layer_type(builder, name, cls, "accum")
    result = layer_type(builder, name, cls, "result")
    bias = np.asarray(bias, dtype=np.float64)
    b, rb = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
    # (accum_t) bias in each nnet::dense: both biases as accum_t codes, then one bias row.
    b_acc, rb_acc = (cast(hls4ml_weight_codes(v, f), f, accum) for v, f in
                     ((b, b_fmt), (rb, rb_fmt)))
    w = hls4ml_weight_codes(np.asarray(kernel).T, w_fmt)
    u = hls4ml_weight_codes(np.asarray(recurrent_kernel).T, u_fmt)
    tables = _tables(builder, name, cls)
    h_bound = _state_bound(cls, tables, accum, result, builder.shape[0])
    check_sums(builder, name, accum, h_bound, (w, w_fmt, u, u_fmt), b_acc + rb_acc)
    units = u.shape[1]
    try:
        spec = RecurrentSpec(
            RECURRENT_CLASSES[cls], w, u, b_acc if cls == "GRU" else b_acc + rb_acc,
            builder.shape[0], bool(cfg.get("return_sequences", False)), builder.fmt,
            w_fmt.replace(rounding="TRN", overflow="WRAP"),
            u_fmt.replace(rounding="TRN", overflow="WRAP"), accum, result,
            bias_format=accum, gate_format=accum, candidate_format=accum,
            cell_format=result if cls == "LSTM" else None,
            recurrent_biases=rb_acc if cls == "GRU" else None,
            activation=cfg.get("activation", "tanh"),
            recurrent_activation=cfg.get("recurrent_activation", "sigmoid"),
            accumulator_format=accum, reset_product_format=accum if cls == "GRU" else None,
            **tables)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{builder.config.path}: layer {name!r}: {exc}") from None
    reuse = builder._reuse_factor(name, cls, builder.shape[1] + units)
    builder._add(RecurrentLayer(name, spec=spec, reuse_factor=reuse))


def _state_bound(cls, tables, accum, result, n_steps):
    """A bound of ``|h|``: the result type's range, or less from the gates' values (LSTM
    ``|o * tanh(c)|``; GRU a convex mix of candidates when the sigmoid stays in [0, 1]),
    with one LSB of rounding per cast."""
    def largest(table):
        values = cast(np.array(table.codes, dtype=object), table.table_format, accum)
        return np.array(values, dtype=np.float64) * float(accum.lsb)

    sig, tanh = largest(tables["sigmoid_table"]), largest(tables["tanh_table"])
    bound = max(abs(float(result.min_value)), abs(float(result.max_value)))
    lsb = float(result.lsb)
    if cls == "LSTM":
        return min(bound, np.max(np.abs(sig)) * np.max(np.abs(tanh)) + lsb)
    if np.min(sig) >= 0 and np.max(sig) <= 1:
        return min(bound, np.max(np.abs(tanh)) + n_steps * lsb)
    return bound


def check_sums(builder, name, accum, h_bound, weights, bias):
    """A saturating accum_t saturates after every addition in hls4ml: accepted only when no
    partial sum of ``[x_t, h_{t-1}]`` products can reach its limits (``|h| <= h_bound``)."""
    w, w_fmt, u, u_fmt = weights
    bound = max(abs(float(builder.fmt.min_value)), abs(float(builder.fmt.max_value)))
    products = np.concatenate(
        [np.abs(np.asarray(w, dtype=np.float64)) * float(w_fmt.lsb) * bound,
         np.abs(np.asarray(u, dtype=np.float64)) * float(u_fmt.lsb) * h_bound], axis=1)
    products += float(accum.lsb)  # each product is cast to accum_t: one LSB at most
    builder._check_accumulator(name, accum, products,
                               np.abs(np.asarray(bias, dtype=np.float64)) * float(accum.lsb))
