"""CVAT as the bridge uses it, through cvat-sdk 2.29.0 (``Client`` + ``login``, as the CRIOBE
docs say the real bridge does), logged in lazily with CVAT_USER/CVAT_PWD (or set B's names)
at CVAT_URL, and again once when CVAT answers 401 (a token deleted by an admin).

    cvat = Cvat(Settings.from_env())
    cvat.project(3)          # the project's JSON, or None when CVAT says 404
    task = cvat.create_task("Tetiaroa_1994_01_warped", 3, [Path("/tmp/x/Tetiaroa_1994_01.jpg")])

Every failure is a CvatError whose message names the call and CVAT's answer, never the
credentials; the response headers (which carry session cookies) are left out.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from cvat_sdk import Client, models
from cvat_sdk.api_client.exceptions import ApiException
from cvat_sdk.core.client import Config
from cvat_sdk.core.helpers import get_paginated_collection
from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

from .settings import Settings

T = TypeVar("T")


class CvatError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _body(exc: ApiException, limit: int = 300) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or exc.reason or "").strip().replace("\n", " ")
    return text[:limit]


class Cvat:
    """One logged-in cvat-sdk client; calls are serialised (the SDK client is not meant to be
    shared by threads), so the endpoints and the worker each have their own."""

    def __init__(self, settings: Settings, *, read_timeout: float = 300.0):
        self.settings = settings
        self.read_timeout = read_timeout
        self._client: Client | None = None
        self._lock = threading.RLock()

    # --- session --------------------------------------------------------------------------

    def _login(self) -> Client:
        s = self.settings
        if not s.cvat_user or not s.cvat_password:
            raise CvatError(
                "no CVAT credentials: set CVAT_USER and CVAT_PWD (or CVAT_USERNAME and "
                "CVAT_PASSWORD) in bridge/.env"
            )
        client = Client(s.cvat_url, config=Config(status_check_period=s.poll_interval))
        # cvat-sdk sets no timeout: bound every later call, so a hung CVAT cannot hold the
        # bridge forever (new pools pick the setting up).
        pools = client.api_client.rest_client.pool_manager
        pools.connection_pool_kw["timeout"] = urllib3.Timeout(connect=10, read=self.read_timeout)
        pools.clear()
        try:
            client.login((s.cvat_user, s.cvat_password))
        except ApiException as exc:
            client.close()
            raise CvatError(
                f"login to {s.cvat_url} as {s.cvat_user!r} failed: {exc.status} {_body(exc)}",
                exc.status,
            ) from None
        return client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def run(self, what: str, call: Callable[[Client], T]) -> T:
        """``call(client)``, logging in first if needed; CVAT's errors become CvatError."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._client is None:
                        self._client = self._login()
                    return call(self._client)
                except ApiException as exc:
                    if exc.status == 401 and attempt == 1:
                        self.close()
                        continue
                    raise CvatError(
                        f"{what}: CVAT answered {exc.status} {_body(exc)}", exc.status
                    ) from None
                except urllib3.exceptions.HTTPError as exc:
                    self.close()
                    raise CvatError(
                        f"{what}: CVAT at {self.settings.cvat_url} unreachable ({exc})"
                    ) from None
        raise AssertionError("unreachable")

    # --- reads (JSON as CVAT sends it) ------------------------------------------------------

    def project(self, project_id: int) -> dict[str, Any] | None:
        def call(c: Client):
            try:
                return c.projects.retrieve(project_id)._model.to_dict()
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        return self.run(f"GET /api/projects/{project_id}", call)

    def labels(self, *, project_id: int | None = None, task_id: int | None = None) -> list[dict]:
        query = {"project_id": project_id} if project_id is not None else {"task_id": task_id}
        return self.run(
            f"GET /api/labels?{urllib.parse.urlencode(query)}",
            lambda c: [
                m.to_dict()
                for m in get_paginated_collection(c.api_client.labels_api.list_endpoint, **query)
            ],
        )

    def task(self, task_id: int) -> dict[str, Any]:
        return self.run(
            f"GET /api/tasks/{task_id}", lambda c: c.tasks.retrieve(task_id)._model.to_dict()
        )

    def job(self, job_id: int) -> dict[str, Any]:
        return self.run(
            f"GET /api/jobs/{job_id}", lambda c: c.jobs.retrieve(job_id)._model.to_dict()
        )

    def jobs(self, task_id: int) -> list[dict[str, Any]]:
        return self.run(
            f"GET /api/jobs?task_id={task_id}",
            lambda c: [
                m.to_dict()
                for m in get_paginated_collection(
                    c.api_client.jobs_api.list_endpoint, task_id=task_id
                )
            ],
        )

    def task_annotations(self, task_id: int) -> dict[str, Any]:
        return self.run(
            f"GET /api/tasks/{task_id}/annotations",
            lambda c: c.tasks.retrieve(task_id).get_annotations().to_dict(),
        )

    def frames(self, task_id: int) -> list[dict[str, Any]]:
        """The task's frames (name, width, height) from its data meta."""
        return self.run(
            f"GET /api/tasks/{task_id}/data/meta",
            lambda c: [f.to_dict() for f in c.tasks.retrieve(task_id).get_frames_info()],
        )

    def frame(self, task_id: int, number: int) -> bytes:
        """The original image of a frame (GET /api/tasks/<id>/data?type=frame&quality=original)."""

        def call(c: Client) -> bytes:
            _, response = c.api_client.tasks_api.retrieve_data(
                task_id, type="frame", number=number, quality="original", _parse_response=False
            )
            return response.data

        return self.run(f"GET /api/tasks/{task_id}/data?type=frame&number={number}", call)

    # --- writes ---------------------------------------------------------------------------

    def create_task(self, name: str, project_id: int, files: list[Path]) -> dict[str, Any]:
        """Create the task in the project, upload the files, wait until CVAT has made its
        jobs; a task whose upload fails is deleted again, so nothing half-made stays."""

        def call(c: Client) -> dict[str, Any]:
            task = c.tasks.create(models.TaskWriteRequest(name=name, project_id=project_id))
            try:
                task.upload_data(
                    resources=[str(f) for f in files],
                    params={"image_quality": 100, "sorting_method": "predefined"},
                    wait_for_completion=True,
                    status_check_period=self.settings.poll_interval,
                )
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    task.remove()
                raise
            return task._model.to_dict()

        return self.run(f"create task {name!r} in project {project_id}", call)

    def delete_task(self, task_id: int) -> None:
        self.run(f"DELETE /api/tasks/{task_id}", lambda c: c.tasks.retrieve(task_id).remove())

    def set_job_state(self, job_id: int, state: str) -> dict[str, Any]:
        return self.run(
            f"PATCH /api/jobs/{job_id} state={state}",
            lambda c: c.jobs.retrieve(job_id).update({"state": state})._model.to_dict(),
        )

    def add_job_shapes(self, job_id: int, shapes: list[dict[str, Any]]) -> None:
        def call(c: Client) -> None:
            c.jobs.retrieve(job_id).update_annotations(
                models.PatchedLabeledDataRequest(shapes=shapes, tags=[], tracks=[]),
                action=AnnotationUpdateAction.CREATE,
            )

        self.run(f"PATCH /api/jobs/{job_id}/annotations?action=create", call)

    def clear_job_annotations(self, job_id: int) -> None:
        self.run(
            f"DELETE /api/jobs/{job_id}/annotations",
            lambda c: c.api_client.jobs_api.destroy_annotations(job_id),
        )

    # --- lambda requests (raw JSON: the SDK's FunctionCall model is stricter than CVAT) ------

    def _raw(self, c: Client, method: str, path: str, body: Any = None) -> Any:
        url = c.api_map.host + path
        headers = {"Content-Type": "application/json", **c.api_client.get_common_headers()}
        # The SDK's REST client raises ApiException on any status outside 2xx.
        r = c.api_client.rest_client.request(
            method, url, headers=headers, body=body, _request_timeout=60
        )
        return json.loads(r.data) if r.data else None

    def lambda_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.run(
            "POST /api/lambda/requests",
            lambda c: self._raw(c, "POST", "/api/lambda/requests", body),
        )

    def lambda_status(self, request_id: str) -> dict[str, Any]:
        path = f"/api/lambda/requests/{urllib.parse.quote(request_id, safe='')}"
        return self.run(f"GET {path}", lambda c: self._raw(c, "GET", path))

    def lambda_cancel(self, request_id: str) -> None:
        path = f"/api/lambda/requests/{urllib.parse.quote(request_id, safe='')}"
        self.run(f"DELETE {path}", lambda c: self._raw(c, "DELETE", path))
