"""What CVAT answers, as frozen facts the checks read: parsed once, from CVAT's JSON or from
cvat-sdk 2.29.0's typed model alike (both answer `m["field"]` and `m.get("field")`).

    >>> Job.from_answer({"id": 3, "task_id": 2, "state": "new", "stage": "annotation"})
    Job(id=3, task_id=2, state='new', stage='annotation')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from criobe_verify.resources.bridge import Credentials


def text(value: Any) -> str:
    """An SDK enum (ShapeType, JobStage, ...) or a plain string, as its string."""
    return str(getattr(value, "value", value) if value is not None else "")


@dataclass(frozen=True)
class About:
    version: str
    name: str = ""


@dataclass(frozen=True)
class Health:
    """GET /api/server/health/?format=json: the status and each backend's word.

    >>> Health(500, {"DatabaseBackend": "unavailable", "DiskUsage": "working"}).broken
    {'DatabaseBackend': 'unavailable'}
    """

    status: int
    checks: Mapping[str, str]

    @property
    def broken(self) -> dict[str, str]:
        return {k: v for k, v in self.checks.items() if v != "working"}

    @property
    def working(self) -> bool:
        return self.status == 200 and bool(self.checks) and not self.broken


@dataclass(frozen=True)
class Login:
    """CVAT's answer to one login with the bridge's credentials."""

    credentials: Credentials
    status: int
    text: str
    key: str | None = None


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...]
    is_superuser: bool
    is_staff: bool

    @property
    def is_admin(self) -> bool:
        """CVAT's permissions read the user's groups: the Django flags alone grant nothing."""
        return "admin" in self.groups


@dataclass(frozen=True)
class Attribute:
    id: int
    name: str
    input_type: str
    values: tuple[str, ...] = ()  # select/radio: the choices; number: min, max, step


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    type: str
    parent_id: int | None = None
    attributes: tuple[Attribute, ...] = ()
    sublabels: tuple[Label, ...] = ()

    @classmethod
    def from_answer(cls, m: Any) -> Label:
        """From CVAT's answer: a cvat-sdk model or its JSON (both answer `[...]`, `.get`)."""
        return cls(
            m["id"],
            m["name"],
            text(m.get("type")),
            m.get("parent_id"),
            tuple(
                Attribute(
                    a["id"], a["name"], text(a.get("input_type")), tuple(a.get("values") or ())
                )
                for a in m.get("attributes") or []
            ),
            tuple(cls.from_answer(s) for s in m.get("sublabels") or []),
        )


def label_names(labels: tuple[Label, ...]) -> dict[int, str]:
    """Every label's and sublabel's id → name: what a stored shape's label_id means."""
    names = {}
    for label in labels:
        names[label.id] = label.name
        names.update({s.id: s.name for s in label.sublabels})
    return names


@dataclass(frozen=True)
class Project:
    id: int
    name: str


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    project_id: int | None


@dataclass(frozen=True)
class Job:
    id: int
    task_id: int
    state: str
    stage: str

    @classmethod
    def from_answer(cls, m: Any) -> Job:
        return cls(m["id"], m["task_id"], text(m.get("state")), text(m.get("stage")))


@dataclass(frozen=True)
class Shape:
    """A shape as CVAT stored it (annotations of a job)."""

    label_id: int
    type: str
    points: tuple[float, ...] = ()
    source: str = ""
    attributes: tuple[tuple[int, str], ...] = ()  # (spec_id, value)
    elements: tuple[Shape, ...] = ()
    outside: bool = False

    @classmethod
    def from_answer(cls, m: Any) -> Shape:
        """From CVAT's answer: a cvat-sdk model or its JSON (both answer `[...]`, `.get`)."""
        return cls(
            m["label_id"],
            text(m["type"]),
            tuple(m.get("points") or ()),
            text(m.get("source")),
            tuple((a["spec_id"], a["value"]) for a in m.get("attributes") or []),
            tuple(cls.from_answer(e) for e in m.get("elements") or []),
            bool(m.get("outside")),
        )

    def as_answer(self, names: Mapping[int, str]) -> dict[str, Any]:
        """In a function's answer format (label names, elements with `outside`), to judge
        what CVAT stored the way the function's own answer is judged."""
        return {
            "label": names.get(self.label_id, str(self.label_id)),
            "type": self.type,
            "points": list(self.points),
            "elements": [
                {
                    "label": names.get(e.label_id, str(e.label_id)),
                    "type": "points",
                    "points": list(e.points),
                    "outside": int(e.outside),
                }
                for e in self.elements
            ],
        }


@dataclass(frozen=True)
class OnlineCall:
    """CVAT's raw answer to POST /api/lambda/functions/<id> (an online call, in cvat_server)."""

    function: str
    status: int
    text: str
    data: Any = None
