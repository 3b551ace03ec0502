"""TFLite's int8 pooling in hardware: the global average engine against
:func:`nnfab.sim.golden.tflite.average_int8` and against the op-level golden of the MLPerf Tiny
models' AVERAGE_POOL_2D (KWS 25x5, ResNet-8 8x8), on edge frames (all -128, all 127, sums at
the rounding boundaries) and seeded random frames, under stalls; the multiply-shift division
proven exact (and its shift the smallest); MAX_POOL_2D on int8 codes by nnfab's existing max
pool engines, equal to TFLite's."""

import gc
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from nnfab.conv_layers import GlobalPoolSpec, PoolSpec
from nnfab.fixed import FixedFormat
from nnfab.gen.importers.tflite_file import read_tflite
from nnfab.hdl.pool_tflite import GlobalAveragePoolTfliteEngine
from nnfab.hdl.pooling import GlobalPoolEngine, PoolEngine
from nnfab.sim.golden.tflite import KERNELS, average_int8, max_pool_2d
from nnfab.tflite_ops import AverageDivider

from ..streams import check_stalls, run_stream
from ..vectors import shared_dir

MODELS = shared_dir() / "models" / "mlperf-tiny"
INT8 = FixedFormat(8, 8)


def model_average_pool(name):
    """The model, its AVERAGE_POOL_2D operator and that operator's input tensor."""
    path = MODELS / name
    if not path.exists():
        pytest.fail(f"{path} is not available: shared/ must be beside the repository")
    model = read_tflite(path)
    op = next(op for op in model.operators if op.opcode == "AVERAGE_POOL_2D")
    return model, op, model.tensors[op.inputs[0]]


def frames_with_sums(sums, count):
    """One frame per row of ``sums`` (shape ``(n, lanes)``): ``count`` int8 pixels per lane
    summing to the row's values (each within ``-128 * count`` to ``127 * count``)."""
    sums = np.asarray(sums, dtype=np.int64)
    frames = np.zeros((len(sums), count, sums.shape[1]), dtype=np.int64)
    rest = sums.copy()
    for k in range(count):
        frames[:, k] = np.clip(rest, -128, 127)
        rest -= frames[:, k]
    assert not rest.any() and np.array_equal(frames.sum(axis=1), sums)
    return frames


def edge_sums(count, lanes, rng, n_random):
    """Sums at the rounding boundaries (around ``(k + 1/2) * count``, both signs), the ends
    of the range, zero, then seeded random frames' sums."""
    half = count // 2
    special = [-128 * count, 127 * count, 0, 1, -1, half, -half, half + 1, -half - 1,
               half - 1, -half + 1, 3 * count + half, -3 * count - half, 127 * count - half,
               -128 * count + half, -128 * count + half + 1]
    special = [s for s in special if -128 * count <= s <= 127 * count]
    special += [special[0]] * (-len(special) % lanes)
    rows = np.array(special).reshape(-1, lanes)
    random = rng.integers(-128, 128, (n_random, count, lanes)).sum(axis=1)
    return np.concatenate([rows, random])


def check_engine(divider, lanes, frames, expected, seed):
    inputs = frames.reshape(-1, lanes).tolist()
    dut = GlobalAveragePoolTfliteEngine(divider, lanes=lanes)
    full = check_stalls(lambda: GlobalAveragePoolTfliteEngine(divider, lanes=lanes), inputs,
                        expected.tolist(), seed=seed, latency=dut.latency)
    assert full.first_latency == dut.latency == divider.count + 3
    assert full.accepted_at == list(range(len(inputs)))                       # II 1
    return full


# --- the division -------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 2, 3, 7, 64, 125, 1000, 4095])
def test_divider_exact_and_minimal(count):
    d = AverageDivider(count)
    u = np.arange(d.u_max + 1, dtype=np.int64)
    assert d.u_max == 128 * count + count // 2
    assert np.array_equal((u * d.magic) >> d.shift, u // count)
    if d.shift > 0:  # one bit less fails somewhere in the range
        magic = -(-(1 << (d.shift - 1)) // count)
        assert not np.array_equal((u * magic) >> (d.shift - 1), u // count)


def test_divider_counts_of_the_models():
    assert (AverageDivider(125).magic, AverageDivider(125).shift) == (8389, 20)
    assert (AverageDivider(64).magic, AverageDivider(64).shift) == (1, 6)


def test_average_int8_rounds_half_away_from_zero():
    count = 8
    sums = np.arange(-128 * count, 127 * count + 1)
    want = [max(-128, min(127, int(math.copysign(math.floor(abs(Fraction(int(s), count))
                                                            + Fraction(1, 2)), s))))
            for s in sums]
    assert average_int8(sums, count).tolist() == want
    assert average_int8([4, -4, 12, -12, 3, -3], 8).tolist() == [1, -1, 2, -2, 0, 0]
    assert average_int8([5000, -5000], 8, -20, 30).tolist() == [30, -20]


# --- the engine ---------------------------------------------------------------------------------

@pytest.mark.parametrize("count,low,high", [(125, -128, 127), (64, -128, 127), (7, -20, 30),
                                            (1, -128, 127)])
def test_engine_matches_golden(count, low, high):
    lanes = 4
    rng = np.random.default_rng(count)
    sums = edge_sums(count, lanes, rng, n_random=4)
    divider = AverageDivider(count, low, high)
    expected = average_int8(sums, count, low, high)
    if low > -128:
        assert expected.min() == low and expected.max() == high
    check_engine(divider, lanes, frames_with_sums(sums, count), expected, seed=count)


@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite"])
def test_engine_matches_model_average_pool(name):
    """The operator's own golden (:func:`~nnfab.sim.golden.tflite.average_pool_2d`, equal to
    TFLite's reference kernel) on seeded codes, the first 8 of the 64 channels."""
    model, op, tensor = model_average_pool(name)
    _, h, w, c = tensor.shape
    assert op.options["filter_size"] == (h, w) and op.options["padding"] == "VALID"
    x = np.random.default_rng(7).integers(-128, 128, (3, h, w, c))
    x[0], x[1] = -128, 127
    want = KERNELS["AVERAGE_POOL_2D"](model, op, x).reshape(3, c)
    lanes = 8
    divider = AverageDivider(h * w)
    check_engine(divider, lanes, x[..., :lanes].reshape(3, h * w, lanes), want[:, :lanes],
                 seed=h * w)


def test_engine_members_and_errors(recwarn):
    d = AverageDivider(125)
    dut = GlobalAveragePoolTfliteEngine(d, lanes=64)
    assert (dut.latency, dut.initiation_interval, dut.cycles_per_frame) == (128, 1, 125)
    assert dut.divider is d and dut.lanes == 64
    assert repr(dut) == ("GlobalAveragePoolTfliteEngine(AverageDivider(count=125, low=-128, "
                         "high=127, magic=8389, shift=20), lanes=64)")
    gc.collect()
    recwarn.clear()
    for make, error, message in [
            (lambda: GlobalAveragePoolTfliteEngine(125, lanes=1), TypeError,
             "Divider must be an AverageDivider, not 125"),
            (lambda: GlobalAveragePoolTfliteEngine(d, lanes=0), ValueError,
             "Lanes must be at least 1, not 0"),
            (lambda: AverageDivider(0), ValueError,
             "Average count must be from 1 to 65536, not 0"),
            (lambda: AverageDivider(2.0), TypeError, "Average count must be an integer, not 2.0"),
            (lambda: AverageDivider(4, low=-129), ValueError,
             "Average low must be an integer from -128 to 127, not -129"),
            (lambda: AverageDivider(4, low=3, high=2), ValueError,
             "Average clamp must have low <= high, not [3, 2]")]:
        with pytest.raises(error) as info:
            make()
        assert str(info.value) == message
    gc.collect()
    assert not recwarn.list


# --- what nnfab's existing pooling engines give on int8 codes ----------------------------------

def _fake_op(kind, filter_size, stride, padding, out_shape):
    """A stand-in TFLite operator for the golden kernels (no file needed)."""
    out = SimpleNamespace(shape=(1,) + out_shape, scale=0.1, zero_point=0)
    op = SimpleNamespace(index=0, opcode=kind, inputs=[0], outputs=[1],
                         options={"filter_size": filter_size, "stride": stride,
                                  "padding": padding, "fused_activation": "NONE"})
    return SimpleNamespace(tensors={1: out}), op


@pytest.mark.parametrize("size,stride,padding", [(2, 2, "VALID"), (3, 2, "SAME"),
                                                 (3, 1, "SAME")])
def test_max_pool_engine_is_tflite_max_pool(size, stride, padding):
    """TFLite's MAX_POOL_2D on int8 is the maximum of the codes over the clipped window; the
    existing engine pads SAME with -128, which never exceeds an in-bounds code, and casts
    fixed<8,8> to fixed<8,8> unchanged: the same codes."""
    shape = (7, 8, 3)
    spec = PoolSpec("max", shape, size, INT8, INT8, strides=stride, padding=padding.lower())
    model, op = _fake_op("MAX_POOL_2D", (size, size), (stride, stride), padding,
                         spec.output_shape)
    x = np.random.default_rng(size * 10 + stride).integers(-128, 128, (3,) + shape)
    x[0] = -128
    x[1, :, :, 0] = 127
    want = max_pool_2d(model, op, x)
    run = run_stream(PoolEngine(spec), x.reshape(-1, 3).tolist(), n_outputs=want.size // 3)
    assert [list(o) for o in run.outputs] == want.reshape(-1, 3).tolist()


def test_global_engines_give_tflite_codes():
    """Existing GlobalPoolEngine: max on fixed<8,8> is TFLite's max pool over the map; average
    cast to fixed<8,8,RND_INF,SAT> (half away from zero, saturate) is TFLite's average too,
    with a general constant divider where the TFLite engine multiplies by a magic constant."""
    shape = (4, 4, 2)
    sums = np.array([[8, -8], [24, -24], [-128 * 16, 127 * 16], [7, -7], [9, -9]])
    sums = np.concatenate([sums, np.random.default_rng(3).integers(-128, 128, (4, 16, 2))
                           .sum(axis=1)])
    x = frames_with_sums(sums, 16)
    n = len(sums)
    for kind, fout, want in [("max", INT8, x.max(axis=1)),
                             ("average", FixedFormat(8, 8, rounding="RND_INF", overflow="SAT"),
                              average_int8(sums, 16))]:
        spec = GlobalPoolSpec(kind, shape, INT8, fout)
        run = run_stream(GlobalPoolEngine(spec), x.reshape(-1, 2).tolist(), n_outputs=n)
        assert [list(o) for o in run.outputs] == want.tolist(), kind
