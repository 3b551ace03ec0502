"""ONNX ``RNN``, ``LSTM`` and ``GRU`` nodes as :class:`~nnfab.ir.FloatRecurrent` layers
(ONNX operator specs, opset 14+).

Accepted: one forward direction, constant ``W``, ``R`` and ``B``, no ``sequence_lens``,
initial states or peepholes, the default activations (RNN ``Tanh``; LSTM and GRU
``Sigmoid``, ``Tanh``(, ``Tanh``)), no ``clip``; LSTM without ``input_forget``; GRU with
``linear_before_reset=1`` (Keras' ``reset_after``, PyTorch's GRU) or 0 (ONNX's default,
Keras' ``reset_after=False``). The data input is
``(batch, seq, input)`` with ``layout=1``; with ``layout=0`` (onnxruntime's only one, and what
PyTorch exports) ``(seq, batch, input)``: the batch-first tensor after a ``Transpose`` with
``perm=[1, 0, 2]``, which the importer notes as ``time_major``. Either
``Y`` (every step: ``return_sequences``) or ``Y_h`` (the last state) may be read, not both;
the ``num_directions`` axis of either is dropped (a ``Squeeze`` of it passes through), and
``Y`` of ``layout=0`` is time-major until a ``Transpose`` back.

Gate order: ONNX's LSTM rows are ``i, o, f, c``, reordered here to Keras' ``i, f, c, o``; GRU
rows ``z, r, h`` are Keras' order already. ``B`` is ``[Wb, Rb]``: summed into one bias for RNN
and LSTM; for GRU with ``linear_before_reset=1`` ``Wb`` is the input bias and ``Rb`` the
recurrent one, with 0 they are summed too (ONNX adds ``Rbh`` outside ``r * (H R_h^T)``).
"""

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.ir import FloatRecurrent

__all__ = ["RECURRENT_OPS", "recurrent_layer"]

RECURRENT_OPS = {"RNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"],
                        "GRU": ["Sigmoid", "Tanh"]}
#: Keras' LSTM gate blocks i, f, c, o in ONNX's i, o, f, c.
_LSTM_ORDER = (0, 2, 3, 1)


def _refuse(name, what):
    raise UnsupportedLayerError(f"Node {name!r}: {what} is not supported")


def recurrent_layer(node, name, attrs, consts, shape, read, *, time_major):
    """``(layer, output index)``: the float layer of recurrent node ``node`` reading a
    ``(seq, input)`` tensor of ``shape`` (``time_major`` after a ``Transpose``), and which of
    its outputs (0: ``Y``, 1: ``Y_h``) the graph reads; ``read(k)`` says whether output ``k``
    has readers.

    Raises
    ------
    UnsupportedLayerError
        For what the module docstring does not accept, naming the node.
    """
    op = node.op_type
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward":
        _refuse(name, f"direction {direction!r} (only 'forward')")
    layout = int(attrs.get("layout", 0))
    if layout != (0 if time_major else 1):
        _refuse(name, f"layout {layout} of a {'time' if time_major else 'batch'}-major input "
                      f"(layout=1 takes (batch, seq, input), layout=0 the Transpose of it)")
    activations = [a.decode() if isinstance(a, bytes) else a
                   for a in attrs.get("activations", _DEFAULT_ACTIVATIONS[op])]
    if activations != _DEFAULT_ACTIVATIONS[op]:
        _refuse(name, f"activations {activations} (only {_DEFAULT_ACTIVATIONS[op]})")
    for key in ("clip", "activation_alpha", "activation_beta"):
        if key in attrs:
            _refuse(name, f"attribute {key!r}")
    if int(attrs.get("input_forget", 0)):
        _refuse(name, "input_forget=1")
    for k, what in ((4, "sequence_lens"), (5, "initial_h"), (6, "initial_c"),
                    (7, "peepholes P")):
        if len(node.input) > k and node.input[k]:
            _refuse(name, f"input {what}")
    if any(k not in consts for k in (1, 2)):
        _refuse(name, "W or R that is not a constant")
    if len(shape) != 2:
        _refuse(name, f"input of shape {shape} (needs (seq, input))")
    w, r = consts[1][0], consts[2][0]
    n = r.shape[1]
    b = consts[3][0] if 3 in consts else np.zeros(2 * w.shape[0])
    wb, rb = b[:w.shape[0]], b[w.shape[0]:]
    if op == "LSTM":
        def order(a):
            return np.concatenate([a[k * n:(k + 1) * n] for k in _LSTM_ORDER])
        w, r, wb, rb = map(order, (w, r, wb, rb))
    outputs = [k for k in (0, 1, 2) if len(node.output) > k and node.output[k] and read(k)]
    if len(outputs) != 1 or outputs[0] == 2:
        _refuse(name, f"reading outputs {outputs} (exactly one of Y and Y_h)")
    reset_after = op != "GRU" or bool(int(attrs.get("linear_before_reset", 0)))
    biases, recurrent_biases = (wb, rb) if op == "GRU" and reset_after else (wb + rb, None)
    return FloatRecurrent(name, RECURRENT_OPS[op], w, r, biases, recurrent_biases,
                          outputs[0] == 0, reset_after=reset_after), outputs[0]
