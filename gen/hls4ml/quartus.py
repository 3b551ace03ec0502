"""Keras models of an hls4ml config with ``Backend: Quartus``: hls4ml 1.3's Quartus templates
(``templates/quartus/firmware/nnet_utils``, ``ac_fixed`` types bundled in ``ac_types``) for
the layers nnfab reproduces: ``SimpleRNN`` (the Vivado backend has no SimpleRNN), ``Dense``
and ``relu``/``linear`` activations. Every other layer is refused: its Quartus code differs
from the Vivado code nnfab reproduces and has not been compared.

Where each rule comes from (hls4ml 1.3):

- ``nnet_recurrent.h`` ``simple_rnn``/``simple_rnn_cell``: ``multiply_W`` and ``multiply_U``
  add each exact product to an ``accum_t`` (``out[i] += input[j] * weight[..]``: ``ac_fixed``
  adds exactly, then quantizes to ``accum_t``), ``add_bias`` and ``add_vectors`` add in
  ``accum_t``. For a truncating (``TRN``) or half-up/half-down rounding (``RND``,
  ``RND_MIN_INF``) ``accum_t`` a quantization of ``a + p`` with ``a`` on the ``accum_t`` grid
  is ``a + cast(p)``, so the sum is nnfab's accumulator: every product and the bias cast to
  ``accum_t``, the sum wrapping in it (as for Vivado's LSTM and GRU,
  :mod:`~nnfab.gen.hls4ml.recurrent`). Other roundings are refused; a saturating ``accum_t``
  is accepted only where no sum can reach its limits. Keras' SimpleRNN has no recurrent bias.
- The activation is ``CONFIG_T::activation<accum_t, data_T>`` written into the ``res_T``
  state array, and ``multiply_U<data_T>`` reads the ``res_T`` state: hls4ml's C++ compiles
  only when the input type ``data_T`` is the result type ``res_T``; the kernel and recurrent
  kernel are both read as ``weight_t`` (one type). Otherwise refused.
- ``nnet_activation.h`` ``dense_tanh``/``sigmoid``: half tables over ``|x|`` with the sign
  mirrored, entries at bin centres (``quartus_writer.py`` ``__write_tanh_table``/
  ``__write_sigmoid_table``): :func:`nnfab.tables.quartus_tanh_table` and
  :func:`~nnfab.tables.quartus_sigmoid_table`, ``index_rounding="magnitude"``. Each layer's
  ``table_t`` (default ``ap_fixed<18,8>``), but one table per model and function, of the
  size ``__get_table_size`` takes from the first layer with that activation (every SimpleRNN
  has one, default 1024): a later layer's own ``table_size`` still scales its index, so a
  larger one reads past the table (measured: 8,028 of 8,044 states differ); a layer whose
  ``table_size`` is not the first one's is refused.
- ``nnet_dense.h`` ``dense_resource``: each product cast to ``accum_t``, summed in
  ``accum_t`` from the bias cast to it, the sum cast to the result: the Vivado numbers.
"""

import numpy as np

from nnfab.casts import cast
from nnfab.errors import UnsupportedLayerError
from nnfab.fixed import Rounding
from nnfab.recurrent import RecurrentSpec
from nnfab.tables import quartus_sigmoid_table, quartus_tanh_table, DEFAULT_TABLE_FORMAT

from nnfab.ir import RecurrentLayer
from ..importers.keras_config import keras_layers, read_config
from .config import ConfigError
from .convert import hls4ml_weight_codes
from .recurrent import check_keras, check_sums, layer_type

__all__ = ["check_quartus_layer", "quartus_simple_rnn"]

#: Roundings for which a cast after every addition equals casting each term.
_SHIFT_INVARIANT = (Rounding.TRN, Rounding.RND, Rounding.RND_MIN_INF)
_LAYERS = ("Dense", "SimpleRNN", "Activation")
_ACTIVATIONS = ("relu", "linear", None)


def check_quartus_layer(name, cls, cfg):
    """Refuse a Keras layer whose hls4ml Quartus code nnfab does not reproduce.

    Raises
    ------
    UnsupportedLayerError
        For a layer other than ``Dense``, ``SimpleRNN`` and ``Activation``, or a ``Dense`` or
        ``Activation`` with an activation other than ``relu`` and ``linear``.
    """
    if cls not in _LAYERS:
        raise UnsupportedLayerError(f"Layer {name!r}: Keras layer {cls!r} is not supported "
                                    f"with Backend Quartus (its Quartus templates differ from "
                                    f"the Vivado ones); Dense, SimpleRNN and Activation (relu, "
                                    f"linear) are")
    if cls != "SimpleRNN" and cfg.get("activation") not in _ACTIVATIONS:
        raise UnsupportedLayerError(f"Layer {name!r}: activation {cfg.get('activation')!r} is "
                                    f"not supported with Backend Quartus (its tables differ "
                                    f"from the Vivado ones); relu or linear")


def _first_table_size(config, kind):
    """hls4ml Quartus' one table per function: ``(size, layer)`` of the first SimpleRNN using
    ``kind``."""
    for cls, cfg, _ in keras_layers(read_config(config.model_path), graph=True):
        if cls == "SimpleRNN" and cfg.get("activation", "tanh") == kind:
            name = cfg.get("name", cls)
            return config.layer_setting(name, cls, "table_size", 1024), name
    raise AssertionError(f"no SimpleRNN uses {kind}")


def _table(builder, name, kind):
    config = builder.config
    size = config.layer_setting(name, "SimpleRNN", "table_size", 1024)
    first, first_name = _first_table_size(config, kind)
    if size != first:
        _refuse(config, name, f"table_size {size!r} differs from {first!r} of layer "
                              f"{first_name!r}, the first using {kind}: hls4ml's Quartus "
                              f"writer makes one {kind} table for the model, of that size, and "
                              f"this layer would index past its end; give every layer using "
                              f"{kind} one table_size")
    table_t = config.layer_setting(name, "SimpleRNN", "table_t") or DEFAULT_TABLE_FORMAT
    make = quartus_sigmoid_table if kind == "sigmoid" else quartus_tanh_table
    try:
        return make(table_size=int(size), table_format=table_t)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path}: table_size {size!r} of layer {name!r} is not "
                          f"supported ({exc}); nnfab's tables take a power of two") from None


def _state_bound(table, result):
    """A bound of ``|h|``: the result type's range, or the largest table entry (for sigmoid
    ``1 - y`` also) and one LSB of rounding."""
    largest = max(abs(c) for c in table.codes) * float(table.table_format.lsb)
    largest += (1.0 if table.kind == "sigmoid" else 0.0) + float(result.lsb)
    return min(largest, float(max(abs(result.min_value), abs(result.max_value))))


def _refuse(config, name, what):
    raise ConfigError(f"{config.path}: layer {name!r}: {what}")


def quartus_simple_rnn(builder, name, cfg, kernel, recurrent_kernel, bias):
    """Add Keras ``SimpleRNN`` layer ``name`` (``kernel`` (n_in, units), ``recurrent_kernel``
    (units, units), ``bias`` (units,)) to ``builder`` with hls4ml Quartus' types and
    arithmetic (module docstring). One step per input row; the state starts at zero.

    Raises
    ------
    UnsupportedLayerError
        For a Keras setting hls4ml mode does not build (as :func:`recurrent`) or an input
        that is not a sequence.
    ConfigError
        For types hls4ml's Quartus C++ does not compile (input type other than the result
        type, recurrent weight type other than the weight type), an ``accum_t`` rounding
        other than TRN, RND and RND_MIN_INF, a saturating ``accum_t`` that a sum could reach,
        a table size that is not a power of two of at least 8 (sigmoid) or 4 (tanh) or not
        the first such layer's.
    """
    cls, config = "SimpleRNN", builder.config
    check_keras(name, cls, cfg)
    if len(builder.shape) != 2:
        raise UnsupportedLayerError(f"Layer {name!r}: a {cls} layer reads sequences (n_steps, "
                                    f"n_in), not shape {builder.shape}")
    w_fmt, u_fmt, b_fmt = (layer_type(builder, name, cls, var) for var in
                           ("weight", "recurrent_weight", "bias"))
    accum = config.layer_setting(name, cls, "accum_t") or layer_type(builder, name, cls, "accum")
    result = layer_type(builder, name, cls, "result")
    if result != builder.fmt:
        _refuse(config, name, f"result type {result} is not its input type {builder.fmt}; "
                              f"hls4ml's Quartus simple_rnn compiles only with one type for both")
    if u_fmt != w_fmt:
        _refuse(config, name, f"recurrent_weight type {u_fmt} is not its weight type {w_fmt}; "
                              f"hls4ml's Quartus simple_rnn reads both as weight_t")
    if accum.rounding not in _SHIFT_INVARIANT:
        _refuse(config, name, f"accum {accum} rounds with {accum.rounding.name} after every "
                              f"addition in hls4ml's Quartus simple_rnn, which nnfab does not "
                              f"reproduce; use "
                              f"{', '.join(r.name for r in _SHIFT_INVARIANT)}")
    activation = cfg.get("activation", "tanh")
    table = _table(builder, name, activation)
    w = hls4ml_weight_codes(np.asarray(kernel).T, w_fmt)
    u = hls4ml_weight_codes(np.asarray(recurrent_kernel).T, u_fmt)
    b_acc = cast(hls4ml_weight_codes(np.asarray(bias, dtype=np.float64), b_fmt), b_fmt, accum)
    check_sums(builder, name, accum, _state_bound(table, result), (w, w_fmt, u, u_fmt), b_acc)
    try:
        spec = RecurrentSpec(
            "simple_rnn", w, u, b_acc, builder.shape[0], bool(cfg.get("return_sequences", False)),
            builder.fmt, w_fmt.replace(rounding="TRN", overflow="WRAP"),
            u_fmt.replace(rounding="TRN", overflow="WRAP"), accum, result, bias_format=accum,
            activation=activation, accumulator_format=accum, **{f"{activation}_table": table})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path}: layer {name!r}: {exc}") from None
    reuse = builder._reuse_factor(name, cls, builder.shape[1] + u.shape[1])
    builder._add(RecurrentLayer(name, spec=spec, reuse_factor=reuse))
