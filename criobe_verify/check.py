"""Every check has a stable id: waivers, `depends_on`, the fault table, summary.json and
baselines name it, so moving or renaming code never breaks a lab's waivers or recorded runs.

    @check("ports/internal-port-not-public", guide=("prereq", "step-3"), policy=True)
    def test_internal_port_is_not_published_on_public_interface(internal_port, ...):
        ...

An id reads `<layer>/<what is checked>`; a parametrized check's id carries its parameter,
as pytest shows it: `ports/internal-port-not-public[8070]`. The node id
(`tests/test_ports.py::test_internal_port_is_not_published_on_public_interface[8070]`) still
works with `-k` and `--deselect`, and a waiver written with it still applies (saying which id
to write instead). A test of a project's own without `@check` is known by its node id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])
ID = re.compile(r"^[a-z0-9]+/[a-z0-9][a-z0-9-]*$")


def check(
    check_id: str,
    *,
    guide: str | tuple[str, ...] = (),
    policy: bool = False,
    phases: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Mark a test function as the suite check `check_id`.

    guide: the install-guide steps it verifies (beside any of its module's `guide` mark);
    policy: a policy check (fails, never gates); phases: the phases it runs in (default:
    installed only).

    >>> @check("host/docker-engine-answers", guide="prereq", phases=("preinstall", "installed"))
    ... def test_x():
    ...     pass
    >>> sorted(m.name for m in test_x.pytestmark)
    ['check', 'guide', 'phase']
    """
    if not ID.match(check_id):
        raise ValueError(f"check id {check_id!r}: expected '<layer>/<what-is-checked>'")
    marks = [pytest.mark.check(check_id)]
    if guide:
        marks.append(pytest.mark.guide(*((guide,) if isinstance(guide, str) else guide)))
    if policy:
        marks.append(pytest.mark.policy)
    if phases:
        marks.append(pytest.mark.phase(*phases))

    def mark(fn: F) -> F:
        for m in marks:
            fn = m(fn)
        return fn

    return mark


def check_id_of(item: pytest.Item) -> str:
    """The check's stable id, with its parameter as pytest shows it; a test without `@check`
    (a project's own layer-marked test) is known by its node id."""
    mark = item.get_closest_marker("check")
    if mark is None:
        return item.nodeid
    callspec = getattr(item, "callspec", None)
    return f"{mark.args[0]}[{callspec.id}]" if callspec is not None else mark.args[0]


def legacy_node_id(item: pytest.Item) -> str:
    """The node id a waiver written before stable ids named: tests/<module>::<name>, whatever
    the rootdir (a checkout, a wheel, a lab's pytest project)."""
    return f"tests/{item.path.name}::{item.name}"
