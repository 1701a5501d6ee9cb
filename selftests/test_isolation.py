"""The twin and the suite import nothing from each other: the twin proves the suite only if
the suite cannot lean on the twin's code."""

from __future__ import annotations

import ast
from pathlib import Path

from selftests import PROJECT_ROOT

SUITE_DIRS = ("criobe_verify", "fixtures", "tests")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _twin_modules() -> set[str]:
    """Top-level module names a twin file could be imported as."""
    names = set()
    for path in (PROJECT_ROOT / "twin").rglob("*.py"):
        names.add(path.stem)
        names |= {p.name for p in path.relative_to(PROJECT_ROOT / "twin").parents if p.name}
    return names - {"__init__"}


def test_suite_imports_nothing_from_the_twin():
    twin = _twin_modules()
    assert twin, "found no twin modules: is twin/ there?"
    offenders = []
    for d in SUITE_DIRS:
        for path in (PROJECT_ROOT / d).rglob("*.py"):
            bad = _imports(path) & twin
            text = path.read_text()
            if bad or ("sys.path" in text and "twin" in text):
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_twin_imports_nothing_from_the_suite():
    offenders = []
    for path in (PROJECT_ROOT / "twin").rglob("*.py"):
        bad = _imports(path) & {"criobe_verify", "fixtures", "tests", "selftests", "conftest"}
        if bad:
            offenders.append(f"{path.relative_to(PROJECT_ROOT)}: {sorted(bad)}")
    assert not offenders, offenders
