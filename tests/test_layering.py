"""The layering of DESIGN.md and the README's layout: which nnfab package may import which, read
from every import statement of the source tree (also those inside functions)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Source folder -> package, as ``[tool.setuptools] package-dir`` maps them.
FOLDERS = {"core": "nnfab", "ir": "nnfab.ir", "hdl": "nnfab.hdl", "sim/golden": "nnfab.sim.golden",
           "sim": "nnfab.sim", "gen": "nnfab.gen", "boards": "nnfab.boards", "cli": "nnfab.cli"}

#: What each package may import besides itself and the core (``nnfab``).
ALLOWED = {
    "nnfab": set(),
    "nnfab.ir": set(),
    "nnfab.hdl": set(),
    "nnfab.sim.golden": set(),
    "nnfab.sim": {"nnfab.sim.golden"},
    "nnfab.gen": {"nnfab.ir", "nnfab.hdl", "nnfab.sim", "nnfab.sim.golden"},
    "nnfab.boards": {"nnfab.ir", "nnfab.hdl", "nnfab.sim", "nnfab.gen"},
    "nnfab.cli": {"nnfab.ir", "nnfab.hdl", "nnfab.sim", "nnfab.sim.golden", "nnfab.gen",
                  "nnfab.boards"},
}


def package_of(module):
    """The package of ``FOLDERS`` that holds ``module``: the longest matching name."""
    return max((p for p in FOLDERS.values() if module == p or module.startswith(p + ".")),
               key=len, default=None)


def imports(folder, package):
    """``(file, line, imported module)`` for every nnfab import in ``folder``."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT / folder)
        if folder == "sim" and relative.parts[0] == "golden":
            continue
        parts = package.split(".") + list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_package else parts[:-1]
                    base = base[:len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                names = ([module] if node.module else
                         [f"{module}.{alias.name}" for alias in node.names])
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "nnfab" or name.startswith("nnfab."):
                    yield path.relative_to(ROOT), node.lineno, name


@pytest.mark.parametrize("folder", FOLDERS)
def test_layering(folder):
    package = FOLDERS[folder]
    allowed = ALLOWED[package] | {package, "nnfab"}
    wrong = [f"{path}:{line} imports {name}" for path, line, name in imports(folder, package)
             if package_of(name) not in allowed]
    assert wrong == []
