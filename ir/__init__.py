"""nnfab's model IR: a graph of quantized layers (:mod:`.graph`, :mod:`.model`), one module per
layer kind.

The IR knows shapes, formats and codes, not hardware or golden models: engines are looked up by
kind in :data:`nnfab.gen.assemble.ENGINES`, golden functions in
:data:`nnfab.sim.golden.network.GOLDEN` (see ``docs/architecture.md``).
"""

from .activation import ActivationLayer
from .argmax import ArgmaxLayer, argmax_format
from .batchnorm import BatchNormLayer
from .conv import Conv2DLayer
from .dense import DenseLayer
from .graph import INPUT, consumers_of, is_chain, resolve_graph, rewire_removed
from .hls4ml_softmax import Hls4mlSoftmaxLayer
from .layout import FlattenLayer, ZeroPadLayer
from .merge import AddLayer, ConcatenateLayer
from .model import Layer, Model
from .pool import GlobalPoolLayer, PoolLayer
from .quantize import QuantizeLayer
from .shift_add import ShiftAddDenseLayer
from .softmax import SoftmaxLayer
from .upsample import UpsampleLayer

__all__ = ["INPUT", "Layer", "Model", "resolve_graph", "consumers_of", "is_chain",
           "rewire_removed", "DenseLayer", "ActivationLayer", "SoftmaxLayer", "ArgmaxLayer",
           "argmax_format", "Conv2DLayer", "PoolLayer", "GlobalPoolLayer", "BatchNormLayer",
           "FlattenLayer", "ZeroPadLayer", "QuantizeLayer", "Hls4mlSoftmaxLayer",
           "ShiftAddDenseLayer", "AddLayer", "ConcatenateLayer", "UpsampleLayer"]
