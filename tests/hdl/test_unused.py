"""Rejected designs and discarded components do not warn as unused elaboratables; unused ones
still do."""

import gc
import sys

import pytest
from amaranth.hdl import Fragment, Module

from nnfab.fixed import FixedFormat
from nnfab.hdl.activations import Activation
from nnfab.hdl.batchnorm import BatchNormEngine
from nnfab.hdl.cast import Requantizer
from nnfab.hdl.conv import ConvEngine
from nnfab.hdl.dense_rom import DenseRomEngine
from nnfab.hdl.layout import Flatten, ZeroPadding
from nnfab.hdl.optim import UpdateUnit
from nnfab.hdl.pooling import GlobalPoolEngine, PoolEngine
from nnfab.hdl.quantize import LaneQuantizer
from nnfab.hdl.systolic import SystolicMatVec
from nnfab.hdl.trainable_dense import TrainableDense
from nnfab.hdl.trainable_mlp import TrainableMLP
from nnfab.hdl.unused import discard

F8 = FixedFormat(8, 3)


def unused_warnings(make, recwarn, monkeypatch):
    """The UnusedElaboratable warnings that ``make()`` leaves once its objects are collected,
    and the errors raised while warning (the ``repr`` of a half-built component may fail)."""
    # Amaranth keeps the warning off until something has been elaborated.
    Fragment.get(Module(), None)
    gc.collect()  # warnings of earlier tests' objects are not this test's
    recwarn.clear()
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    make()
    gc.collect()
    monkeypatch.undo()
    return ([w for w in recwarn if "UnusedElaboratable" in str(w.category)]
            + [u.exc_value for u in unraisable])


@pytest.mark.parametrize("call", [
    lambda: Requantizer(src=F8, dst="fixed<8,3>"),
    lambda: BatchNormEngine(3),
    lambda: PoolEngine(3),
    lambda: GlobalPoolEngine(3),
    lambda: LaneQuantizer(fin=F8, formats=[3], fout=F8),
    lambda: ZeroPadding(input_shape=(0, 2, 1), padding=((0, 0), (0, 0)), shape=8),
    lambda: Flatten(input_shape=(0, 2, 1), shape=8),
    lambda: ConvEngine(3),
    lambda: DenseRomEngine(3),
    lambda: SystolicMatVec(n_in=0, n_out=1, input_format=F8, weight_format=F8),
    lambda: TrainableDense(3),
    lambda: TrainableMLP(3),
    lambda: UpdateUnit(3, depth=1),
    lambda: Activation(kind="nope", n=1, fin=F8, fout=F8),
], ids=["Requantizer", "BatchNormEngine", "PoolEngine", "GlobalPoolEngine", "LaneQuantizer",
        "ZeroPadding", "Flatten", "ConvEngine", "DenseRomEngine", "SystolicMatVec",
        "TrainableDense", "TrainableMLP", "UpdateUnit", "Activation"])
def test_rejected_design_does_not_warn(call, recwarn, monkeypatch):
    def make():
        with pytest.raises((TypeError, ValueError)):
            call()
    assert unused_warnings(make, recwarn, monkeypatch) == []


def test_unused_design_warns(recwarn, monkeypatch):
    warnings = unused_warnings(lambda: Requantizer(src=F8, dst=F8), recwarn, monkeypatch)
    assert [str(w.message) for w in warnings] == [
        "Requantizer(src=FixedFormat.parse('fixed<8,3>'), dst=FixedFormat.parse('fixed<8,3>')) "
        "created but never used"]


def test_discarded_design_does_not_warn(recwarn, monkeypatch):
    def make():
        assert discard(Requantizer(src=F8, dst=F8)).latency >= 0
    assert unused_warnings(make, recwarn, monkeypatch) == []


def test_discard_needs_an_elaboratable():
    with pytest.raises(TypeError) as info:
        discard(3)
    assert str(info.value) == "Object must be an Elaboratable, not 3"


def test_network_built_for_its_figures_does_not_warn(recwarn, monkeypatch):
    """A network made only to read its latency (a convolution builds its window and dense
    engine in its constructor) warns about none of its parts; without ``deep`` it would."""
    from ..gen.test_graph import residual_cnn
    from nnfab.gen.assemble import Network

    def make():
        network = Network(residual_cnn())
        assert network.latency > 0

    assert unused_warnings(make, recwarn, monkeypatch) == []
