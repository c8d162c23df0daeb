"""Every module that the package, its benchmarks and its tests import is a declared dependency.

CI also runs in a fresh virtual environment (``.ci/run``), where an undeclared package fails
at import; this test names the missing declaration directly, and also catches an import that
only a rarely run code path reaches.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Import names of optional packages that may be absent here, with their distribution.
NOT_INSTALLED_HERE = {"umap": "umap-learn", "deep_sort_realtime": "deep-sort-realtime"}
#: Installed by scripts/install.sh with --no-deps (see the README), not through pyproject.
INSTALL_SCRIPT = {"deep-sort-realtime"}


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].strip().lower().replace("_", "-") for s in specs}


def _imports(folder: Path) -> dict[str, str]:
    found = {}
    for f in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(f.relative_to(REPO)))
    return found


def test_every_third_party_import_is_declared():
    declared = _declared() | INSTALL_SCRIPT
    local = {"descluster", "conftest", "test_report", "facts"} | {p.stem for p in (REPO / "benchmarks").glob("*.py")}
    local |= {p.stem for p in (REPO / "tests").glob("*.py")}
    dists = metadata.packages_distributions()
    missing = []
    for folder in ("src", "benchmarks", "tests"):
        for module, where in sorted(_imports(REPO / folder).items()):
            if module in sys.stdlib_module_names or module in local or module == "__future__":
                continue
            names = [d.lower().replace("_", "-") for d in dists.get(module, [])] or [NOT_INSTALLED_HERE.get(module, module)]
            if not any(n in declared for n in names):
                missing.append(f"{module} (imported by {where}; distribution {names})")
    assert not missing, "undeclared dependencies: " + "; ".join(missing)


def test_declared_dependencies_have_lower_bounds():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [s for e in project["optional-dependencies"].values() for s in e]
    unbounded = [s for s in specs if ">=" not in s]
    assert not unbounded, unbounded
