"""The layer rule, no import cycles and the one time base, checked on the source (this runs in CI).

A module's layer is its folder (``LAYERS``); a module may import its own layer and the layers below:

    algorithms   extractors/, index/, pipeline/metrics/      pure: no Luigi, no pipeline I/O
    storage      pipeline/{core,config,datasets,store}/      every path, schema and file
    steps        pipeline/steps/                             one module per operation
    entry        pipeline (the Luigi entry module), pipeline/__main__, pipeline/entry/, tasks/

Only entry points import Luigi.  No module imports itself back through others, at module level or inside
a function.  A function-level import of a project module says why on its line (a comment).
See docs/architecture.md.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("extractors", "index", "pipeline", "tasks", "configs")

ALGORITHMS, STORAGE, STEPS, ENTRY = range(4)
LAYER_NAMES = ("algorithms", "storage", "steps", "entry")

# folder (dotted prefix) -> layer; the longest matching prefix wins
LAYERS = {
    "extractors": ALGORITHMS, "index": ALGORITHMS, "pipeline.metrics": ALGORITHMS,
    "pipeline.core": STORAGE, "pipeline.config": STORAGE, "pipeline.datasets": STORAGE, "pipeline.store": STORAGE,
    "configs": STORAGE,
    "pipeline.steps": STEPS,
    "pipeline.entry": ENTRY, "tasks": ENTRY,
}
EXACT = {"pipeline": ENTRY, "pipeline.__main__": ENTRY}  # the Luigi entry module, ``python -m pipeline``
MAX_MODULES_PER_FOLDER = 12


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of the folder ``module`` is in (None: a module outside every layer's folder)."""
    if module in EXACT:
        return EXACT[module]
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def imports_of(path: Path, modules: set[str]) -> list[tuple[int, str, bool, str]]:
    """(line, imported module, inside a function?, the line's text) for every import; ``from a import b``
    counts as importing ``a.b`` when that is a module."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, in_function, lines[child.lineno - 1]) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    out.append((child.lineno, full if full in modules else child.module, in_function,
                                "\n".join(lines[child.lineno - 1:child.end_lineno])))
            visit(child, inner)

    visit(ast.parse(text), False)
    return out


def import_graph(root: Path = ROOT) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    """Every project module and the project modules it imports (module -> {imported: line})."""
    mods = project_modules(root)
    names = set(mods)
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for mod, path in mods.items():
        for line, imp, _, _ in imports_of(path, names):
            if imp.split(".")[0] not in PACKAGES:
                continue
            target = imp if imp in names else imp.rsplit(".", 1)[0]
            if target in names and target != mod:
                graph[mod].setdefault(target, line)
    return mods, graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def violations(root: Path = ROOT) -> list[str]:
    mods = project_modules(root)
    names = set(mods)
    problems = []
    for mod, path in mods.items():
        rel = path.relative_to(root)
        layer = layer_of(mod)
        if layer is None:
            problems.append(f"{rel}: module {mod} is in no layer's folder (tests/test_architecture.py LAYERS)")
            continue
        for line, imp, in_function, text in imports_of(path, names):
            top = imp.split(".")[0]
            if top == "luigi" and layer != ENTRY:
                problems.append(f"{rel}:{line}: {LAYER_NAMES[layer]} module imports Luigi")
            if top not in PACKAGES:
                continue
            if in_function and "#" not in text:
                problems.append(f"{rel}:{line}: function-level import of {imp} without a comment saying why")
            target = imp if imp in names else imp.rsplit(".", 1)[0]
            tl = layer_of(target)
            if tl is not None and tl > layer:
                problems.append(f"{rel}:{line}: {LAYER_NAMES[layer]} module {mod} imports "
                                f"{LAYER_NAMES[tl]} module {target}")
    _, graph = import_graph(root)
    for comp in cycles(graph):
        inside = set(comp)
        edges = [f"{a} -> {b} (line {graph[a][b]})" for a in comp for b in sorted(graph[a]) if b in inside]
        problems.append(f"import cycle: {', '.join(edges)}")
    return problems


def test_dependencies_point_one_way_and_never_in_a_circle():
    assert violations() == []


def test_the_rule_catches_an_upward_import_a_cycle_and_an_unexplained_local_import(tmp_path):
    """The checker itself can fail: a copy of the tree with an algorithm importing storage and Luigi, a
    storage module importing a step, a cycle through a function-level import, and a function-level
    import without its reason, is reported for each."""
    import shutil

    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "extractors" / "probe_up.py").write_text(
        "import luigi\nfrom pipeline.core.hdf5 import atomic_h5\n", encoding="utf-8")
    (tmp_path / "pipeline" / "store" / "probe_a.py").write_text(
        "from pipeline.store import probe_b\n", encoding="utf-8")
    (tmp_path / "pipeline" / "store" / "probe_b.py").write_text(
        "def f():\n    from pipeline.store.probe_a import x  # deferred\n    return x\n", encoding="utf-8")
    (tmp_path / "pipeline" / "store" / "probe_c.py").write_text(
        "def f():\n    from pipeline.steps import build\n    return build\n", encoding="utf-8")
    found = violations(tmp_path)
    assert any("probe_up.py:1: algorithms module imports Luigi" in p for p in found)
    assert any("probe_up.py:2: algorithms module extractors.probe_up imports storage" in p for p in found)
    assert any(p.startswith("import cycle: pipeline.store.probe_a -> pipeline.store.probe_b") for p in found)
    assert any("probe_c.py:2: function-level import of pipeline.steps.build without a comment" in p for p in found)
    assert any("probe_c.py:2: storage module pipeline.store.probe_c imports steps" in p for p in found)
    assert not any("probe_b.py:2: function-level" in p for p in found)  # it says why


def test_every_module_is_in_a_layer_folder_and_folders_stay_small():
    mods = project_modules()
    per_folder: dict[Path, int] = {}
    for p in mods.values():
        if p.name != "__init__.py":
            per_folder[p.parent] = per_folder.get(p.parent, 0) + 1
    crowded = {str(d.relative_to(ROOT)): n for d, n in per_folder.items() if n > MAX_MODULES_PER_FOLDER}
    assert crowded == {}
    assert [m for m in mods if layer_of(m) is None] == []


def _fps_violations() -> list[str]:
    out = []
    roots = {**project_modules(), **{f"benchmarks.{p.stem}": p for p in sorted((ROOT / "benchmarks").glob("*.py"))}}
    for mod, path in roots.items():
        if mod == "extractors.runtime.timebase":
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
    """The 15-fps rate is stated once (extractors/runtime/timebase.py); nothing else in the packages or the
    benchmarks defines or hard-codes it."""
    assert _fps_violations() == []


@pytest.mark.slow
@pytest.mark.parametrize("mod", ["extractors", "index", "pipeline.metrics"])
def test_algorithms_import_without_pipeline_io_or_luigi(mod):
    code = (f"import sys, pkgutil, importlib, {mod}\n"
            f"for m in pkgutil.walk_packages({mod}.__path__, '{mod}.'): importlib.import_module(m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tasks', 'luigi', 'h5py') or "
            "(m.startswith('pipeline.') and not m.startswith('pipeline.metrics') "
            "and m not in ('pipeline.core', 'pipeline.core.version')))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_importing_a_library_module_never_registers_tasks_or_configures_luigi():
    """With Luigi already imported (a notebook, a worker of another project), importing the pipeline's
    library modules leaves Luigi alone: the tasks register only for ``luigi --module pipeline``."""
    code = ("import luigi, luigi.configuration, sys\n"
            "import pipeline, pipeline.steps.build, pipeline.store.layout\n"
            "cfg = luigi.configuration.get_config()\n"
            "print('tasks' in sys.modules, cfg.has_option('retcode', 'task_failed'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_every_error_the_pipeline_raises_on_purpose_shares_one_root():
    """Every exception class of the project derives from ``VideoAlignError`` (the command line prints its
    one line and exits with its ``exit_code``), whatever built-in it also is for its callers."""
    import importlib

    from extractors.runtime.errors import VideoAlignError

    found = []
    for mod, path in project_modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and (node.name.endswith("Error") or node.name.endswith("Exception")):
                found.append((mod, node.name))
    assert len(found) >= 15
    rootless = [f"{m}.{n}" for m, n in found
                if not issubclass(getattr(importlib.import_module(m), n), VideoAlignError)]
    assert rootless == []
