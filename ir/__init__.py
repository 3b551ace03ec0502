"""nnfab's model IR: a graph of quantized layers (:mod:`.graph`, :mod:`.model`), one module per
layer kind, each registered in :mod:`.registry`.

The IR knows shapes, formats, codes, native forms, report rows, float forwards and PTQ rules,
not hardware or golden models: engines are looked up by kind in
:data:`nnfab.gen.assemble.ENGINES`, golden functions in
:data:`nnfab.sim.golden.network.GOLDEN` (see ``docs/architecture.md``).
"""

from .graph import INPUT, consumers_of, is_chain, resolve_graph, rewire_removed
from .model import FusedLayer, Layer, Model
from .float_layer import FloatLayer
from .registry import FLOAT_KINDS, KINDS, native_kinds, register

# The kinds register in this order, which is the order messages list them in.
from .dense import DenseLayer, FloatDense
from .conv import Conv2DLayer, FloatConv2D
from .pool import FloatGlobalPool, FloatPool, GlobalPoolLayer, PoolLayer
from .layout import FlattenLayer, FloatFlatten, FloatZeroPad, ZeroPadLayer
from .activation import FLOAT_ACTIVATIONS, ActivationLayer, FloatActivation
from .batchnorm import BatchNormLayer, FloatBatchNorm
from .quantize import QuantizeLayer
from .softmax import FloatSoftmax, SoftmaxLayer
from .hls4ml_softmax import Hls4mlSoftmaxLayer
from .argmax import ArgmaxLayer, FloatArgmax, argmax_format
from .merge import AddLayer, ConcatenateLayer, FloatAdd, FloatConcatenate
from .upsample import FloatUpsample, UpsampleLayer
from .shift_add import ShiftAddDenseLayer
from .shift_add_chain import ShiftAddChainLayer
from .output_stage import OutputStageLayer, integer_format
from .rom_dense import RomDenseLayer
from .multithreshold import MultiThresholdLayer
from .tflite_ops import TfliteAddLayer, TfliteAveragePoolLayer, TfliteSoftmaxLayer
from .recurrent import FloatRecurrent, RecurrentLayer

__all__ = ["INPUT", "Layer", "FusedLayer", "Model", "resolve_graph", "consumers_of",
           "is_chain", "rewire_removed", "KINDS", "FLOAT_KINDS", "register", "native_kinds",
           "FloatLayer",
           "DenseLayer", "ActivationLayer", "SoftmaxLayer", "ArgmaxLayer",
           "argmax_format", "Conv2DLayer", "PoolLayer", "GlobalPoolLayer", "BatchNormLayer",
           "FlattenLayer", "ZeroPadLayer", "QuantizeLayer", "Hls4mlSoftmaxLayer",
           "ShiftAddDenseLayer", "ShiftAddChainLayer", "OutputStageLayer", "integer_format",
           "RomDenseLayer",
           "MultiThresholdLayer",
           "TfliteAveragePoolLayer", "TfliteAddLayer", "TfliteSoftmaxLayer", "RecurrentLayer",
           "AddLayer", "ConcatenateLayer", "UpsampleLayer",
           "FloatDense", "FloatActivation", "FloatBatchNorm", "FloatSoftmax", "FloatArgmax",
           "FloatConv2D", "FloatPool", "FloatGlobalPool", "FloatZeroPad", "FloatFlatten",
           "FloatAdd", "FloatConcatenate", "FloatUpsample", "FloatRecurrent", "FLOAT_ACTIVATIONS"]
