"""Float ONNX models (Gemm or MatMul + Add, Conv, MaxPool, AveragePool, Relu, Sigmoid, Tanh,
Elu, Selu, Softmax, BatchNormalization, Flatten/Reshape, Transpose between the layouts, Identity,
Dropout, Add/Sum of computed tensors, Concat, Resize)
into a :class:`~nnfab.gen.float_model.FloatModel`.

Layouts: nnfab's images are channels-last ``(H, W, C)``; ONNX's ``Conv`` and pooling work on
``NCHW``. A 4-D graph input followed by ``Transpose(perm=[0, 3, 1, 2])`` is an ``NHWC`` input
(Keras exports, e.g. tf2onnx); any other 4-D input ``(N, C, H, W)`` (PyTorch) becomes the
model's channels-last input ``(H, W, C)``: callers pass images channels-last. A ``Flatten`` of
an ``NCHW`` tensor flattens in ``(C, H, W)`` order; nnfab flattens ``(H, W, C)`` and permutes
the next dense layer's weight columns to match, so the numbers are the same.

Read with the ``onnx`` package; initializers through :mod:`onnx.numpy_helper`. The graph has one
data input; nodes take computed tensors and constants (initializers, ``Constant`` nodes, and
nodes computed from constants only). Branches join through ``Add``/``Sum`` (element-wise) and
``Concat`` (along channels); ``Resize`` in nearest mode with integer scales upsamples. QONNX
graphs (with ``Quant``, ``BipolarQuant`` or ``Trunc`` nodes) go to :mod:`.qonnx`, which imports
chains.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnfab.conv_layers import same_padding
from nnfab.errors import ModelError, ShapeError, UnsupportedLayerError
from nnfab.tables import SELU_ALPHA, SELU_SCALE

from ..float_model import (FloatActivation, FloatAdd, FloatBatchNorm, FloatConcatenate,
                           FloatConv2D, FloatDense, FloatFlatten, FloatModel, FloatPool,
                           FloatSoftmax, FloatUpsample)
from .onnx_recurrent import RECURRENT_OPS, recurrent_layer

__all__ = ["read_onnx", "OnnxChain", "declared_layouts", "dense_weights", "is_vector_reshape",
           "load_onnx", "check_channel_axis", "nearest_resize", "window", "float_conv",
           "QONNX_OPS", "CHANNELS_LAST_DOMAIN", "TO_NCHW", "TO_NHWC"]

QONNX_OPS = ("Quant", "BipolarQuant", "Trunc")
#: The node domain of qonnx's channels-last operators (``ConvertToChannelsLastAndClean``).
CHANNELS_LAST_DOMAIN = "qonnx.custom_op.channels_last"
_PASS_THROUGH = ("Identity", "Dropout")
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu",
                "Selu": "selu"}
#: Attributes of the activations that nnfab builds with their default values only.
_DEFAULT_ATTRS = {"Elu": {"alpha": 1.0}, "Selu": {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}}
#: ``Transpose`` permutations of a batch of frames between the layouts.
TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]
_POOLS = {"MaxPool": "max", "AveragePool": "average"}


def _onnx_reason(exc):
    """What onnx's checker said, when it said something a user can act on (its parser's
    protobuf errors say nothing more than "corrupt")."""
    if type(exc).__name__ == "ValidationError":
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f": {first[:200]}" if first else ""
    return ""


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
                         f"corrupt?){_onnx_reason(exc)}") from None
    if not model.graph.node:
        raise ModelError(f"Model file {str(path)!r}: the ONNX graph has no nodes")
    return model


def _attrs(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxChain:
    """The data nodes of an ONNX graph with their constant inputs, in the file's order (which
    ONNX requires to be topological). Whether they form one chain is the caller's rule: hls4ml
    mode refuses any other graph (:mod:`nnfab.gen.hls4ml.onnx_graph`).

    Attributes
    ----------
    input_name : str
    input_shape : tuple of int
        Without the batch dimension.
    nodes : list of (node, name, attrs, constants)
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
        #: "nhwc" or "nchw" for a 4-D input (see the module docstring), else None.
        self.input_layout = None
        if len(self.input_shape) == 3:
            if _starts_with_nhwc_transpose(graph, self.input_name):
                self.input_layout = "nhwc"
            else:
                self.input_layout = "nchw"
                c, h, w = self.input_shape
                self.input_shape = (h, w, c)
        self.nodes = []
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
            consts = {k: self.consts[i] for k, i in enumerate(node.input) if i in self.consts}
            self.nodes.append((node, name, attrs, consts))


def _starts_with_nhwc_transpose(graph, input_name):
    """Whether the graph's first reader of ``input_name`` is ``Transpose(perm=[0, 3, 1, 2])``
    (an NHWC input, as Keras exports have)."""
    first = next((n for n in graph.node if input_name in n.input), None)
    return first is not None and first.op_type == "Transpose" and \
        list(_attrs(first).get("perm", [])) == TO_NCHW


def declared_layouts(path, input_shape, output_shape):
    """The layouts the ONNX file ``path`` declares for its frame input and output, beside the
    imported model's channels-last ``input_shape`` and ``output_shape``: a pair of
    :class:`~nnfab.gen.tensor_layout.TensorLayout` or None (not a 4-D tensor of those frames).

    A 4-D tensor whose shape (without the batch) is the frame's ``(H, W, C)`` is ``NHWC``; one
    whose shape is ``(C, H, W)`` is ``NCHW``. When both fit (``C == H == W``), the input is
    ``NHWC`` if the graph transposes it to NCHW first (Keras exports) or the graph is qonnx's
    channels-last form, else ``NCHW`` (as :class:`OnnxChain` reads it); the output takes the
    input's layout.
    """
    from ..tensor_layout import TensorLayout

    graph = read_onnx(path).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]

    def dims(value_info):
        return tuple(int(d.dim_value) for d in value_info.type.tensor_type.shape.dim[1:])

    def layout(declared, frame, ambiguous_nhwc):
        frame = tuple(frame)
        if len(frame) != 3 or len(declared) != 3:
            return None
        nchw = declared == (frame[2], frame[0], frame[1])
        if declared == frame and (not nchw or ambiguous_nhwc):
            return TensorLayout("NHWC")
        return TensorLayout("NCHW") if nchw else None

    in_layout = None
    if len(inputs) == 1:
        nhwc = _starts_with_nhwc_transpose(graph, inputs[0].name) or \
            any(node.domain == CHANNELS_LAST_DOMAIN for node in graph.node)
        in_layout = layout(dims(inputs[0]), input_shape, nhwc)
    out_layout = None
    if len(graph.output) == 1:
        out_layout = layout(dims(graph.output[0]), output_shape,
                            in_layout is None or not in_layout.transposes)
    return in_layout, out_layout


def dense_weights(node, name, attrs, consts, n_in):
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


def is_vector_reshape(node, consts, shape):
    """Whether ``node`` (a ``Flatten`` or ``Reshape`` with constant inputs ``consts`` by input
    index) only flattens a tensor of ``shape`` into a vector, so that it needs no layer."""
    if node.op_type == "Flatten":
        return len(shape) == 1 or all(d == 1 for d in shape[:-1])
    target = consts.get(1)
    return target is not None and target.reshape(-1)[-1] in (-1, int(np.prod(shape)))


def _is_flatten(node, attrs, consts):
    """A ``Flatten`` (axis 0 or 1) or ``Reshape`` to ``(N, -1)`` of a batch."""
    if node.op_type == "Flatten":
        return attrs.get("axis", 1) in (0, 1)
    target = consts.get(1)
    return node.op_type == "Reshape" and target is not None and target.size == 2


def _window_padding(name, attrs, shape, kernel, strides):
    """``"valid"`` or ``"same"`` from ONNX ``pads``/``auto_pad`` of a window over ``shape``."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "VALID":
        return "valid"
    if auto == "SAME_UPPER":
        return "same"
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if not any(pads):
        return "valid"
    same = [same_padding(shape[axis], kernel[axis], strides[axis]) for axis in (0, 1)]
    if auto == "NOTSET" and pads == [same[0][0], same[1][0], same[0][1], same[1][1]]:
        return "same"
    raise UnsupportedLayerError(f"Node {name!r}: pads {pads} are neither none nor the 'same' "
                                f"padding {[same[0][0], same[1][0], same[0][1], same[1][1]]} of "
                                f"this input; nnfab imports those two")


def window(name, attrs, shape, key="kernel_shape"):
    """``(kernel, strides, padding)`` of an ONNX convolution or pooling node over a
    channels-last ``shape``; ``padding`` is ``"valid"`` or ``"same"``.

    Raises
    ------
    UnsupportedLayerError
        For windows that are not 2-D, dilations other than 1, or other padding.
    """
    kernel = tuple(int(k) for k in attrs.get(key, ()))
    if len(kernel) != 2:
        raise UnsupportedLayerError(f"Node {name!r}: {key} {list(kernel)}; nnfab imports 2-D "
                                    f"windows over images")
    strides = tuple(int(k) for k in attrs.get("strides", (1, 1)))
    if any(int(d) != 1 for d in attrs.get("dilations", (1, 1))):
        raise UnsupportedLayerError(f"Node {name!r}: dilations {list(attrs['dilations'])} are "
                                    f"not supported; only 1")
    return kernel, strides, _window_padding(name, attrs, shape, kernel, strides)


def float_conv(name, attrs, consts, shape):
    """The :class:`FloatConv2D` (channels-last weights) of the ONNX ``Conv`` node ``name`` on
    frames of ``shape`` ``(H, W, C)``."""
    if attrs.get("group", 1) != 1:
        raise UnsupportedLayerError(f"Node {name!r}: Conv with group={attrs['group']} is not "
                                    f"supported; only 1")
    if 1 not in consts or consts[1].ndim != 4:
        raise UnsupportedLayerError(f"Node {name!r}: Conv needs constant 4-D weights (1-D and "
                                    f"3-D convolutions are not supported)")
    weights = consts[1]
    if weights.shape[1] != shape[2]:
        raise ShapeError(f"Node {name!r}: weights of shape {weights.shape} do not take "
                         f"{shape[2]} input channels")
    attrs = dict(attrs, kernel_shape=attrs.get("kernel_shape", weights.shape[2:]))
    _, strides, padding = window(name, attrs, shape)
    return FloatConv2D(name, np.transpose(weights, (0, 2, 3, 1)), consts.get(2), strides,
                       padding)


def _pool(name, op, attrs, shape):
    if attrs.get("ceil_mode", 0):
        raise UnsupportedLayerError(f"Node {name!r}: {op} with ceil_mode=1 is not supported")
    kernel, strides, padding = window(name, attrs, shape)
    if op == "AveragePool" and padding != "valid":
        raise UnsupportedLayerError(f"Node {name!r}: AveragePool with padding is not "
                                    f"supported; only without")
    return FloatPool(name, _POOLS[op], kernel, strides, padding)


def _nchw_order(shape):
    """``order[i]``: the position in an ``NCHW`` flatten of element ``i`` of nnfab's
    ``(H, W, C)`` flatten."""
    h, w, c = shape
    return np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


@dataclass(frozen=True)
class _Tensor:
    """What the importer knows of one ONNX data tensor: the nnfab tensor holding it, its
    shape (channels-last for images), its layout, and the weight-column order of the next
    dense layer after an ``NCHW`` flatten."""

    name: str
    shape: tuple
    layout: str | None = None
    columns: np.ndarray | None = None


def check_channel_axis(name, op, axis, tensor):
    """Whether ``axis`` of an ONNX tensor in ``tensor.layout`` is nnfab's last axis."""
    rank = len(tensor.shape) + 1
    axis = axis + rank if axis < 0 else axis
    last = {"nchw": 1, "nhwc": 3}.get(tensor.layout, rank - 1)
    if axis != last:
        raise UnsupportedLayerError(f"Node {name!r}: {op} along axis {axis} of a "
                                    f"{tensor.layout or 'vector'} tensor is not supported; "
                                    f"only along the channel axis ({last})")


def nearest_resize(name, attrs, consts, tensor):
    """The :class:`FloatUpsample` of an ONNX ``Resize`` node (nearest, asymmetric, floor, with
    integer scales of rows and columns) of ``tensor`` (``shape`` channels-last and its
    ``layout``).

    Raises
    ------
    UnsupportedLayerError
        For other modes or scales.
    """
    mode = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
    if mode.get("mode", "nearest") != "nearest" or \
            mode.get("coordinate_transformation_mode", "half_pixel") != "asymmetric" or \
            mode.get("nearest_mode", "round_prefer_floor") != "floor":
        raise UnsupportedLayerError(
            f"Node {name!r}: Resize with mode {mode.get('mode', 'nearest')!r}, "
            f"coordinate_transformation_mode "
            f"{mode.get('coordinate_transformation_mode', 'half_pixel')!r} and nearest_mode "
            f"{mode.get('nearest_mode', 'round_prefer_floor')!r} is not supported; nnfab "
            f"imports nearest-neighbour upsampling ('nearest', 'asymmetric', 'floor')")
    if len(tensor.shape) != 3:
        raise UnsupportedLayerError(f"Node {name!r}: Resize of shape {tensor.shape}; nnfab "
                                    f"resizes images")
    scales = consts.get(2)
    if (scales is None or scales.size == 0) and consts.get(3) is not None:
        sizes = consts[3].reshape(-1)
        full = (1, tensor.shape[2], *tensor.shape[:2]) if tensor.layout == "nchw" else \
            (1, *tensor.shape)
        scales = sizes / np.array(full, dtype=np.float64)
    if scales is None or scales.size != 4:
        raise UnsupportedLayerError(f"Node {name!r}: Resize needs constant scales or sizes of "
                                    f"4 axes")
    scales = scales.reshape(-1)
    spatial = scales[2:] if tensor.layout == "nchw" else scales[1:3]
    other = [scales[0], scales[1] if tensor.layout == "nchw" else scales[3]]
    if any(v != 1 for v in other) or any(v < 1 or v != int(v) for v in spatial):
        raise UnsupportedLayerError(f"Node {name!r}: Resize scales {scales.tolist()} are not "
                                    f"supported; only integer upsampling of rows and columns")
    return FloatUpsample(name, tuple(int(v) for v in spatial))


def load_onnx(path):
    """A float ONNX model as a :class:`FloatModel` (a graph: ``Add``/``Sum`` of computed
    tensors, ``Concat`` along channels and branches are layers; an ``Add`` of a constant after
    ``MatMul`` is its bias).

    Raises
    ------
    ModelError
        For a file that is not valid ONNX.
    UnsupportedLayerError
        For an operator or a graph shape nnfab does not import, naming the node.
    """
    from nnfab.ir import INPUT

    onnx_model = read_onnx(path)
    chain = OnnxChain(onnx_model)
    readers, graph_outputs = {}, {o.name for o in onnx_model.graph.output}
    for node in onnx_model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    tensors = {chain.input_name: _Tensor(INPUT, chain.input_shape, chain.input_layout)}
    layers = []

    def emit(layer, sources, **changes):
        layer = dataclasses.replace(layer, inputs=tuple(t.name for t in sources))
        layers.append(layer)
        shape = tuple(layer.output_shape(*(t.shape for t in sources)))
        return _Tensor(layer.name, shape, changes.get("layout", sources[0].layout),
                       changes.get("columns"))

    for node, name, attrs, consts in chain.nodes:
        op = node.op_type
        sources = [tensors[i] for i in node.input if i and i not in chain.consts]
        tensor = sources[0]
        shape, layout = tensor.shape, tensor.layout
        if len(sources) > 1 and op not in ("Add", "Sum", "Concat"):
            raise UnsupportedLayerError(f"Node {name!r}: {op} of {len(sources)} computed "
                                        f"tensors is not supported")
        if op == "Transpose" and len(shape) == 3:
            perm = list(attrs.get("perm", []))
            if (layout, perm) not in (("nhwc", TO_NCHW), ("nchw", TO_NHWC)):
                raise UnsupportedLayerError(f"Node {name!r}: Transpose {perm} of a {layout} "
                                            f"tensor is not supported; only between NHWC and "
                                            f"NCHW")
            out = dataclasses.replace(tensor, layout="nchw" if perm == TO_NCHW else "nhwc")
        elif op in ("Conv", *_POOLS):
            if layout != "nchw":
                raise UnsupportedLayerError(f"Node {name!r}: {op} of a tensor in {layout} "
                                            f"layout; ONNX's {op} takes NCHW")
            out = emit(float_conv(name, attrs, consts, shape) if op == "Conv" else
                       _pool(name, op, attrs, shape), sources)
        elif len(shape) == 3 and _is_flatten(node, attrs, consts):
            out = emit(FloatFlatten(name), sources, layout=None,
                       columns=_nchw_order(shape) if layout == "nchw" else None)
        elif op in RECURRENT_OPS:
            layer, k = recurrent_layer(node, name, attrs, consts, shape,
                                       lambda k: readers.get(node.output[k], 0) > 0 or
                                       node.output[k] in graph_outputs,
                                       time_major=layout == "time_major")
            time_major = k == 0 and layout == "time_major"
            tensors[node.output[k]] = emit(
                layer, sources, layout="recurrent_time_major" if time_major else "recurrent")
            continue
        elif op == "Squeeze" and layout in ("recurrent", "recurrent_time_major"):
            # The num_directions axis of a recurrent node's output.
            out = dataclasses.replace(tensor, layout="time_major" if layout ==
                                      "recurrent_time_major" else None)
        elif op == "Transpose" and len(shape) == 2 and list(attrs.get("perm", [])) == [1, 0, 2]:
            out = dataclasses.replace(tensor, layout=None if layout == "time_major"
                                      else "time_major")
        elif op in ("Gemm", "MatMul"):
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Node {name!r}: {op} on shape {shape}; flatten first")
            w, b = dense_weights(node, name, attrs, consts, shape[0])
            if tensor.columns is not None:
                w = w[:, tensor.columns]
            out = emit(FloatDense(name, w, b), sources, layout=None)
        elif op in ("Add", "Sum") and len(sources) > 1:
            out = emit(FloatAdd(name), sources)
        elif op == "Concat":
            for source in sources:
                check_channel_axis(name, op, int(attrs.get("axis", 1)), source)
            if len(sources) == 1:
                out = tensor
            else:
                out = emit(FloatConcatenate(name), sources)
        elif op == "Add":
            bias = consts.get(1, consts.get(0))
            producer = next((k for k, layer in enumerate(layers) if layer.name == tensor.name),
                            None)
            last = None if producer is None else layers[producer]
            if last is None or last.kind != "dense" or last.biases is not None or \
                    bias is None or readers.get(_onnx_name(chain, tensor), 0) > 1:
                raise UnsupportedLayerError(f"Node {name!r}: Add of a constant is supported as "
                                            f"the bias of a MatMul only")
            layers[producer] = FloatDense(last.name, last.weights,
                                          np.broadcast_to(bias.reshape(-1), shape),
                                          inputs=last.inputs)
            out = tensor
        elif op == "Resize":
            out = emit(nearest_resize(name, attrs, consts, tensor), sources)
        elif op in _ACTIVATIONS:
            for key, default in _DEFAULT_ATTRS.get(op, {}).items():
                if abs(float(attrs.get(key, default)) - default) > 1e-6 * default:
                    raise UnsupportedLayerError(f"Node {name!r}: {op} with {key}="
                                                f"{attrs[key]!r} is not supported; only the "
                                                f"default {key}={default}")
            out = emit(FloatActivation(name, _ACTIVATIONS[op]), sources)
        elif op == "Softmax":
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Node {name!r}: Softmax over shape {shape} is not "
                                            f"supported; only over a vector")
            out = emit(FloatSoftmax(name), sources)
        elif op == "BatchNormalization":
            gamma, beta, mean, var = (consts.get(k) for k in (1, 2, 3, 4))
            if any(v is None for v in (gamma, beta, mean, var)):
                raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization needs constant "
                                            f"scale, bias, mean and variance")
            if len(shape) == 3 and layout != "nchw":
                raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization of an NHWC "
                                            f"tensor normalizes its rows; ONNX's takes NCHW")
            out = emit(FloatBatchNorm(name, gamma, beta, mean, var,
                                      float(attrs.get("epsilon", 1e-5))), sources)
        elif op in _PASS_THROUGH or (op in ("Flatten", "Reshape")
                                     and is_vector_reshape(node, consts, shape)):
            out = tensor
        else:
            raise UnsupportedLayerError(f"Node {name!r}: ONNX operator {op!r} is not supported "
                                        f"(supported: Gemm, MatMul, Add, Sum, Concat, Conv, "
                                        f"MaxPool, AveragePool, Resize, Relu, Sigmoid, Tanh, "
                                        f"Elu, Selu, Softmax, BatchNormalization, Flatten, "
                                        f"Reshape, Transpose, RNN, LSTM, GRU)")
        tensors[node.output[0]] = out
    if not layers:
        raise ModelError(f"Model file {str(path)!r}: the ONNX graph has no layers nnfab builds")
    return FloatModel(Path(path).stem, chain.input_shape, tuple(layers))


def _onnx_name(chain, tensor):
    """The ONNX output name of the node that made nnfab tensor ``tensor``."""
    for node, name, _, _ in chain.nodes:
        if name == tensor.name:
            return node.output[0]
    return None
