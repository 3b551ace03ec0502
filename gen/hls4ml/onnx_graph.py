"""The hls4ml graph of an ONNX model after qonnx's clean-up, ``ConvertToChannelsLastAndClean``
and ``GemmToMatMul`` (what hls4ml's ONNX flow expects): nodes named ``OPTYPE_i`` in graph
order (qonnx ``GiveUniqueNodeNames``), the input ``global_in``, every ``Gemm`` a ``MatMul``
plus an ``Add`` of its bias, each ``MatMul`` a bias-free Dense ``Dense_MatMul_i`` and each
``Add`` of a constant an ApplyAlpha ``bn_Add_i``."""

import numpy as np

from nnfab.errors import UnsupportedLayerError

from ..importers.onnx import OnnxChain, dense_weights, read_onnx

__all__ = ["build_onnx"]


def build_onnx(config, builder_class):
    chain = OnnxChain(read_onnx(config.model_path))
    if len(chain.input_shape) != 1:
        raise UnsupportedLayerError(f"Model {str(config.model_path)!r}: hls4ml mode imports "
                                    f"ONNX models on vectors only, not input shape "
                                    f"{chain.input_shape}")
    builder = builder_class(config, "global_in", chain.input_shape)
    counts = {}

    def unique(op):
        index = counts.get(op, 0)
        counts[op] = index + 1
        return f"{op}_{index}"

    def bias_layer(biases):
        add = unique("Add")
        name = f"bn_{add}"
        config.derive(name, add, "Merge")
        builder.apply_alpha(name, biases, config_name=name)

    for node, name, attrs, consts in chain.nodes:
        op = node.op_type
        if op in ("Gemm", "MatMul"):
            w, b = dense_weights(node, name, attrs, consts, builder.shape[0])
            matmul = unique("MatMul")
            dense = f"Dense_{matmul}"
            config.derive(dense, matmul, "MatMul")
            builder.dense(dense, "Dense", w, None)
            if b is not None:
                bias_layer(b)
        elif op == "Add":
            bias = consts.get(1, consts.get(0))
            if bias is None:
                raise UnsupportedLayerError(f"Node {name!r}: Add of two tensors is not "
                                            f"supported; only of a constant")
            bias_layer(np.broadcast_to(bias.reshape(-1), builder.shape))
        elif op == "Relu":
            builder.activation(unique("Relu"), "Activation", "relu")
        elif op == "Softmax":
            builder.softmax(unique("Softmax"))
        elif op in ("Identity", "Dropout") or (op in ("Flatten", "Reshape")
                                               and len(builder.shape) == 1):
            continue
        else:
            raise UnsupportedLayerError(f"Node {name!r}: ONNX operator {op!r} is not supported "
                                        f"in hls4ml mode (Gemm, MatMul, Add, Relu, Softmax)")
    return builder.model(config.model_path.stem)
