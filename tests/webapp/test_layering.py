"""The platform layer (``webapp/*.py``) never imports the modules' package.

Only :mod:`webapp.registry` reads the list in ``webapp/modules/__init__.py`` (when asked), so
a module is added without the platform importing it, and a platform file cannot reach into a
module's code.
"""
from __future__ import annotations

import ast
from pathlib import Path

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_platform_files_import_the_registry_not_the_modules():
    offenders = {}
    for path in sorted(WEBAPP.glob("*.py")):
        bad = sorted(n for n in imported(path)
                     if n == "webapp.modules" or n.startswith("webapp.modules."))
        if path.name == "registry.py":
            bad = [n for n in bad if n != "webapp.modules"]  # the list itself, read lazily
        if bad:
            offenders[path.name] = bad
    assert not offenders, f"platform files importing the modules' package: {offenders}"
