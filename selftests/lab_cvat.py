"""A lab's CVAT 2.29.0 as the inventory reads it (criobe_verify/inventory.py), on 127.0.0.1 in
a thread: projects, labels, tasks, jobs, webhooks and their deliveries in CVAT's paged
listings (`page`, `page_size`, `count`, `next`), a job's annotations and frames. It answers
GETs and the login only, and keeps every request in `calls`: a test reads there that the
inventory wrote nothing and how many pages it asked for. bench/inventory.py serves 10,000
tasks with it.

    with LabCvat() as cvat:
        project = cvat.add_project("corals", {"acropora": "polygon"})
        task, job = cvat.add_task(project, "reef A", size=3)
        session = cvat.session()          # a CvatSession on it, as the run would log in
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from criobe_verify.profile import load_profile
from criobe_verify.resources.cvat import Cvat, CvatSession
from selftests import PROJECT_ROOT

TOKEN = "lab-token-0123456789abcdef"
MEDIA = "application/vnd.cvat+json"


def frame_bytes(job_id: int, number: int) -> bytes:
    """A frame's stand-in content: a JPEG header and bytes that differ per job and frame."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(f"{job_id}/{number}".encode()).digest() * 8


class LabCvat:
    def __init__(self) -> None:
        self.projects: dict[int, dict] = {}
        self.labels: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.jobs: dict[int, dict] = {}
        self.webhooks: dict[int, dict] = {}
        self.deliveries: dict[int, list[dict]] = {}  # webhook id → oldest first
        self.annotations: dict[int, dict] = {}
        self.frames: dict[tuple[int, int], bytes] = {}  # (job, frame) → bytes, else frame_bytes
        self.broken: set[str] = set()  # paths answered 500, e.g. "/api/webhooks"
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LabCvat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the lab's data ---

    def _id(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def add_project(self, name: str, labels: dict[str, str]) -> int:
        pid = self._id("project")
        self.projects[pid] = {"id": pid, "name": name, "labels": {"url": "…"}}
        for label, kind in labels.items():
            lid = self._id("label")
            self.labels[lid] = {
                "id": lid, "name": label, "type": kind, "color": "#ff0000", "attributes": [],
                "sublabels": [], "project_id": pid, "parent_id": None, "has_parent": False,
            }  # fmt: skip
        return pid

    def add_task(
        self, project_id: int | None, name: str, size: int = 1, jobs: int = 1
    ) -> tuple[int, int]:
        """A task of `size` frames cut into `jobs` jobs; its id and its first job's."""
        tid = self._id("task")
        self.tasks[tid] = {
            "id": tid, "name": name, "project_id": project_id, "size": size,
            "status": "annotation", "mode": "annotation", "segment_size": -(-size // jobs),
        }  # fmt: skip
        first, step = None, -(-size // jobs)
        for start in range(0, size, step):
            jid = self._id("job")
            first = first or jid
            self.jobs[jid] = {
                "id": jid, "task_id": tid, "project_id": project_id, "type": "annotation",
                "state": "new", "stage": "annotation", "status": "annotation",
                "start_frame": start, "stop_frame": min(start + step, size) - 1,
                "frame_count": min(step, size - start),
            }  # fmt: skip
            self.annotations[jid] = {"version": 0, "tags": [], "shapes": [], "tracks": []}
        return tid, first

    def add_webhook(
        self, project_id: int, target: str, events: tuple[str, ...] = ("update:job",)
    ) -> int:
        wid = self._id("webhook")
        self.webhooks[wid] = {
            "id": wid, "target_url": target, "description": "", "type": "project",
            "content_type": "application/json", "is_active": True, "enable_ssl": False,
            "project_id": project_id, "events": list(events), "organization": None,
        }  # fmt: skip
        self.deliveries[wid] = []
        return wid

    def deliver(self, webhook_id: int, status_code: int, event: str = "update:job") -> None:
        did = self._id("delivery")
        self.deliveries[webhook_id].append(
            {"id": did, "webhook_id": webhook_id, "event": event, "status_code": status_code}
        )

    def session(self) -> CvatSession:
        """A CvatSession on this CVAT: the twin's profile with its CVAT URL pointed here."""
        text = (PROJECT_ROOT / "profiles" / "twin.toml").read_text()
        path = Path(self._profile_dir()) / "lab.toml"
        path.write_text(text.replace('"http://localhost:8080"', f'"{self.url}"'))
        return CvatSession(Cvat(load_profile(str(path))), TOKEN)

    def _profile_dir(self) -> str:
        import tempfile

        if not hasattr(self, "_tmp"):
            self._tmp = tempfile.TemporaryDirectory(prefix="lab-cvat-")
        return self._tmp.name

    # --- the API ---

    def _page(self, items: list[dict], query: dict[str, str], path: str) -> dict[str, Any]:
        size = int(query.get("page_size", 10))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * size : page * size]
        more = page * size < len(items)
        return {
            "count": len(items),
            "next": f"{self.url}{path}?page={page + 1}&page_size={size}" if more else None,
            "previous": None,
            "results": chunk,
        }

    def answer(self, method: str, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            self.calls.append((method, path, query))
        if path in self.broken:
            return 500, MEDIA, b'{"detail": "broken"}'
        if method == "POST" and path == "/api/auth/login":
            return 200, MEDIA, json.dumps({"key": TOKEN}).encode()
        if method != "GET":
            return 405, MEDIA, b'{"detail": "read-only fake"}'
        parts = path.strip("/").split("/")
        listings = {
            "/api/projects": self.projects, "/api/tasks": self.tasks, "/api/jobs": self.jobs,
            "/api/labels": self.labels, "/api/webhooks": self.webhooks,
        }  # fmt: skip
        if path in listings:
            items = [listings[path][k] for k in sorted(listings[path])]
            return 200, MEDIA, json.dumps(self._page(items, query, path)).encode()
        if len(parts) == 4 and parts[:2] == ["api", "webhooks"] and parts[3] == "deliveries":
            newest_first = list(reversed(self.deliveries.get(int(parts[2]), [])))
            return 200, MEDIA, json.dumps(self._page(newest_first, query, path)).encode()
        if len(parts) == 4 and parts[:2] == ["api", "jobs"] and int(parts[2]) in self.jobs:
            jid = int(parts[2])
            if parts[3] == "annotations":
                return 200, MEDIA, json.dumps(self.annotations[jid]).encode()
            if parts[3] == "data" and query.get("type") == "frame":
                job, number = self.jobs[jid], int(query.get("number", -1))
                if not job["start_frame"] <= number <= job["stop_frame"]:
                    return 400, MEDIA, b'["The frame number doesn\'t belong to the job"]'
                content = self.frames.get((jid, number)) or frame_bytes(jid, number)
                return 200, "image/jpeg", content
        return 404, MEDIA, b'{"detail": "Not found."}'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cvat = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, media, body = cvat.answer(method, url.path.rstrip("/"), query)
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler
