"""The hls4ml graph of an ONNX model after qonnx's clean-up, ``ConvertToChannelsLastAndClean``
and ``GemmToMatMul`` (what hls4ml's ONNX flow expects): nodes named ``OPTYPE_i`` in graph
order (qonnx ``GiveUniqueNodeNames``), the input ``global_in``, every ``Gemm`` a ``MatMul``
plus an ``Add`` of its bias, each ``MatMul`` a Dense ``Dense_MatMul_i`` and each ``Add`` of a
constant an ApplyAlpha ``bn_Add_i``; each ``Conv`` (of a Keras export's frames, whose
transposes the clean-up removes) a Conv2D ``Conv2D_Conv_i`` with its bias, and a ``Flatten``
of frames the Reshape ``Flatten_i``. A ``Selu`` is the Activation ``Selu_i`` (hls4ml's table
selu), a ``BatchNormalization`` of constants the BatchNormalization ``BatchNormalization_i``
(scale and bias computed from gamma, beta, mean and variance as hls4ml's
``BatchNormalization.initialize`` does), a ``MaxPool`` without padding the Pooling2D
``MaxPool_i``.

hls4ml then merges an ApplyAlpha into the Dense right before it when that Dense's ``result``
type is ``auto`` (``FuseBatchNormalization``, ``bn_fuse.py``, which runs before
``infer_precision_types``): the Dense takes the bias, with its own ``bias`` type (the
``Add``'s types are not used), and its ``auto`` types are inferred with that bias; the
``bn_Add_i`` layer disappears."""

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.tables import SELU_ALPHA, SELU_SCALE

from ..importers.onnx import (TO_NCHW, TO_NHWC, OnnxChain, dense_weights, float_conv, read_onnx,
                              window)

__all__ = ["build_onnx", "onnx_layer_names"]


class _Names:
    """qonnx's ``GiveUniqueNodeNames``: ``OPTYPE_i``, counted per operator type."""

    def __init__(self):
        self.counts = {}

    def __call__(self, op):
        index = self.counts.get(op, 0)
        self.counts[op] = index + 1
        return f"{op}_{index}"


def _constants(model):
    """Every constant of ``model`` (initializers and ``Constant`` nodes) by tensor name, as
    NumPy arrays of their own type (float32 for most models), as hls4ml reads them."""
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(a.t)
    return constants


def _selu(name, attrs):
    """Check that a ``Selu`` node has ONNX's default alpha and gamma, the constants of
    hls4ml's selu (it reads no attribute)."""
    for key, value in (("alpha", SELU_ALPHA), ("gamma", SELU_SCALE)):
        if key in attrs and np.float32(attrs[key]) != np.float32(value):
            raise UnsupportedLayerError(f"Node {name!r}: Selu with {key}={attrs[key]!r} is not "
                                        f"supported in hls4ml mode; hls4ml's selu computes with "
                                        f"the default {key} {value!r} whatever the node says")


def _batchnorm(node, name, attrs, constants, shape, layout):
    """``(scale, bias)`` of an ONNX ``BatchNormalization`` as hls4ml computes them
    (``BatchNormalization.initialize``): ``gamma / np.sqrt(var + epsilon)`` and
    ``beta - scale * mean`` in NumPy, in the constants' own type."""
    names = list(node.input[1:5])
    missing = [n for n in names if n not in constants] + [""] * (4 - len(names))
    if missing:
        raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization needs constant scale, "
                                    f"bias, mean and variance; {missing[0]!r} is not a "
                                    f"constant")
    if attrs.get("training_mode", 0):
        raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization with training_mode="
                                    f"{attrs['training_mode']!r} is not supported; only "
                                    f"inference (0)")
    if len(shape) == 3 and layout != "nchw":
        raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization of a tensor in "
                                    f"{layout} layout; ONNX's normalizes the channels of NCHW")
    gamma, beta, mean, var = (constants[n].reshape(-1) for n in names)
    if gamma.size != shape[-1]:
        raise UnsupportedLayerError(f"Node {name!r}: BatchNormalization of {gamma.size} "
                                    f"channels on shape {shape}")
    scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-05))
    return scale, beta - scale * mean


def _max_pool(name, attrs, shape, layout):
    """``((kernel, strides), output shape)`` of an ONNX ``MaxPool`` without padding on
    frames of ``shape`` (H, W, C)."""
    if len(shape) != 3 or layout != "nchw":
        raise UnsupportedLayerError(f"Node {name!r}: MaxPool of shape {shape} in {layout} "
                                    f"layout is not supported in hls4ml mode; only of NCHW "
                                    f"frames")
    if attrs.get("ceil_mode", 0):
        raise UnsupportedLayerError(f"Node {name!r}: MaxPool with ceil_mode="
                                    f"{attrs['ceil_mode']!r} is not supported in hls4ml mode; "
                                    f"only 0")
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = list(attrs.get("pads", ()))
    if any(pads) or auto not in ("NOTSET", "VALID"):
        padding = f"pads {pads}" if any(pads) else f"auto_pad {auto!r}"
        raise UnsupportedLayerError(f"Node {name!r}: MaxPool with {padding} is not supported "
                                    f"in hls4ml mode; only without padding")
    kernel, strides, _ = window(name, attrs, shape)
    out = tuple((shape[a] - kernel[a]) // strides[a] + 1 for a in (0, 1)) + (shape[2],)
    return (kernel, strides), out


def _not_a_chain(name, tensors, current):
    """The refusal of node ``name``, which reads ``tensors`` rather than only
    ``current``, the output of the node before it."""
    return UnsupportedLayerError(f"Node {name!r}: takes {tensors}, not the output of the node "
                                 f"before it ({current!r}); nnfab imports single-chain graphs "
                                 f"only")


def _steps(chain, constants):
    """The model as hls4ml's ONNX parser sees it: ``(kind, node name, data)`` with kind
    ``matmul`` (data: weights), ``add`` (data: bias),
    ``conv`` (data: a :class:`~nnfab.ir.FloatConv2D`), ``batchnorm`` (data: scale and bias
    floats, :func:`_batchnorm`), ``maxpool`` (data: kernel and strides), ``flatten`` (of
    frames), ``relu``, ``selu``, ``softmax`` or ``skip`` (a no-op node; data: the operator).
    ``constants``: :func:`_constants` of the model.

    Frames (a Keras export's NHWC input, transposed to NCHW around each ``Conv``) are followed
    through the ``Transpose`` nodes that qonnx's ``ConvertToChannelsLastAndClean`` removes;
    a ``Flatten`` must read them channels-last, as hls4ml's channels-last graph flattens.

    The graph must be one chain: each node reads the output of the node before it (the graph's
    input for the first) and constants only. A node that does not read that output is refused
    before its operator's checks, which assume its shape; one that also reads another tensor,
    after them, so that an input that should be a constant (a BatchNormalization's variance,
    an Add's bias) is named as such."""
    unique = _Names()
    steps = []
    shape, layout = chain.input_shape, chain.input_layout
    current = chain.input_name
    for node, name, attrs, consts in chain.nodes:
        op = node.op_type
        tensors = [i for k, i in enumerate(node.input) if i and k not in consts]
        if current not in tensors:
            raise _not_a_chain(name, tensors, current)
        if op == "Transpose" and len(shape) == 3:
            perm = list(attrs.get("perm", []))
            if (layout, perm) not in (("nhwc", TO_NCHW), ("nchw", TO_NHWC)):
                raise UnsupportedLayerError(f"Node {name!r}: Transpose {perm} of a {layout} "
                                            f"tensor is not supported in hls4ml mode; only "
                                            f"between NHWC and NCHW")
            layout = "nchw" if perm == TO_NCHW else "nhwc"
        elif op == "Conv":
            if layout != "nchw":
                raise UnsupportedLayerError(f"Node {name!r}: Conv of a tensor in {layout} "
                                            f"layout; ONNX's Conv takes NCHW")
            conv = float_conv(name, attrs, consts, shape)
            steps.append(("conv", unique("Conv"), conv))
            shape = tuple(conv.output_shape(shape))
        elif op in ("Gemm", "MatMul"):
            if len(shape) != 1:
                raise UnsupportedLayerError(f"Node {name!r}: {op} on shape {shape} is not "
                                            f"supported in hls4ml mode; flatten first")
            w, b = dense_weights(node, name, attrs, consts, shape[0])
            steps.append(("matmul", unique("MatMul"), w))
            shape = (w.shape[0],)
            if b is not None:
                steps.append(("add", unique("Add"), b))
        elif op == "Add":
            bias = consts.get(1, consts.get(0))
            add = unique("Add")
            if bias is None:
                raise UnsupportedLayerError(f"Node {add!r}: Add of two tensors is not "
                                            f"supported; only of a constant")
            steps.append(("add", add, bias.reshape(-1)))
        elif op in ("Relu", "Softmax", "Selu"):
            if op == "Selu":
                _selu(name, attrs)
            steps.append((op.lower(), unique(op), None))
        elif op == "BatchNormalization":
            steps.append(("batchnorm", unique(op),
                          _batchnorm(node, name, attrs, constants, shape, layout)))
        elif op == "MaxPool":
            data, shape = _max_pool(name, attrs, shape, layout)
            steps.append(("maxpool", unique(op), data))
        elif op in ("Flatten", "Reshape") and len(shape) == 3:
            if layout == "nchw":
                raise UnsupportedLayerError(f"Node {name!r}: {op} of an NCHW tensor is not "
                                            f"supported in hls4ml mode (hls4ml's channels-last "
                                            f"graph would need a Transpose layer); only of "
                                            f"NHWC frames")
            steps.append(("flatten", unique("Flatten"), None))
            shape, layout = (int(np.prod(shape)),), None
        elif op in ("Identity", "Dropout", "Flatten", "Reshape"):
            steps.append(("skip", name, op))
        else:
            raise UnsupportedLayerError(f"Node {name!r}: ONNX operator {op!r} is not "
                                        f"supported in hls4ml mode (Gemm, MatMul, Add, Conv, "
                                        f"Relu, Selu, Softmax, BatchNormalization, MaxPool, "
                                        f"Flatten, Transpose between NHWC and NCHW)")
        if tensors != [current] or not node.output:
            raise _not_a_chain(name, tensors, current)
        current = node.output[0]
    return steps


def onnx_layer_names(config):
    """The node names hls4ml's ONNX flow gives ``config``'s model (``global_in``,
    ``MatMul_0``, ``Add_0``, ...) and the layers it creates from them (``Dense_MatMul_0``,
    ``bn_Add_0``) and their constants (``MatMul_0_param0``): the names a ``LayerName`` section
    may use."""
    model = read_onnx(config.model_path)
    names = ["global_in"]
    for kind, name, data in _steps(OnnxChain(model), _constants(model)):
        if kind == "matmul":
            names += [name, f"{name}_param0", f"Dense_{name}"]
        elif kind == "add":
            names += [name, f"{name}_param0", f"bn_{name}"]
        elif kind == "conv":
            names += [name, f"{name}_param0", f"Conv2D_{name}"]
            names += [f"{name}_param1"] if data.biases is not None else []
        elif kind == "batchnorm":
            names += [name] + [f"{name}_param{k}" for k in range(4)]
        elif kind in ("relu", "selu", "softmax", "flatten", "maxpool"):
            names.append(name)
    return names


def build_onnx(config, builder_class):
    model = read_onnx(config.model_path)
    chain = OnnxChain(model)
    builder = builder_class(config, "global_in", chain.input_shape)
    steps = _steps(chain, _constants(model))
    pending = None  # a Dense not built yet: the next Add may merge into it

    def flush():
        nonlocal pending
        if pending is not None:
            builder.dense(*pending, None, typed_zero_bias=True)
            pending = None

    for kind, name, data in steps:
        if kind == "matmul":
            flush()
            dense = f"Dense_{name}"
            config.derive(dense, name, "MatMul")
            pending = (dense, "Dense", data)
        elif kind == "add":
            if pending is not None and builder.result_is_auto(pending[0], "Dense"):
                dense, cls, w = pending
                pending = None
                builder.dense(dense, cls, w, np.broadcast_to(data, (w.shape[0],)),
                              typed_zero_bias=True)
                continue
            flush()
            bn = f"bn_{name}"
            config.derive(bn, name, "Merge")
            builder.apply_alpha(bn, np.broadcast_to(data, builder.shape))
        elif kind == "skip" and data == "Identity":
            continue
        elif kind == "conv":
            flush()
            conv = f"Conv2D_{name}"
            config.derive(conv, name, "Conv")
            builder.conv2d(conv, "Conv2D", data.weights, data.biases, data.strides,
                           data.padding)
        elif kind == "flatten":
            flush()
            builder.flatten(name)
        else:
            flush()
            if kind in ("relu", "selu"):
                builder.activation(name, "Activation", kind)
            elif kind == "batchnorm":
                builder.batchnorm(name, *data)
            elif kind == "maxpool":
                builder.pool(name, "Pooling2D", "max", *data, "valid")
            elif kind == "softmax":
                builder.softmax(name)
            elif kind == "skip" and (data in ("Dropout",) or len(builder.shape) == 1):
                continue
            else:
                raise UnsupportedLayerError(f"Node {name!r}: {data} of shape "
                                            f"{builder.shape} is not supported in hls4ml mode")
    flush()
    return builder.model(config.model_path.stem)
