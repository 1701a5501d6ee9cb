"""The lab's inventory, read-only: what a baseline keeps of the lab's data in CVAT, and what
`compare` checks survived an upgrade (`survived`).

    inventory = collect(profile)                 # logged in with the bridge's credentials
    inventory = read_inventory(session)          # a CvatSession (criobe_verify/resources/cvat.py)
    for change in survived(before["inventory"], after["inventory"]):
        print("LOST/CHANGED" if change.finding else "info", change.line)

What it reads, only with GETs, from CVAT's paged listings (page_size PAGE_SIZE: CVAT 2.29's
CustomPagination has no maximum, and 1,000 per page keeps 10,000 tasks to ten answers):
projects (name, labels and their types: one listing of every label, grouped by project),
tasks (name, size, status, project, their own labels when outside a project), jobs (task,
type, state, stage), webhooks (target URL with any password redacted, events, project,
active, content type, and their newest delivery's status; a webhook's secret is write-only in
CVAT and never read).

The sample: the SAMPLE_SIZE jobs with the smallest ids (`sample_ids`). Ids only grow in CVAT
and an upgrade keeps them, so a baseline written after the upgrade picks the same jobs again
without being told which: the ones of the first baseline still there, and, only where some
of those are gone, the next smallest. `baseline` takes no BEFORE, and needs none. For each
sampled job: its annotation counts (tags, shapes, tracks), a hash of their geometry
(`geometry_digest`) and the SHA-256 of its first frame as CVAT serves it (original quality).
The baseline records the rule, the chosen ids and how long the read took.

`survived` compares two inventories: a project, task, job or webhook of BEFORE missing AFTER,
a project label gone or of another type, a task's size or project changed, a job moved to
another task, a webhook's target, events, project, content type or active flag changed, a
sampled job's counts, geometry or frame changed: a finding (compare exits 1, as for a
functional flip). New objects and labels, a task's status, a job's state and stage, a
webhook's newest delivery: information. A part either side could not read is said, not
compared.

    >>> [c.line for c in survived(
    ...     {"tasks": {"7": {"name": "reef A", "size": 12, "project_id": 1, "status": "annotation"}}},
    ...     {"tasks": {}})]
    ["task 7 'reef A' is gone"]
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from criobe_verify.diagnosis import CheckFailed  # a pytest outcome: not an Exception
from criobe_verify.drift import not_compared
from criobe_verify.redact import REDACTOR

# What a baseline's `fields` says of the inventory (baseline.py adds these to the
# fingerprint's).
COMPARED = (
    "inventory: every project, task, job and webhook of BEFORE still there; project and task "
    "labels (name, type); a task's size and project; a job's task; a webhook's target_url, "
    "events, project_id, content_type, is_active; the sample's counts, geometry, frame_sha256",
)
VOLATILE = (
    "inventory: read_s; shown, not judged: names, a task's status, a job's state and stage, "
    "a webhook's newest delivery",
)
PAGE_SIZE = 1000
SAMPLE_SIZE = 50
RULE = "the {n} jobs with the smallest ids"
PARTS = ("projects", "tasks", "jobs", "webhooks")
LISTED = 200  # lines of one kind of change listed one by one; the rest are counted


class Reader(Protocol):
    """What the inventory asks of CVAT (CvatSession's methods; a fake in the selftests).
    Each raises on an answer it cannot use (CheckFailed from `answering`)."""

    def listing(self, kind: str, page_size: int = ..., **filters: Any) -> list[dict[str, Any]]: ...

    def newest_delivery(self, webhook_id: int) -> dict[str, Any] | None: ...

    def annotations(self, job_id: int) -> dict[str, Any]: ...

    def job_frame(self, job_id: int, number: int) -> bytes: ...


def _why(exc: BaseException) -> str:
    """One line: a CheckFailed's diagnosis, or the exception's type and text, redacted."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return REDACTOR(text if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {text}")


# --- the parts, from CVAT's JSON ------------------------------------------------------------------


def _label_types(labels: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """name → type; a skeleton's points as `skeleton/point`.

    >>> _label_types([{"name": "hand", "type": "skeleton",
    ...                "sublabels": [{"name": "1", "type": "points"}]}])
    {'hand': 'skeleton', 'hand/1': 'points'}
    """
    out = {}
    for label in labels:
        out[label["name"]] = label.get("type") or "any"
        for sub in label.get("sublabels") or []:
            out[f"{label['name']}/{sub['name']}"] = sub.get("type") or "any"
    return dict(sorted(out.items()))


def projects_of(projects: list[dict], labels: list[dict]) -> dict[str, dict[str, Any]]:
    by_project: dict[Any, list[dict]] = {}
    for label in labels:
        if label.get("project_id") is not None and not label.get("parent_id"):
            by_project.setdefault(label["project_id"], []).append(label)
    return {
        str(p["id"]): {"name": p.get("name"), "labels": _label_types(by_project.get(p["id"], []))}
        for p in sorted(projects, key=lambda p: p["id"])
    }


def tasks_of(tasks: list[dict], labels: list[dict]) -> dict[str, dict[str, Any]]:
    """A task's own labels only where it has some (a task outside any project)."""
    by_task: dict[Any, list[dict]] = {}
    for label in labels:
        if label.get("task_id") is not None and not label.get("parent_id"):
            by_task.setdefault(label["task_id"], []).append(label)
    out = {}
    for t in sorted(tasks, key=lambda t: t["id"]):
        entry = {k: t.get(k) for k in ("name", "size", "status", "project_id")}
        if t["id"] in by_task:
            entry["labels"] = _label_types(by_task[t["id"]])
        out[str(t["id"])] = entry
    return out


def jobs_of(jobs: list[dict]) -> dict[str, dict[str, Any]]:
    keep = ("task_id", "type", "state", "stage", "start_frame", "stop_frame")
    return {str(j["id"]): {k: j.get(k) for k in keep} for j in sorted(jobs, key=lambda j: j["id"])}


def webhook_of(hook: Mapping[str, Any], newest: Mapping[str, Any] | None) -> dict[str, Any]:
    """Only the fields below: never the secret, and a password in the target URL redacted.

    >>> webhook_of({"target_url": "http://u:pw-9931@bridge:8000/hook", "events": ["b", "a"],
    ...             "secret": "s3cret"}, None)["target_url"]
    'http://u:[REDACTED]@bridge:8000/hook'
    """
    return {
        "target_url": REDACTOR(str(hook.get("target_url") or "")),
        "events": sorted(hook.get("events") or []),
        "project_id": hook.get("project_id"),
        "type": hook.get("type"),
        "is_active": hook.get("is_active"),
        "content_type": hook.get("content_type"),
        "newest_delivery": None
        if newest is None
        else {"event": newest.get("event"), "status_code": newest.get("status_code")},
    }


# --- the sample -----------------------------------------------------------------------------------


def sample_ids(job_ids: Iterable[int | str], size: int = SAMPLE_SIZE) -> list[int]:
    """The `size` smallest job ids: the same jobs again after an upgrade (ids only grow).

    >>> sample_ids([9, 3, 120, 7, 4], size=3)
    [3, 4, 7]
    """
    return sorted(int(i) for i in job_ids)[:size]


def _r(value: Any) -> Any:
    # Two decimals: a coordinate that survived a migration as 10.000000001 is the same point;
    # + 0.0 turns -0.0 into 0.0.
    return round(float(value), 2) + 0.0


def _shape(s: Mapping[str, Any]) -> list[Any]:
    elements = sorted(json.dumps(_shape(e)) for e in s.get("elements") or [])
    return [
        s.get("label_id"), s.get("type"), s.get("frame"), [_r(p) for p in s.get("points") or []],
        _r(s.get("rotation") or 0), bool(s.get("outside")), elements,
    ]  # fmt: skip


def geometry_digest(annotations: Mapping[str, Any]) -> str:
    """SHA-256 over the sorted (label, type, frame, rounded points) of every shape, track
    keyframe and tag, skeleton elements included; ids and order left out (CVAT renumbers
    nothing on upgrade, but returns a skeleton's elements in any order).

    >>> a = {"shapes": [{"id": 1, "label_id": 3, "type": "polygon", "frame": 0,
    ...                  "points": [1.0, 2.0, 3.004, 4.0]}]}
    >>> b = {"shapes": [{"id": 9, "label_id": 3, "type": "polygon", "frame": 0,
    ...                  "points": [1, 2, 3, 4]}]}
    >>> geometry_digest(a) == geometry_digest(b)
    True
    """
    items = [json.dumps(["shape", *_shape(s)]) for s in annotations.get("shapes") or []]
    for track in annotations.get("tracks") or []:
        keys = sorted(json.dumps(_shape(s)) for s in track.get("shapes") or [])
        items.append(json.dumps(["track", track.get("label_id"), track.get("frame"), keys]))
    for tag in annotations.get("tags") or []:
        items.append(json.dumps(["tag", tag.get("label_id"), tag.get("frame")]))
    return "sha256:" + hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()


def sampled_job(reader: Reader, job_id: int, job: Mapping[str, Any]) -> dict[str, Any]:
    """One sampled job's counts, geometry and first frame; what could not be read is said."""
    out: dict[str, Any] = {}
    try:
        data = reader.annotations(job_id)
    except (Exception, CheckFailed) as exc:  # one job's answer never ends the inventory
        out["annotations_unavailable"] = _why(exc)
    else:
        out["counts"] = {k: len(data.get(k) or []) for k in ("tags", "shapes", "tracks")}
        out["geometry"] = geometry_digest(data)
    frame = job.get("start_frame") or 0
    out["frame"] = frame
    try:
        out["frame_sha256"] = (
            "sha256:" + hashlib.sha256(reader.job_frame(job_id, frame)).hexdigest()
        )
    except (Exception, CheckFailed) as exc:
        out["frame_unavailable"] = _why(exc)
    return out


# --- reading it -----------------------------------------------------------------------------------


def lab_only(
    projects: list[dict] | None,
    tasks: list[dict] | None,
    jobs: list[dict] | None,
    hooks: list[dict] | None,
) -> tuple[list[dict] | None, ...]:
    """The listings without what a suite run makes (its scratch projects and tasks, named by
    the run prefix, with their jobs and webhooks): another run's scratch in flight, or this
    run's not yet deleted, is not the lab's data and would read as lost after the upgrade.

    >>> p, t, j, h = lab_only([{"id": 1, "name": "criobe-verify-20261207012345-a1b2c3-corners"},
    ...                        {"id": 2, "name": "reef 2024"}],
    ...                       [{"id": 5, "name": "x", "project_id": 1}, {"id": 6, "name": "y"}],
    ...                       [{"id": 9, "task_id": 5}, {"id": 10, "task_id": 6}],
    ...                       [{"id": 3, "project_id": 1}])
    >>> [x["id"] for x in p], [x["id"] for x in t], [x["id"] for x in j], h
    ([2], [6], [10], [])
    """
    from criobe_verify.cleanup import RUN_PREFIX

    ours_p = {p["id"] for p in projects or () if RUN_PREFIX.match(str(p.get("name") or ""))}
    ours_t = {
        t["id"]
        for t in tasks or ()
        if RUN_PREFIX.match(str(t.get("name") or "")) or t.get("project_id") in ours_p
    }

    def keep(items: list[dict] | None, ours: set, key: str) -> list[dict] | None:
        return None if items is None else [i for i in items if i.get(key) not in ours]

    return (
        keep(projects, ours_p, "id"),
        keep(tasks, ours_t, "id"),
        keep(jobs, ours_t, "task_id"),
        keep(hooks, ours_p, "project_id"),
    )


def read_inventory(
    reader: Reader, sample_size: int = SAMPLE_SIZE, page_size: int = PAGE_SIZE
) -> dict[str, Any]:
    """Every part from CVAT's listings, then the sample. A listing that fails leaves its part
    None and says why under `unavailable`; nothing raises."""
    started = time.monotonic()
    unavailable: dict[str, str] = {}

    def listed(kind: str) -> list[dict] | None:
        try:
            return reader.listing(kind, page_size=page_size)
        except (Exception, CheckFailed) as exc:  # recorded, as the fingerprint does
            unavailable[kind] = _why(exc)
            return None

    projects, tasks, jobs = listed("projects"), listed("tasks"), listed("jobs")
    labels, hooks = listed("labels"), listed("webhooks")
    projects, tasks, jobs, hooks = lab_only(projects, tasks, jobs, hooks)
    out: dict[str, Any] = {
        "page_size": page_size,
        "projects": None if projects is None else projects_of(projects, labels or []),
        "tasks": None if tasks is None else tasks_of(tasks, labels or []),
        "jobs": None if jobs is None else jobs_of(jobs),
        "webhooks": None,
    }
    if hooks is not None:
        webhooks = {}
        for hook in sorted(hooks, key=lambda h: h["id"]):
            try:
                newest = reader.newest_delivery(hook["id"])
            except (Exception, CheckFailed) as exc:
                unavailable[f"webhooks/{hook['id']}/deliveries"] = _why(exc)
                newest = None
            webhooks[str(hook["id"])] = webhook_of(hook, newest)
        out["webhooks"] = webhooks
    sample: dict[str, Any] = {"rule": RULE.format(n=sample_size), "size": sample_size}
    if out["jobs"] is None:
        sample.update(job_ids=None, jobs=None)
    else:
        chosen = sample_ids(out["jobs"], sample_size)
        sample["job_ids"] = chosen
        sample["jobs"] = {str(i): sampled_job(reader, i, out["jobs"][str(i)]) for i in chosen}
    out["sample"] = sample
    out["read_s"] = round(time.monotonic() - started, 3)
    out["unavailable"] = unavailable
    return out


def unavailable_inventory(why: str) -> dict[str, Any]:
    """CVAT could not be asked at all (no credentials, no answer to the login)."""
    return {
        **dict.fromkeys(PARTS),
        "sample": {"rule": RULE.format(n=SAMPLE_SIZE), "size": SAMPLE_SIZE, "job_ids": None,
                   "jobs": None},
        "unavailable": {"cvat": REDACTOR(why)},
    }  # fmt: skip


def summary_line(inventory: Mapping[str, Any]) -> str:
    """What the run's last line says of it.

    >>> summary_line(unavailable_inventory("login answered 401"))
    'inventory not read: cvat: login answered 401'
    """
    if inventory.get("unavailable", {}).get("cvat"):
        return f"inventory not read: cvat: {inventory['unavailable']['cvat']}"
    counts = ", ".join(
        f"{len(inventory[p])} {p}" if inventory.get(p) is not None else f"{p} not read"
        for p in PARTS
    )
    sampled = len(inventory["sample"].get("job_ids") or [])
    return f"inventory: {counts}, {sampled} jobs sampled, in {inventory.get('read_s')} s"


def collect(profile: Any) -> dict[str, Any]:
    """Log in with the bridge's credentials (its container's environment, as the run's CVAT
    checks do) and read the inventory; a CVAT or Docker that does not answer is recorded
    under `unavailable`, never raised."""
    import docker
    import httpx
    import requests

    from criobe_verify.containers import container_env
    from criobe_verify.resources.bridge import credentials_from_env
    from criobe_verify.resources.cvat import Cvat, CvatSession
    from criobe_verify.snapshot import StackSnapshot

    try:
        bridge = StackSnapshot(docker.from_env(timeout=30), profile).find("bridge")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return unavailable_inventory(f"no bridge credentials: {type(exc).__name__}: {exc}")
    if bridge is None:
        return unavailable_inventory("no bridge credentials: no bridge container")
    env = container_env(bridge)
    REDACTOR.add_environment(env)
    credentials = credentials_from_env(env)
    if credentials is None:
        return unavailable_inventory("no CVAT credentials in the bridge's environment")
    cvat = Cvat(profile)
    try:
        login = cvat.login(credentials)
    except httpx.HTTPError as exc:
        return unavailable_inventory(f"POST /api/auth/login: {type(exc).__name__}: {exc}")
    if not login.key:
        return unavailable_inventory(f"POST /api/auth/login answered {login.status}")
    session = CvatSession(cvat, login.key)
    try:
        return read_inventory(session)
    finally:
        session.close()


# --- comparing two ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataChange:
    """One difference of the lab's data; `finding`: lost or changed (compare exits 1)."""

    line: str
    finding: bool


def _name(kind: str, key: str, entry: Mapping[str, Any]) -> str:
    return f"{kind} {key}" + (f" {entry['name']!r}" if entry.get("name") else "")


def _labels(what: str, a: Mapping[str, str], b: Mapping[str, str]) -> list[DataChange]:
    out = []
    for label in sorted(set(a) | set(b)):
        if label not in b:
            out.append(DataChange(f"{what} label {label!r} is gone", True))
        elif label not in a:
            out.append(DataChange(f"{what} label {label!r} is new", False))
        elif a[label] != b[label]:
            out.append(DataChange(f"{what} label {label!r} type {a[label]} → {b[label]}", True))
    return out


# Per kind: the fields whose change is a finding, and those shown for information.
FIELDS = {
    "projects": ((), ("name",)),
    "tasks": (("size", "project_id"), ("name", "status")),
    "jobs": (("task_id",), ("state", "stage")),
    "webhooks": (
        ("target_url", "events", "project_id", "content_type", "is_active"),
        ("newest_delivery",),
    ),
}
SINGULAR = {"projects": "project", "tasks": "task", "jobs": "job", "webhooks": "webhook"}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k} {v}" for k, v in value.items()) or "(none)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return "(none)" if value is None else str(value)


def _part(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[DataChange]:
    judged, shown = FIELDS[kind]
    out, new = [], []
    for key in sorted(set(before) | set(after), key=lambda k: int(k) if k.isdigit() else 0):
        if key not in before:
            new.append(key)
            continue
        a, what = before[key], _name(SINGULAR[kind], key, before[key])
        if key not in after:
            out.append(DataChange(f"{what} is gone", True))
            continue
        b = after[key]
        for field in (*judged, *shown):
            if a.get(field) != b.get(field):
                change = f"{what} {field} {_show(a.get(field))} → {_show(b.get(field))}"
                out.append(DataChange(change, field in judged))
        if "labels" in a or "labels" in b:
            out += _labels(what, a.get("labels") or {}, b.get("labels") or {})
    if new:
        ids = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        out.append(DataChange(f"{len(new)} new {kind} (ids {ids})", False))
    return out


# A sampled job's field, and where its reading says why it could not be read.
UNREADABLE = {
    "counts": "annotations_unavailable",
    "geometry": "annotations_unavailable",
    "frame_sha256": "frame_unavailable",
}


def _sample(before: Mapping[str, Any], after: Mapping[str, Any], jobs_after) -> list[DataChange]:
    out = []
    sampled_after = after.get("jobs") or {}
    for key, a in (before.get("jobs") or {}).items():
        if jobs_after is not None and key not in jobs_after:
            continue  # said once, as a job gone
        b = sampled_after.get(key)
        if b is None:
            out.append(DataChange(f"sampled job {key} not sampled AFTER: not compared", False))
            continue
        for field, label in (("counts", "annotations"), ("geometry", "geometry"),
                             ("frame_sha256", f"frame {a.get('frame')}")):  # fmt: skip
            why = b.get(UNREADABLE[field])
            if field in a and field not in b and why:
                # Read before, refused now by a CVAT that answers: what a lab sees as a task
                # whose frames no longer load (cvat-ai/cvat#7504), not a gap in the reading.
                out.append(DataChange(f"job {key} {label} no longer loads: {why}", True))
            elif field not in a or field not in b:
                missing = "BEFORE" if field not in a else "AFTER"
                out.append(DataChange(f"job {key} {label} not compared: {missing} could not "
                                      "read it", False))  # fmt: skip
            elif a[field] != b[field]:
                shown = (
                    f"{_show(a[field])} → {_show(b[field])}"
                    if field == "counts"
                    else f"{str(a[field])[:19]} → {str(b[field])[:19]}"
                )
                out.append(DataChange(f"job {key} {label} changed: {shown}", True))
    return out


def _clip(changes: list[DataChange]) -> list[DataChange]:
    """At most LISTED findings one by one (a lost project's 5,000 tasks are one story)."""
    findings = [c for c in changes if c.finding]
    if len(findings) <= LISTED:
        return changes
    kept = set(map(id, findings[:LISTED]))
    rest = len(findings) - LISTED
    out = [c for c in changes if not c.finding or id(c) in kept]
    out.append(
        DataChange(f"… and {rest} more data finding(s) (baseline.json holds them all)", True)
    )
    return out


def survived(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[DataChange]:
    """Every difference of the lab's data, lost or changed first."""
    out = [DataChange(line, False) for _, line in not_compared(before, after)]
    for kind in PARTS:
        a, b = before.get(kind), after.get(kind)
        if a is not None and b is not None:
            out += _part(kind, a, b)
    out += _sample(before.get("sample") or {}, after.get("sample") or {}, after.get("jobs"))
    return _clip(sorted(out, key=lambda c: not c.finding))
