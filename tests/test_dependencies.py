"""Every third-party module the project or its tests import is declared in pyproject.toml.

A fresh clone runs the README's test command in a fresh virtual environment
(``.ci/run``); an import that only works because a package was installed by hand
fails there.  This test finds such an import before CI does.  Optional
packages are imported through ``pytest.importorskip`` (not an ``import``) and
are allowed to be absent.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"pipeline", "tasks", "extractors", "index", "configs", "tests", "benchmarks"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    reqs = list(doc["project"]["dependencies"])
    for extra in ("cpu", "test"):
        reqs += doc["project"]["optional-dependencies"][extra]
    return {_norm(re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0]) for r in reqs}


def imported_top_levels() -> dict[str, str]:
    """Top-level module -> first file importing it, for every ``import`` in the project and tests."""
    out: dict[str, str] = {}
    for folder in ("pipeline", "tasks", "extractors", "index", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for n in names:
                    out.setdefault(n.split(".")[0], str(path.relative_to(ROOT)))
    return out


def test_every_third_party_import_is_declared():
    dists = metadata.packages_distributions()
    wanted = declared()
    missing = []
    for mod, where in sorted(imported_top_levels().items()):
        if mod in OURS or mod in sys.stdlib_module_names or mod == "__future__":
            continue
        providers = {_norm(d) for d in dists.get(mod, [])}
        if not providers & wanted:
            missing.append(f"{mod} (imported in {where}; provided by {sorted(providers) or 'nothing installed'})")
    assert missing == [], "undeclared dependencies: " + "; ".join(missing)


def test_the_check_sees_test_imports():
    """scipy is imported by the tests only: it must be found, and it is declared (test extra)."""
    assert "scipy" in imported_top_levels() and "scipy" in declared()
