"""Int8 ONNX models as onnxruntime's quantizer writes them, exact to onnxruntime's CPU kernels.

``onnxruntime.quantization.quantize_static`` writes one of two forms:

- **QDQ** (``QuantFormat.QDQ``): float operators between ``DequantizeLinear`` and
  ``QuantizeLinear`` nodes: ``DQ(x) -> Conv/Gemm/MatMul (DQ(int8 weights), DQ(int32 bias)) ->
  Q``; ``DQ -> MaxPool/Flatten/Reshape -> Q`` with one scale on both sides. The quantizer
  removes a ``Relu`` after a product and calibrates the ``Q`` on the ReLU's range instead, so
  the clamp at ``-128`` is the ReLU.
- **QOperator**: ``QLinearConv``, ``QLinearMatMul`` and ``QGemm`` (``com.microsoft``) on int8
  tensors, with ``MaxPool``/``Flatten``/``Reshape`` applied to the int8 tensors themselves.

onnxruntime runs both forms as the integer kernels (its graph optimizer fuses the QDQ form
into ``QLinearConv``/``QGemm``/...), and so does nnfab: each product is an exact integer
accumulator (:mod:`.int8_layers`: weights less their zero point, the input zero point folded
into the int32 bias, padding with the input zero point), then the kernels' requantization,
``clamp(nearbyint(float(acc) * scale[c]) + zp_y)`` in float32 with ``scale[c] = float(float(s_x *
s_w[c]) / s_y)`` (``MlasRequantizeOutput``). That becomes an ``output_stage`` layer with
``rounding="half_even"`` where :meth:`~nnfab.output_stage.OutputStage.fit_float32` proves an
integer multiplier equal on every int32 accumulator, else a ``multithreshold`` layer: for a
monotone map from integers to codes, the least accumulator of each code, found by bisection over
the accumulator's format, gives it exactly (its ``proof`` says so).

Tensors stay int8 codes (``fixed<8,8>``); the model's input is the codes of the graph input's
``QuantizeLinear`` (the host quantizes: ``nnfab verify --inputs`` of floats does it as
onnxruntime does), its output the codes before the last ``DequantizeLinear``. Images are
channels-last inside nnfab; a 4-D input ``(N, C, H, W)`` is read as the file's NCHW (the
convolution weights are transposed, a ``Flatten`` of frames permutes the next product's weight
columns to nnfab's row, column, channel order).

Refused, each by one :class:`~nnfab.errors.UnsupportedLayerError` naming the node: uint8
activations, operators other than those above (``QLinearAdd``, ``QLinearConcat``, ...), float
operators whose inputs are not dequantized int8 tensors or whose output is not quantized again,
pools whose ``QuantizeLinear`` changes the scale.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nnfab.errors import ModelError, UnsupportedLayerError
from nnfab.ir import (INPUT, Conv2DLayer, DenseLayer, FlattenLayer, Model, MultiThresholdLayer,
                      OutputStageLayer, PoolLayer)
from nnfab.conv_layers import PoolSpec
from nnfab.output_stage import OutputStage
from nnfab.requantize import multiply_by_float32

from .int8_layers import INT8, exact_conv, exact_dense, model_name
from .onnx import read_onnx, window

__all__ = ["is_onnx_int8", "load_onnx_int8", "onnx_input_quantization", "INT8_OPS"]

#: Nodes that make a graph onnxruntime-quantized.
INT8_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm")
_PRODUCTS = ("Conv", "Gemm", "MatMul")
_SHAPE_OPS = ("Flatten", "Reshape")
_BUILT = ("QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, QGemm, and Conv, Gemm, "
          "MatMul, MaxPool, Flatten, Reshape between them")


def is_onnx_int8(onnx_model):
    """Whether an ONNX graph is quantized by onnxruntime (QDQ or QOperator nodes)."""
    return any(node.op_type in INT8_OPS for node in onnx_model.graph.node)


@dataclass(frozen=True)
class _Tensor:
    """An int8 tensor of the graph as nnfab holds it: IR tensor ``name``, channels-last
    ``shape``, ``scale`` (float32) and ``zero_point``; ``nchw`` for frames the file holds as
    NCHW; ``columns``: for a vector flattened from NCHW frames, the file's position of each of
    nnfab's elements."""

    name: str
    shape: tuple
    scale: np.float32
    zero_point: int
    nchw: bool = False
    columns: np.ndarray = None


class _Graph:
    """Constants, readers and the int8 tensors built so far."""

    def __init__(self, onnx_model, path):
        from onnx import numpy_helper

        self.path = path
        self.consts = {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
        for node in onnx_model.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.readers = {}
        for node in onnx_model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.int8 = {}          # ONNX tensor name -> _Tensor
        self.float_of = {}      # output of DequantizeLinear of a computed tensor -> its _Tensor
        self.dequantized = {}   # output of DequantizeLinear of a constant -> (codes, scale, zp)
        self.pending = {}       # float output of a product/pool -> what builds it at its Q
        self.layers = []

    def add(self, layer, reads):
        layer = replace(layer, inputs=tuple(t.name for t in reads))
        self.layers.append(layer)
        return layer

    def const(self, node, position, what):
        if len(node.input) <= position or not node.input[position]:
            return None
        name = node.input[position]
        if name not in self.consts:
            raise UnsupportedLayerError(f"Node {node.name or node.op_type!r}: {what} "
                                        f"{name!r} is not a constant")
        return self.consts[name]

    def source(self, node, position=0):
        name = node.input[position]
        if name in self.int8:
            return self.int8[name]
        raise UnsupportedLayerError(f"Node {_name(node)!r} ({node.op_type}): input {name!r} is "
                                    f"not an int8 tensor computed before it (nnfab builds "
                                    f"{_BUILT})")


def _name(node):
    return node.name or f"{node.op_type}_{node.output[0]}"


def _scale_zp(graph, node, scale_at, zp_at, codes=None):
    """``(scales, zero points)`` of a quantized tensor; ``codes``: its constant codes, if any
    (ONNX's type without a zero point is uint8)."""
    scale = np.asarray(graph.const(node, scale_at, "scale"), dtype=np.float32).reshape(-1)
    zp_value = graph.const(node, zp_at, "zero point")
    if zp_value is None:
        zp_value = np.zeros(1, dtype=np.uint8 if codes is None else codes.dtype)
    zp = np.asarray(zp_value)
    if codes is not None and codes.dtype != zp.dtype:
        zp = zp.astype(np.uint8)      # refused below: codes and zero point of one type
    if zp.dtype != np.int8 and zp.dtype != np.int32:
        raise UnsupportedLayerError(f"Node {_name(node)!r} ({node.op_type}): {zp.dtype} "
                                    f"codes; nnfab builds int8 activations and weights "
                                    f"(quantize_static with activation_type=QuantType.QInt8, "
                                    f"weight_type=QuantType.QInt8)")
    return scale, zp.astype(np.int64).reshape(-1)


def _scalar_params(graph, node, scale_at, zp_at):
    scale, zp = _scale_zp(graph, node, scale_at, zp_at)
    if scale.size != 1 or zp.size != 1:
        raise UnsupportedLayerError(f"Node {_name(node)!r} ({node.op_type}): per-axis "
                                    f"quantization of an activation; nnfab builds one scale per "
                                    f"activation tensor")
    return scale[0], int(zp[0])


def _attrs(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _flat_columns(tensor):
    """File position of each of nnfab's elements when ``tensor`` is flattened."""
    if tensor.nchw:
        h, w, c = tensor.shape
        return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    return tensor.columns


def _product(graph, node, x, weights, w_zp, w_scale, bias, y_scale, y_zp):
    """The exact accumulator of ``node`` (a convolution or a matrix product on ``x``) and its
    requantizer; returns the int8 :class:`_Tensor`. ``weights`` are ONNX's: ``(C_out, C_in, KH,
    KW)`` for a convolution, ``(n_out, n_in)`` for a product."""
    name, where = _name(node), f"Node {_name(node)!r} ({node.op_type})"
    n_out = weights.shape[0]
    w_zp = np.broadcast_to(w_zp, (n_out,))
    weights = weights.astype(np.int64) - w_zp.reshape((n_out,) + (1,) * (weights.ndim - 1))
    bias = np.zeros(n_out, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    if w_scale.size not in (1, n_out) or bias.size != n_out:
        raise UnsupportedLayerError(f"{where}: {w_scale.size} weight scales and {bias.size} "
                                    f"biases for {n_out} outputs")
    if weights.ndim == 4:
        attrs = _attrs(node)
        if len(x.shape) != 3:
            raise UnsupportedLayerError(f"{where}: input of shape {x.shape}; nnfab convolves "
                                        f"(H, W, C) frames")
        group = int(attrs.get("group", 1))
        attrs = dict(attrs, kernel_shape=attrs.get("kernel_shape", weights.shape[2:]))
        _, strides, padding = window(name, attrs, x.shape)
        depthwise = group != 1
        if depthwise and not (group == x.shape[2] == n_out and weights.shape[1] == 1):
            raise UnsupportedLayerError(f"{where}: group {group} over {x.shape[2]} channels "
                                        f"into {n_out}; nnfab builds group 1 and depthwise "
                                        f"(group = channels, multiplier 1)")
        w = weights[:, 0].transpose(1, 2, 0) if depthwise else weights.transpose(0, 2, 3, 1)
        spec = exact_conv(where, w, bias, x.zero_point, x.shape, strides=strides,
                          padding=padding, depthwise=depthwise)
        layer = graph.add(Conv2DLayer(name, spec=spec), [x])
        nchw = True
    else:
        if len(x.shape) != 1 or weights.shape[1] != x.shape[0]:
            raise UnsupportedLayerError(f"{where}: weights of {weights.shape[1]} inputs read a "
                                        f"tensor of shape {x.shape}; nnfab multiplies vectors")
        columns = _flat_columns(x)
        if columns is not None:
            weights = weights[:, columns]
        spec = exact_dense(weights, bias, x.zero_point)
        layer = graph.add(DenseLayer(name, spec=spec), [x])
        nchw = False
    scales = (np.float32(x.scale) * w_scale) / np.float32(y_scale)     # float32, as the kernels
    out = _requantizer(graph, f"{name}_requantize", layer, scales, y_zp)
    return _Tensor(out.name, tuple(out.output_shape), np.float32(y_scale), y_zp, nchw=nchw)


def _requantizer(graph, name, layer, scales, zero_point, low=-128):
    """The ``output_stage`` (or, where no integer form is exact, ``multithreshold``) layer of
    onnxruntime's requantization of ``layer``'s accumulators."""
    fin, shape = layer.output_format, tuple(layer.output_shape)
    scales = np.broadcast_to(np.asarray(scales, dtype=np.float32), (shape[-1],))
    if len(set(scales.tolist())) == 1:
        scales = scales[:1]
    try:
        stage = OutputStage.fit_float32(scales, zero_point=zero_point, low=low, high=127)
        return graph.add(OutputStageLayer(name, shape=shape, fin=fin, stage=stage), [layer])
    except ValueError:
        pass
    scales = np.broadcast_to(scales, (shape[-1],))
    levels = np.arange(low + 1, 128)                    # the codes above the lowest
    thresholds = np.empty((shape[-1], levels.size), dtype=np.int64)
    for c, scale in enumerate(scales):
        lo = np.full(levels.size, fin.min_code, dtype=np.int64)
        hi = np.full(levels.size, fin.max_code + 1, dtype=np.int64)
        while np.any(lo < hi):                          # least acc whose code reaches each level
            mid = (lo + hi) // 2
            reached = np.clip(multiply_by_float32(mid, scale) + zero_point, low, 127) >= levels
            hi, lo = np.where(reached, mid, hi), np.where(reached, lo, mid + 1)
        thresholds[c] = lo
    proof = (f"onnxruntime's float32 requantization is monotone in the accumulator; each "
             f"threshold is the least {fin} code of its output code, found by bisection")
    return graph.add(MultiThresholdLayer(name, shape=shape, fin=fin, thresholds=thresholds,
                                         base=low, fout=INT8, proof=proof), [layer])


def _qoperator(graph, node):
    """``QLinearConv``, ``QLinearMatMul`` or ``QGemm`` on int8 tensors."""
    op = node.op_type
    x = graph.source(node)
    if op == "QLinearConv":       # x, xs, xzp, w, ws, wzp, ys, yzp, B
        w_at, y_at, bias_at = 3, 6, 8
    elif op == "QLinearMatMul":   # a, as, azp, b, bs, bzp, ys, yzp
        w_at, y_at, bias_at = 3, 6, None
    else:                         # QGemm: A, as, azp, B, bs, bzp, C, ys, yzp
        w_at, y_at, bias_at = 3, 7, 6
    _check_input_params(graph, node, x, 1, 2)
    weights = np.asarray(graph.const(node, w_at, "weight"))
    w_scale, w_zp = _scale_zp(graph, node, w_at + 1, w_at + 2)
    bias = graph.const(node, bias_at, "bias") if bias_at is not None else None
    if len(node.input) <= y_at or not node.input[y_at]:
        raise UnsupportedLayerError(f"Node {_name(node)!r} ({op}): float output; nnfab builds "
                                    f"products with an int8 output (y_scale and y_zero_point)")
    y_scale, y_zp = _scalar_params(graph, node, y_at, y_at + 1)
    if op != "QLinearConv":
        weights = _matrix(node, weights, w_scale)
    graph.int8[node.output[0]] = _product(graph, node, x, weights, w_zp, w_scale, bias,
                                          y_scale, y_zp)


def _matrix(node, weights, w_scale):
    """``(n_out, n_in)`` weights of a ``Gemm``/``QGemm`` (``transB``) or ``MatMul``."""
    attrs = _attrs(node)
    if attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0 or \
            float(attrs.get("beta", 1.0)) != 1.0:
        raise UnsupportedLayerError(f"Node {_name(node)!r} ({node.op_type}): transA, alpha or "
                                    f"beta other than 0, 1, 1")
    if weights.ndim != 2:
        raise UnsupportedLayerError(f"Node {_name(node)!r} ({node.op_type}): weights of shape "
                                    f"{weights.shape}; nnfab multiplies by a matrix")
    return weights if attrs.get("transB", 0) else weights.T


def _check_input_params(graph, node, x, scale_at, zp_at):
    scale, zp = _scalar_params(graph, node, scale_at, zp_at)
    if scale != x.scale or zp != x.zero_point:
        raise ModelError(f"Node {_name(node)!r} ({node.op_type}): reads {node.input[0]!r} with "
                         f"scale {float(scale)!r} and zero point {zp}, but the tensor was "
                         f"quantized with scale {float(x.scale)!r} and zero point "
                         f"{x.zero_point}")


def _dequantize(graph, node):
    source = node.input[0]
    if source in graph.consts:
        codes = np.asarray(graph.consts[source])
        scale, zp = _scale_zp(graph, node, 1, 2, codes)
        graph.dequantized[node.output[0]] = (codes, scale, zp)
    else:
        x = graph.source(node)
        _check_input_params(graph, node, x, 1, 2)
        graph.float_of[node.output[0]] = x


def _float_node(graph, node):
    """A float operator of the QDQ form: remember how to build it when its ``Q`` comes."""
    op, name = node.op_type, _name(node)
    data = node.input[0]
    if data not in graph.float_of:
        raise UnsupportedLayerError(f"Node {name!r} ({op}): input {data!r} is not a "
                                    f"dequantized int8 tensor (nnfab builds {_BUILT})")
    x = graph.float_of[data]
    if op in _PRODUCTS:
        weights = graph.dequantized.get(node.input[1]) if len(node.input) > 1 else None
        bias = graph.dequantized.get(node.input[2]) if len(node.input) > 2 and \
            node.input[2] else None
        if weights is None or (len(node.input) > 2 and node.input[2] and bias is None):
            raise UnsupportedLayerError(f"Node {name!r} ({op}): weights or bias are not "
                                        f"dequantized int8/int32 constants")
        codes, w_scale, w_zp = weights
        # onnxruntime's fused kernels add the int32 bias codes to the accumulator as they are
        # (their scale is the input's times the weights', as the quantizer writes it).
        if bias is not None and (bias[0].dtype != np.int32 or bias[2].any()):
            raise UnsupportedLayerError(f"Node {name!r} ({op}): bias of {bias[0].dtype} with "
                                        f"zero point {bias[2].tolist()}; nnfab builds int32 "
                                        f"biases with zero point 0")
        if op != "Conv":
            codes = _matrix(node, codes, w_scale)

        def build(y_scale, y_zp):
            return _product(graph, node, x, codes, w_zp, w_scale,
                            None if bias is None else bias[0], y_scale, y_zp)
    elif op in ("MaxPool",) + _SHAPE_OPS:
        def build(y_scale, y_zp):
            if (y_scale, y_zp) != (x.scale, x.zero_point):
                raise UnsupportedLayerError(f"Node {name!r} ({op}): quantized again with scale "
                                            f"{float(y_scale)!r}, zero point {y_zp}; nnfab "
                                            f"builds it on int8 codes with the input's scale "
                                            f"{float(x.scale)!r}, zero point {x.zero_point}")
            return _on_codes(graph, node, x)
    else:
        raise UnsupportedLayerError(f"Node {name!r} ({op}): not built; nnfab builds {_BUILT}")
    graph.pending[node.output[0]] = build


def _on_codes(graph, node, x):
    """``MaxPool``, ``Flatten`` or ``Reshape`` on the int8 codes of ``x``."""
    op, name = node.op_type, _name(node)
    if op == "MaxPool":
        attrs = _attrs(node)
        if len(x.shape) != 3 or attrs.get("ceil_mode", 0) or any(
                int(d) != 1 for d in attrs.get("dilations", (1, 1))):
            raise UnsupportedLayerError(f"Node {name!r} (MaxPool): nnfab pools (H, W, C) frames "
                                        f"without ceil_mode and dilation")
        kernel, strides, padding = window(name, attrs, x.shape)
        spec = PoolSpec("max", x.shape, kernel, INT8, INT8, strides=strides, padding=padding)
        layer = graph.add(PoolLayer(name, spec=spec), [x])
        return replace(x, name=layer.name, shape=tuple(layer.output_shape))
    # Flatten or Reshape to one vector per sample.
    if op == "Reshape":
        target = graph.const(node, 1, "shape")
        if target is None or len(target) != 2:
            raise UnsupportedLayerError(f"Node {name!r} (Reshape): to {target!r}; nnfab builds "
                                        f"reshapes to (batch, n)")
    elif int(_attrs(node).get("axis", 1)) != 1:
        raise UnsupportedLayerError(f"Node {name!r} (Flatten): axis "
                                    f"{_attrs(node)['axis']}; nnfab builds axis 1")
    if len(x.shape) == 1:
        return x
    layer = graph.add(FlattenLayer(name, shape=x.shape, fmt=INT8), [x])
    return _Tensor(layer.name, tuple(layer.output_shape), x.scale, x.zero_point,
                   columns=_flat_columns(x))


def _quantize(graph, node, input_name):
    y_scale, y_zp = _scalar_params(graph, node, 1, 2)
    source = node.input[0]
    if source == input_name:
        if graph.int8:
            raise UnsupportedLayerError(f"Node {_name(node)!r} (QuantizeLinear): the graph input "
                                        f"is quantized twice; nnfab builds one int8 input")
        graph.int8[node.output[0]] = _Tensor(INPUT, graph.input_shape, y_scale, y_zp,
                                             nchw=len(graph.input_shape) == 3)
        return
    if source not in graph.pending:
        raise UnsupportedLayerError(f"Node {_name(node)!r} (QuantizeLinear): quantizes "
                                    f"{source!r}, which is not the output of a float operator "
                                    f"between quantizers (nnfab builds {_BUILT})")
    graph.int8[node.output[0]] = graph.pending.pop(source)(y_scale, y_zp)


def _input(onnx_model, consts):
    inputs = [i for i in onnx_model.graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"ONNX graph has {len(inputs)} data inputs; nnfab imports "
                                    f"single-input models only")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) not in (2, 4) or any(d <= 0 for d in dims[1:]):
        raise ModelError(f"ONNX input {inputs[0].name!r} has shape {dims}; nnfab imports "
                         f"(N, n) vectors and (N, C, H, W) images of fixed size")
    shape = tuple(dims[1:]) if len(dims) == 2 else (dims[2], dims[3], dims[1])
    return inputs[0].name, shape


def load_onnx_int8(path):
    """Read an ONNX model quantized by onnxruntime (QDQ or QOperator form, int8) into a
    quantized :class:`~nnfab.ir.Model` equal to onnxruntime's CPU kernels code for code.

    The model's input is the int8 codes of the graph input's ``QuantizeLinear``
    (:func:`onnx_input_quantization`), its output the int8 codes of the last tensor before the
    final ``DequantizeLinear``. Reuse factors keep every layer at or below
    :data:`~nnfab.gen.importers.tflite.MAX_MULTIPLIERS` multipliers.

    Raises
    ------
    ModelError
        For a file that is not valid ONNX or whose quantization parameters disagree.
    UnsupportedLayerError
        For an operator, type or graph shape nnfab does not build, naming the node.
    """
    from ..passes import ChooseReuseFactors, run_passes
    from .tflite import MAX_MULTIPLIERS

    path = Path(path)
    onnx_model = read_onnx(path)
    graph = _Graph(onnx_model, path)
    input_name, graph.input_shape = _input(onnx_model, graph.consts)
    for node in onnx_model.graph.node:
        op = node.op_type
        if op == "Constant":
            continue
        if op == "QuantizeLinear":
            _quantize(graph, node, input_name)
        elif op == "DequantizeLinear":
            _dequantize(graph, node)
        elif op in ("QLinearConv", "QLinearMatMul", "QGemm"):
            _qoperator(graph, node)
        elif node.input and node.input[0] in graph.int8 and op in ("MaxPool",) + _SHAPE_OPS:
            graph.int8[node.output[0]] = _on_codes(graph, node, graph.source(node))
        else:
            _float_node(graph, node)
    if not graph.layers:
        raise UnsupportedLayerError(f"Model file {str(path)!r}: no int8 operator to build")
    outputs = [o.name for o in onnx_model.graph.output]
    output = _graph_output(graph, outputs, path)
    if output.name != graph.layers[-1].name:
        raise UnsupportedLayerError(f"Model file {str(path)!r}: the output is not computed by "
                                    f"the last node nnfab builds")
    model = Model(model_name(path, "onnx_model"), graph.input_shape, INT8, tuple(graph.layers))
    model, _ = run_passes(model, [ChooseReuseFactors(max_multipliers=MAX_MULTIPLIERS)])
    return model


def _graph_output(graph, outputs, path):
    if len(outputs) != 1:
        raise UnsupportedLayerError(f"Model file {str(path)!r}: {len(outputs)} outputs; nnfab "
                                    f"builds one")
    name = outputs[0]
    if name in graph.float_of:
        return graph.float_of[name]
    if name in graph.int8:
        return graph.int8[name]
    raise UnsupportedLayerError(f"Model file {str(path)!r}: output {name!r} is neither an int8 "
                                f"tensor nor its DequantizeLinear")


def onnx_input_quantization(path):
    """The :class:`~nnfab.gen.input_quantization.InputQuantization` of the graph input's
    ``QuantizeLinear`` (ONNX's rounding: ``x / scale`` in float32, ties to even)."""
    from ..input_quantization import InputQuantization

    onnx_model = read_onnx(path)
    graph = _Graph(onnx_model, Path(path))
    input_name, _ = _input(onnx_model, graph.consts)
    for node in onnx_model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] == input_name:
            scale, zp = _scalar_params(graph, node, 1, 2)
            return InputQuantization(float(scale), zp, rounding="onnx")
    return None
