"""Every check of the suite as its source declares it (stable id, policy or functional, the node
id a waiver from before stable ids named), read from tests/test_<layer>.py without importing
them: a waiver naming a check that does not exist stops the run before anything runs, whatever
layers the run selects (a layer not selected is not even collected).

    >>> catalog = CheckCatalog.read()
    >>> catalog.by_id["ports/internal-port-not-public"].policy
    True
    >>> catalog.nearest("ports/internal-port-not-publik[8070]")[0]
    'ports/internal-port-not-public'
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from criobe_verify.bad_input import nearest
from criobe_verify.paths import CHECKS_DIR


@dataclass(frozen=True)
class DeclaredCheck:
    check_id: str  # ports/internal-port-not-public
    policy: bool
    node_id: str  # tests/test_ports.py::test_internal_port_is_not_published_on_public_interface


def _declared(path: Path) -> list[DeclaredCheck]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (
                isinstance(deco, ast.Call)
                and getattr(deco.func, "id", None) == "check"
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
            ):
                continue
            policy = any(
                k.arg == "policy" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in deco.keywords
            )
            found.append(
                DeclaredCheck(deco.args[0].value, policy, f"tests/{path.name}::{node.name}")
            )
    return found


@dataclass(frozen=True)
class CheckCatalog:
    checks: tuple[DeclaredCheck, ...]

    @classmethod
    @functools.cache
    def read(cls, directory: Path = CHECKS_DIR) -> CheckCatalog:
        return cls(tuple(c for p in sorted(directory.glob("test_*.py")) for c in _declared(p)))

    @property
    def by_id(self) -> dict[str, DeclaredCheck]:
        return {c.check_id: c for c in self.checks}

    def names(self, pattern: str) -> list[str]:
        """The names a waiver's pattern is written against: node ids (`tests/…::test_…`)
        for a waiver written with one, stable ids otherwise."""
        if "::" in pattern:
            return [c.node_id for c in self.checks]
        return [c.check_id for c in self.checks]

    def nearest(self, pattern: str) -> list[str]:
        """The ids closest to a pattern that names none, closest first."""
        return nearest(pattern.split("[", 1)[0], self.names(pattern))
