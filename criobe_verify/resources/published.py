"""The stack's published ports as a lab member's machine reaches them: CVAT's UI and API
through Traefik on 8080, the Nuclio dashboard on 8070, the bridge on 8000. Each answer is read
once into a typed fact; each service owns the diagnosis of a wrong answer.

    ui = PublishedService.cvat_ui(profile)
    answer = ui.request("HEAD", "/")
    expect(answer.answered, lambda: ui.why_unreachable(answer))
    expect(answer.status == 200 and answer.html, lambda: ui.why_not_the_ui(answer))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.http import http_client
from criobe_verify.profile import Profile

CVAT_NAME = "Computer Vision Annotation Tool"


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP exchange as the host saw it; `error` is set when no answer came."""

    method: str
    url: str
    status: int | None = None
    content_type: str = ""
    text: str = ""
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def html(self) -> bool:
        return "text/html" in self.content_type

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        import json

        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def field(self, *path: str) -> Any:
        """A nested field of a JSON object body, None wherever it is missing.

        >>> HttpAnswer("GET", "u", 200, text='{"dashboard": {"label": "1.13.0"}}').field("dashboard", "label")
        '1.13.0'
        >>> HttpAnswer("GET", "u", 200, text="<html>").field("name") is None
        True
        """
        value = self.json()
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass(frozen=True)
class PublishedService:
    """A service as the host reaches it on its published port."""

    who: str  # "traefik (:8080)": the container and the port, as messages name it
    base_url: str
    host_header: str | None = None
    front: str = ""  # the published container a request goes through, when not `who`

    @classmethod
    def cvat_ui(cls, profile: Profile) -> PublishedService:
        return cls("traefik (:8080)", profile.cvat_url, profile.cvat_host)

    @classmethod
    def cvat_api(cls, profile: Profile) -> PublishedService:
        return cls(
            "cvat_server via traefik", profile.cvat_url, profile.cvat_host, "traefik (:8080)"
        )

    @classmethod
    def nuclio(cls, profile: Profile) -> PublishedService:
        return cls("nuclio (:8070)", profile.nuclio_url)

    @classmethod
    def bridge(cls, profile: Profile) -> PublishedService:
        return cls("bridge (:8000)", profile.bridge_url)

    def request(self, method: str, path: str) -> HttpAnswer:
        url = f"{self.base_url}{path}"
        headers = {"Host": self.host_header} if self.host_header else {}
        try:
            with http_client(timeout=10, follow_redirects=False) as client:
                r = client.request(method, url, headers=headers)
        except httpx.HTTPError as exc:
            return HttpAnswer(method, url, error=f"{type(exc).__name__}: {exc}")
        return HttpAnswer(method, url, r.status_code, r.headers.get("content-type", ""), r.text)

    def _asked(self, answer: HttpAnswer) -> str:
        host = f" (Host {self.host_header})" if self.host_header else ""
        return f"{answer.method} {answer.url}{host} answered {answer.status}"

    # -- diagnoses ----------------------------------------------------------------------

    def why_unreachable(self, answer: HttpAnswer) -> Diagnosis:
        who = self.front or self.who
        container = who.split()[0]
        return Diagnosis(
            who,
            f"{answer.method} {answer.url} failed",
            observed=answer.error,
            expected="an HTTP answer",
            consequence="the port is published but nothing answers behind it",
            fix=f"check that {container} listens on the port it publishes (docker port "
            f"{container}) and its logs (docker logs {container})",
        )

    def why_not_the_ui(self, answer: HttpAnswer) -> Diagnosis:
        return Diagnosis(
            self.who,
            f"HEAD / with Host {self.host_header} answered {answer.status}",
            observed=answer.content_type or "no content type",
            why="404 means Traefik has no router for this Host: CVAT_HOST must match the name "
            "users browse to"
            if answer.status == 404
            else "",
            expected="200 text/html from cvat_ui",
            consequence="the CVAT web UI does not load",
            fix="check cvat_ui and traefik (docker logs traefik)",
        )

    def why_not_cvat(self, answer: HttpAnswer) -> Diagnosis:
        path = answer.url.removeprefix(self.base_url)
        return Diagnosis(
            self.who,
            f"GET {self.base_url}{path} (Host {self.host_header}) answered {answer.status}",
            observed=repr(answer.text[:200]),
            why="400 is Django's DisallowedHost: the host is not in ALLOWED_HOSTS"
            if answer.status == 400
            else "",
            expected=f"200 with name {CVAT_NAME!r}",
            consequence="no client (the UI, the SDK, the bridge) can use CVAT's API",
            fix="add the host to ALLOWED_HOSTS; docker logs cvat_server",
        )

    def why_not_the_dashboard(self, answer: HttpAnswer) -> Diagnosis:
        return Diagnosis(
            self.who,
            f"GET {answer.url} answered {answer.status}",
            observed=repr(answer.text[:200]),
            expected="200 with {'dashboard': {'label': ...}}",
            consequence="functions cannot be deployed or listed",
            fix="docker logs nuclio",
        )

    def why_not_healthy(self, answer: HttpAnswer) -> Diagnosis:
        return Diagnosis(
            self.who,
            f"GET {answer.url} answered {answer.status}",
            observed=repr(answer.text[:200]),
            expected='200 {"status": "healthy"}',
            consequence="no webhook is handled",
            fix="docker logs bridge",
        )
