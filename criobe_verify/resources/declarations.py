"""The run's prefetch, from what the selected checks' resources declare: for every selected
check, for every resource fixture it uses, the resource class names the probes an instance
for the check's parameter will make; they are merged per container (each call once).

    plan = declared_probes(session.items, RESOURCES, profile, facts)
    plan.now      # {"cvat_server": [("process", "smokescreen"), ...], ...}
    plan.later    # {"cvat_server": make_calls}: calls that need a slow fact, named on a thread
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from criobe_verify.probes import Call
from criobe_verify.profile import Profile
from criobe_verify.resources.base import Resource, RunFacts

log = logging.getLogger("criobe_verify")


@dataclass
class Declarations:
    """The declared probes, by the profile's container name."""

    now: dict[str, list[Call]] = field(default_factory=dict)
    # Classes whose declaration failed on a fact (their probes are not held to the rule).
    undeclarable: set[type] = field(default_factory=set)
    deferred: dict[str, list[Callable[[], Call]]] = field(default_factory=dict)

    @property
    def later(self) -> dict[str, Callable[[], list[Call]]]:
        """One function per container naming all its deferred calls (one batch for them)."""
        return {name: (lambda fns=fns: [f() for f in fns]) for name, fns in self.deferred.items()}


def declared_probes(
    items: Iterable[Any],
    registry: Mapping[str, type[Resource]],
    profile: Profile,
    facts: RunFacts,
) -> Declarations:
    """What the items' resources declare. registry: the fixture that hands a resource out →
    its class; an item uses it when the fixture is among its fixturenames, for the value of
    the class's parameter in the item's callspec."""
    plan = Declarations()
    asked: set[tuple[type[Resource], Any]] = set()
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        params = getattr(getattr(item, "callspec", None), "params", {})
        for fixture, cls in registry.items():
            if fixture not in fixtures:
                continue
            if cls.parameter is not None and cls.parameter not in params:
                continue  # the fixture is used without the parameter that picks one
            param = params.get(cls.parameter) if cls.parameter else None
            if (cls, param) in asked:
                continue
            asked.add((cls, param))
            try:
                declared = list(cls.probes(param, profile, facts))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # pytest's fail/skip too: a fact it needs failed
                # (the dashboard hung, say): its checks explain that; they must not also be
                # told their probes were not declared.
                log.info("%s(%s) declared no probes: %s", cls.__name__, param, exc)
                plan.undeclarable.add(cls)
                continue
            for d in declared:
                if d.deferred:
                    plan.deferred.setdefault(d.container, []).append(d.call)
                elif d.call not in (calls := plan.now.setdefault(d.container, [])):
                    calls.append(d.call)
    return plan
