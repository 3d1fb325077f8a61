"""The import graph of ``pipelines`` has no cycle, counting imports inside functions too.

Read from the source (``ast``), so an import deferred into a function (which hides a cycle
from a plain ``import``) counts as an edge; and no module imports another module or the app.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_files(package: str = "pipelines") -> dict[str, Path]:
    """Dotted name -> file of every module under ``package``."""
    files = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imported_names(name: str, path: Path) -> set[str]:
    """Every dotted name ``path`` imports, anywhere in it (``from a import b``: ``a.b`` and ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: str = "pipelines") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports."""
    files = module_files(package)
    return {name: {n for n in imported_names(name, path) if n in files and n != name}
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_deferred_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_old_selection_train_cycle_would_be_found():
    graph = import_graph()
    graph["pipelines.timeseries.selection"] = graph["pipelines.timeseries.selection"] | {
        "pipelines.timeseries.train"}  # what selection.main imported before
    assert find_cycle(graph) is not None


def test_pipelines_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_module_imports_only_the_core_and_itself():
    """``pipelines/<m>`` -> ``pipelines/core``, never one module into another, never the app;
    the core imports no module (it finds them by name at run time)."""
    files = module_files()
    wrong = []
    for name, targets in import_graph().items():
        parts = name.split(".")
        if len(parts) < 3 and name != "pipelines.core":
            continue  # ``pipelines`` and its command-line entry points dispatch to modules
        allowed = {"core", parts[1]}
        wrong += [f"{name} imports {t}" for t in targets
                  if t != "pipelines" and t.split(".")[1] not in allowed]
        wrong += [f"{name} imports {n}" for n in imported_names(name, files[name])
                  if n == "webapp" or n.startswith("webapp.")]
    assert not wrong, wrong
