"""What a run did not verify, and why: the layers and checks a verdict must name, so that it
never claims more than the run proved.

    >>> checks = {
    ...     "inference/answers-sample[a]": {"outcome": "passed", "layer": "inference"},
    ...     "inference/accurate-on-sample[a]": {"outcome": "skipped", "layer": "inference",
    ...         "message": "no --sample-image given: real models …"},
    ...     "e2e/two-stage-exactly-once": {"outcome": "skipped", "layer": "e2e",
    ...         "message": "no --sample-image given: real models …"},
    ...     "e2e/three-stage-exactly-once": {"outcome": "skipped", "layer": "e2e",
    ...         "message": "profile criobe runs ['two-stage']", "not_asked": True},
    ... }
    >>> [u.what for u in unverified(checks, {"latency": "not selected: --layer"})]
    ['inference/accurate-on-sample', 'the latency layer', 'the e2e layer']
    >>> clause(unverified(checks, {}))
    'not verified: inference/accurate-on-sample, the e2e layer (no --sample-image given)'

Counted: a layer with no check in the run (not selected by --layer, -m or -k, or not checked
in --phase preinstall), a layer whose checks all skipped, and a check (all its parameters)
that skipped. Not counted: a skip because a layer below or a check it builds on failed (that verdict is already
broken) and a skip the profile asks for (a workflow it does not run, an optional function
not deployed: `not_asked`), since the stack the profile describes has nothing there to verify.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from criobe_verify.layers import LAYER_NAMES, follows_a_failure


class NotAsked(pytest.skip.Exception):
    """A skip the profile asks for: pytest reports it as any skip; the verdict does not count
    it as something left unverified."""


def not_asked(reason: str) -> NoReturn:
    """Skip a check the profile does not ask for (a workflow it does not run, an optional
    function not deployed), saying why."""
    raise NotAsked(reason)


@dataclass(frozen=True)
class Unverified:
    what: str  # "the e2e layer" or a check's stable id without its parameter
    layer: str
    reason: str  # in full (the reports' words)
    checks: tuple[str, ...] = ()
    # The headline's words: a skip's first clause ("no --sample-image given"), or an absent
    # layer's whole reason, which is short already.
    brief: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "layer": self.layer,
            "reason": self.reason,
            "brief": self.brief,
            "checks": list(self.checks),
        }


def skip_reason(text: str) -> str:
    """A skip's reason as pytest reports it, without its prefix (a NotAsked raised in a
    fixture is reported with its class name).

    >>> skip_reason("criobe_verify.coverage.NotAsked: sam: optional in the profile and not deployed")
    'sam: optional in the profile and not deployed'
    """
    text = str(text).removeprefix("Skipped: ")
    return text.removeprefix(f"{NotAsked.__module__}.{NotAsked.__qualname__}: ")


def open_skip(entry: dict[str, Any]) -> bool:
    """A skip that leaves something unverified: neither the gate's nor one the profile asks."""
    return (
        entry["outcome"] == "skipped"
        and not entry.get("not_asked")
        and not follows_a_failure(entry.get("message", ""))
    )


def _reason(entries: list[dict[str, Any]]) -> str:
    reasons = list(dict.fromkeys(e.get("message", "") or "skipped" for e in entries))
    more = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
    return reasons[0] + more


def unverified(checks: dict[str, dict[str, Any]], absent: dict[str, str]) -> list[Unverified]:
    """checks: check id → entry (outcome, layer, message, not_asked); absent: layer → why the
    run has no check of it. Lowest layer first."""
    by_layer: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for check_id, entry in checks.items():
        by_layer[entry["layer"]][check_id] = entry
    found: list[Unverified] = []
    for layer in LAYER_NAMES:
        mine = by_layer.get(layer, {})
        if not mine:
            if layer in absent:
                why = absent[layer]
                found.append(Unverified(f"the {layer} layer", layer, why, brief=why))
            continue
        open_skips = {n: e for n, e in mine.items() if open_skip(e)}
        if not open_skips:
            continue
        if all(open_skip(e) or e.get("not_asked") for e in mine.values()):
            why = _reason(list(open_skips.values()))
            found.append(
                Unverified(f"the {layer} layer", layer, why, tuple(open_skips), short_reason(why))
            )
            continue
        groups: dict[str, list[str]] = defaultdict(list)
        for check_id in mine:
            groups[check_id.split("[", 1)[0]].append(check_id)
        for base, ids in groups.items():
            if all(n in open_skips or mine[n].get("not_asked") for n in ids) and any(
                n in open_skips for n in ids
            ):
                skipped = [n for n in ids if n in open_skips]
                why = _reason([mine[n] for n in skipped])
                found.append(Unverified(base, layer, why, tuple(skipped), short_reason(why)))
    return found


def short_reason(reason: str) -> str:
    """A reason's first clause, for the headline (the reports give it in full).

    >>> short_reason("no --sample-image given: real models may find nothing; pass …")
    'no --sample-image given'
    """
    return reason.split(": ", 1)[0]


def clause(items: list[Unverified]) -> str:
    """The headline's clause: what was not verified, grouped by the reason's first clause."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for item in items:
        grouped[item.brief or item.reason].append(item.what)
    return "not verified: " + "; ".join(
        f"{', '.join(whats)} ({why})" for why, whats in grouped.items()
    )
