"""Float ONNX models (Gemm or MatMul + Add, Relu, Sigmoid, Tanh, Softmax, BatchNormalization,
Flatten/Reshape of a vector, Identity, Dropout) into a :class:`~nnfab.gen.float_model.FloatModel`.

Read with the ``onnx`` package; initializers through :mod:`onnx.numpy_helper`. The graph must be
one chain from its single data input: every node takes the previous node's output and
constants (initializers, ``Constant`` nodes, and nodes computed from constants only). QONNX
graphs (with ``Quant``, ``BipolarQuant`` or ``Trunc`` nodes) go to :mod:`.qonnx`.
"""

from pathlib import Path

import numpy as np

from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError

from ..float_model import (FloatActivation, FloatBatchNorm, FloatDense, FloatModel,
                           FloatSoftmax)

__all__ = ["read_onnx", "OnnxChain", "load_onnx", "load_onnx_any", "QONNX_OPS"]

QONNX_OPS = ("Quant", "BipolarQuant", "Trunc")
_PASS_THROUGH = ("Identity", "Dropout")
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


def read_onnx(path):
    """The parsed ``onnx.ModelProto`` of ``path``, checked by ``onnx.checker``.

    Raises
    ------
    ModelError
        If the file is not a valid ONNX model (truncated or corrupt).
    """
    try:
        import onnx
    except ImportError:  # pragma: no cover
        raise ModelError("Reading ONNX files needs the onnx package (pip install onnx)") \
            from None
    try:
        model = onnx.load(str(path))
        if all(node.domain in ("", "ai.onnx") for node in model.graph.node):
            onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...
        raise ModelError(f"Model file {str(path)!r} is not a valid ONNX model (truncated or "
                         f"corrupt?): {type(exc).__name__}: {str(exc)[:200]}") from None
    if not model.graph.node:
        raise ModelError(f"Model file {str(path)!r}: the ONNX graph has no nodes")
    return model


def _attrs(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxChain:
    """An ONNX graph as a chain of data nodes with their constant inputs.

    Attributes
    ----------
    input_name : str
    input_shape : tuple of int
        Without the batch dimension.
    nodes : list of (node, attrs, constants)
        The data nodes in order; ``constants`` maps input position to ndarray (float64).
    """

    def __init__(self, model, *, constant_op=None):
        from onnx import numpy_helper

        graph = model.graph
        self.consts = {i.name: numpy_helper.to_array(i).astype(np.float64)
                       for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise UnsupportedLayerError(f"ONNX graph has {len(inputs)} data inputs; nnfab imports "
                                        f"single-input models only")
        self.input_name = inputs[0].name
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
            raise ModelError(f"ONNX input {self.input_name!r} has no fixed shape ({dims})")
        self.input_shape = tuple(int(d) for d in dims[1:])
        self.nodes = []
        current = self.input_name
        for node in graph.node:
            name = node.name or f"{node.op_type}_{len(self.nodes)}"
            attrs = _attrs(node)
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(attrs["value"]).astype(
                    np.float64)
                continue
            data = [i for i in node.input if i and i not in self.consts]
            if not data:
                if constant_op is None:
                    raise UnsupportedLayerError(f"Node {name!r}: {node.op_type} of constants is "
                                                f"not supported")
                self.consts[node.output[0]] = constant_op(node, name, attrs, self.consts)
                continue
            if data != [current] or len(node.output) < 1:
                raise UnsupportedLayerError(f"Node {name!r}: takes {data}, not the output of the "
                                            f"node before it ({current!r}); nnfab imports "
                                            f"single-chain graphs only")
            consts = {k: self.consts[i] for k, i in enumerate(node.input) if i in self.consts}
            self.nodes.append((node, name, attrs, consts))
            current = node.output[0]


def _dense_weights(node, name, attrs, consts, n_in):
    """``(weights (n_out, n_in), biases or None)`` of a Gemm or MatMul node."""
    if node.op_type == "MatMul":
        if 1 not in consts:
            raise UnsupportedLayerError(f"Node {name!r}: MatMul needs constant weights as its "
                                        f"second input")
        w = consts[1].T
        b = None
    else:
        if attrs.get("transA", 0):
            raise UnsupportedLayerError(f"Node {name!r}: Gemm with transA=1 is not supported")
        if 1 not in consts:
            raise UnsupportedLayerError(f"Node {name!r}: Gemm needs constant weights")
        w = consts[1] if attrs.get("transB", 0) else consts[1].T
        w = w * float(attrs.get("alpha", 1.0))
        b = consts.get(2)
        if b is not None:
            b = np.broadcast_to(b.reshape(-1) * float(attrs.get("beta", 1.0)), (w.shape[0],))
    if w.ndim != 2 or w.shape[1] != n_in:
        raise ShapeError(f"Node {name!r}: weights of shape {w.shape} do not take {n_in} inputs")
    return w, b


def _is_vector_reshape(node, consts, shape):
    if node.op_type == "Flatten":
        return len(shape) == 1 or all(d == 1 for d in shape[:-1])
    target = consts.get(1)
    return target is not None and target.reshape(-1)[-1] in (-1, int(np.prod(shape)))


def load_onnx(path):
    """A float ONNX model as a :class:`FloatModel`.

    Raises
    ------
    ModelError
        For a file that is not valid ONNX.
    UnsupportedLayerError
        For an operator or a graph shape nnfab does not import, naming the node.
    """
    chain = OnnxChain(read_onnx(path))
    shape, layers = chain.input_shape, []
    for node, name, attrs, consts in chain.nodes:
        op = node.op_type
        if op in ("Gemm", "MatMul"):
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Node {name!r}: {op} on shape {shape}; flatten first")
            w, b = _dense_weights(node, name, attrs, consts, shape[0])
            layers.append(FloatDense(name, w, b))
            shape = (w.shape[0],)
        elif op == "Add":
            bias = consts.get(1, consts.get(0))
            if not layers or layers[-1].kind != "dense" or layers[-1].biases is not None or \
                    bias is None:
                raise UnsupportedLayerError(f"Node {name!r}: Add is supported as the bias of a "
                                            f"MatMul only")
            last = layers.pop()
            layers.append(FloatDense(last.name, last.weights,
                                     np.broadcast_to(bias.reshape(-1), shape)))
        elif op in _ACTIVATIONS:
            layers.append(FloatActivation(name, _ACTIVATIONS[op]))
        elif op == "Softmax":
            layers.append(FloatSoftmax(name))
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (consts.get(k) for k in (1, 2, 3, 4))
            if any(v is None for v in (gamma, beta, mean, var)):
                raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization needs constant "
                                            f"scale, bias, mean and variance")
            layers.append(FloatBatchNorm(name, gamma, beta, mean, var,
                                         float(attrs.get("epsilon", 1e-5))))
        elif op in _PASS_THROUGH or (op in ("Flatten", "Reshape")
                                     and _is_vector_reshape(node, consts, shape)):
            continue
        else:
            raise UnsupportedLayerError(f"Node {name!r}: ONNX operator {op!r} is not supported "
                                        f"(supported: Gemm, MatMul, Add, Relu, Sigmoid, Tanh, "
                                        f"Softmax, BatchNormalization, Flatten, Reshape)")
    if not layers:
        raise ModelError(f"Model file {str(path)!r}: the ONNX graph has no layers nnfab builds")
    return FloatModel(Path(path).stem, chain.input_shape, tuple(layers))


def load_onnx_any(path):
    """:func:`load_onnx` for float ONNX, :func:`nnfab.gen.importers.qonnx.load_qonnx` when the
    graph holds QONNX quantization nodes."""
    model = read_onnx(path)
    if any(node.op_type in QONNX_OPS for node in model.graph.node):
        from .qonnx import load_qonnx

        return load_qonnx(path)
    return load_onnx(path)
