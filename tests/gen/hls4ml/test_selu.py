"""hls4ml's table SELU (``nnet_activation.h`` ``selu``, ``nnet_activation_stream.h`` ``selu``)
as nnfab builds it: an ``elu`` activation with :func:`nnfab.tables.hls4ml_selu_table` (entries
at ``-j * 8/N``, indexed by ``|x|``) and the positive slope
:data:`nnfab.activation_params.HLS4ML_SELU_LAMBDA` (``io_stream``: lambda cast to the input
type).

Every input code of several formats through hls4ml's own C++ (its headers, compiled with g++)
against nnfab's golden model, and nnfab's hardware (the combinational function and the stream
component) against the golden model on every code."""

import random
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from nnfab.activation_params import HLS4ML_SELU_LAMBDA
from nnfab.fixed import FixedFormat
from nnfab.hdl.activations import Activation
from nnfab.sim.golden import activations as golden
from nnfab.tables import SELU_SCALE, hls4ml_selu_table, quantize_exact

from ...hdl.test_activations import comb_outputs
from ...streams import run_stream

#: ``(data_t, res_t, table_size, table_t)`` as hls4ml's C++ and nnfab spell them: the
#: generated configs' types (the output code is the table entry where ``res_t`` is
#: ``table_t``), rounding and saturating types, an integer input (the index is a left shift of
#: the code), an input finer than the table (``fixed<10,-2>``: ``|x| < 1/8``).
CASES = [
    ("ap_fixed<16,6>", "ap_fixed<16,6>", 1024, "ap_fixed<18,8>"),
    ("ap_fixed<16,6>", "ap_fixed<18,8>", 1024, "ap_fixed<18,8>"),
    ("ap_fixed<12,3,AP_RND,AP_SAT>", "ap_fixed<10,2,AP_RND_CONV,AP_SAT>", 256,
     "ap_fixed<14,2,AP_RND>"),
    ("ap_fixed<8,8>", "ap_fixed<8,3>", 1024, "ap_fixed<18,8>"),
    ("ap_fixed<10,-2>", "ap_fixed<20,2,AP_RND_ZERO,AP_WRAP>", 64,
     "ap_fixed<24,1,AP_RND,AP_SAT>"),
]

_PROGRAM = """
#include <cstdio>
#include "ap_fixed.h"
#include "nnet_utils/nnet_activation.h"
#include "nnet_utils/nnet_activation_stream.h"

template <unsigned N_IN, unsigned N_TABLE, class table_type> struct config : nnet::activ_config {
    static const unsigned n_in = N_IN;
    static const unsigned table_size = N_TABLE;
    static const unsigned io_type = nnet::io_parallel;
    static const unsigned reuse_factor = 1;
    typedef table_type table_t;
};

template <class data_t, class res_t, unsigned N_TABLE, class table_type>
void run() {
    const unsigned n = 1u << data_t::width;
    typedef ::config<1u << data_t::width, N_TABLE, table_type> cfg;
    static data_t x[1u << data_t::width];
    static res_t y[1u << data_t::width];
    for (unsigned i = 0; i < n; i++) x[i].range() = i;
    nnet::selu<data_t, res_t, cfg>(x, y);
    for (unsigned i = 0; i < n; i++) printf("%lld ", (long long)y[i].range().to_int64());
    printf("\\n");
    hls::stream<nnet::array<data_t, 1>> in("in");
    hls::stream<nnet::array<res_t, 1>> out("out");
    for (unsigned i = 0; i < n; i++) {
        nnet::array<data_t, 1> a;
        a[0] = x[i];
        in.write(a);
    }
    nnet::selu<nnet::array<data_t, 1>, nnet::array<res_t, 1>, cfg>(in, out);
    for (unsigned i = 0; i < n; i++) printf("%lld ", (long long)out.read()[0].range().to_int64());
    printf("\\n");
}

int main() {
CALLS
    return 0;
}
"""


def _fmt(text):
    """nnfab's format of a C++ ``ap_fixed<...>`` type name."""
    return FixedFormat.parse(text.replace("ap_", "").replace("AP_", ""))


def _signed(raw, fmt):
    """Codes from the unsigned bit patterns ``range()`` prints."""
    raw = np.array(raw.split(), dtype=np.int64)
    return np.where(raw >= 1 << (fmt.width - 1), raw - (1 << fmt.width), raw) if fmt.signed \
        else raw


@pytest.fixture(scope="module")
def hls4ml_selu_outputs(tmp_path_factory):
    """``{case: (io_parallel codes, io_stream codes)}`` of hls4ml's selu on every input code,
    from one program compiled against hls4ml 1.3's Vivado templates."""
    hls4ml = pytest.importorskip("hls4ml", reason="the reference is hls4ml's C++ (test extra)")
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("hls4ml's C++ needs g++")
    from pathlib import Path

    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    calls = "\n".join(f"    run<{d}, {r}, {n}, {t}>();" for d, r, n, t in CASES)
    folder = tmp_path_factory.mktemp("selu")
    (folder / "selu.cpp").write_text(_PROGRAM.replace("CALLS", calls))
    subprocess.run([gxx, "-O1", "-std=c++17", f"-I{templates}", f"-I{templates / 'ap_types'}",
                    "selu.cpp", "-o", "selu"], cwd=folder, check=True, capture_output=True)
    lines = subprocess.run([str(folder / "selu")], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    return {case: (_signed(lines[2 * k], _fmt(case[1])), _signed(lines[2 * k + 1], _fmt(case[1])))
            for k, case in enumerate(CASES)}


@pytest.mark.parametrize("case", CASES, ids=lambda case: "-".join(map(str, case)))
def test_golden_selu_equals_hls4mls_cpp_on_every_code(case, hls4ml_selu_outputs):
    """io_parallel with :data:`HLS4ML_SELU_LAMBDA`, io_stream with lambda cast to the input
    type: every code equal, and the two differ (so each slope is tested)."""
    data_t, res_t, size, table_t = case
    fin, fout = _fmt(data_t), _fmt(res_t)
    table = hls4ml_selu_table(table_size=size, table_format=_fmt(table_t))
    codes = np.arange(fin.min_code, fin.max_code + 1)
    want = hls4ml_selu_outputs[case]
    want = {"io_parallel": np.roll(want[0], len(codes) // 2),   # printed from code 0 up
            "io_stream": np.roll(want[1], len(codes) // 2)}
    stream_slope = (fin, quantize_exact(Fraction(SELU_SCALE), fin))
    for io_type, scale in (("io_parallel", HLS4ML_SELU_LAMBDA), ("io_stream", stream_slope)):
        got = golden.elu(codes, fin=fin, fout=fout, table=table, scale=scale)
        bad = np.nonzero(got != want[io_type])[0]
        assert bad.size == 0, (f"{io_type}: {bad.size} codes differ, first "
                               f"{codes[bad[:5]].tolist()}: nnfab {got[bad[:5]].tolist()}, "
                               f"hls4ml {want[io_type][bad[:5]].tolist()}")
    assert not np.array_equal(want["io_parallel"], want["io_stream"])


def test_hls4ml_selu_table_and_slope():
    """The table's first entries and its index rule; the slope's code."""
    table = hls4ml_selu_table()
    assert (table.kind, table.table_size, table.index_rounding) == ("elu", 1024, "magnitude")
    assert table.codes[:4] == (0, -15, -28, -42) and table.codes[-1] == -1800
    assert table.index_exponent(10) == -3  # fixed<16,6>: index = floor(-code / 8)
    assert HLS4ML_SELU_LAMBDA == (FixedFormat(16, 1, signed=False), 34429)
    with pytest.raises(ValueError, match="^Table size must be a power of two, not 1000$"):
        hls4ml_selu_table(table_size=1000)


#: Small hardware cases: a fine input (left and right shifts of the index both occur across
#: the two), the magnitude beyond the table's range, rounding and saturation of the cast.
HW_CASES = [(FixedFormat(9, 4), FixedFormat(7, 2, rounding="RND", overflow="SAT"), 64,
             FixedFormat(10, 2, rounding="RND")),
            (FixedFormat(6, 6), FixedFormat(8, 3), 128, FixedFormat(18, 8))]


@pytest.mark.parametrize("fin,fout,size,table_format", HW_CASES)
@pytest.mark.parametrize("wired", [False, True], ids=["expression", "wired"])
def test_hardware_function_on_every_code(fin, fout, size, table_format, wired):
    params = dict(table=hls4ml_selu_table(table_size=size, table_format=table_format),
                  scale=HLS4ML_SELU_LAMBDA)
    codes = list(range(fin.min_code, fin.max_code + 1))
    got = comb_outputs("elu", codes, fin=fin, fout=fout, wired=wired, **params)
    assert got == golden.elu(np.array(codes), fin=fin, fout=fout, **params).tolist()


@pytest.mark.parametrize("fin,fout,size,table_format", HW_CASES)
def test_stream_component_on_every_code(fin, fout, size, table_format):
    """The stream component (the table in a ROM) under random idle cycles and back-pressure."""
    seed = fin.width * 100 + size
    rng = random.Random(seed)
    params = dict(table=hls4ml_selu_table(table_size=size, table_format=table_format),
                  scale=HLS4ML_SELU_LAMBDA)
    codes = np.arange(fin.min_code, fin.max_code + 1).reshape(-1, 4)
    dut = Activation(kind="elu", n=4, fin=fin, fout=fout, **params)
    run = run_stream(dut, codes.tolist(), rng=rng, p_idle=0.3, p_stall=0.3)
    got = [[int(v) for v in out] for out in run.outputs]
    assert got == golden.elu(codes, fin=fin, fout=fout, **params).tolist(), f"seed {seed}"
