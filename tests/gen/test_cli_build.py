"""The generator's command line: build, examples, report, and the errors of bad models."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main
from tests.cli_results import without_progress

from .conftest import tiny_mlp


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_examples_lists_both():
    result = run("examples")
    assert result.exit_code == 0
    assert "digits-mlp" in result.output and "digits-cnn" in result.output


def test_build_example_and_report(tmp_path):
    result = run("build", "--example", "digits-mlp", "-o", tmp_path / "out", "--reuse-factor", 4)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [row.get("reuse_factor") for row in manifest["layers"]] == [4, None, 4, None]
    assert manifest["initiation_interval"] == 4
    result = run("report", tmp_path / "out")
    assert result.exit_code == 0
    assert "ufixed<5,1>" in result.output and "320-bit payload" in result.output


def test_reuse_factors_by_layer(tmp_path):
    """``--reuse-factor NAME=R,...`` sets the layers named, exactly; a name that is not such a
    layer, or a reuse factor the layer cannot take, is one line naming what it takes, and
    nothing is written."""
    result = run("build", "--example", "digits-mlp", "-o", tmp_path / "out", "--reuse-factor",
                 "dense_1=4,dense_2=2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [row.get("reuse_factor") for row in manifest["layers"]] == [4, None, 2, None]
    assert manifest["initiation_interval"] == 4
    for value, error in (
            ("relu_1=2", "Error: Reuse factor given for 'relu_1', which is not a dense, "
                         "convolution, recurrent or output stage layer of model 'digits-mlp' "
                         "(those are: dense_1, dense_2)"),
            ("dense_1=3", "Error: Layer 'dense_1': reuse factor must divide n_in 64 or be "
                          "n_in times a divisor of n_out 32 (one of 1, 2, 4, 8, 16, 32, 64, "
                          "128, 256, 512, 1024, 2048), not 3")):
        result = run("build", "--example", "digits-mlp", "-o", tmp_path / "bad",
                     "--reuse-factor", value)
        assert result.exit_code == 1
        assert without_progress(result.output) == error + "\n"
        assert not (tmp_path / "bad").exists()


def test_build_quantized_native_file(write_model, tmp_path):
    doc, arrays = tiny_mlp()
    result = run("build", write_model(doc, arrays), "-o", tmp_path / "tiny")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny" / "tiny.v").exists()


def test_clock_target_sets_the_fused_layers_registers(write_model, tmp_path):
    # A faster --clock-mhz: more register stages in the fused layers, each with the delay
    # model's Fmax estimate in the manifest and the report.
    doc, arrays = tiny_mlp()
    path = write_model(doc, arrays)
    latencies = []
    for clock_mhz in (20, 400):
        out = tmp_path / f"at{clock_mhz}"
        result = run("build", path, "-o", out, "--clock-mhz", clock_mhz)
        assert result.exit_code == 0, result.output
        rows = json.loads((out / "manifest.json").read_text())["layers"]
        fused = [row for row in rows if row["kind"] == "shift_add_dense"]
        assert fused and all(row["estimated_f_max_mhz"] > 0 for row in fused)
        assert "estimated Fmax (MHz)" in (out / "report.md").read_text()
        latencies.append(sum(row["latency"] for row in fused))
    assert latencies[0] == len(fused) < latencies[1]


def test_build_float_native_file_with_ptq(write_model, tmp_path):
    rng = np.random.default_rng(0)
    doc = {"nnfab_model": 1, "name": "f", "input": {"shape": [6]},
           "layers": [{"name": "d1", "type": "dense", "weights": "w1", "biases": "b1"},
                      {"name": "relu", "type": "activation", "activation": "relu"},
                      {"name": "d2", "type": "dense", "weights": "w2"}]}
    path = write_model(doc, {"w1": rng.normal(size=(5, 6)), "b1": rng.normal(size=5),
                             "w2": rng.normal(size=(3, 5))})
    result = run("build", path, "-o", tmp_path / "f", "--precision", 12,
                 "--input-format", "fixed<12,4>")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["input"]["format"] == "fixed<12,4>"
    assert manifest["layers"][0]["weight_format"].startswith("fixed<12,")


@pytest.mark.parametrize("mutate,message", [
    (lambda d, a: d["layers"][1].update(type="lstm"),
     "Error: Layer 'relu': unknown layer type 'lstm'"),
    (lambda d, a: a.update({"d2.w": np.zeros((2, 5), dtype=np.int64)}),
     "Error: Layer 'd2': weights of shape (2, 5) do not take inputs of shape (3,)"),
    (lambda d, a: a.update({"d1.w": np.full((3, 4), 300)}),
     "Error: Layer 'd1': weight 4.6875 (code 300) does not fit fixed<8,2> (range -2.0 to "
     "1.984375)"),
    (lambda d, a: a.update({"d1.w": np.full((3, 4), np.nan)}),
     "Error: Layer 'd1': weights contain nan; every value must be finite"),
])
def test_bad_models_fail_with_one_message(write_model, tmp_path, mutate, message):
    doc, arrays = tiny_mlp()
    mutate(doc, arrays)
    result = run("build", write_model(doc, arrays), "-o", tmp_path / "out")
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output.startswith(message), result.output
    assert result.output.count("\n") <= 2
    assert not (tmp_path / "out").exists()


def test_empty_file(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("")
    result = run("build", path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == f"Error: Model file {str(path)!r} is empty\n"


def test_missing_file_and_unknown_example(tmp_path):
    result = run("build", tmp_path / "nope.json")
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == f"Error: Model file {str(tmp_path / 'nope.json')!r} does not exist\n"
    result = run("build", "--example", "imagenet")
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == ("Error: Unknown example 'imagenet'; bundled examples: digits-mlp, "
                      "digits-cnn, sine-lstm\n")


def test_model_or_example_required():
    result = run("build")
    assert result.exit_code == 2
    assert "Give a MODEL file, --example NAME or --hls4ml-config FILE" in result.output
