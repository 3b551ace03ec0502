"""Every third-party package nnfab's own code imports is one ``pip install .`` installs: a
QONNX file used to end in ``ModuleNotFoundError: No module named 'qonnx'`` after the README's
install command, because qonnx was only a test extra (the tests never saw it)."""

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: nnfab's packages a user's ``nnfab build``/``verify`` can reach (not bench/ or tests/).
PACKAGES = ("core", "ir", "gen", "hdl", "sim", "cli", "boards")
#: Imported only by features of an extra, each behind its own import: the ``boards`` extra
#: (amaranth-boards, pyserial; platformdirs comes with yowasp-runtime) and the TFLite tests'
#: reference interpreter (``test`` extra).
EXTRAS = {"amaranth_boards", "serial", "platformdirs", "ai_edge_litert"}


def _imported_modules():
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path.relative_to(ROOT))
    return found


def _name(requirement):
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_imported_packages_are_core_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {_name(requirement) for requirement in project["dependencies"]}
    # dask[distributed] brings the distributed package.
    core |= {"distributed"} if "dask" in core else set()
    distributions = metadata.packages_distributions()
    missing = {}
    for module, path in sorted(_imported_modules().items()):
        if module in sys.stdlib_module_names or module == "nnfab" or module in EXTRAS:
            continue
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & core:
            missing[module] = str(path)
    assert not missing, f"imported but not in [project] dependencies: {missing}"
