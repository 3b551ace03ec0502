"""``nnfab verify`` end to end: the bundled examples on their whole test split (the 360
held-out digits, the 400 test sine-frequency sequences) at the command's defaults, and bad
input; the RTL runs on Verilator."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main
from nnfab.gen.datasets import load_dataset
from nnfab.gen.examples import EXAMPLES
from nnfab.gen.native import load_native
from nnfab.gen.verify import pack_transfers, unpack_transfers
from tests.cli_results import without_progress


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.slow
@pytest.mark.parametrize("example", ["digits-mlp", "digits-cnn", "sine-lstm"])
def test_examples_verify_bit_exact(example):
    result = run("verify", "--example", example)
    out = result.output
    assert result.exit_code == 0, out
    n_test = len(load_dataset(EXAMPLES[example].dataset, "test")[1])
    assert f"{n_test} vectors tried" in out
    assert re.search(r"^0 mismatches$", out, re.M)
    accuracy = dict(re.findall(r"(float|golden|rtl) ([\d.]+)%", out))
    assert set(accuracy) == {"float", "golden", "rtl"}
    assert accuracy["rtl"] == accuracy["golden"]
    assert float(accuracy["golden"]) > 95.0
    latency = re.search(r"latency: (\d+) cycles measured, (\d+) expected", out)
    assert latency and latency[1] == latency[2]
    assert "cocotb: 1 passed, 0 failed of 1" in out


@pytest.mark.slow
def test_mismatch_is_reported_with_non_zero_exit(tmp_path, monkeypatch):
    """A golden model that disagrees with the RTL (here: one deliberately wrong) must fail."""
    import nnfab.gen.verify as verify_module

    real = verify_module.run_network

    def off_by_one(model, codes):
        out = np.array(real(model, codes))
        out[3] = (out[3] + 1) % 10
        return out

    from nnfab.gen.verify_debug import MismatchReport

    traced = []

    def debug_mismatch(model, verilog, codes, vector, *, cache_dir):
        # The traced rerun has tests of its own (test_verify_debug.py); here only what the
        # command prints of its report.
        traced.append(vector)
        return MismatchReport(vector=vector, trace_path=tmp_path / "t.fst", layer="dense_2",
                              expected=[1], got=[2], signals=("s.o__payload",),
                              verilog_module="\\m.dense_2")

    monkeypatch.setattr(verify_module, "run_network", off_by_one)
    monkeypatch.setattr(verify_module, "debug_mismatch", debug_mismatch)
    result = run("verify", "--example", "digits-mlp", "--count", 20)
    assert result.exit_code == 1
    assert re.search(r"^1 mismatches$", result.output, re.M)
    assert "vector 3: expected" in result.output
    assert traced == [3]
    assert f"first mismatching vector 3 traced: {tmp_path / 't.fst'}" in result.output
    assert "first layer that differs: 'dense_2'" in result.output
    assert "signals: s.o__payload" in result.output
    assert "FAIL" in result.output


def test_inputs_of_the_wrong_shape(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((5, 63)))
    result = run("verify", "--example", "digits-mlp", "--inputs", path)
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (f"Error: Inputs file {str(path)!r} of shape (5, 63) does not fit "
                      f"the model's input shape; expected (n, 64)\n")


def test_transfer_packing_round_trip():
    model = load_native(EXAMPLES["digits-cnn"].path)
    codes = np.random.default_rng(0).integers(0, 17, (3, 8, 8, 1))
    words = pack_transfers(codes, model.input_shape, model.input_format)
    assert len(words) == 3 * 64
    assert unpack_transfers(words, model.input_shape, model.input_format).tolist() == \
        codes.tolist()


@pytest.mark.slow
def test_cnn_whose_outputs_leave_before_its_last_pixels():
    """Issue 14 item 4: in a CNN whose last pooling drops a row (as the QKeras MNIST CNN's
    11x11 -> 5x5), each frame's output leaves before the frame's last input pixels are taken.
    The testbench started its back-pressure phase while the warm-up source was still sending,
    so every vector after the warm-up mismatched."""
    from ..hdl.test_stalls import MNIST_LIKE, mnist_like
    from nnfab.gen.verify import verify

    model = mnist_like(7, fuse=True)
    x = np.random.default_rng(3).uniform(0, 1, (4, *MNIST_LIKE))
    result = verify(model, x, warmup=1, p_stall=0.1, seed=5)
    assert result.n_mismatches == 0, result.first_mismatches
    assert result.passed


@pytest.mark.slow
def test_slow_initiation_interval_does_not_time_out(tmp_path):
    """Regression: the harness's watchdog allowed 64 cycles per transfer, so a design at II 512
    verified with a few hundred vectors timed out (TFLite's ad01 at II 640 did, on its 196
    real windows)."""
    from nnfab.gen.native import save_native
    from nnfab.ir import DenseLayer, Model, integer_format
    from nnfab.layers import DenseSpec

    int8 = integer_format(8)
    weights = np.random.default_rng(2).integers(-128, 128, (2, 512))
    spec = DenseSpec(weights, None, int8, int8, integer_format(26))
    model = Model("slow_ii", (512,), int8, (DenseLayer("fc", spec=spec, reuse_factor=512),))
    save_native(model, tmp_path / "slow_ii.json")
    result = run("verify", tmp_path / "slow_ii.json", "--random", "400")
    assert result.exit_code == 0, result.output
    assert re.search(r"^0 mismatches$", result.output, re.M)
    assert "initiation interval: 512 measured, 512 expected" in result.output
