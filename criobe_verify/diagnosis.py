"""One shape for every failure message: who, what happened, observed, expected, consequence,
fix, so each reads like a colleague's diagnosis and machines can list the fixes.

    >>> d = Diagnosis(
    ...     "cvat_worker_webhooks",
    ...     "a request through Smokescreen (127.0.0.1:4750) to bridge.gateway:8000 was refused",
    ...     observed='407 "Deny: Private Range"',
    ...     why="SMOKESCREEN_OPTS is ''",
    ...     expected="--allow-address=172.17.0.1 (Linux gateway)",
    ...     consequence="every webhook to the bridge fails",
    ...     fix="bridge/docker-compose.bridge.yml",
    ... )
    >>> print(d)  # doctest: +NORMALIZE_WHITESPACE
    cvat_worker_webhooks: a request through Smokescreen (127.0.0.1:4750) to bridge.gateway:8000
    was refused: 407 "Deny: Private Range". SMOKESCREEN_OPTS is '' — expected
    --allow-address=172.17.0.1 (Linux gateway), so every webhook to the bridge fails.
    Fix: bridge/docker-compose.bridge.yml

A check calls `expect(ok, diagnosis)` or `fail(d1, d2, ...)`; the report plugin keeps the diagnoses' fields, so the
policy section and summary.json can list each finding with its fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

import pytest


@dataclass(frozen=True)
class Diagnosis:
    subject: str  # the container (or host, port, user) the finding is about
    what: str  # what happened, as a clause: "GET /health answered 503"
    observed: str = ""
    expected: str = ""
    why: str = ""  # configuration that explains it: "SMOKESCREEN_OPTS is ''"
    consequence: str = ""  # what breaks for the lab: "every webhook to the bridge fails"
    fix: str = ""
    logs: str = ""  # an indented log tail, appended after the sentence

    def __str__(self) -> str:
        text = f"{self.subject}: {self.what}"
        if self.observed:
            text += f": {self.observed}"
        if self.why:
            text += f". {self.why}"
        if self.expected:
            text += f" — expected {self.expected}"
            if self.consequence:
                text += f", so {self.consequence}"
        elif self.consequence:
            text += f" — {self.consequence}"
        text = text.rstrip(".") + "."
        if self.fix:
            text += f" Fix: {self.fix}"
        if self.logs:
            text += f"\n  last log lines:\n{self.logs}"
        return text

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


class CheckFailed(pytest.fail.Exception):
    """A check's failure with its diagnoses; shown like pytest.fail(..., pytrace=False)."""

    def __init__(self, diagnoses: tuple[Diagnosis, ...]) -> None:
        self.diagnoses = diagnoses
        super().__init__("\n".join(str(d) for d in diagnoses), pytrace=False)


def fail(*diagnoses: Diagnosis) -> NoReturn:
    """Fail the current check with one or more diagnoses (one per offending resource)."""
    if not diagnoses:
        raise ValueError("fail() needs at least one Diagnosis")
    raise CheckFailed(tuple(diagnoses))


def expect(ok: Any, diagnosis: Diagnosis | Callable[[], Diagnosis | Iterable[Diagnosis]]) -> None:
    """`fail` with the diagnosis unless ok: a check reads as its intent.

        expect(answer.status == 200, lambda: smokescreen.why_bridge_refused(answer))

    The diagnosis may be given ready-made, or as a callable (one Diagnosis or several) that
    is only called on failure, where building it costs something (a container's logs).
    """
    if ok:
        return
    found = diagnosis() if callable(diagnosis) else diagnosis
    fail(*((found,) if isinstance(found, Diagnosis) else tuple(found)))
