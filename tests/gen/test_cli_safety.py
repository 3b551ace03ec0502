"""What ``nnfab build`` and ``nnfab verify`` do with a user's files and bad command lines
(issue 14 items 1-3, 5, 8, 10, 11): nothing outside a build folder is ever removed, a build
folder is verified as it is, and every bad input is one line with a non-zero exit."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.gen.build_folder import output_name
from nnfab.cli import main
from tests.cli_results import without_progress

from .conftest import tiny_mlp


def run(*args, cwd=None):
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, [str(a) for a in args])
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def tiny(write_model):
    doc, arrays = tiny_mlp()
    return write_model(doc, arrays)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A build folder of the tiny MLP."""
    folder = tmp_path_factory.mktemp("built")
    doc, arrays = tiny_mlp()
    (folder / "m.json").write_text(json.dumps(doc))
    np.savez(folder / "m.npz", **arrays)
    result = run("build", folder / "m.json", "-o", folder / "b")
    assert result.exit_code == 0, result.output
    return folder / "b"


# Item 1: a model name is data, never a path.

@pytest.mark.parametrize("name,expected", [
    ("/tmp/victim", "_tmp_victim"), ("../../x", "_.._x"), ("..", "model"), ("", "model"),
    ("digits-mlp", "digits-mlp"), ("a b/c", "a_b_c"), (".hidden", "hidden")])
def test_output_name(name, expected):
    assert output_name(name) == expected


def test_model_name_cannot_delete_a_folder(tmp_path, write_model):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "IMPORTANT.txt").write_text("x")
    doc, arrays = tiny_mlp()
    doc["name"] = str(victim)
    path = write_model(doc, arrays)
    work = tmp_path / "work"
    work.mkdir()
    result = run("build", path, cwd=work)
    assert result.exit_code == 0, result.output
    assert (victim / "IMPORTANT.txt").read_text() == "x"
    assert listing(work / "build") [:1] == [output_name(str(victim))]


# Item 2: -o replaces only an empty folder or an nnfab build folder.

def test_output_refuses_an_unrelated_folder(tmp_path, tiny):
    target = tmp_path / "d"
    target.mkdir()
    (target / "notes.txt").write_text("x")
    result = run("build", tiny, "-o", target)
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (f"Error: Output folder {str(target)!r} exists and is not an "
                      f"nnfab build folder (no manifest.json written by nnfab); nnfab "
                      f"replaces only empty folders and its own build folders\n")
    assert listing(target) == ["notes.txt"]
    assert listing(tmp_path) == ["d", "d/notes.txt", "model.json", "model.npz"]


def test_output_replaces_an_empty_folder_and_a_build_folder(tmp_path, tiny):
    target = tmp_path / "d"
    target.mkdir()
    assert run("build", tiny, "-o", target).exit_code == 0
    (target / "stale.txt").write_text("from an earlier build")
    result = run("build", tiny, "-o", target)
    assert result.exit_code == 0, result.output
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_refuses_the_current_folder(tmp_path, tiny):
    (tmp_path / "keep.txt").write_text("x")
    before = listing(tmp_path)
    for target in (".", str(tmp_path), ".."):
        result = run("build", tiny, "-o", target, cwd=tmp_path)
        assert result.exit_code == 1
        assert re.fullmatch(r"Error: Output folder '.*' is or contains the current folder; "
                            r"give a new folder, such as build/NAME\n", result.output)
    assert listing(tmp_path) == before


def test_output_below_a_file(tmp_path, tiny):
    (tmp_path / "afile").write_text("x")
    before = listing(tmp_path)
    result = run("build", tiny, "-o", tmp_path / "afile" / "sub")
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (f"Error: Output folder {str(tmp_path / 'afile' / 'sub')!r} cannot "
                      f"be created: {str(tmp_path / 'afile')!r} is a file\n")
    assert listing(tmp_path) == before


def test_output_that_cannot_be_written(tmp_path, tiny, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    before = listing(tmp_path)
    result = run("build", tiny, "-o", tmp_path / "ro" / "out")
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (f"Error: Output folder {str(tmp_path / 'ro' / 'out')!r} cannot be "
                      f"written: Permission denied\n")
    assert [p for p in listing(tmp_path) if ".old." in p or p.startswith(".")] == []
    assert set(before) <= set(listing(tmp_path))


# Item 3: nnfab verify BUILD_DIR checks the folder's own files.

def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,message", [
    (lambda b: (b / "tiny.v").write_text("this is not verilog"),
     "tiny.v differs from what nnfab build wrote"),
    (lambda b: (b / "tiny.v").unlink(), "tiny.v is missing"),
    (lambda b: flip_a_byte(b / "model.npz"), "model.npz differs from what nnfab build wrote"),
    (lambda b: (b / "model.json").write_text((b / "model.json").read_text().replace(
        "fixed<8,2>", "fixed<8,3>")), "model.json differs from what nnfab build wrote"),
])
def test_verify_refuses_a_folder_whose_files_changed(built, tmp_path, damage, message):
    folder = tmp_path / "b"
    shutil.copytree(built, folder)
    damage(folder)
    result = run("verify", folder)
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (f"Error: Build folder {str(folder)!r}: {message}"
                      + ("; build it again with nnfab build\n" if "missing" in message
                         else " (its SHA-256 is not the one manifest.json records); "
                              "build it again with nnfab build\n"))


def test_verify_refuses_options_that_would_change_a_build_folder(built):
    result = run("verify", built, "--reuse-factor", 2)
    assert result.exit_code == 2
    assert "--reuse-factor cannot be used with a build folder: it is verified as it was " \
           "built" in result.output


@pytest.mark.parametrize("manifest,message", [
    ("{not json", "manifest.json is not valid JSON"),
    ("[1, 2]", "manifest.json was not written by nnfab (no 'nnfab_version')"),
    ('{"nnfab_version": "0.1.0"}', "manifest.json records no file hashes"),
])
def test_verify_and_report_of_a_damaged_manifest(built, tmp_path, manifest, message):
    folder = tmp_path / "b"
    shutil.copytree(built, folder)
    (folder / "manifest.json").write_text(manifest)
    for command in ("verify", "report"):
        result = run(command, folder)
        assert result.exit_code == 1
        output = without_progress(result.output)
        assert output.startswith(f"Error: Build folder {str(folder)!r}: ") or \
            command == "report", result.output
        assert output.count("\n") == 1, result.output
        if command == "verify" or "hashes" not in message:
            assert message in result.output


def test_verify_of_a_sweep_folder_says_what_it_is(tmp_path):
    """A sweep's output folder holds a manifest.json (it marks the folder as nnfab's): verify
    says it is a sweep's and how to get a build folder from it."""
    folder = tmp_path / "sweep-jet"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"nnfab_version": "0.1.0", "sweep": "jet", '
                                          '"points": 4}')
    result = run("verify", folder)
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output == (
        f"Error: {str(folder)!r} is the output folder of nnfab sweep (sweep 'jet'), not a "
        f"build folder; build its best point with nnfab sweep ... --pick CONSTRAINTS (e.g. "
        f"'lut<5000'), then verify that folder\n"), result.output


@pytest.mark.slow
def test_verify_simulates_the_folders_verilog(built, tmp_path):
    """The folder's Verilog is what runs: a changed (valid) Verilog with its hash recorded
    gives mismatches, though model.json is unchanged."""
    folder = tmp_path / "b"
    shutil.copytree(built, folder)
    result = run("verify", folder, "--random", 50)
    assert result.exit_code == 0, result.output
    verilog = folder / "tiny.v"
    text = verilog.read_text()
    # The same design behind a wrapper that inverts the lowest output bit.
    changed = text.replace("module tiny(", "module tiny_inner(", 1) + """
module tiny(input clk, input rst, input i__valid, output i__ready, input [31:0] i__payload,
            output o__valid, input o__ready, output [19:0] o__payload);
  wire [19:0] payload;
  tiny_inner inner(.clk(clk), .rst(rst), .i__valid(i__valid), .i__ready(i__ready),
                   .i__payload(i__payload), .o__valid(o__valid), .o__ready(o__ready),
                   .o__payload(payload));
  assign o__payload = payload ^ 20'h1;
endmodule
"""
    assert changed != text
    verilog.write_text(changed)
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib
    manifest["files"]["tiny.v"] = hashlib.sha256(changed.encode()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run("verify", folder, "--random", 50)
    assert result.exit_code == 1
    assert re.search(r"^50 mismatches$", result.output, re.M), result.output


# Items 5 and 11: bad command-line values are usage errors.

@pytest.mark.parametrize("args,message", [
    (["--stall", "1.0"], "Invalid value for '--stall': 1.0 is not in the range 0<=x<1."),
    (["--stall", "-0.1"], "Invalid value for '--stall': -0.1 is not in the range 0<=x<1."),
    (["--count", "0"], "Invalid value for '--count': 0 is not in the range x>=1."),
    (["--count", "-5"], "Invalid value for '--count': -5 is not in the range x>=1."),
    (["--random", "0"], "Invalid value for '--random': 0 is not in the range x>=1."),
    (["--random", "-1"], "Invalid value for '--random': -1 is not in the range x>=1."),
    (["--reuse-factor", "0"], "Invalid value for '--reuse-factor': it is '0'; a reuse factor "
                              "must be an integer from 1, or NAME=R pairs separated by commas "
                              "(e.g. dense_1=4,dense_2=8)"),
    (["--max-multipliers", "0"],
     "Invalid value for '--max-multipliers': 0 is not in the range x>=1."),
    (["--precision", "0"], "Invalid value for '--precision': 0 is not in the range 2<=x<=32."),
    (["--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0."),
])
def test_bad_numbers_are_usage_errors(args, message):
    result = run("verify", "--example", "digits-mlp", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_ptq_options_on_a_quantized_model(tiny):
    result = run("build", tiny, "--precision", 8)
    assert result.exit_code == 2
    assert (f"--precision and --input-format set post-training quantization of float models; "
            f"{str(tiny)!r} is quantized already") in result.output
    result = run("verify", "--example", "digits-mlp", "--input-format", "fixed<8,2>")
    assert result.exit_code == 2
    assert "'digits-mlp' is quantized already" in result.output


def test_input_sources_are_exclusive():
    result = run("verify", "--example", "digits-mlp", "--random", 5, "--dataset", "digits")
    assert result.exit_code == 2
    assert "--dataset and --random cannot be used together" in result.output


@pytest.mark.parametrize("write,message", [
    (lambda p: np.save(p, np.zeros((0, 64))), "holds no vectors (shape (0, 64))"),
    (lambda p: p.write_text("1,2,3\n"), "is not a NumPy .npy array"),
    (lambda p: np.savez(p.with_suffix(".npz"), x=np.zeros((2, 64)))
     or os.replace(p.with_suffix(".npz"), p), "is a .npz archive"),
    (lambda p: np.save(p, np.full((2, 64), np.nan)), "holds 128 values that are NaN or infinite"),
    (lambda p: np.save(p, np.zeros((2, 64), dtype=complex)), "holds complex128 values"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "holds Python objects"),
])
def test_bad_inputs_files(tmp_path, write, message):
    path = tmp_path / "x.npy"
    write(path)
    result = run("verify", "--example", "digits-mlp", "--inputs", path)
    assert result.exit_code == 1
    output = without_progress(result.output)
    assert output.startswith(f"Error: Inputs file {str(path)!r} ")
    assert message in result.output
    assert output.count("\n") == 1


@pytest.mark.parametrize("labels,message", [
    (np.zeros(3, dtype=int), "has shape (3,); expected (4,), one class per input"),
    (np.zeros((4, 2), dtype=int), "has shape (4, 2); expected (4,), one class per input"),
    (np.array([0.5, 1, 2, 3]), "holds non-integer values"),
])
def test_bad_labels_are_refused_before_simulating(tmp_path, labels, message):
    np.save(tmp_path / "x.npy", np.zeros((4, 64)))
    np.save(tmp_path / "y.npy", labels)
    result = run("verify", "--example", "digits-mlp", "--inputs", tmp_path / "x.npy",
                 "--labels", tmp_path / "y.npy")
    assert result.exit_code == 1
    assert message in result.output
    output = without_progress(result.output)
    assert output.count("\n") == 1


def test_labels_need_inputs(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(4, dtype=int))
    result = run("verify", "--example", "digits-mlp", "--labels", tmp_path / "y.npy")
    assert result.exit_code == 2
    assert "--labels needs --inputs" in result.output


def test_build_of_a_folder_is_a_usage_error(built):
    result = run("build", built)
    assert result.exit_code == 2
    assert "is a folder; give a model file" in result.output


# Item 8: a CNN with "same" padding has a fractional per-pixel II; the manifest holds cycles
# per inference, an integer, so it is JSON.

def test_build_of_a_same_padded_cnn(tmp_path, write_model):
    rng = np.random.default_rng(1)
    doc = {"nnfab_model": 1, "name": "same", "input": {"shape": [4, 4, 1],
                                                      "format": "fixed<8,3>"},
           "layers": [
               {"name": "conv", "type": "conv2d", "weights": "w", "padding": "same",
                "strides": [1, 1], "weight_format": "fixed<6,1>",
                "output_format": "fixed<10,4,RND_CONV,SAT>"},
               {"name": "flat", "type": "flatten"},
               {"name": "d", "type": "dense", "weights": "w2", "weight_format": "fixed<6,1>",
                "output_format": "fixed<12,6,RND_CONV,SAT>"}]}
    path = write_model(doc, {"w": rng.integers(-20, 20, (2, 3, 3, 1)),
                             "w2": rng.integers(-20, 20, (3, 32))})
    result = run("build", path, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    conv = manifest["layers"][0]
    assert isinstance(manifest["initiation_interval"], int)
    assert conv["initiation_interval"] == manifest["initiation_interval"]
    assert conv["initiation_interval"] >= 16  # one frame of 4 x 4 pixels, padded


@pytest.mark.slow
def test_few_vectors_still_run_under_back_pressure(built, tmp_path):
    """Item 5: with fewer vectors than the full-rate warm-up, every vector still runs under
    stalls. The folder's design here loses any output offered while the sink is stalled, so
    only a run with back-pressure can tell."""
    folder = tmp_path / "b"
    shutil.copytree(built, folder)
    verilog = folder / "tiny.v"
    changed = verilog.read_text().replace("module tiny(", "module tiny_inner(", 1) + """
module tiny(input clk, input rst, input i__valid, output i__ready, input [31:0] i__payload,
            output o__valid, input o__ready, output [19:0] o__payload);
  tiny_inner inner(.clk(clk), .rst(rst), .i__valid(i__valid), .i__ready(i__ready),
                   .i__payload(i__payload), .o__valid(o__valid), .o__ready(1'b1),
                   .o__payload(o__payload));
endmodule
"""
    verilog.write_text(changed)
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib
    manifest["files"]["tiny.v"] = hashlib.sha256(changed.encode()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run("verify", folder, "--random", 10, "--stall", "0.5")
    assert result.exit_code == 1, result.output
    assert "PASS" not in result.output
