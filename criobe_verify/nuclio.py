"""The Nuclio 1.13 dashboard API as the suite uses it: versions, projects, functions, deploy.

    dashboard = Dashboard("http://localhost:8070")
    dashboard.ensure_project("cvat")
    dashboard.deploy(function_config(Path(".../gridcorners/nuclio/function.yaml"), "cvat"))
    dashboard.wait_ready(["pth-yolo-gridcorners"], timeout=180)
    dashboard.function("pth-yolo-gridcorners")["status"]["httpPort"]

The namespace goes in the `x-nuclio-function-namespace` header only (Nuclio reads no
`?namespace=`), the project in `x-nuclio-project-name`; CVAT reads namespace `nuclio`, the
one `nuctl deploy` uses by default, so a function.yaml's own `metadata.namespace` (CVAT's
files say `cvat`) is replaced by it, as nuctl's `-n` does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from criobe_verify.http import http_client
from criobe_verify.waiting import WaitFailed, WaitStrategy, wait_for

log = logging.getLogger("criobe_verify")

NAMESPACE = "nuclio"  # CVAT_NUCLIO_FUNCTION_NAMESPACE's default, and nuctl's


class DashboardError(RuntimeError):
    pass


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_s(text: str) -> float:
    """Seconds of a Go time.ParseDuration string, as a function.yaml's eventTimeout is written.

    >>> go_duration_s("30s"), go_duration_s("1m30s"), go_duration_s("500ms"), go_duration_s("2h")
    (30.0, 90.0, 0.5, 7200.0)
    """
    text, pos, total = text.strip(), 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return total


def function_config(path: Path, project: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """A function.yaml as the dashboard deploys it: namespace and project set like nuctl's
    `deploy --project-name <project>` with its default namespace."""
    config = yaml.safe_load(path.read_text())
    meta = config.setdefault("metadata", {})
    meta["namespace"] = namespace
    meta.setdefault("labels", {})["nuclio.io/project-name"] = project
    return config


class Dashboard:
    def __init__(self, url: str, namespace: str = NAMESPACE, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.client = http_client(base_url=self.url, timeout=timeout)

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DashboardError(
                f"cannot reach the Nuclio dashboard at {self.url}: {type(exc).__name__}: {exc}"
            ) from None

    def _headers(self, project: str | None = None) -> dict[str, str]:
        headers = {"x-nuclio-function-namespace": self.namespace}
        if project:
            headers["x-nuclio-project-name"] = project
        return headers

    def _check(self, r: httpx.Response, what: str, ok: tuple[int, ...]) -> httpx.Response:
        if r.status_code not in ok:
            raise DashboardError(f"nuclio: {what} answered {r.status_code}: {r.text[:300]}")
        return r

    def versions(self) -> dict:
        return self._check(
            self._request("GET", "/api/versions"), "GET /api/versions", (200,)
        ).json()

    def projects(self) -> dict[str, dict]:
        r = self._request(
            "GET", "/api/projects", headers={"x-nuclio-project-namespace": self.namespace}
        )
        return self._check(r, "GET /api/projects", (200,)).json()

    def ensure_project(self, name: str) -> bool:
        """Create the project when missing (`nuctl create project`); True if created here."""
        if name in self.projects():
            return False
        body = {"metadata": {"name": name, "namespace": self.namespace}, "spec": {}}
        self._check(
            self._request("POST", "/api/projects", json=body), "POST /api/projects", (200, 201)
        )
        return True

    def delete_project(self, name: str) -> None:
        body = {"metadata": {"name": name, "namespace": self.namespace}}
        r = self._request("DELETE", "/api/projects", json=body)
        self._check(r, f"DELETE project {name}", (200, 204, 404))

    def functions(self, project: str | None = None) -> dict[str, dict]:
        r = self._request("GET", "/api/functions", headers=self._headers(project))
        return self._check(r, "GET /api/functions", (200,)).json()

    def function(self, name: str) -> dict | None:
        r = self._request("GET", f"/api/functions/{name}", headers=self._headers())
        if r.status_code == 404:
            return None
        return self._check(r, f"GET /api/functions/{name}", (200,)).json()

    def deploy(self, config: dict[str, Any]) -> None:
        project = config["metadata"]["labels"]["nuclio.io/project-name"]
        name = config["metadata"]["name"]
        existing = self.function(name)
        if existing is None:
            r = self._request("POST", "/api/functions", json=config, headers=self._headers(project))
        else:
            r = self._request(
                "PUT", f"/api/functions/{name}", json=config, headers=self._headers(project)
            )
        self._check(r, f"deploy {name}", (200, 201, 202, 204))

    def delete(self, name: str) -> None:
        body = {"metadata": {"name": name, "namespace": self.namespace}}
        r = self._request("DELETE", "/api/functions", json=body, headers=self._headers())
        self._check(r, f"DELETE function {name}", (200, 204, 404))

    def wait_ready(self, names: list[str], timeout: float, log_every: float = 10) -> None:
        """Until every function is `ready`; an `error` state fails at once with its message."""
        wait_for(
            FunctionsReady(self, names),
            timeout=timeout,
            what="nuclio: functions",
            log_every=log_every,
        )

    def close(self) -> None:
        self.client.close()


@dataclass
class FunctionsReady(WaitStrategy):
    """Every named function `ready` on the dashboard; one in `error` fails the wait at once
    with the dashboard's message (redeploying will not come by waiting)."""

    dashboard: Dashboard
    names: list[str]
    name: str = "functions"

    def check(self) -> tuple[bool, str]:
        waiting = {}
        for name in self.names:
            status = ((self.dashboard.function(name) or {}).get("status")) or {}
            state = status.get("state", "absent")
            if state == "error":
                raise WaitFailed(
                    f"nuclio: function {name} failed to deploy: {status.get('message', '')[:500]}"
                )
            if state != "ready":
                waiting[name] = state
        return not waiting, ", ".join(f"{n} {s}" for n, s in waiting.items()) or "all ready"
