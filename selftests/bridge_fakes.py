"""In-process stand-ins for what the bridge twin talks to, for selftests/test_bridge_twin.py.

- ``FakeCvat``: a CVAT 2.29.0 API subset on 127.0.0.1 (a thread), with state: projects,
  labels, tasks with uploaded frames, jobs with CVAT's stage/state/status rules, annotations,
  data requests, lambda requests, and project webhooks whose events are queued exactly as CVAT
  queues them (recordings 50-74: ``update:task`` with stale ``jobs`` counts before
  ``update:job`` when a job save changes the task's status; annotation saves give
  ``update:job`` and ``update:task`` with only ``updated_date`` changed). Bodies follow the
  recorded responses (selftests/data/contracts/cvat-2.29.0), which cvat-sdk 2.29.0 parses.
  Skeleton elements come back in another order than written, as recorded (19).
- ``FakeNuclio``: the dashboard's ``GET /api/functions/<name>`` and each function at
  ``POST /<name>``, running the twin's reference handler in-process with the real
  ``nuclio_sdk`` classes, as Nuclio's processor does.
- ``BridgeStack``: the bridge app (``create_app``) over httpx's ASGI transport, and a
  deliverer that posts CVAT's queued webhook events to it (signed when the webhook has a
  secret), as cvat_worker_webhooks would, until nothing moves any more.

    with BridgeStack(tmp_path) as stack:
        corners = stack.cvat.add_project("corners", project_labels("corners"))
        stack.cvat.add_webhook(corners, "/detect-model-webhook?model_name=pth-yolo-gridcorners")
        task, job = stack.cvat.add_task(corners, "Sample", [("Sample.jpg", jpeg_bytes)])
        stack.cvat.patch_job(job, {"state": "in progress"})
        stack.settle()
"""

from __future__ import annotations

import asyncio
import base64
import copy
import email.parser
import email.policy
import hashlib
import hmac
import importlib.util
import io
import json
import logging
import re
import secrets
import threading
import time
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import yaml
from PIL import Image

from selftests import PROJECT_ROOT
from selftests.data import CONTRACTS

RECORDED = CONTRACTS / "cvat-2.29.0"
TWIN = PROJECT_ROOT / "twin"
SERVERLESS = TWIN / "serverless" / "pytorch"
FUNCTION_DIRS = {
    "pth-yolo-gridcorners": "yolo/gridcorners/nuclio",
    "pth-yolo-gridpose": "yolo/gridpose/nuclio",
    "pth-lama": "lama/nuclio",
    "pth-yolo-coralsegv4": "yolo/coralsegv4/nuclio",
}
ADMIN = ("admin", "Fake-Reef-Admin-Pw-93c1")
WEBHOOK_SECRET = "fake-webhook-secret-5e2a"
USER_AGENT = "CVAT/2.29.0 python-requests/2.32.3"


def recorded(prefix: str) -> Any:
    """The response JSON of the recorded exchange whose file name starts with ``prefix``."""
    path = next(RECORDED.glob(f"{prefix}_*.json"))
    return json.loads(path.read_text())["response"]["json"]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status, self.body = status, body


def not_found() -> ApiError:
    return ApiError(404, {"detail": "Not found."})


def job_status(stage: str, state: str) -> str:
    if stage == "acceptance" and state == "completed":
        return "completed"
    return "annotation" if stage == "annotation" else "validation"


def changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in before.items() if after.get(k) != v}


def image_info(content: bytes) -> tuple[int, int, str]:
    with Image.open(io.BytesIO(content)) as im:
        return im.width, im.height, Image.MIME[im.format]


# --- CVAT ----------------------------------------------------------------------------------


class FakeCvat:
    """State and routes; every change runs under one lock, as one transaction would."""

    def __init__(self, nuclio: FakeNuclio | None = None):
        self.nuclio = nuclio
        self.lock = threading.RLock()
        self.ids: dict[str, int] = {}
        self.token = secrets.token_hex(20)
        self.projects: dict[int, dict] = {}
        self.labels: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.jobs: dict[int, dict] = {}
        self.shapes: dict[int, list[dict]] = {}  # job id -> shapes
        self.requests: dict[str, dict] = {}
        self.lambda_calls: dict[str, dict] = {}
        self.webhooks: dict[int, dict] = {}
        self.outbox: list[tuple[int, dict]] = []
        self.calls: list[tuple[str, str]] = []  # (method, path?query) of every API request
        self.frame_queries: list[dict[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.base = self.url  # the URLs in bodies, as CVAT builds them from its Host
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeCvat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_id(self, kind: str) -> int:
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return self.ids[kind]

    # --- bodies (the recorded ones, with this state's values) -------------------------------

    def sender(self) -> dict:
        return {"url": f"{self.base}/api/users/1", "id": 1, "username": ADMIN[0],
                "first_name": "", "last_name": ""}  # fmt: skip

    def project_read(self, p: dict) -> dict:
        body = copy.deepcopy(recorded("04"))
        pid = p["id"]
        body.update(url=f"{self.base}/api/projects/{pid}", id=pid, name=p["name"],
                    owner=self.sender(), created_date=p["created"], updated_date=p["created"])  # fmt: skip
        count = sum(1 for t in self.tasks.values() if t["project_id"] == pid)
        body["tasks"] = {"count": count, "url": f"{self.base}/api/tasks?project_id={pid}"}
        body["labels"] = {"url": f"{self.base}/api/labels?project_id={pid}"}
        return body

    def label_read(self, label: dict) -> dict:
        data = {
            "id": label["id"],
            "name": label["name"],
            "color": label["color"],
            "attributes": copy.deepcopy(label["attributes"]),
            "type": label["type"],
            "sublabels": [
                {
                    "id": sub["id"],
                    "name": sub["name"],
                    "color": sub["color"],
                    "attributes": copy.deepcopy(sub["attributes"]),
                    "type": sub["type"],
                    "has_parent": True,
                }
                for sub in (self.labels[s] for s in label["sublabels"])
            ],
            "project_id": label["project_id"],
            "parent_id": None,
            "has_parent": False,
        }
        if label["type"] == "skeleton":
            data["svg"] = label["svg"]
        return data

    def counts(self, tid: int) -> dict:
        jobs = [j for j in self.jobs.values() if j["task_id"] == tid]
        return {
            "count": len(jobs),
            "completed": sum(
                j["stage"] == "acceptance" and j["state"] == "completed" for j in jobs
            ),
            "validation": sum(j["stage"] == "validation" for j in jobs),
        }

    def task_read(self, t: dict, stale_jobs: bool = False) -> dict:
        tid = t["id"]
        if t["frames"]:
            body = copy.deepcopy(recorded("10"))
            body.update(size=len(t["frames"]), data=tid, image_quality=t["image_quality"],
                        segment_size=t["segment_size"], overlap=0)  # fmt: skip
        else:
            body = copy.deepcopy(recorded("06"))
        jobs = (
            {"count": 0, "completed": None, "validation": None} if stale_jobs else self.counts(tid)
        )
        body.update(url=f"{self.base}/api/tasks/{tid}", id=tid, name=t["name"],
                    project_id=t["project_id"], owner=self.sender(), status=t["status"],
                    created_date=t["created"], updated_date=t["updated"],
                    mode="annotation" if t["frames"] else "")  # fmt: skip
        body["jobs"] = {**jobs, "url": f"{self.base}/api/jobs?task_id={tid}"}
        body["labels"] = {"url": f"{self.base}/api/labels?task_id={tid}"}
        return body

    def job_read(self, j: dict) -> dict:
        body = copy.deepcopy(recorded("12"))
        jid, task = j["id"], self.tasks[j["task_id"]]
        body.update(url=f"{self.base}/api/jobs/{jid}", id=jid, task_id=task["id"],
                    project_id=task["project_id"], status=j["status"], stage=j["stage"],
                    state=j["state"], frame_count=j["stop"] - j["start"] + 1,
                    start_frame=j["start"], stop_frame=j["stop"], created_date=j["created"],
                    updated_date=j["updated"])  # fmt: skip
        body["issues"] = {"url": f"{self.base}/api/issues?job_id={jid}", "count": 0}
        body["labels"] = {"url": f"{self.base}/api/labels?job_id={jid}"}
        return body

    def request_read(self, r: dict) -> dict:
        body = copy.deepcopy(recorded("09"))
        body.update(status=r["status"], message=r["message"], id=r["id"],
                    started_date=r["created"], finished_date=r.get("finished"))  # fmt: skip
        body["operation"].update(project_id=r["project_id"], task_id=r["task_id"])
        if r["status"] != "finished":
            body["finished_date"] = body["expiry_date"] = None
        return body

    # --- events ---------------------------------------------------------------------------

    def emit(self, event: str, project_id: int | None, resource: str, obj: dict, before=None):
        if project_id is None:
            return
        for hook_id, hook in self.webhooks.items():
            if hook["project_id"] != project_id or event not in hook["events"]:
                continue
            payload = {"event": event, resource: obj, "sender": self.sender()}
            if before is not None:
                payload["before_update"] = before
            payload["webhook_id"] = hook_id
            self.outbox.append((hook_id, copy.deepcopy(payload)))

    def take_outbox(self) -> list[tuple[int, dict]]:
        with self.lock:
            items, self.outbox = self.outbox, []
            return items

    # --- set-up (what the tests do through CVAT's API or UI) --------------------------------

    def add_project(self, name: str, labels: list[dict]) -> int:
        with self.lock:
            pid = self.next_id("project")
            self.projects[pid] = {"id": pid, "name": name, "created": now(), "labels": []}
            for spec in labels:
                self.projects[pid]["labels"].append(self._add_label(spec, pid))
            return pid

    def _add_label(self, spec: dict, pid: int, parent: int | None = None) -> int:
        lid = self.next_id("label")
        attributes = []
        for a in spec.get("attributes") or []:
            attributes.append({"id": self.next_id("attribute"), "name": a["name"],
                               "mutable": bool(a.get("mutable")),
                               "input_type": a.get("input_type", "text"),
                               "default_value": a.get("default_value", ""),
                               "values": list(a.get("values") or [])})  # fmt: skip
        label = {"id": lid, "name": spec["name"], "type": spec.get("type", "any"),
                 "color": spec.get("color") or "#" + hashlib.sha1(spec["name"].encode()).hexdigest()[:6],
                 "attributes": attributes, "sublabels": [], "project_id": pid, "parent": parent}  # fmt: skip
        self.labels[lid] = label
        for sub in spec.get("sublabels") or []:
            label["sublabels"].append(self._add_label(sub, pid, lid))
        svg = spec.get("svg") or ""
        for sub_id in label["sublabels"]:
            name = self.labels[sub_id]["name"]
            svg = svg.replace(f'data-label-name="{name}"', f'data-label-id="{sub_id}"')
        label["svg"] = svg
        return lid

    def add_webhook(self, project_id: int, target: str, events: Iterable[str] = ("update:job",
                    "update:task"), secret: str = "") -> int:  # fmt: skip
        with self.lock:
            wid = self.next_id("webhook")
            self.webhooks[wid] = {"project_id": project_id, "target": target,
                                  "events": set(events), "secret": secret, "deliveries": []}  # fmt: skip
            return wid

    def add_task(
        self, project_id: int, name: str, files: list[tuple[str, bytes]]
    ) -> tuple[int, int]:
        """A task with its data, created at once (the tests' own set-up); (task, job)."""
        with self.lock:
            tid = self._create_task(name, project_id)
            self.tasks[tid]["uploads"] = list(files)
            self._finish_data(tid, {"image_quality": 70, "sorting_method": "predefined"})
            return tid, next(j for j in self.jobs if self.jobs[j]["task_id"] == tid)

    def _create_task(self, name: str, project_id: int | None) -> int:
        tid = self.next_id("task")
        stamp = now()
        self.tasks[tid] = {"id": tid, "name": name, "project_id": project_id, "frames": [],
                           "uploads": [], "status": "annotation", "created": stamp,
                           "updated": stamp, "image_quality": 70, "segment_size": 0}  # fmt: skip
        self.emit("create:task", project_id, "task", self.task_read(self.tasks[tid]))
        return tid

    def _finish_data(self, tid: int, fields: dict) -> None:
        task = self.tasks[tid]
        uploads = task["uploads"]
        if not uploads:
            raise ValueError("No media data found")
        if str(fields.get("sorting_method", "lexicographical")) == "lexicographical":
            uploads = sorted(uploads, key=lambda u: u[0])
        for name, content in uploads:
            w, h, mime = image_info(content)
            task["frames"].append({"name": name, "content": content, "width": w, "height": h,
                                   "mime": mime})  # fmt: skip
        task["uploads"] = []
        task["image_quality"] = int(fields.get("image_quality") or 70)
        task["segment_size"] = len(task["frames"])
        stamp = now()
        jid = self.next_id("job")
        self.jobs[jid] = {"id": jid, "task_id": tid, "stage": "annotation", "state": "new",
                          "status": "annotation", "start": 0, "stop": len(task["frames"]) - 1,
                          "created": stamp, "updated": stamp}  # fmt: skip
        self.shapes[jid] = []
        task["updated"] = now()
        self.emit("create:job", task["project_id"], "job", self.job_read(self.jobs[jid]))

    def patch_job(self, jid: int, data: dict) -> dict:
        """PATCH /api/jobs/<id>: JobWriteSerializer.update + the task status signal."""
        with self.lock:
            job = self.jobs.get(jid)
            if job is None:
                raise not_found()
            for field, choices in (("stage", ("annotation", "validation", "acceptance")),
                                   ("state", ("new", "in progress", "completed", "rejected"))):  # fmt: skip
                if field in data and data[field] not in choices:
                    raise ApiError(400, {field: [f'"{data[field]}" is not a valid choice.']})
            task = self.tasks[job["task_id"]]
            before = self.job_read(job)
            stage = data.get("stage", job["stage"])
            state = data.get("state", job["state"])
            if "stage" in data and "state" not in data:
                state = "new"  # changing the stage alone resets the state
            job.update(stage=stage, state=state, status=job_status(stage, state), updated=now())
            self._touch_task(task, status_only=True)
            after = self.job_read(job)
            self.emit("update:job", task["project_id"], "job", after, changed(before, after))
            return after

    def _touch_task(self, task: dict, status_only: bool) -> None:
        statuses = [j["status"] for j in self.jobs.values() if j["task_id"] == task["id"]]
        if "annotation" in statuses:
            status = "annotation"
        elif "validation" in statuses:
            status = "validation"
        else:
            status = "completed"
        if status_only and status == task["status"]:
            return
        before = self.task_read(task, stale_jobs=True)
        task.update(status=status, updated=now())
        after = self.task_read(task, stale_jobs=True)
        self.emit("update:task", task["project_id"], "task", after, changed(before, after))

    def complete_task(self, tid: int) -> None:
        """What the tests do to finish a task: every job to acceptance + completed."""
        for jid in [j for j, job in self.jobs.items() if job["task_id"] == tid]:
            self.patch_job(jid, {"stage": "acceptance", "state": "completed"})

    # --- reads for assertions ---------------------------------------------------------------

    def project_labels(self, pid: int) -> dict[str, dict]:
        return {self.labels[lid]["name"]: self.labels[lid] for lid in self.projects[pid]["labels"]}

    def tasks_in(self, pid: int) -> list[dict]:
        with self.lock:
            return [t for t in self.tasks.values() if t["project_id"] == pid]

    def jobs_of(self, tid: int) -> list[dict]:
        with self.lock:
            return [j for j in self.jobs.values() if j["task_id"] == tid]

    def job_shapes(self, jid: int) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.shapes[jid])

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.calls if m not in ("GET", "HEAD")]

    # --- HTTP -----------------------------------------------------------------------------

    def _handler(self):
        cvat = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with cvat.lock:
                    cvat.calls.append((self.command, self.path))
                try:
                    status, out, ctype, extra = cvat.route(
                        self.command, parts.path, query, self.headers, body
                    )
                except ApiError as exc:
                    status, out, ctype, extra = exc.status, exc.body, None, {}
                except Exception:
                    status, out, ctype, extra = 500, {"detail": traceback.format_exc()}, None, {}
                if isinstance(out, bytes):
                    data = out
                elif out is None:
                    data = b""
                else:
                    data = json.dumps(out).encode()
                    ctype = ctype or "application/vnd.cvat+json"
                self.send_response(status)
                if data or ctype:
                    self.send_header("Content-Type", ctype or "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    for value in v if isinstance(v, list) else [v]:
                        self.send_header(k, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        return Handler

    def _auth(self, headers) -> None:
        if headers.get("Authorization") != f"Token {self.token}":
            raise ApiError(401, {"detail": "Authentication credentials were not provided."})

    @staticmethod
    def _page(items: list) -> dict:
        return {"count": len(items), "next": None, "previous": None, "results": items}

    def route(self, method: str, path: str, query: dict, headers, body: bytes):
        path = path.rstrip("/")
        if path == "/api/server/about":
            return 200, recorded("01"), None, {}
        if path == "/api/auth/login" and method == "POST":
            data = json.loads(body or b"{}")
            if (data.get("username"), data.get("password")) != ADMIN:
                raise ApiError(
                    400, {"non_field_errors": ["Unable to log in with provided credentials."]}
                )
            cookies = [f"csrftoken={secrets.token_hex(16)}; Path=/",
                       f"sessionid={secrets.token_hex(16)}; HttpOnly; Path=/"]  # fmt: skip
            return 200, {"key": self.token}, None, {"Set-Cookie": cookies}
        self._auth(headers)
        with self.lock:
            for pattern, handler in self.ROUTES:
                m = re.fullmatch(pattern, path)
                if m:
                    return handler(self, method, m, query, headers, body)
        raise not_found()

    def _project(self, method, m, query, headers, body):
        p = self.projects.get(int(m[1]))
        if p is None:
            raise not_found()
        return 200, self.project_read(p), None, {}

    def _labels(self, method, m, query, headers, body):
        if "project_id" in query:
            pid = int(query["project_id"])
        elif "task_id" in query:
            task = self.tasks.get(int(query["task_id"]))
            pid = task["project_id"] if task else None
        else:
            raise ApiError(400, {"detail": "project_id, task_id or job_id is required here"})
        ids = self.projects[pid]["labels"] if pid in self.projects else []
        return 200, self._page([self.label_read(self.labels[i]) for i in ids]), None, {}

    def _tasks(self, method, m, query, headers, body):
        if method != "POST":
            raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})
        data = json.loads(body or b"{}")
        if not data.get("name"):
            raise ApiError(400, {"name": ["This field is required."]})
        pid = data.get("project_id")
        if pid is not None and pid not in self.projects:
            raise ApiError(400, {"project_id": [f"The specified project #{pid} does not exist."]})
        tid = self._create_task(data["name"], pid)
        return 201, self.task_read(self.tasks[tid]), None, {}

    def _task(self, method, m, query, headers, body):
        task = self.tasks.get(int(m[1]))
        if task is None:
            raise not_found()
        if method == "GET":
            return 200, self.task_read(task), None, {}
        if method == "DELETE":
            obj = self.task_read(task)
            for jid in [j for j, job in self.jobs.items() if job["task_id"] == task["id"]]:
                del self.jobs[jid]
                self.shapes.pop(jid, None)
            del self.tasks[task["id"]]
            self.emit("delete:task", task["project_id"], "task", obj)
            return 204, None, None, {}
        raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})

    def _task_data(self, method, m, query, headers, body):
        task = self.tasks.get(int(m[1]))
        if task is None:
            raise not_found()
        if method == "GET":
            self.frame_queries.append(dict(query))
            if query.get("type", "frame") != "frame":
                raise ApiError(400, {"detail": f"Unsupported data type: {query.get('type')}"})
            if query.get("quality", "compressed") not in ("original", "compressed"):
                raise ApiError(400, {"quality": ["Invalid quality"]})
            number = int(query.get("number", "0"))
            if not 0 <= number < len(task["frames"]):
                raise ApiError(400, {"detail": "The frame number should be in the range"})
            frame = task["frames"][number]
            return 200, frame["content"], frame["mime"], {}
        fields, files = self._form(headers, body)
        task["uploads"] += files
        if "Upload-Start" in headers:
            return 202, None, None, {}
        if "Upload-Multiple" in headers:
            return 200, None, None, {}
        if task["frames"]:
            raise ApiError(400, {"detail": "Adding more data is not supported"})
        if "image_quality" not in fields and "Upload-Finish" not in headers:
            raise ApiError(400, {"image_quality": ["This field is required."]})
        rq_id = f"create:task-{task['id']}"
        self.requests[rq_id] = {"id": rq_id, "status": "queued", "message": "",
                                "project_id": task["project_id"], "task_id": task["id"],
                                "created": now()}  # fmt: skip

        def create():
            time.sleep(0.2)  # so the first poll reads "queued", as recorded (08)
            with self.lock:
                try:
                    self._finish_data(task["id"], fields)
                except Exception as exc:
                    self.requests[rq_id].update(status="failed", message=str(exc))
                else:
                    self.requests[rq_id].update(status="finished", finished=now())

        threading.Thread(target=create, daemon=True).start()
        return 202, {"rq_id": rq_id}, None, {}

    @staticmethod
    def _form(headers, body: bytes) -> tuple[dict, list[tuple[str, bytes]]]:
        ctype = headers.get("Content-Type") or ""
        fields, files = {}, []
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_filename()
                payload = part.get_payload(decode=True) or b""
                if filename is not None:
                    files.append((filename.rsplit("/", 1)[-1], payload))
                else:
                    fields[name] = payload.decode()
        elif body:
            fields = json.loads(body)
        return fields, files

    def _task_meta(self, method, m, query, headers, body):
        task = self.tasks.get(int(m[1]))
        if task is None:
            raise not_found()
        frames = [{"width": f["width"], "height": f["height"], "name": f["name"],
                   "related_files": 0, "has_related_context": False} for f in task["frames"]]  # fmt: skip
        size = len(frames)
        return 200, {"chunks_updated_date": task["updated"], "chunk_size": 72, "size": size,
                     "image_quality": task["image_quality"], "start_frame": 0,
                     "stop_frame": max(size - 1, 0), "frame_filter": "", "frames": frames,
                     "deleted_frames": [], "included_frames": None}, None, {}  # fmt: skip

    def _request(self, method, m, query, headers, body):
        r = self.requests.get(unquote(m[1]))
        if r is None:
            raise not_found()
        return 200, self.request_read(r), None, {}

    def _jobs(self, method, m, query, headers, body):
        items = [self.job_read(j) for j in sorted(self.jobs.values(), key=lambda j: -j["id"])]
        for key in ("task_id", "project_id", "state", "stage"):
            if key in query:
                items = [j for j in items if str(j[key]) == query[key]]
        return 200, self._page(items), None, {}

    def _job(self, method, m, query, headers, body):
        jid = int(m[1])
        if jid not in self.jobs:
            raise not_found()
        if method == "GET":
            return 200, self.job_read(self.jobs[jid]), None, {}
        if method == "PATCH":
            return 200, self.patch_job(jid, json.loads(body or b"{}")), None, {}
        raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})

    # --- annotations ------------------------------------------------------------------------

    def _check_shape(self, shape: dict, allowed: set[int], frames: range) -> None:
        label = self.labels.get(shape.get("label_id"))
        if label is None or label["id"] not in allowed:
            raise ApiError(400, {"detail": f"Label id {shape.get('label_id')} is not valid"})
        if int(shape.get("frame", -1)) not in frames:
            raise ApiError(400, {"detail": f"frame {shape.get('frame')} is outside the job"})
        specs = {a["id"] for a in label["attributes"]}
        for attr in shape.get("attributes") or []:
            if attr.get("spec_id") not in specs or not isinstance(attr.get("value"), str):
                raise ApiError(
                    400, {"detail": f"attribute {attr} is not valid for {label['name']}"}
                )
        if shape.get("type") == "skeleton":
            if label["type"] != "skeleton":
                raise ApiError(400, {"detail": "skeleton shape of a non-skeleton label"})
            for element in shape.get("elements") or []:
                self._check_shape(element, set(label["sublabels"]), frames)

    def _stored(self, shape: dict) -> dict:
        out = {"id": self.next_id("shape"), "label_id": shape["label_id"],
               "type": shape.get("type", "points"), "frame": int(shape["frame"]),
               "group": shape.get("group"), "source": shape.get("source") or "manual",
               "occluded": bool(shape.get("occluded")), "outside": bool(shape.get("outside")),
               "z_order": int(shape.get("z_order") or 0),
               "rotation": float(shape.get("rotation") or 0.0),
               "points": [float(v) for v in shape.get("points") or []],
               "attributes": [{"spec_id": a["spec_id"], "value": a["value"]}
                              for a in shape.get("attributes") or []]}  # fmt: skip
        elements = [self._stored(e) for e in shape.get("elements") or []]
        for e in elements:
            e.pop("elements")
        out["elements"] = elements
        return out

    def _read_shapes(self, job_ids: list[int]) -> dict:
        shapes = []
        for jid in job_ids:
            for shape in self.shapes[jid]:
                shape = copy.deepcopy(shape)
                # Recorded (19): CVAT returns a skeleton's elements in another order.
                shape["elements"] = shape["elements"][1:] + shape["elements"][:1]
                for item in (shape, *shape["elements"]):
                    self._with_defaults(item)
                shapes.append(shape)
        return {"version": 0, "tags": [], "shapes": shapes, "tracks": []}

    def _with_defaults(self, shape: dict) -> None:
        """JobAnnotation._extend_attributes: an attribute without a value reads as its default."""
        have = {a["spec_id"] for a in shape["attributes"]}
        for spec in self.labels[shape["label_id"]]["attributes"]:
            if spec["id"] not in have:
                shape["attributes"].append({"spec_id": spec["id"], "value": spec["default_value"]})

    def _task_annotations(self, method, m, query, headers, body):
        tid = int(m[1])
        if tid not in self.tasks:
            raise not_found()
        if method != "GET":
            raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})
        jobs = sorted(j for j, job in self.jobs.items() if job["task_id"] == tid)
        return 200, self._read_shapes(jobs), None, {}

    def _job_annotations(self, method, m, query, headers, body):
        jid = int(m[1])
        job = self.jobs.get(jid)
        if job is None:
            raise not_found()
        if method == "GET":
            return 200, self._read_shapes([jid]), None, {}
        task = self.tasks[job["task_id"]]
        allowed = set(self.projects[task["project_id"]]["labels"])
        frames = range(job["start"], job["stop"] + 1)
        if method == "DELETE":
            self.shapes[jid] = []
            out, status = None, 204
        else:
            data = json.loads(body or b"{}")
            action = query.get("action")
            if method == "PATCH" and action not in ("create", "update", "delete"):
                raise ApiError(400, {"detail": "Please specify a correct 'action' for the request"})
            if method == "PATCH" and action != "create":
                raise ApiError(400, {"detail": "this fake implements action=create only"})
            shapes = data.get("shapes") or []
            for shape in shapes:
                self._check_shape(shape, allowed, frames)
            stored = [self._stored(s) for s in shapes]
            self.shapes[jid] = (self.shapes[jid] if method == "PATCH" else []) + stored
            out, status = {"version": 0, "tags": [], "shapes": stored, "tracks": []}, 200
        # An annotation save touches the job, then the task: update:job, then update:task.
        before = self.job_read(job)
        job["updated"] = now()
        after = self.job_read(job)
        self.emit("update:job", task["project_id"], "job", after, changed(before, after))
        self._touch_task(task, status_only=False)
        return status, out, None, {}

    # --- lambda requests (CVAT's lambda manager, detectors only) ----------------------------

    def _lambda_requests(self, method, m, query, headers, body):
        if method != "POST":
            raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})
        data = json.loads(body or b"{}")
        for key in ("function", "task"):
            if key not in data:
                raise ApiError(400, {key: ["This field is required."]})
        tid = int(data["task"])
        if tid not in self.tasks:
            raise ApiError(400, {"detail": f"Task matching query does not exist ({tid})"})
        rid = f"autoannotate:task-{tid}"
        running = self.lambda_calls.get(rid)
        if running and running["status"] in ("queued", "started"):
            raise ApiError(409, f"Only one running request is allowed for the same task #{tid}")
        call = {"id": rid, "function": {"id": data["function"], "threshold": None, "task": tid,
                                        "job": data.get("job")},
                "status": "queued", "progress": 0, "enqueued": now(), "started": None,
                "ended": None, "exc_info": None, "request": data}  # fmt: skip
        self.lambda_calls[rid] = call
        threading.Thread(target=self._run_lambda, args=(rid,), daemon=True).start()
        return 200, self._lambda_read(call), None, {}

    @staticmethod
    def _lambda_read(call: dict) -> dict:
        return {k: v for k, v in call.items() if k != "request"}

    def _lambda_request(self, method, m, query, headers, body):
        call = self.lambda_calls.get(unquote(m[1]))
        if call is None:
            raise ApiError(404, f"{unquote(m[1])} lambda job is not found")
        if method == "DELETE":
            call["status"] = "canceled"
            return 204, None, None, {}
        return 200, self._lambda_read(call), None, {}

    def _run_lambda(self, rid: str) -> None:
        """LambdaJob._call_detector: invoke per frame, map labels/attributes/sublabels by the
        request's mapping, write with action=create, source "auto"."""
        with self.lock:
            call = self.lambda_calls[rid]
            call.update(status="started", started=now())
            data = call["request"]
            jid = data.get("job")
            job = self.jobs[jid]
            task = self.tasks[job["task_id"]]
            labels = self.project_labels(task["project_id"])
            frames = [task["frames"][f]["content"] for f in range(job["start"], job["stop"] + 1)]
        try:
            shapes = []
            mapping = data.get("mapping") or {n: {"name": n, "attributes": {}} for n in labels}
            for offset, content in enumerate(frames):
                answer = self.nuclio.invoke(
                    data["function"], {"image": base64.b64encode(content).decode()}
                )
                for anno in answer:
                    shape = self._lambda_shape(anno, mapping, labels, job["start"] + offset, data)
                    if shape is not None:
                        shapes.append(shape)
            with self.lock:
                if data.get("cleanup"):
                    self.shapes[jid] = []
                self.shapes[jid] += [self._stored(s) for s in shapes]
                if shapes:  # a write touches the job and the task, as an annotation save
                    before = self.job_read(job)
                    job["updated"] = now()
                    after = self.job_read(job)
                    self.emit(
                        "update:job", task["project_id"], "job", after, changed(before, after)
                    )
                    self._touch_task(task, status_only=False)
                call.update(status="finished", ended=now(), progress=100)
        except Exception:
            with self.lock:
                call.update(status="failed", ended=now(), exc_info=traceback.format_exc())

    def _lambda_shape(self, anno, mapping, labels, frame, data) -> dict | None:
        """As recorded (cvat-2.29.0-lambda on main): mapped labels and attributes only, a
        number attribute kept when its string value is numeric (a JSON number fails the run),
        a mask as a polygon from its points with conv_mask_to_poly, skeleton elements left
        out added outside at the mean of the given ones, an all-outside skeleton not written."""
        entry = mapping.get(anno.get("label"))
        if entry is None or entry["name"] not in labels:
            return None
        label = labels[entry["name"]]

        def attrs(item, label, amap):
            specs = {a["name"]: a for a in label["attributes"]}
            out = []
            for a in item.get("attributes") or []:
                spec = specs.get((amap or {}).get(a["name"]))
                if spec is None:
                    continue
                if spec["input_type"] == "number" and not a["value"].isnumeric():
                    continue
                out.append({"spec_id": spec["id"], "value": a["value"]})
            return out

        shape = {"frame": frame, "label_id": label["id"], "type": anno["type"],
                 "points": anno.get("points") or [], "source": "auto", "occluded": False,
                 "z_order": 0, "group": None,
                 "attributes": attrs(anno, label, entry.get("attributes"))}  # fmt: skip
        if anno["type"] == "mask" and anno.get("points") and data.get("conv_mask_to_poly"):
            shape["type"] = "polygon"
        if anno["type"] == "skeleton":
            subs = {self.labels[s]["name"]: self.labels[s] for s in label["sublabels"]}
            given = {e["label"]: e for e in anno.get("elements") or [] if e["label"] in subs}
            if not given or all(e.get("outside") for e in given.values()):
                return None
            mean = [sum(e["points"][i] for e in given.values()) / len(given) for i in (0, 1)]
            shape["points"] = []
            shape["elements"] = [
                {"frame": frame, "label_id": sub["id"], "type": "points", "source": "auto",
                 "points": given[name]["points"] if name in given else mean,
                 "outside": bool(given[name].get("outside")) if name in given else True,
                 "group": None, "attributes": []}
                for name, sub in subs.items()
            ]  # fmt: skip
        return shape

    ROUTES = (
        (r"/api/projects/(\d+)", _project),
        (r"/api/labels", _labels),
        (r"/api/tasks", _tasks),
        (r"/api/tasks/(\d+)", _task),
        (r"/api/tasks/(\d+)/data", _task_data),
        (r"/api/tasks/(\d+)/data/meta", _task_meta),
        (r"/api/tasks/(\d+)/annotations", _task_annotations),
        (r"/api/requests/([^/]+)", _request),
        (r"/api/jobs", _jobs),
        (r"/api/jobs/(\d+)", _job),
        (r"/api/jobs/(\d+)/annotations", _job_annotations),
        (r"/api/lambda/requests", _lambda_requests),
        (r"/api/lambda/requests/([^/]+)", _lambda_request),
    )


# --- Nuclio --------------------------------------------------------------------------------


class FakeNuclio:
    """The dashboard's function records and the functions themselves, on one port: the bridge
    twin reaches a function at BRIDGE_TWIN_FUNCTION_URL=http://127.0.0.1:<port>/{name}."""

    def __init__(self, deployed: Iterable[str] = FUNCTION_DIRS):
        import nuclio_sdk

        self.nuclio_sdk = nuclio_sdk
        self.deployed = set(deployed)
        self.modules: dict[str, Any] = {}
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()  # cleared: every call waits until it is set again
        self.gate.set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeNuclio:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def module(self, name: str):
        if name not in self.modules:
            path = SERVERLESS / FUNCTION_DIRS[name] / "main.py"
            spec = importlib.util.spec_from_file_location(
                f"bridge_fn_{name.replace('-', '_')}", path
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.modules[name] = module
        return self.modules[name]

    def record(self, name: str) -> dict:
        config = yaml.safe_load((SERVERLESS / FUNCTION_DIRS[name] / "function.yaml").read_text())
        meta = config["metadata"]
        return {
            "metadata": {"name": name, "namespace": "nuclio", "labels": {
                "nuclio.io/project-name": "cvat"}, "annotations": meta.get("annotations", {})},
            "spec": {"description": config["spec"]["description"]},
            "status": {"state": "ready", "httpPort": self.port,
                       "internalInvocationUrls": [f"nuclio-nuclio-{name}:8080"]},
        }  # fmt: skip

    def invoke(self, name: str, body: dict) -> Any:
        """Call the handler as Nuclio's processor does; raise on a non-200 answer."""
        status, out = self.call(name, json.dumps(body).encode())
        if status != 200:
            raise RuntimeError(f"{name} answered {status}: {out[:200]!r}")
        return json.loads(out)

    def call(self, name: str, raw: bytes) -> tuple[int, bytes]:
        module = self.module(name)
        sdk = self.nuclio_sdk
        with self.lock:
            self.calls.append((name, json.loads(raw)))
        self.gate.wait(60)
        ctx = sdk.Context(logger=sdk.Logger(logging.WARNING, name=name))
        try:
            module.init_context(ctx)
            event = sdk.Event(body=json.loads(raw), content_type="application/json",
                              method="POST", path="/")  # fmt: skip
            response = sdk.Response.from_entrypoint_output(json.dumps, module.handler(ctx, event))
        except Exception:
            return 500, traceback.format_exc().encode()
        out = response["body"]
        return response["status_code"], out.encode() if isinstance(out, str) else out

    def called(self, name: str) -> int:
        with self.lock:
            return sum(1 for n, _ in self.calls if n == name)

    def _handler(self):
        nuclio = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, data: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                m = re.fullmatch(r"/api/functions/([^/]+)", self.path)
                if m and m[1] in nuclio.deployed:
                    return self._send(200, json.dumps(nuclio.record(m[1])).encode())
                self._send(404, b"Function not found", "text/plain")

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                name = self.path.strip("/")
                if name not in nuclio.deployed:
                    return self._send(404, b"no such function", "text/plain")
                status, out = nuclio.call(name, raw)
                self._send(status, out, "application/json" if status == 200 else "text/plain")

        return Handler


# --- the bridge under test -----------------------------------------------------------------


class BridgeStack:
    """The bridge app with a FakeCvat and a FakeNuclio; ``env`` adds or overrides bridge
    settings (bridge/.env variables and BRIDGE_TWIN_* knobs)."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None,
                 deployed: Iterable[str] = FUNCTION_DIRS):  # fmt: skip
        self.tmp_path = tmp_path
        self.env = env or {}
        self.deployed = deployed
        self.log = io.StringIO()

    def __enter__(self) -> BridgeStack:
        from criobe_bridge.app import create_app
        from criobe_bridge.settings import Settings

        self.nuclio = FakeNuclio(self.deployed).__enter__()
        self.cvat = FakeCvat(self.nuclio).__enter__()
        env = {
            "CVAT_URL": self.cvat.url,
            "CVAT_USER": ADMIN[0],
            "CVAT_PWD": ADMIN[1],
            "WEBHOOK_SECRET": "",
            "CACHE_DIR": str(self.tmp_path / "cache"),
            "AUTO_ANN_TIMEOUT": "60",
            "NUCLIO_HOST": "127.0.0.1",
            "NUCLIO_PORT": str(self.nuclio.port),
            "BRIDGE_TWIN_FUNCTION_URL": f"{self.nuclio.url}/{{name}}",
            "BRIDGE_TWIN_POLL_S": "0.05",
            **self.env,
        }
        self.settings = Settings.from_env(env)
        self.app = create_app(self.settings, log_stream=self.log)
        self.worker = self.app.state.bridge.worker
        return self

    def __exit__(self, *exc) -> None:
        self.worker.wait_idle(30)
        self.cvat.__exit__()
        self.nuclio.__exit__()

    # --- HTTP to the bridge -----------------------------------------------------------------

    def request(
        self, method: str, path: str, *, body: bytes = b"", headers=None
    ) -> tuple[int, Any, float]:
        """(status, JSON or text, seconds) of one request to the bridge app."""

        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bridge:8000") as c:
                return await c.request(method, path, content=body, headers=headers or {})

        start = time.perf_counter()
        r = asyncio.run(go())
        elapsed = time.perf_counter() - start
        try:
            out = r.json()
        except ValueError:
            out = r.text
        return r.status_code, out, elapsed

    def post(self, path: str, payload: dict, *, secret: str | None = None, signature: str | None = None,
             sign: bool = True) -> tuple[int, Any, float]:  # fmt: skip
        """POST a delivery as CVAT's sender does: json.dumps with default separators, its
        User-Agent, and X-Signature-256 when signing with a secret."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if signature is not None:
            headers["X-Signature-256"] = signature
        elif secret and sign:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Signature-256"] = f"sha256={digest}"
        return self.request("POST", path, body=body, headers=headers)

    def deliver(self) -> int:
        """Send every queued CVAT event to its webhook's target; the number sent."""
        items = self.cvat.take_outbox()
        for hook_id, payload in items:
            hook = self.cvat.webhooks[hook_id]
            status, out, elapsed = self.post(hook["target"], payload, secret=hook["secret"])
            hook["deliveries"].append({"event": payload["event"], "status_code": status,
                                       "response": out, "seconds": elapsed,
                                       "payload": payload})  # fmt: skip
        return len(items)

    def settle(self, timeout: float = 120.0) -> None:
        """Deliver and let the bridge work until no event is queued and its worker is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = self.deliver()
            idle = self.worker.wait_idle(max(0.1, deadline - time.monotonic()))
            time.sleep(0.05)  # a data request finishing may still queue create:job
            with self.cvat.lock:
                pending = bool(self.cvat.outbox) or any(
                    r["status"] in ("queued", "started") for r in self.cvat.requests.values()
                )
            if not sent and idle and not pending:
                return
        raise AssertionError(
            f"the stack did not settle in {timeout} s; log:\n{self.log.getvalue()}"
        )

    def deliveries(self, hook_id: int) -> list[dict]:
        return self.cvat.webhooks[hook_id]["deliveries"]
