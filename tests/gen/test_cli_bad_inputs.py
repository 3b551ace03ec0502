"""Bad command lines and bad files given to the ``nnfab`` commands, as a new user types them
(issue 14, items 10 and 11): each ends with exit 1 and one ``Error:`` line naming the thing and
the value (exit 2 for usage errors, with click's usage lines), no traceback, no bare Python
error text, and nothing written to disk.

Each case runs in an empty folder holding only the files its setup writes; the folder must
hold exactly those files afterwards."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli import main

from .conftest import tiny_mlp

#: Fragments of Python's own exception texts: a message holding one was not written for users.
BARE_PYTHON = re.compile(
    r"Traceback|object has no attribute|unhashable type|invalid literal for|index out of range|"
    r"not subscriptable|NoneType|KeyError|ZeroDivisionError|argument must be|"
    r"max\(\) arg|min\(\) arg|negative dimensions|pickled|codec can't decode|zlib|"
    r"Event loop|AssertionError|Aborted!")


def tiny(folder, name="m", mutate=None):
    doc, arrays = tiny_mlp()
    if mutate:
        mutate(doc, arrays)
    (folder / f"{name}.json").write_text(json.dumps(doc))
    np.savez(folder / f"{name}.npz", **arrays)


def write(name, content):
    def setup(folder):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return setup


def npy(name, array):
    def setup(folder):
        np.save(folder / name, array)
    return setup


def both(*setups):
    def setup(folder):
        for s in setups:
            s(folder)
    return setup


def build_folder(folder):
    tiny(folder)
    result = CliRunner().invoke(main, ["build", str(folder / "m.json"), "-o",
                                       str(folder / "b")])
    assert result.exit_code == 0, result.output


# (id, setup, args, exit code, fragment of the message)
CASES = [
    # Which model.
    ("no model", None, ["build"], 2, "Give a MODEL file, --example NAME or --hls4ml-config"),
    ("two models", tiny, ["build", "m.json", "--example", "digits-mlp"], 2,
     "Give a MODEL file, --example NAME or --hls4ml-config FILE (one of them)"),
    ("unknown example", None, ["build", "--example", "nope"], 1,
     "Unknown example 'nope'; bundled examples: digits-mlp, digits-cnn"),
    ("missing file", None, ["build", "missing.json"], 1,
     "Model file 'missing.json' does not exist"),
    ("empty file", write("e.json", ""), ["build", "e.json"], 1, "Model file 'e.json' is empty"),
    ("text file", write("t.txt", "hello"), ["build", "t.txt"], 1, "is of no known kind"),
    ("JSON of no kind", write("j.json", '{"a": 1}'), ["build", "j.json"], 1,
     "is JSON but neither an nnfab model"),
    ("folder as model for build", build_folder, ["build", "b"], 2,
     "is a folder; give a model file"),
    ("hls4ml config missing", None, ["build", "--hls4ml-config", "nope.yml"], 1, "nope.yml"),
    ("hls4ml config not YAML", write("c.yml", "a: [1, 2"), ["build", "--hls4ml-config",
                                                             "c.yml"], 1, "c.yml"),
    # Numbers out of range.
    ("reuse factor 0", tiny, ["build", "m.json", "--reuse-factor", "0"], 2,
     "it is '0'; a reuse factor must be an integer from 1, or NAME=R pairs separated by "
     "commas (e.g. dense_1=4,dense_2=8)"),
    ("reuse factor -3", tiny, ["build", "m.json", "--reuse-factor", "-3"], 2,
     "it is '-3'; a reuse factor must be an integer from 1"),
    ("reuse factor 1.5", tiny, ["build", "m.json", "--reuse-factor", "1.5"], 2,
     "it is '1.5'; a reuse factor must be an integer from 1"),
    ("reuse factor text", tiny, ["build", "m.json", "--reuse-factor", "many"], 2,
     "it is 'many'; a reuse factor must be an integer from 1"),
    ("layer reuse factor 0", tiny, ["build", "m.json", "--reuse-factor", "d1=0"], 2,
     "the reuse factor of 'd1' is '0'; a reuse factor must be an integer from 1"),
    ("layer reuse factor empty", tiny, ["build", "m.json", "--reuse-factor", "d1="], 2,
     "the reuse factor of 'd1' is ''; a reuse factor must be an integer from 1"),
    ("layer reuse factor without name", tiny, ["build", "m.json", "--reuse-factor",
                                               "d1=2,=3"], 2,
     "'=3' is not NAME=R; a reuse factor must be an integer from 1"),
    ("layer reuse factor twice", tiny, ["build", "m.json", "--reuse-factor", "d1=2,d1=4"],
     2, "layer 'd1' is given twice"),
    ("max multipliers 0", tiny, ["build", "m.json", "--max-multipliers", "0"], 2,
     "0 is not in the range x>=1"),
    ("precision 0", tiny, ["build", "m.json", "--precision", "0"], 2,
     "0 is not in the range 2<=x<=32"),
    ("precision 100", tiny, ["build", "m.json", "--precision", "100"], 2,
     "100 is not in the range 2<=x<=32"),
    ("lut adder width -1", tiny, ["build", "m.json", "--lut-adder-width", "-1"], 2,
     "-1 is not in the range x>=0"),
    ("count 0", None, ["verify", "--example", "digits-mlp", "--count", "0"], 2,
     "0 is not in the range x>=1"),
    ("count -5", None, ["verify", "--example", "digits-mlp", "--count", "-5"], 2,
     "-5 is not in the range x>=1"),
    ("random 0", None, ["verify", "--example", "digits-mlp", "--random", "0"], 2,
     "0 is not in the range x>=1"),
    ("random -1", None, ["verify", "--example", "digits-mlp", "--random", "-1"], 2,
     "-1 is not in the range x>=1"),
    ("seed -1", None, ["verify", "--example", "digits-mlp", "--seed", "-1"], 2,
     "-1 is not in the range x>=0"),
    ("stall 1", None, ["verify", "--example", "digits-mlp", "--stall", "1"], 2,
     "1.0 is not in the range 0<=x<1"),
    ("stall 2.5", None, ["verify", "--example", "digits-mlp", "--stall", "2.5"], 2,
     "2.5 is not in the range 0<=x<1"),
    ("stall -0.5", None, ["verify", "--example", "digits-mlp", "--stall", "-0.5"], 2,
     "-0.5 is not in the range 0<=x<1"),
    ("stall nan", None, ["verify", "--example", "digits-mlp", "--stall", "nan"], 2,
     "'nan' is not a number in the range 0<=x<1."),
    ("unknown data set", None, ["verify", "--example", "digits-mlp", "--dataset", "mnist"], 2,
     "'mnist' is not one of 'digits', 'sine-frequency'"),
    # Options that do not apply.
    ("precision on quantized", tiny, ["build", "m.json", "--precision", "8"], 2,
     "is quantized already"),
    ("input format on example", None, ["build", "--example", "digits-mlp", "--input-format",
                                       "fixed<8,2>"], 2, "'digits-mlp' is quantized already"),
    ("precision with hls4ml", None, ["build", "--hls4ml-config", "c.yml", "--precision", "8"],
     2, "do not apply to --hls4ml-config"),
    ("bad input format", None, ["build", "--example", "digits-mlp", "--input-format",
                                "fixed<8"], 2, "is quantized already"),
    ("labels without inputs", npy("y.npy", np.zeros(3, dtype=int)),
     ["verify", "--example", "digits-mlp", "--labels", "y.npy"], 2, "--labels needs --inputs"),
    ("two input sources", None, ["verify", "--example", "digits-mlp", "--random", "5",
                                 "--dataset", "digits"], 2,
     "--dataset and --random cannot be used together"),
    ("options on a build folder", build_folder, ["verify", "b", "--precision", "8"], 2,
     "--precision cannot be used with a build folder"),
    # Input and label files.
    ("inputs missing", None, ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 2,
     "'x.npy' does not exist"),
    ("inputs a folder", write("x/a", "1"), ["verify", "--example", "digits-mlp", "--inputs",
                                            "x"], 2, "'x' is a directory"),
    ("inputs text", write("x.npy", "1,2,3\n"), ["verify", "--example", "digits-mlp",
                                                "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' is not a NumPy .npy array"),
    ("inputs empty file", write("x.npy", b""), ["verify", "--example", "digits-mlp",
                                                "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' is not a NumPy .npy array"),
    ("inputs npz", lambda f: np.savez(f / "x.npz", a=np.zeros((2, 64))),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npz"], 1,
     "Inputs file 'x.npz' is a .npz archive"),
    ("inputs pickled", npy("x.npy", np.array([None, {"a": 1}], dtype=object)),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' holds Python objects, which nnfab does not load"),
    ("inputs empty", npy("x.npy", np.zeros((0, 64))),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' holds no vectors (shape (0, 64))"),
    ("inputs scalar", npy("x.npy", np.float64(3)),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' holds no vectors (shape ())"),
    ("inputs wrong shape", npy("x.npy", np.zeros((5, 63))),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' of shape (5, 63) does not fit the model's input shape; expected "
     "(n, 64)"),
    ("inputs strings", npy("x.npy", np.array([["a"] * 64])),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "Inputs file 'x.npy' holds <U1 values; expected real numbers"),
    ("inputs complex", npy("x.npy", np.ones((2, 64), dtype=complex)),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "holds complex128 values; expected real numbers"),
    ("inputs infinite", npy("x.npy", np.full((2, 64), np.inf)),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy"], 1,
     "holds 128 values that are NaN or infinite"),
    ("labels short", both(npy("x.npy", np.zeros((4, 64))), npy("y.npy", np.zeros(3, int))),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy", "--labels", "y.npy"], 1,
     "Labels file 'y.npy' has shape (3,); expected (4,), one class per input"),
    ("labels 2-D", both(npy("x.npy", np.zeros((4, 64))), npy("y.npy", np.zeros((4, 1), int))),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy", "--labels", "y.npy"], 1,
     "has shape (4, 1); expected (4,)"),
    ("labels fractional", both(npy("x.npy", np.zeros((4, 64))),
                               npy("y.npy", np.array([0.5, 1, 2, 3]))),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy", "--labels", "y.npy"], 1,
     "Labels file 'y.npy' holds non-integer values"),
    ("labels text", both(npy("x.npy", np.zeros((4, 64))), write("y.npy", "0 1 2 3")),
     ["verify", "--example", "digits-mlp", "--inputs", "x.npy", "--labels", "y.npy"], 1,
     "Labels file 'y.npy' is not a NumPy .npy array"),
    # Output folders.
    ("output an unrelated folder", both(tiny, write("d/notes.txt", "x")),
     ["build", "m.json", "-o", "d"], 1, "Output folder 'd' exists and is not an nnfab build "
                                        "folder"),
    ("output the current folder", tiny, ["build", "m.json", "-o", "."], 1,
     "Output folder '.' is or contains the current folder"),
    ("output a parent", tiny, ["build", "m.json", "-o", ".."], 1,
     "Output folder '..' is or contains the current folder"),
    ("output below a file", both(tiny, write("afile", "x")),
     ["build", "m.json", "-o", "afile/sub"], 1,
     "Output folder 'afile/sub' cannot be created: 'afile' is a file"),
    ("output a file", both(tiny, write("afile", "x")), ["build", "m.json", "-o", "afile"], 2,
     "'afile' is a file"),
    ("unknown board", tiny, ["build", "m.json", "--board", "../../x"], 1,
     "Unknown board '../../x'"),
    ("clock 0", tiny, ["build", "m.json", "--board", "icebreaker", "--clock-mhz", "0"], 1,
     "Clock must be a positive frequency in MHz, not 0.0"),
    ("pnr timeout without board", tiny, ["build", "m.json", "--pnr-timeout", "5"], 2,
     "--pnr-timeout limits a board build's place and route; it needs --board"),
    ("pnr timeout negative", tiny, ["build", "m.json", "--board", "ulx3s-85f",
                                    "--pnr-timeout", "-1"], 2,
     "Invalid value for '--pnr-timeout': -1.0 is not in the range x>=0"),
    # Build folders given to verify and report.
    ("verify a folder without manifest", write("d/x.txt", "x"), ["verify", "d"], 1,
     "'d' is not an nnfab build folder (no manifest.json)"),
    ("report a folder without manifest", write("d/x.txt", "x"), ["report", "d"], 1,
     "'d' is not an nnfab build folder (no manifest.json)"),
    ("report a corrupt manifest", write("d/manifest.json", "{nope"), ["report", "d"], 1,
     "Build folder 'd': manifest.json is not valid JSON"),
    ("report a binary manifest", write("d/manifest.json", b"\xff\xfe\x00"), ["report", "d"], 1,
     "Build folder 'd': manifest.json is not UTF-8 text"),
    ("report a foreign manifest", write("d/manifest.json", '{"name": "x"}'), ["report", "d"],
     1, "manifest.json was not written by nnfab"),
    ("report a damaged manifest", write("d/manifest.json", '{"nnfab_version": "0", "name": 1}'),
     ["report", "d"], 1, "Build folder 'd': manifest.json is damaged"),
    ("report a missing folder", None, ["report", "nope"], 2, "'nope' does not exist"),
    ("verify a damaged manifest", write("d/manifest.json", '{"nnfab_version": "0"}'),
     ["verify", "d"], 1, "manifest.json records no file hashes"),
    # Commands and options that do not exist.
    ("unknown command", None, ["frobnicate"], 2, "No such command 'frobnicate'"),
    ("unknown option", None, ["build", "--frobnicate"], 2, "No such option '--frobnicate'"),
]


@pytest.mark.parametrize("setup,args,code,message",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_command_line(tmp_path, monkeypatch, setup, args, code, message):
    if setup is not None:
        setup(tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.output, result.output
    assert not BARE_PYTHON.search(result.output), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    if code == 1:
        assert result.output.splitlines()[-1].startswith("Error:"), result.output
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before
