"""nnfab sweep: grids on a Dask LocalCluster, the content-addressed store (a rerun computes
nothing), failing points as rows, --pick, and bad sweep files and flags."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.boards.sweep_report import pareto_front, parse_constraints
from nnfab.cli import main
from nnfab.errors import SweepError
from tests.gen.conftest import tiny_mlp


def run(*args):
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, [str(a) for a in args],
                                                    catch_exceptions=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder (store and Verilog cache), seen by the local workers too."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NNFAB_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def float_model(tmp_path):
    """A float 6→4→3 MLP in the native format (PTQ at each point's bits)."""
    rng = np.random.default_rng(0)
    doc = {"nnfab_model": 1, "name": "f", "input": {"shape": [6]},
           "layers": [{"name": "d1", "type": "dense", "weights": "w1", "biases": "b1"},
                      {"name": "relu", "type": "activation", "activation": "relu"},
                      {"name": "d2", "type": "dense", "weights": "w2"}]}
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    np.savez(tmp_path / "f.npz", w1=rng.normal(size=(4, 6)), b1=rng.normal(size=4),
             w2=rng.normal(size=(3, 4)))
    return path


def results(folder):
    return json.loads((folder / "results.json").read_text())


def test_sweep_on_worker_processes_then_resume_from_store(float_model, cache, tmp_path):
    out = tmp_path / "sweep"
    result = run("sweep", float_model, "--reuse-factor", "1,2", "--bits", "4,8",
                 "--workers", 2, "--random", 300, "-o", out)
    assert result.exit_code == 0, result.output
    first = results(out)
    assert (first["points"], first["computed"], first["reused"], first["failed"]) == \
        (4, 4, 0, 0)
    rows = first["rows"]
    assert [(r["reuse_factor"], r["bits"]["weights"]) for r in rows] == \
        [(1, 4), (1, 8), (2, 4), (2, 8)]
    assert [(r["latency"] > 0, r["initiation_interval"]) for r in rows] == \
        [(True, 1), (True, 1), (True, 2), (True, 2)]
    assert all(r["accuracy_of"] == "float agreement" and 0 < r["accuracy"] <= 1 for r in rows)
    assert rows[1]["accuracy"] >= rows[0]["accuracy"]  # 8 bits agree at least as well as 4
    assert all(r["verilog_bytes"] > 1000 and r["estimated_luts"] > 0 for r in rows)
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("label,status,reason,reuse_factor")
    assert {p.name for p in out.iterdir()} == {"results.csv", "results.json", "report.md",
                                                "pareto_accuracy.png", "pareto_latency.png",
                                                "manifest.json"}
    assert "not synthesis" in (out / "report.md").read_text()
    # A rerun computes nothing; a larger grid computes only its new points.
    result = run("sweep", float_model, "--reuse-factor", "1,2,3", "--bits", "4,8",
                 "--worker-threads", "--workers", 2, "--random", 300, "-o", out)
    assert result.exit_code == 0, result.output
    second = results(out)
    assert (second["points"], second["computed"], second["reused"]) == (6, 2, 4)
    assert [r["accuracy"] for r in second["rows"][:4]] == [r["accuracy"] for r in rows]


def test_failing_points_are_rows(float_model, cache, tmp_path):
    sweep_file = tmp_path / "grid.yml"
    sweep_file.write_text("reuse_factor: [1, {d1: 4}, {d9: 2}]\nbits: 8\n"
                          "target: [ECP5-25F, icebreaker]\n")
    out = tmp_path / "sweep"
    result = run("sweep", float_model, "--sweep", sweep_file, "--worker-threads",
                 "--workers", 1, "--random", 100, "-o", out)
    assert result.exit_code == 0, result.output
    rows = results(out)["rows"]
    assert [(r["target"], r["status"]) for r in rows] == [
        ("ECP5-25F", "ok"), ("iCE40UP5K", "ok"), ("ECP5-25F", "failed"),
        ("iCE40UP5K", "failed"), ("ECP5-25F", "failed"), ("iCE40UP5K", "failed")]
    assert rows[2]["reason"] == "Layer 'd1': reuse factor must divide n_in 6 or be n_in " \
        "times a divisor of n_out 4 (one of 1, 2, 3, 6, 12, 24), not 4"
    assert rows[4]["reason"].startswith("Reuse factor given for 'd9', which is not a dense")
    assert results(out)["failed"] == 4
    # The table shows the reasons whole (cut at 80 characters, "estimated 232,180 LUT4
    # equivalents" read "estimated 2").
    assert "24)," in result.output and "not" in result.output.split("24),", 1)[1]
    # Bits on a quantized model: a bad option combination, a row too.
    doc, arrays = tiny_mlp()
    (tmp_path / "tiny.json").write_text(json.dumps(doc))
    np.savez(tmp_path / "tiny.npz", **arrays)
    result = run("sweep", tmp_path / "tiny.json", "--bits", "8", "--worker-threads",
                 "--workers", 1, "--random", 100, "-o", tmp_path / "quantized")
    assert result.exit_code == 0, result.output
    row, = results(tmp_path / "quantized")["rows"]
    assert (row["status"], row["reason"]) == (
        "failed", "bits apply to float models (PTQ); 'tiny' is quantized already")


def test_pick_builds_the_best_point(float_model, cache, tmp_path):
    args = ["sweep", float_model, "--reuse-factor", "1,2", "--bits", "4,10",
            "--worker-threads", "--workers", 2, "--random", 300]
    result = run(*args, "-o", tmp_path / "sweep")
    assert result.exit_code == 0, result.output
    rows = results(tmp_path / "sweep")["rows"]
    fast = [r for r in rows if r["initiation_interval"] == 2]
    best = max(fast, key=lambda r: (r["accuracy"], -r["estimated_luts"]))
    result = run(*args, "--pick", "ii>=2", "-o", tmp_path / "build")
    assert result.exit_code == 0, result.output
    assert f"Picked {best['label']}" in result.output
    manifest = json.loads((tmp_path / "build" / "manifest.json").read_text())
    assert manifest["initiation_interval"] == 2 and manifest["latency"] == best["latency"]
    assert manifest["layers"][0]["weight_format"].startswith(
        f"fixed<{best['bits']['weights']},")
    result = run(*args, "--pick", "latency<1", "-o", tmp_path / "none")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "Error: No point meets 'latency<1' (4 points, " \
                                              "0 failed); nothing built"
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("args,code,message", [
    (["--reuse-factor", "1,x"], 2, "--reuse-factor[1] is 'x'; it must be an integer from 1 to "
                                   "65536"),
    (["--bits", "1"], 2, "--bits is 1; it must be an integer from 2 to 32"),
    (["--target", "ECP5-12F"], 2, "--target is 'ECP5-12F'; targets: iCE40UP5K, ECP5-25F, "
                                  "ECP5-45F, ECP5-85F or the boards icebreaker, ulx3s-85f"),
    (["--fuse", "maybe"], 2, "--fuse is 'maybe'; it must be true or false"),
    (["--pick", "area<3"], 2, "--pick constraint 'area<3': unknown name 'area'"),
    (["--sweep", "GRID"], 1, "Error: Sweep file 'GRID': unknown axis 'reuse'; axes: "
                             "reuse_factor, bits, clock_mhz, fuse, target"),
    (["--sweep", "GRID", "--reuse-factor", "2"], 2, "--reuse-factor is also an axis of the "
                                                    "sweep file"),
])
def test_bad_flags_and_files(float_model, tmp_path, args, code, message):
    grid = tmp_path / "grid.yml"
    grid.write_text("reuse: [1, 2]\n" if "--reuse-factor" not in args else
                    "reuse_factor: [1]\n")
    args = [str(grid) if a == "GRID" else a for a in args]
    message = message.replace("GRID", str(grid))
    result = run("sweep", float_model, *args, "--worker-threads", "-o", tmp_path / "out")
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_pareto_front_and_constraints():
    rows = [{"status": "ok", "estimated_luts": lut, "accuracy": acc, "latency": lat}
            for lut, acc, lat in ((100, 0.8, 9), (200, 0.7, 5), (300, 0.9, 7), (50, 0.5, 9))]
    rows.append({"status": "failed", "estimated_luts": 10, "accuracy": 1.0, "latency": 1})
    assert [r["estimated_luts"] for r in pareto_front(rows, "accuracy", True)] == [50, 100, 300]
    assert [r["estimated_luts"] for r in pareto_front(rows, "latency", False)] == [50, 200]
    assert parse_constraints("lut<5000, latency<=20") == [("lut", "<", 5000.0),
                                                          ("latency", "<=", 20.0)]
    with pytest.raises(SweepError, match="^--pick constraint 'lut 5' is not NAME<VALUE"):
        parse_constraints("lut 5")


def test_points_too_large_for_the_device_skip_synthesis(cache, tmp_path):
    """--synth: a point with more multipliers than the ECP5's DSP blocks (--fit none: no
    multiplier built from LUTs), or a LUT estimate over twice the device, is 'does not fit'
    at once, without yosys; the rule itself on both families."""
    from nnfab.boards.sweep_point import too_large_to_synthesize
    from nnfab.boards.synth import DEVICES

    rng = np.random.default_rng(1)  # a float 16→8→4 MLP: 80 multipliers at R = 2
    doc = {"nnfab_model": 1, "name": "wide", "input": {"shape": [16]},
           "layers": [{"name": "d1", "type": "dense", "weights": "w1"},
                      {"name": "relu", "type": "activation", "activation": "relu"},
                      {"name": "d2", "type": "dense", "weights": "w2"}]}
    (tmp_path / "wide.json").write_text(json.dumps(doc))
    np.savez(tmp_path / "wide.npz", w1=rng.normal(size=(8, 16)), w2=rng.normal(size=(4, 8)))
    out = tmp_path / "sweep"
    result = run("sweep", tmp_path / "wide.json", "--reuse-factor", "2", "--bits", "8",
                 "--target", "ECP5-25F", "--synth", "--worker-threads", "--workers", 1,
                 "--random", 100, "--fit", "none", "-o", out)
    assert result.exit_code == 0, result.output
    row, = results(out)["rows"]
    assert row["multipliers"] > 28, row  # ECP5-25F has 28 MULT18X18D
    assert row["fabric_multipliers"] == 0
    assert (row["status"], row["reason"]) == ("failed", (
        f"does not fit ECP5-25F (counted before synthesis, which was not run): "
        f"{row['multipliers']} multipliers need at least as many DSP blocks, of 28"))
    assert "lut4" not in row and row["seconds"] < 60
    ecp5, ice40 = DEVICES["ECP5-85F"], DEVICES["iCE40UP5K"]
    assert too_large_to_synthesize({"multipliers": 156, "estimated_luts": 167_280}, ecp5) \
        is None
    assert too_large_to_synthesize({"multipliers": 157, "estimated_luts": 167_281}, ecp5) == (
        "does not fit ECP5-85F (counted before synthesis, which was not run): 157 multipliers "
        "need at least as many DSP blocks, of 156; estimated 167,281 LUT4 equivalents, more "
        "than 2 x its 83,640 LUT4")
    # Multipliers built from LUTs take no DSP block.
    assert too_large_to_synthesize({"multipliers": 300, "fabric_multipliers": 144,
                                    "estimated_luts": 50_000}, ecp5) is None
    # iCE40 keeps narrow products in LUTs: multipliers alone do not decide.
    assert too_large_to_synthesize({"multipliers": 500, "estimated_luts": 10_560}, ice40) \
        is None
    assert too_large_to_synthesize({"multipliers": 0, "estimated_luts": 10_561}, ice40) == (
        "does not fit iCE40UP5K (counted before synthesis, which was not run): estimated "
        "10,561 LUT4 equivalents, more than 2 x its 5,280 LUT4")
