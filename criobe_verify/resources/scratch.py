"""What the suite creates in CVAT: projects (with the CRIOBE labels), tasks with data, and
webhooks, named under the run prefix (`criobe-verify-<time>-<hex>`) and deleted at the end,
also when a check fails; `criobe-verify cleanup` finds an interrupted run's leftovers by the
same prefix.

    scratch = Scratch(session, "criobe-verify-20261201193000-1a2b3c")
    project = scratch.criobe_project("corners")
    task, job = scratch.task_with_one_job(project.id, image=photo, name="quadrat.jpg")
    webhook = scratch.webhook(project.id, "http://bridge.gateway:8000/health", ["update:job"])
    scratch.cleanup()

Where they are made, so that no webhook of the lab fires on them (CVAT 2.29.0's
select_webhooks, cvat/apps/webhooks/signals.py): an organization webhook receives the events
of the objects of its organization, a project webhook those of its project, and nothing else
does. The suite sends no X-Organization header and no `org`/`org_id` parameter, so CVAT makes
its projects in the bridge user's sandbox (organization null), and their tasks, jobs and
webhooks with them (a task takes its project's organization): no organization webhook of the
lab can watch them, and no project webhook of the lab is on a project made a moment ago.
Before the first creation the lab's webhooks are read (the bridge user is an admin, who sees
every organization's in the sandbox); the first project's answer says where CVAT put it, and
if that is an organization whose webhooks would fire (a proxy in front of CVAT adding
X-Organization), the project is deleted at once and nothing more is created: every check that
needs a scratch object fails with that one reason.
"""

from __future__ import annotations

import json
import logging
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from criobe_verify.diagnosis import CheckFailed, Diagnosis, fail
from criobe_verify.resources.cvat import SERVER, CvatSession, answering, paged
from criobe_verify.resources.cvat_facts import Job, Project, Task, text
from criobe_verify.resources.webhook import Webhook
from criobe_verify.waiting import Appears, Unready, WaitFailed

log = logging.getLogger("criobe_verify")


def watchers(hooks: list[dict], organization: int | None, projects: set[int]) -> list[dict]:
    """The active webhooks CVAT 2.29.0 sends an object's events to (select_webhooks): the
    organization webhooks of its organization (none for an object in a sandbox), then the
    project webhooks of its project.

    >>> hooks = [
    ...     {"id": 1, "type": "organization", "organization": 3, "project_id": None, "is_active": True},
    ...     {"id": 2, "type": "project", "organization": 3, "project_id": 7, "is_active": True},
    ...     {"id": 4, "type": "organization", "organization": 3, "project_id": None, "is_active": False},
    ... ]
    >>> [h["id"] for h in watchers(hooks, None, set())], [h["id"] for h in watchers(hooks, 3, {7})]
    ([], [1, 2])
    """
    return [
        h
        for h in hooks
        if h.get("is_active")
        and (
            (h.get("type") == "organization" and organization is not None
             and h.get("organization") == organization)
            or (h.get("type") == "project" and h.get("project_id") in projects)
        )
    ]  # fmt: skip


def tiny_png(width: int = 64, height: int = 48) -> bytes:
    """A valid RGB PNG, sand-coloured, without any imaging library."""
    row = b"\x00" + bytes((194, 178, 128)) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Placement:
    """Where CVAT put a scratch project: its organization (None: the sandbox) and the lab's
    webhooks that would fire on it (the project is gone when there are any)."""

    project_id: int
    organization: int | None
    watched_by: tuple[int, ...] = ()


@dataclass
class Scratch:
    """Creates CVAT objects under the run prefix and deletes them at the end (a project's
    deletion cascades to its tasks, jobs and webhooks); cleanup.py finds an interrupted run's
    leftovers by the same prefix."""

    session: CvatSession
    prefix: str
    projects: list[int] = field(default_factory=list)
    lab_hooks: list[dict] | None = None  # the lab's webhooks, read before the first creation
    placed: Placement | None = None  # where CVAT put the first project
    stopped: Diagnosis | None = None  # why nothing more is created

    def _before_creating(self) -> None:
        if self.stopped is not None:
            fail(self.stopped)
        if self.lab_hooks is None:
            self.lab_hooks = self.session.webhooks()
            orgs = sorted({h.get("organization") for h in self.lab_hooks if
                           h.get("type") == "organization" and h.get("is_active")} - {None})  # fmt: skip
            if orgs:
                log.info(
                    "the lab's organization webhooks watch organizations %s; the suite's objects "
                    "go to the bridge user's sandbox, where none of them fires", orgs
                )  # fmt: skip

    def project(self, labels: list[dict] | None = None) -> Project:
        self._before_creating()
        labels = labels or [{"name": "coral", "type": "polygon", "attributes": []}]
        name = f"{self.prefix}-project-{len(self.projects) + 1}"
        with answering("POST /api/projects", "201"):
            created = self.session.sdk.projects.create({"name": name, "labels": labels})
        self.projects.append(created.id)
        placed = Placement(created.id, getattr(created, "organization", None))
        if placed.organization is not None:
            placed = self._stop_if_watched(placed)
        if self.placed is None:
            self.placed = placed
        if self.stopped is not None:
            fail(self.stopped)
        return Project(created.id, created.name)

    def placement(self) -> Placement:
        """Where CVAT put the run's first scratch project (made now if none was), and which
        of the lab's webhooks would fire on it."""
        if self.placed is None:
            try:
                self.project()
            except CheckFailed:
                if self.placed is None:  # not the placement: CVAT refused the project
                    raise
        return self.placed  # type: ignore[return-value]  # set by project()

    def _stop_if_watched(self, placed: Placement) -> Placement:
        """CVAT put the project in an organization: if a webhook of the lab would fire on it,
        delete it before anything is made inside, and make nothing more."""
        project_id, organization = placed.project_id, placed.organization
        watching = watchers(self.lab_hooks or [], organization, {project_id})
        if not watching:
            return placed
        with answering(f"DELETE /api/projects/{project_id}", "204"):
            self.session.sdk.api_client.projects_api.destroy(project_id)
        self.projects.remove(project_id)
        self.stopped = Diagnosis(
            SERVER,
            f"CVAT made the suite's scratch project in organization {organization}, whose "
            f"webhook(s) of the lab would fire on its tasks and jobs; the run created nothing "
            "more",
            observed="; ".join(
                f"webhook {h['id']} ({h.get('type')}) → {h.get('target_url')}: "
                + ", ".join(h.get("events") or [])
                for h in watching[:5]
            ),
            why="the suite sends no X-Organization header, so something between it and CVAT "
            "(a proxy's custom request headers?) chose the organization",
            expected="the project in the bridge user's sandbox (organization null), where no "
            "organization webhook fires",
            consequence="the lab's pipeline would run on the suite's test quadrats",
            fix=f"let the suite reach CVAT without an X-Organization header ([cvat] url in "
            f"the profile: {self.session.profile.cvat_url}), or deactivate those webhooks "
            "for the run",
        )
        return Placement(project_id, organization, tuple(h["id"] for h in watching))

    def criobe_project(self, kind: str) -> Project:
        """A project with the exported CRIOBE labels of this kind (corners, grid, corals)."""
        from criobe_verify.labels import project_labels

        return self.project(project_labels({"inpaint": "grid"}.get(kind, kind)))

    def task_with_one_job(
        self,
        project_id: int,
        timeout: float = 120,
        image: bytes | None = None,
        name: str = "quadrat.png",
    ) -> tuple[Task, Job]:
        """A task of one image (default a tiny sand-coloured PNG), uploaded the way cvat-sdk's
        create_from_data does, its data processed (waited for), and its job."""
        from cvat_sdk import models
        from cvat_sdk.core.uploading import DataUploader

        self._before_creating()
        sdk = self.session.sdk
        with answering("POST /api/tasks", "201"):
            spec = models.TaskWriteRequest(name=f"{self.prefix}-task", project_id=project_id)
            task, _ = sdk.api_client.tasks_api.create(spec)
        url = sdk.api_map.make_endpoint_url("/api/tasks/{id}/data", kwsub={"id": task.id})
        with tempfile.TemporaryDirectory(prefix="criobe-verify-") as folder:
            path = Path(folder, name)
            path.write_bytes(image or tiny_png())
            with answering(f"POST /api/tasks/{task.id}/data", "202"):
                answer = DataUploader(sdk).upload_files(url, [path], image_quality=100)
        self._data_ready(json.loads(answer.data)["rq_id"], timeout)
        job = self.session.job_of(task.id)
        if job is None:
            fail(Diagnosis(SERVER, f"task {task.id} has no job after its data was processed"))
        return Task(task.id, task.name, project_id), job

    def _data_ready(self, rq_id: str, timeout: float) -> None:
        """Until CVAT's background request for the data finishes; `failed` fails at once."""
        requests = self.session.sdk.api_client.requests_api

        def look() -> tuple[str | None, str]:
            with answering(f"GET /api/requests/{rq_id}"):
                request, _ = requests.retrieve(rq_id)
            status = text(request.status)
            seen = f"{status!r}: {request.get('message')!r}"
            if status == "failed":
                raise WaitFailed(seen)
            return (status if status == "finished" else None), seen

        def explain(how: Unready) -> Diagnosis:
            return Diagnosis(
                SERVER,
                f"task data upload {rq_id} is {how.gave_up or how.last} after {how.waited_s:.0f} s",
                expected=f"'finished' within {timeout:.0f} s",
                consequence="no task can be created from images (is a worker consuming it?)",
                fix="docker logs cvat_worker_import; docker logs cvat_server",
            )

        # The worker takes a small image in well under a second: poll soon, then back off.
        Appears(f"task data {rq_id}", look, explain).wait(
            timeout, interval=0.05, backoff=2, max_interval=1
        )

    def webhook(self, project_id: int, target: str, events: list[str], secret: str = "") -> Webhook:
        """A project webhook as the CRIOBE docs set them up: JSON, SSL off, active."""
        from cvat_sdk import models

        self._before_creating()
        spec = models.WebhookWriteRequest(
            target_url=target,
            description=self.prefix,
            type=models.WebhookType("project"),
            content_type=models.WebhookContentType("application/json"),
            secret=secret,
            is_active=True,
            enable_ssl=False,
            events=[models.EventsEnum(e) for e in events],
            project_id=project_id,
        )
        with answering("POST /api/webhooks", "201"):
            created, _ = self.session.sdk.api_client.webhooks_api.create(spec)
        return Webhook(self.session, created.id, created.target_url, project_id)

    def cleanup(self) -> list[str]:
        """Delete what this run made, then anything else under its prefix (left by an
        interrupted run of this one); returns what could not be deleted."""
        from cvat_sdk.api_client.exceptions import ApiException

        api = self.session.sdk.api_client.projects_api
        problems = []
        for pid in reversed(self.projects):
            try:
                api.destroy(pid)
            except ApiException as exc:
                if exc.status != 404:
                    problems.append(f"project {pid}: DELETE answered {exc.status}")
        try:
            left = paged(api.list_endpoint, search=self.prefix, page_size=100)
            for p in left:
                if p["name"].startswith(self.prefix):
                    api.destroy(p["id"])
        except ApiException as exc:
            problems.append(f"projects of {self.prefix}: {exc.status}")
        return problems
