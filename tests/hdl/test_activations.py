import gc
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from nnfab.fixed import FixedFormat, Overflow
from nnfab.gen.dsp_blocks import engine_dsp_blocks
from nnfab.hdl import activations as hw
from nnfab.hdl.activations import Activation, Argmax
from nnfab.hdl.softmax import Softmax
from nnfab.hdl.cast import fixed_shape
from nnfab.hdl.unused import discard
from nnfab.hdl.wires import comb_wire
from nnfab.sim.golden import activations as golden
from nnfab.tables import (SELU_ALPHA, SELU_SCALE, elu_table, exp_table, reciprocal_table,
                          sigmoid_table, tanh_table)

from ..streams import run_stream

KINDS = ["linear", "relu", "bounded_relu", "leaky_relu", "hard_sigmoid", "hard_tanh",
         "sigmoid", "tanh", "elu"]


def formats(width, overflow):
    """Input and output formats of ``width`` bits: the output has fewer integer bits, so that
    every overflow mode bites, and a coarser LSB, so that rounding ties occur."""
    fin = FixedFormat(width, width // 2 + 1)
    fout = FixedFormat(width, max(1, width // 4), rounding="RND_CONV", overflow=overflow)
    return fin, fout


def params_for(kind, width):
    if kind == "bounded_relu":
        return dict(relu_max=1.5)
    if kind == "leaky_relu":
        return dict(alpha_format=FixedFormat(6, 0), alpha_code=-11 if width == 4 else 19)
    if kind == "hard_sigmoid" and width == 16:
        return dict(slope=(FixedFormat(4, -1, signed=False), 13),
                    offset=(FixedFormat(4, 1), 3))
    if kind == "elu":
        if width == 4:  # ELU, positive slope 1
            return dict(table=elu_table(table_size=16, table_format=FixedFormat(6, 2),
                                        input_range=2))
        # SELU, its scale rounded into ufixed<8,1>
        return dict(table=elu_table(alpha=SELU_ALPHA, scale=SELU_SCALE, table_size=256,
                                    table_format=FixedFormat(width + 2, 3, rounding="RND"),
                                    input_range=2),
                    scale=(FixedFormat(8, 1, signed=False), round(SELU_SCALE * 128)))
    if kind in ("sigmoid", "tanh"):
        make = sigmoid_table if kind == "sigmoid" else tanh_table
        return dict(table=make(table_size=16 if width == 4 else 256,
                               table_format=FixedFormat(width + 2, 2, rounding="RND"),
                               input_range=2 if kind == "sigmoid" else 1))
    return {}


def stimulus(fin, fout, n, rng, count, landmarks=(1, 2, 4)):
    """Edge codes (most negative, most positive, zero, +-1, rounding ties of the cast, the codes
    around fout's saturation boundaries and around the values +-``landmarks``: clip values and
    table range ends) then random ones, cut into vectors of ``n``."""
    edges = {fin.min_code, fin.min_code + 1, fin.max_code, fin.max_code - 1, 0, 1, -1}
    for value in landmarks:
        centre = int(Fraction(value) / fin.lsb)
        edges |= set(range(centre - 2, centre + 3)) | set(range(-centre - 2, -centre + 3))
    drop = fin.fraction_width - fout.fraction_width
    if drop > 0:
        edges |= {(k << drop) + (1 << (drop - 1)) for k in range(-6, 6)}
    shift = fin.fraction_width - fout.fraction_width
    for bound in (fout.max_code, fout.min_code):
        centre = bound << shift if shift >= 0 else bound >> -shift
        edges |= set(range(centre - 2, centre + 3))
    codes = sorted(c for c in edges if fin.min_code <= c <= fin.max_code)
    codes += [rng.randint(fin.min_code, fin.max_code) for _ in range(count * n - len(codes))]
    codes += [0] * (-len(codes) % n)
    return np.array(codes, dtype=np.int64).reshape(-1, n)


def outputs_array(run):
    return np.array([[int(v) for v in out] for out in run.outputs], dtype=np.int64)


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("kind", KINDS)
def test_activation_stream_matches_golden(kind, width, overflow):
    seed = 1000 * width + 10 * KINDS.index(kind) + list(Overflow).index(overflow)
    rng = random.Random(seed)
    fin, fout = formats(width, overflow)
    params = params_for(kind, width)
    n = 3
    x = stimulus(fin, fout, n, rng, count=40, landmarks=(1, 1.5, 2, 0.5))
    dut = Activation(kind=kind, n=n, fin=fin, fout=fout, **params)
    run = run_stream(dut, x.tolist(), rng=rng, p_idle=0.3, p_stall=0.3)
    expected = golden.activation(kind, x, fin=fin, fout=fout, **params)
    assert outputs_array(run).tolist() == expected.tolist(), f"seed {seed}"


@pytest.mark.parametrize("fabric", [1, 3])
@pytest.mark.parametrize("kind,width", [("leaky_relu", 8), ("leaky_relu", 16),
                                        ("hard_sigmoid", 16), ("elu", 8), ("elu", 16)])
def test_constant_products_from_luts_give_the_same_codes(kind, width, fabric):
    """The last ``fabric`` elements' slope or scale as shift-add terms (what BudgetDspBlocks
    asks for beyond a device's DSP blocks): the same codes as the golden model under idle and
    back-pressure, edge codes included, and that many fewer DSP blocks."""
    seed = 7000 + 100 * width + 10 * KINDS.index(kind) + fabric
    rng = random.Random(seed)
    fin, fout = formats(width, Overflow.SAT)
    params = params_for(kind, width)
    x = stimulus(fin, fout, 3, rng, count=40, landmarks=(1, 1.5, 2, 0.5))
    dut = Activation(kind=kind, n=3, fin=fin, fout=fout, fabric_multipliers=fabric, **params)
    assert (dut.n_products, dut.n_fabric_multipliers) == (3, fabric)
    assert engine_dsp_blocks(dut) == 3 - fabric
    run = run_stream(dut, x.tolist(), rng=rng, p_idle=0.3, p_stall=0.3)
    expected = golden.activation(kind, x, fin=fin, fout=fout, **params)
    assert outputs_array(run).tolist() == expected.tolist(), f"seed {seed}"


def test_functions_without_a_constant_product_build_none_from_luts():
    """A ReLU, a power-of-two slope or a leaky ReLU of unsigned inputs has no product:
    fabric_multipliers changes nothing."""
    relu = Activation(kind="relu", n=2, fin=F8, fout=F8, fabric_multipliers=2)
    half = Activation(kind="leaky_relu", n=2, fin=F8, fout=F8,
                      alpha_format=FixedFormat(4, 0), alpha_code=4)
    unsigned_leaky = Activation(kind="leaky_relu", n=2, fin=FixedFormat(8, 3, signed=False),
                                fout=F8, alpha_format=FixedFormat(8, 0), alpha_code=19,
                                fabric_multipliers=2)
    assert [(e.n_products, e.n_fabric_multipliers) for e in (relu, half, unsigned_leaky)] == \
        [(0, 0), (0, 0), (0, 0)]
    assert engine_dsp_blocks(unsigned_leaky) == 0
    assert repr(relu) == ("Activation(kind='relu', n=2, fin=FixedFormat.parse('fixed<8,3>'), "
                          "fout=FixedFormat.parse('fixed<8,3>'), fabric_multipliers=2)")
    discard(relu)
    discard(half)


def comb_outputs(kind, codes, *, fin, fout, wired=False, **params):
    """The combinational function's output code for each input code of ``codes``."""
    x = Signal(fixed_shape(fin))
    y = Signal(fixed_shape(fout))
    m = Module()
    m.d.comb += y.eq(hw.activation(kind, x, fin=fin, fout=fout,
                                   wire=comb_wire(m, "a_") if wired else None, **params))
    got = []

    async def testbench(ctx):
        for code in codes:
            ctx.set(x, code)
            got.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize("wired", [False, True], ids=["expression", "wired"])
@pytest.mark.parametrize("kind", KINDS)
def test_fusable_function_exhaustive(kind, wired):
    """Every 8-bit input code through the combinational function, as one expression and with
    its shared values as signals (``wire``)."""
    fin = FixedFormat(8, 3)
    fout = FixedFormat(6, 1, rounding="RND", overflow="SAT")
    params = params_for(kind, 8)
    codes = list(range(fin.min_code, fin.max_code + 1))
    got = comb_outputs(kind, codes, fin=fin, fout=fout, wired=wired, **params)
    assert got == golden.activation(kind, np.array(codes), fin=fin, fout=fout,
                                    **params).tolist()


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_hls4ml_table_index_truncates_toward_zero(kind):
    """``index_rounding="zero"``: hls4ml's ``int(x * N / 16) + N/2`` (sigmoid; ``/ 8`` for
    tanh), clamped, on every 8-bit code: the golden model against Python's ``int`` of the
    exact value, the hardware against the golden model. The output format is the table's, so
    the output code is the entry."""
    table_format = FixedFormat(10, 2, rounding="RND")
    make = sigmoid_table if kind == "sigmoid" else tanh_table
    table = make(table_size=64, table_format=table_format, index_rounding="zero")
    fin = FixedFormat(8, 3)
    codes = list(range(fin.min_code, fin.max_code + 1))
    span = 16 if kind == "sigmoid" else 8
    want = [table.codes[min(max(int(Fraction(c, 32) * 64 / span) + 32, 0), 63)] for c in codes]
    got = golden.activation(kind, np.array(codes), fin=fin, fout=table_format, table=table)
    assert got.tolist() == want
    floor = make(table_size=64, table_format=table_format)
    assert golden.activation(kind, np.array(codes), fin=fin, fout=table_format,
                             table=floor).tolist() != want  # the modes differ here
    assert comb_outputs(kind, codes, fin=fin, fout=table_format, table=table) == want


def test_elu_table_is_one_rom():
    """The stream component reads the table from one ROM (a memory with a read port per
    element), as sigmoid and tanh do: no case statement per element (conv2d_small_mp_keras'
    three Selu layers of 1,024 entries were 38,000 of its 57,000 lines of Verilog as one
    casez per element, and 46 s of its 50 s Verilator build)."""
    fin, fout = formats(8, Overflow.SAT)
    dut = Activation(kind="elu", n=2, fin=fin, fout=fout, **params_for("elu", 8))
    text = verilog.convert(dut, name="top")
    assert text.count("casez") == 0
    assert text.count("reg [9:0] \\table  [255:0];") == 1



def test_relu_is_a_multiplexer():
    fin = FixedFormat(8, 3)
    text = repr(hw.relu(Signal(signed(8)), fin=fin, fout=fin))
    assert "*" not in text and "+" not in text


@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("n", [1, 5, 8])
def test_argmax_stream(width, n):
    seed = 31 * width + n
    rng = random.Random(seed)
    fin = FixedFormat(width, 2)
    x = [[rng.choice([fin.min_code, fin.max_code, 0, rng.randint(fin.min_code, fin.max_code)])
          for _ in range(n)] for _ in range(80)]
    x += [[fin.min_code] * n, [fin.max_code] * n]
    dut = Argmax(n=n, fin=fin)
    run = run_stream(dut, x, rng=rng, p_idle=0.3, p_stall=0.3)
    assert run.outputs == golden.argmax(np.array(x), fin=fin).tolist(), f"seed {seed}"


@pytest.mark.parametrize("clock_mhz,family,latency", [(25, "ecp5", 1), (200, "ecp5", 4),
                                                      (30, "ice40", 2)])
def test_argmax_registers_from_the_delay_model(clock_mhz, family, latency):
    # 10 elements, 4 comparator levels: all in one stage at 25 MHz on ECP5, one per stage at
    # 200 MHz, two per stage at 30 MHz on iCE40; results and latency exact under stalls.
    rng = random.Random(clock_mhz)
    fin = FixedFormat(16, 6)
    x = [[rng.choice([fin.min_code, fin.max_code, 0, rng.randint(fin.min_code, fin.max_code)])
          for _ in range(10)] for _ in range(60)]
    dut = Argmax(n=10, fin=fin, clock_mhz=clock_mhz, family=family)
    assert dut.latency == latency
    run = run_stream(dut, x)
    assert run.first_latency == dut.latency
    assert run.outputs == golden.argmax(np.array(x), fin=fin).tolist()
    run = run_stream(dut, x, rng=rng, p_idle=0.3, p_stall=0.3)
    assert run.outputs == golden.argmax(np.array(x), fin=fin).tolist(), f"seed {clock_mhz}"


@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
@pytest.mark.parametrize("width", [4, 8, 16])
def test_softmax_stream(width, overflow):
    seed = 77 * width + list(Overflow).index(overflow)
    rng = random.Random(seed)
    fin = FixedFormat(width, width // 2)
    fout = FixedFormat(width, 0 if width > 4 else 1, signed=overflow is Overflow.WRAP,
                       rounding="RND_CONV", overflow=overflow)
    exp_t = exp_table(table_size=64 if width == 4 else 256,
                      table_format=FixedFormat(width + 2, 2, signed=False, rounding="RND"),
                      input_range=8)
    inv_t = reciprocal_table(table_size=128, table_format=FixedFormat(width + 2, 2,
                                                                      rounding="RND",
                                                                      overflow="SAT"),
                             input_range=4)
    n = 4
    x = stimulus(fin, fout, n, rng, count=50).tolist()
    x += [[fin.max_code] * n, [fin.min_code] * n, [fin.min_code] * 3 + [fin.max_code]]
    dut = Softmax(n=n, fin=fin, fout=fout, exp_table=exp_t, inv_table=inv_t)
    run = run_stream(dut, x, rng=rng, p_idle=0.3, p_stall=0.3)
    expected = golden.softmax(np.array(x), fin=fin, fout=fout, exp_table=exp_t,
                              inv_table=inv_t)
    assert outputs_array(run).tolist() == expected.tolist(), f"seed {seed}"


def test_softmax_default_tables():
    fin, fout = FixedFormat(8, 3), FixedFormat(8, 0, signed=False, rounding="RND",
                                                   overflow="SAT")
    rng = random.Random(5)
    x = [[rng.randint(-128, 127) for _ in range(5)] for _ in range(40)]
    dut = Softmax(n=5, fin=fin, fout=fout)
    assert dut.inv_table.input_range == 8 and dut.exp_table.table_size == 1024
    run = run_stream(dut, x, rng=rng, p_idle=0.2, p_stall=0.2)
    assert outputs_array(run).tolist() == golden.softmax(np.array(x), fin=fin,
                                                         fout=fout).tolist()


@pytest.mark.parametrize("make", [
    lambda: Activation(kind="relu", n=4, fin=FixedFormat(8, 3), fout=FixedFormat(8, 3)),
    lambda: Activation(kind="leaky_relu", n=4, fin=FixedFormat(8, 3), fout=FixedFormat(8, 3),
                       alpha_format=FixedFormat(8, 0), alpha_code=40),
    lambda: Activation(kind="sigmoid", n=4, fin=FixedFormat(8, 3), fout=FixedFormat(8, 3)),
    lambda: Argmax(n=6, fin=FixedFormat(8, 3)),
    lambda: Softmax(n=4, fin=FixedFormat(8, 3), fout=FixedFormat(8, 0, signed=False)),
], ids=["relu", "leaky_relu", "sigmoid", "argmax", "softmax"])
def test_latency_and_ii(make):
    dut = make()
    rng = random.Random(3)
    x = [[rng.randint(-128, 127) for _ in range(dut.n)] for _ in range(60)]
    run = run_stream(dut, x)
    assert run.first_latency == dut.latency
    assert set(np.diff(run.accepted_at)) == {dut.initiation_interval} == {1}
    assert set(np.diff(run.produced_at)) == {1}
    assert all(p - a == dut.latency for a, p in zip(run.accepted_at, run.produced_at))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_interfaces_and_repr():
    fin, fout = FixedFormat(8, 3), FixedFormat(6, 0, signed=False)
    dut = Activation(kind="bounded_relu", n=3, fin=fin, fout=fout, relu_max=0.75)
    assert dut.i.payload.shape().elem_shape == signed(8)
    assert dut.o.payload.shape().elem_shape == unsigned(6)
    assert dut.o.payload.shape().length == 3
    assert repr(dut) == ("Activation(kind='bounded_relu', n=3, "
                         "fin=FixedFormat.parse('fixed<8,3>'), "
                         "fout=FixedFormat.parse('ufixed<6,0>'), relu_max=0.75)")
    assert (dut.latency, dut.initiation_interval) == (2, 1)
    arg = Argmax(n=9, fin=fin)
    assert arg.o.payload.shape() == unsigned(4)
    assert repr(arg) == "Argmax(n=9, fin=FixedFormat.parse('fixed<8,3>'))"
    assert Argmax(n=1, fin=fin).o.payload.shape() == unsigned(1)


F8 = FixedFormat(8, 3)


@pytest.mark.parametrize("call,error,message", [
    (lambda: Activation(kind="swish", n=2, fin=F8, fout=F8), ValueError,
     "Activation kind must be one of 'linear', 'relu', 'bounded_relu', 'leaky_relu', "
     "'hard_sigmoid', 'hard_tanh', 'sigmoid', 'tanh', 'elu', not 'swish'"),
    (lambda: Activation(kind="relu", n=0, fin=F8, fout=F8), ValueError,
     "Number of elements must be a positive integer, not 0"),
    (lambda: Activation(kind="relu", n=2.0, fin=F8, fout=F8), TypeError,
     "Number of elements must be an integer, not 2.0"),
    (lambda: Activation(kind="relu", n=3, fin=F8, fout=F8, fabric_multipliers=4), ValueError,
     "Fabric multipliers must be an integer from 0 to the 3 elements, not 4"),
    (lambda: Activation(kind="relu", n=3, fin=F8, fout=F8, fabric_multipliers=True),
     ValueError, "Fabric multipliers must be an integer from 0 to the 3 elements, not True"),
    (lambda: Activation(kind="tanh", n=2, fin=F8, fout=F8, table=sigmoid_table()), ValueError,
     "Table kind must be 'tanh', not 'sigmoid'"),
    (lambda: Activation(kind="relu", n=2, fin=F8, fout=F8, relu_max=1), TypeError,
     "Activation 'relu' does not take parameter 'relu_max'"),
    (lambda: Argmax(n=-1, fin=F8), ValueError,
     "Number of elements must be a positive integer, not -1"),
    (lambda: Argmax(n=3, fin=F8, clock_mhz=0), ValueError,
     "Clock must be a positive frequency in MHz, not 0"),
    (lambda: Argmax(n=3, fin="fixed<8,3>"), TypeError,
     "Input format must be a FixedFormat, not 'fixed<8,3>'"),
    (lambda: Softmax(n=3, fin=F8, fout=F8, inv_table=exp_table()), ValueError,
     "Table kind must be 'reciprocal', not 'exp'"),
    (lambda: Softmax(n=3, fin=F8, fout=F8, exp_table=exp_table(table_size=48)), ValueError,
     "Table size must be a power of two, not 48"),
    (lambda: hw.relu(Signal(8), fin=F8, fout=F8), ValueError,
     "Value of shape unsigned(8) does not hold codes of fixed<8,3> (expected signed(8))"),
    (lambda: hw.sigmoid(Signal(signed(8)), fin=F8, fout=F8, table=3), TypeError,
     "Table must be a LookupTable, not 3"),
])
def test_error_messages(call, error, message, recwarn):
    gc.collect()  # warnings of earlier tests' objects are not this test's
    recwarn.clear()
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
    gc.collect()
    assert not [w for w in recwarn if "UnusedElaboratable" in str(w.category)]
