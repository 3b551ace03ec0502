"""Int8 TFLite models to nnfab's model graph, exact to TFLite's reference kernels.

Tensors stay TFLite's int8 codes (``fixed<8,8>``, the zero point kept beside the format in the
layer that reads them). Each integer operator becomes an exact integer sum and an
``output_stage`` layer (:mod:`nnfab.ir.output_stage`):

- ``CONV_2D``, ``DEPTHWISE_CONV_2D`` and ``RESHAPE``: :mod:`.tflite_conv`.
- ``FULLY_CONNECTED``: a ``dense`` layer whose output is its whole exact accumulator, with the
  zero points folded as :mod:`.int8_layers` does; then an output
  stage in the ``half_away`` form :meth:`~nnfab.output_stage.OutputStage.fit_real` proves equal
  to the kernel's ``round(double(acc) * M)`` for every accumulator.

The handlers of ``AVERAGE_POOL_2D``, ``MAX_POOL_2D``, ``ADD``, ``SOFTMAX`` and ``RESHAPE`` are in
:mod:`.tflite_ops`.

Operators are read by handlers registered in :data:`HANDLERS` by TFLite opcode; the file reader
(:mod:`.tflite_file`) has already rejected what nnfab does not read at all.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.output_stage import OutputStage
from nnfab.sim.golden.tflite import activation_range, fc_effective_scales

from nnfab.ir import INPUT, DenseLayer, Model, OutputStageLayer

from .int8_layers import INT8, exact_dense, model_name
from .tflite_file import read_tflite

__all__ = ["load_tflite", "HANDLERS", "MAX_MULTIPLIERS"]

#: Default multiplier budget per layer: TFLite models are large (ad01: 270,000 weights), so
#: each layer gets the smallest reuse factor that keeps it at or below this many multipliers
#: (``--reuse-factor``/``--max-multipliers`` choose otherwise).
MAX_MULTIPLIERS = 64

#: Handler of each TFLite opcode: ``HANDLERS[opcode](builder, op) -> None``.
HANDLERS = {}


def handler(opcode):
    """Decorator registering the handler of a TFLite opcode."""
    def register(function):
        if opcode in HANDLERS:
            raise RuntimeError(f"TFLite opcode {opcode} has two handlers: "
                               f"{HANDLERS[opcode].__module__} and {function.__module__}")
        HANDLERS[opcode] = function
        return function
    return register


class _Builder:
    """The layers built so far, and which IR tensor holds each TFLite tensor."""

    def __init__(self, model):
        self.model = model
        self.layers = []
        self.tensor_of = {}      # TFLite tensor index -> IR tensor name
        self.shape_of = {}       # TFLite tensor index -> IR shape

    def name(self, op):
        return f"{op.opcode.lower()}_{op.index}"

    def tensor(self, index):
        return self.model.tensors[index]

    def source(self, op, position=0):
        """IR tensor name and shape read by input ``position`` of ``op``."""
        index = op.inputs[position]
        if index not in self.tensor_of:
            raise UnsupportedLayerError(
                f"Operator {op.index} ({op.opcode}): its input {position} "
                f"{self.tensor(index).name!r} is neither the model input nor computed by an "
                f"operator before it")
        return self.tensor_of[index], self.shape_of[index]

    def add(self, layer, reads, output_index=None):
        layer = replace(layer, inputs=tuple(reads))
        self.layers.append(layer)
        if output_index is not None:
            self.tensor_of[output_index] = layer.name
            self.shape_of[output_index] = tuple(layer.output_shape)
        return layer

    def alias(self, output_index, name, shape):
        """TFLite tensor ``output_index`` is IR tensor ``name`` (an operator that keeps the
        codes and their order)."""
        self.tensor_of[output_index] = name
        self.shape_of[output_index] = tuple(shape)


@handler("FULLY_CONNECTED")
def _fully_connected(b, op):
    source, shape = b.source(op)
    t_in, t_w, t_out = (b.tensor(i) for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    weights = t_w.data.astype(np.int64)
    n_out, n_in = weights.shape
    if int(np.prod(shape)) != n_in:
        raise UnsupportedLayerError(f"Operator {op.index} (FULLY_CONNECTED): input of "
                                    f"{int(np.prod(shape))} values, weights of {n_in} inputs; "
                                    f"nnfab reads one row per inference")
    weights = weights - np.broadcast_to(np.asarray(t_w.zero_points, dtype=np.int64),
                                        (n_out,))[:, None]
    bias = (b.tensor(op.inputs[2]).data.astype(np.int64)
            if len(op.inputs) > 2 and op.inputs[2] >= 0 else np.zeros(n_out, dtype=np.int64))
    name = b.name(op)
    spec = exact_dense(weights, bias, t_in.zero_point)
    exact = spec.output_format
    effective = fc_effective_scales(t_in, t_w, t_out, n_out)
    low, high = activation_range(t_out, op.options["fused_activation"])
    try:
        stage = OutputStage.fit_real(effective, zero_point=t_out.zero_point, low=int(low),
                                     high=int(high))
    except ValueError as exc:
        raise UnsupportedLayerError(f"Operator {op.index} (FULLY_CONNECTED): {exc}") from None
    dense = b.add(DenseLayer(name, spec=spec), [source])
    b.add(OutputStageLayer(f"{name}_requantize", shape=(n_out,), fin=exact, stage=stage),
          [dense.name], op.outputs[0])


def _operator_range(model, operators, path):
    """The operators to build: all, or the contiguous ``range`` given."""
    n = len(model.operators)
    if operators is None:
        return model.operators
    if not isinstance(operators, range) or operators.step != 1 or not operators or \
            not 0 <= operators.start < operators.stop <= n:
        raise ValueError(f"Operators of {str(path)!r} must be a non-empty range of step 1 "
                         f"within range(0, {n}), not {operators!r}")
    return model.operators[operators.start:operators.stop]


def load_tflite(path, *, operators=None):
    """Read an int8 ``.tflite`` file into a quantized :class:`~nnfab.ir.Model`.

    The model's input is the int8 input tensor (codes in ``fixed<8,8>``, TFLite's layout with
    the batch axis dropped); its output is the int8 output tensor. Reuse factors are chosen so
    that no layer has more than :data:`MAX_MULTIPLIERS` multipliers.

    Each operator's layers are named after its opcode and index: ``conv_2d_3`` (the exact
    accumulator) and ``conv_2d_3_requantize`` (TFLite's int8 output tensor), ``reshape_10``.

    Parameters
    ----------
    path : str or os.PathLike
    operators : range, optional
        Build only these operators (contiguous, step 1), for a model that has operators
        nnfab does not build yet after or before them: the first one's data input is the
        model's input, the last one's output the model's output.

    Raises
    ------
    ModelError
        For files :func:`~.tflite_file.read_tflite` rejects.
    UnsupportedLayerError
        For an operator nnfab reads but does not build yet, naming it, its index and what is
        built.
    ValueError
        If ``operators`` is not a non-empty range of step 1 within the model's operators.
    """
    from ..passes import ChooseReuseFactors, run_passes

    path = Path(path)
    model = read_tflite(path)
    ops = _operator_range(model, operators, path)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedLayerError(f"Model file {str(path)!r}: {len(model.inputs)} inputs and "
                                    f"{len(model.outputs)} outputs; nnfab builds one of each")
    t_in = model.tensors[model.inputs[0] if operators is None else ops[0].inputs[0]]
    if t_in.dtype != "int8":
        raise UnsupportedLayerError(f"Model file {str(path)!r}: input {t_in.name!r} is "
                                    f"{t_in.dtype}; nnfab builds int8 inputs")
    builder = _Builder(model)
    builder.tensor_of[t_in.index] = INPUT
    input_shape = tuple(t_in.shape[1:]) if len(t_in.shape) > 1 else tuple(t_in.shape)
    builder.shape_of[t_in.index] = input_shape
    for op in ops:
        if op.opcode not in HANDLERS:
            raise UnsupportedLayerError(
                f"Operator {op.index} ({op.opcode}): not built yet; nnfab builds TFLite "
                f"models of {', '.join(HANDLERS)}")
        HANDLERS[op.opcode](builder, op)
    output = model.outputs[0] if operators is None else ops[-1].outputs[0]
    if not builder.layers or builder.tensor_of.get(output) != builder.layers[-1].name:
        raise UnsupportedLayerError(f"Model file {str(path)!r}: the output tensor is not "
                                    f"computed by the last operator's layer")
    name = model_name(path, "tflite_model")
    if operators is not None:
        name = f"{name}_ops_{operators.start}_{operators.stop - 1}"
    built = Model(name, input_shape, INT8, tuple(builder.layers))
    built, _ = run_passes(built, [ChooseReuseFactors(max_multipliers=MAX_MULTIPLIERS)])
    return built


# The handlers of the other operators register themselves in HANDLERS on import (they import
# ``handler`` from here).
from . import tflite_conv, tflite_ops  # noqa: E402,F401
