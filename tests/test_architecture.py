"""The layer rule and the one time base, checked on the source (this runs in CI).

Layers, one way (a module may import its own layer and the layers below):

    algorithms   extractors.*, index.*          pure: no Luigi, no pipeline I/O
    storage      config, layout, artifacts ...  every path and schema
    steps        pipeline.steps, refresh ...    one function per operation
    entry        pipeline (the Luigi entry module), cli, demo, tasks.*

Only entry points import Luigi.  See docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("extractors", "index", "pipeline", "tasks", "configs")

ALGORITHMS, STORAGE, STEPS, ENTRY = range(4)
LAYER_NAMES = ("algorithms", "storage", "steps", "entry")

STORAGE_MODULES = {
    "pipeline.version", "pipeline.config", "pipeline.corpus", "pipeline.datasets", "pipeline.dataset_kinds",
    "pipeline.layout", "pipeline.artifacts", "pipeline.descriptors", "pipeline.publish", "pipeline.lock",
    "pipeline.index_store", "pipeline.pca_store", "pipeline.vocab_store", "pipeline.frame_model_store",
    "pipeline.search_results", "pipeline.quarantine", "pipeline.lamv_store",
    "pipeline.completeness",
    "pipeline.metrics", "pipeline.synthetic", "pipeline.segment_metrics", "pipeline.segment_results",
    "pipeline.tca_store", "pipeline.pair_scores",
}
STEP_MODULES = {"pipeline.steps", "pipeline.extract", "pipeline.refresh", "pipeline.evaluate", "pipeline.report",
                "pipeline.lamv", "pipeline.generate", "pipeline.alignment", "pipeline.tca",
                "pipeline.verify"}
ENTRY_MODULES = {"pipeline", "pipeline.__main__", "pipeline.cli", "pipeline.demo"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    if top in ("extractors", "index"):
        return ALGORITHMS
    if top == "tasks" or module in ENTRY_MODULES:
        return ENTRY
    if module in STEP_MODULES:
        return STEPS
    if module in STORAGE_MODULES or top == "configs":
        return STORAGE
    return None


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, modules: set[str]) -> list[tuple[int, str]]:
    """(line, imported name) for every import, including those inside functions; ``from a import b``
    counts as importing ``a.b`` when that is a module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.append((node.lineno, full if full in modules else node.module))
    return out


def violations() -> list[str]:
    mods = project_modules()
    names = set(mods)
    problems = []
    for mod, path in mods.items():
        layer = layer_of(mod)
        if layer is None:
            problems.append(f"{path.relative_to(ROOT)}: module {mod} has no layer "
                            f"(add it to tests/test_architecture.py and docs/architecture.md)")
            continue
        for line, imp in imports_of(path, names):
            top = imp.split(".")[0]
            if top == "luigi" and layer != ENTRY:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {LAYER_NAMES[layer]} module imports Luigi")
            if top not in PACKAGES:
                continue
            target = imp if imp in names else next((n for n in (imp.rsplit(".", 1)[0],) if n in names), imp)
            tl = layer_of(target)
            if tl is not None and tl > layer:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {LAYER_NAMES[layer]} module {mod} imports "
                                f"{LAYER_NAMES[tl]} module {target}")
    return problems


def test_dependencies_point_one_way():
    assert violations() == []


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself can fail: an algorithm importing pipeline I/O or Luigi is reported."""
    bad = ROOT / "extractors" / "_layer_rule_probe.py"
    bad.write_text("import luigi\nfrom pipeline.artifacts import atomic_h5\n", encoding="utf-8")
    try:
        found = violations()
    finally:
        bad.unlink()
    assert any("_layer_rule_probe.py:1: algorithms module imports Luigi" in p for p in found)
    assert any("_layer_rule_probe.py:2: algorithms module extractors._layer_rule_probe imports storage" in p
               for p in found)


def _fps_violations() -> list[str]:
    out = []
    for mod, path in project_modules().items():
        if mod == "extractors.timebase":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "FPS" for t in targets):
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno}: defines FPS")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div | ast.FloorDiv):
                for side in (node.left, node.right):
                    if isinstance(side, ast.Constant) and side.value in (15, 15.0) and not isinstance(side.value, bool):
                        out.append(f"{path.relative_to(ROOT)}:{node.lineno}: literal 15 in arithmetic")
    return out


def test_one_time_base():
    """The 15-fps rate is stated once (extractors/timebase.py); nothing else defines or hard-codes it."""
    assert _fps_violations() == []


@pytest.mark.parametrize("mod", ["extractors", "index"])
def test_algorithms_import_without_pipeline_or_luigi(mod):
    import subprocess
    import sys

    code = (f"import sys, pkgutil, importlib, {mod}\n"
            f"for m in pkgutil.iter_modules({mod}.__path__): importlib.import_module('{mod}.' + m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pipeline', 'tasks', 'luigi'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
