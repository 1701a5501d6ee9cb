"""What a CVAT webhook delivery means for the bridge: signature, and whether an event is a
real state change the bridge acts on.

CVAT 2.29.0 sends ``X-Signature-256: sha256=<HMAC-SHA256(secret, raw body)>`` when the
webhook has a secret, and every save of a job or task as an update event whose
``before_update`` holds only the fields that changed (an annotation save changes only
``updated_date``). A job PATCH that changes the task's status sends ``update:task`` whose
``task.jobs`` counts are stale (``{"count": 0, "completed": null}``): only ``task.status``
tells that the task is completed.

    >>> job = {"id": 5, "task_id": 4, "project_id": 2, "state": "in progress"}
    >>> detect_decision({"event": "update:job", "job": job,
    ...                  "before_update": {"state": "new", "updated_date": "…"}})
    Decision(act=True, reason='job state new -> in progress')
    >>> detect_decision({"event": "update:job", "job": job,
    ...                  "before_update": {"updated_date": "…"}}).act
    False
    >>> task = {"id": 4, "status": "completed", "jobs": {"count": 0, "completed": None}}
    >>> completion_decision({"event": "update:task", "task": task,
    ...                      "before_update": {"updated_date": "…", "status": "annotation"}})
    Decision(act=True, reason='task status annotation -> completed')
    >>> check_signature("s", b"{}", "sha256=" + sign("s", b"{}"))
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, NamedTuple


class Decision(NamedTuple):
    act: bool
    reason: str


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_signature(secret: str, body: bytes, header: str | None) -> str | None:
    """None when ``header`` is CVAT's signature of ``body``, else why not. A missing header
    gives "missing" (refused or not by the caller's knob)."""
    if header is None or header == "":
        return "missing"
    expected = "sha256=" + sign(secret, body)
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        return "does not match the body (X-Signature-256 must be sha256=<HMAC-SHA256 hex>)"
    return None


def summary(payload: dict[str, Any]) -> str:
    """The ids of a delivery, for the log: never its contents."""
    event = payload.get("event", "?")
    parts = [str(event)]
    for resource in ("job", "task"):
        obj = payload.get(resource)
        if isinstance(obj, dict):
            parts.append(f"{resource}={obj.get('id')}")
            if resource == "job" and obj.get("task_id") is not None:
                parts.append(f"task={obj.get('task_id')}")
            if obj.get("project_id") is not None:
                parts.append(f"project={obj.get('project_id')}")
    webhook = payload.get("webhook_id")
    if webhook is None and isinstance(payload.get("webhook"), dict):
        webhook = payload["webhook"].get("id")
    if webhook is not None:
        parts.append(f"webhook={webhook}")
    return " ".join(parts)


def _changed(payload: dict[str, Any]) -> dict[str, Any]:
    before = payload.get("before_update")
    return before if isinstance(before, dict) else {}


def detect_decision(payload: dict[str, Any], every_update: bool = False) -> Decision:
    """Detection runs when a job's state becomes "in progress" (set by the UI on the first
    save in a new job, or by the bridge on the tasks it creates). `every_update` is the
    selftests' fault: a bridge that detects again on every save of the job."""
    event = payload.get("event")
    if event != "update:job":
        return Decision(False, f"{event} is not update:job")
    job = payload.get("job")
    if not isinstance(job, dict) or job.get("id") is None:
        return Decision(False, "update:job without a job")
    if every_update and job.get("state") == "in progress":
        return Decision(True, "update:job of a job in progress (BRIDGE_TWIN_FAULT)")
    before = _changed(payload)
    if "state" not in before:
        fields = ",".join(before) or "nothing"
        return Decision(False, f"job state unchanged (changed: {fields})")
    if job.get("state") != "in progress":
        return Decision(
            False, f"job state {before['state']} -> {job.get('state')}, not in progress"
        )
    return Decision(True, f"job state {before['state']} -> in progress")


def completion_decision(payload: dict[str, Any]) -> Decision:
    """A task is completed when ``task.status`` becomes "completed" (its jobs all in
    acceptance + completed). Job events are not used: a job's completion is not its task's."""
    event = payload.get("event")
    if event == "update:job":
        return Decision(False, "a job event; a task's completion arrives as update:task")
    if event != "update:task":
        return Decision(False, f"{event} is not update:task")
    task = payload.get("task")
    if not isinstance(task, dict) or task.get("id") is None:
        return Decision(False, "update:task without a task")
    before = _changed(payload)
    if "status" not in before:
        fields = ",".join(before) or "nothing"
        return Decision(False, f"task status unchanged (changed: {fields})")
    if task.get("status") != "completed":
        return Decision(False, f"task status {before['status']} -> {task.get('status')}")
    if before["status"] == "completed":
        return Decision(False, "task was already completed")
    return Decision(True, f"task status {before['status']} -> completed")
