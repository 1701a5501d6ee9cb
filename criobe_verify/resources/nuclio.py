"""The Nuclio side as CVAT and the bridge use it: the dashboard (its version, the project
`cvat`), each profile function as the dashboard has it deployed, and CVAT's own listing of
them, as facts with the diagnosis of each way they can be wrong.

    nuclio = NuclioSide(dashboard, project_functions, profile, container_named)
    fn = nuclio.function(profile_function)
    expect(fn.deployed, fn.why_not_deployed)
    expect(fn.ready, fn.why_not_ready)
    expect(fn.http_port == fn.published_port, fn.why_port_moved)

The dashboard is asked once per run for the project's functions (`project_functions`), and
an unreachable dashboard fails the asking check with one diagnosis (fixtures/nuclio.py's
CheckedDashboard).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.nuclio import go_duration_s
from criobe_verify.profile import Function, Profile
from criobe_verify.resources.cvat_lambda import SpecLabel, parse_spec

TRIGGER_PORT = "8080/tcp"  # abstract.FunctionContainerHTTPPort, published by the local platform
# The policies under which Docker starts the container again when its daemon restarts (a host
# reboot, a Docker upgrade). `on-failure` does not: Docker restarts only containers that exited
# with an error, never on the daemon's start (docs.docker.com, "Start containers
# automatically"); `no` is what Nuclio 1.13's local platform gives a function whose
# function.yaml sets no restartPolicy (no defaultFunctionRestartPolicy in its platform config).
RESTARTS_WITH_DOCKER = ("always", "unless-stopped")

DEPLOY_FIX = (
    "nuctl deploy --project-name cvat --path ./serverless/<...>/nuclio/ --platform local "
    "(or import its function.yaml in the dashboard, project cvat)"
)


class NuclioSide:
    """The dashboard and the profile's Nuclio project."""

    def __init__(
        self,
        dashboard: Any,
        project_functions: Any,
        profile: Profile,
        container_named: Callable[[str], Any] | None = None,
    ) -> None:
        self.dashboard, self._project_functions, self.profile = (
            dashboard,
            project_functions,
            profile,
        )
        # A function's Docker container (nuclio-nuclio-<fn>); a missing one fails the asking
        # check saying so (fixtures/docker.py's container_named).
        self.container_named = container_named

    @property
    def version(self) -> str | None:
        return (self.dashboard.versions().get("dashboard") or {}).get("label")

    @property
    def expected_version(self) -> str:
        return self.profile.nuclio.version

    @property
    def projects(self) -> list[str]:
        return sorted(self.dashboard.projects())

    @property
    def project_exists(self) -> bool:
        return self.profile.nuclio.project in self.projects

    def function(self, fn: Function) -> DeployedFunction:
        return DeployedFunction(fn, self)

    def why_other_version(self) -> Diagnosis:
        return Diagnosis(
            "nuclio",
            f"the dashboard reports version {self.version!r}",
            expected=f"{self.expected_version!r} (profile {self.profile.name})",
            consequence="functions were verified with another Nuclio; nuctl must match the "
            "dashboard's version exactly",
            fix="image quay.io/nuclio/dashboard:1.13.0-amd64 in "
            "components/serverless/docker-compose.serverless.yml, or update the profile",
        )

    def why_no_project(self) -> Diagnosis:
        project = self.profile.nuclio.project
        return Diagnosis(
            "nuclio",
            f"has no project {project!r}",
            observed=f"projects: {self.projects or 'none'}",
            expected=f"project {project!r}",
            consequence="CVAT lists only that project's functions, and nuctl deploy into a "
            "missing project fails with 'Project does not exist'",
            fix=f"nuctl create project {project} --platform local",
        )


class DeployedFunction:
    """A profile function as the dashboard lists it in the profile's project."""

    def __init__(self, fn: Function, nuclio: NuclioSide) -> None:
        self.fn, self.nuclio = fn, nuclio
        self.entry: dict[str, Any] | None = nuclio._project_functions().get(fn.name)

    @property
    def deployed(self) -> bool:
        return self.entry is not None

    @property
    def status(self) -> dict[str, Any]:
        return (self.entry or {}).get("status") or {}

    @property
    def ready(self) -> bool:
        return self.status.get("state") == "ready" and bool(self.status.get("httpPort"))

    @property
    def http_port(self) -> int | None:
        """The host port the dashboard says the trigger is published on: what CVAT calls."""
        return self.status.get("httpPort") or None

    @cached_property
    def container(self) -> Any:
        if self.nuclio.container_named is None:
            raise RuntimeError("NuclioSide was built without container_named")
        return self.nuclio.container_named(self.fn.container)

    @property
    def published_port(self) -> int | None:
        """The host port Docker publishes the trigger (8080/tcp) on now (docker port)."""
        ports = self.container.attrs["NetworkSettings"].get("Ports") or {}
        for binding in ports.get(TRIGGER_PORT) or []:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
        return None

    @property
    def restart_policy(self) -> str:
        return (self.container.attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"

    @property
    def restarts_with_docker(self) -> bool:
        return self.restart_policy in RESTARTS_WITH_DOCKER

    @property
    def event_timeout(self) -> str:
        """spec.eventTimeout as the dashboard lists it; "" where the function.yaml has none."""
        return ((self.entry or {}).get("spec") or {}).get("eventTimeout") or ""

    @property
    def event_timeout_s(self) -> float | None:
        """The processor's bound on one event, in seconds; None: no bound at all (Nuclio 1.13
        has no default, its processor starts no event-timeout watcher without one)."""
        return go_duration_s(self.event_timeout) if self.event_timeout else None

    @property
    def cvat_spec(self) -> tuple[SpecLabel, ...]:
        """The labels its function.yaml declares (metadata.annotations.spec) as CVAT parses
        them: what CVAT maps onto a project's labels."""
        annotations = ((self.entry or {}).get("metadata") or {}).get("annotations") or {}
        return parse_spec(annotations.get("spec"))

    @property
    def spec_labels(self) -> set[str]:
        """The names of its spec's labels."""
        return {label.name for label in self.cvat_spec}

    def why_not_deployed(self) -> Diagnosis:
        project = self.nuclio.profile.nuclio.project
        anywhere = self.nuclio.dashboard.function(self.fn.name)
        elsewhere = ((anywhere or {}).get("metadata", {}).get("labels") or {}).get(
            "nuclio.io/project-name"
        )
        return Diagnosis(
            "nuclio",
            f"function {self.fn.name} is not deployed in project {project!r}",
            observed=f"deployed in project {elsewhere!r}" if anywhere else "not deployed",
            expected=f"{self.fn.name} in project {project!r}",
            consequence=f"CVAT and the bridge cannot call {self.fn.name} ({self.fn.role})",
            fix=DEPLOY_FIX,
        )

    def why_not_ready(self) -> Diagnosis:
        status = self.status
        return Diagnosis(
            "nuclio",
            f"function {self.fn.name} is {status.get('state')!r}",
            observed=(status.get("message") or "")[:300] or f"httpPort {status.get('httpPort')}",
            expected="'ready' with an httpPort",
            consequence=f"calls to {self.fn.name} fail",
            fix=f"docker logs nuclio-nuclio-{self.fn.name}; redeploy it ({DEPLOY_FIX})",
        )

    def why_port_moved(self) -> Diagnosis:
        published, said = self.published_port, self.http_port
        return Diagnosis(
            self.fn.container,
            f"the port moved: the dashboard says {said}, the container publishes "
            + (f"{published}" if published else "nothing")
            + " for its trigger (8080/tcp)",
            why="a function published on a random port gets another one from Docker when "
            "its container restarts (docker restart, a daemon restart, a reboot), and the "
            "dashboard keeps the old httpPort (nuclio/nuclio#1668)",
            expected=f"status.httpPort equal to the published port {published}",
            consequence=f"CVAT calls host.docker.internal:{said} and reaches nothing: "
            f"{self.fn.name} fails with 503",
            fix=f"redeploy {self.fn.name} (nuctl deploy {self.fn.name} --project-name "
            f"{self.nuclio.profile.nuclio.project} --platform local, or the dashboard's "
            "redeploy): Nuclio reuses the published port and pins it; or set the trigger's "
            "attributes.port in function.yaml",
        )

    def why_not_restarted_with_docker(self) -> Diagnosis:
        return Diagnosis(
            self.fn.container,
            f"restart policy {self.restart_policy!r}",
            why="Nuclio 1.13 gives a function no restart policy unless its function.yaml sets "
            "spec.platform.attributes.restartPolicy; on-failure is not applied when the "
            "Docker daemon starts",
            expected=" or ".join(repr(p) for p in RESTARTS_WITH_DOCKER),
            consequence=f"after a reboot or a Docker restart {self.fn.name} stays down while "
            "the dashboard lists it (nuclio/nuclio#1668)",
            fix="spec.platform.attributes.restartPolicy: {name: always} in its function.yaml "
            "(CVAT's functions set it), then redeploy it",
        )


@dataclass(frozen=True)
class CvatFunctionListing:
    """CVAT's GET /api/lambda/functions: what the bridge and the UI's auto-annotation see."""

    status: int
    text: str

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def listed(self) -> dict[str, dict]:
        return {f["id"]: f for f in json.loads(self.text)} if self.ok else {}

    def labels(self, name: str) -> set[str] | None:
        """The labels CVAT lists for the function, None when it does not list it."""
        entry = self.listed.get(name)
        return None if entry is None else {label["name"] for label in entry.get("labels_v2") or []}

    def why_failed(self) -> Diagnosis:
        return Diagnosis(
            "cvat_server",
            f"GET /api/lambda/functions answered {self.status}",
            observed=self.text[:300],
            expected="200 with the dashboard's functions",
            consequence="automatic annotation is unavailable in CVAT",
            fix="check CVAT_SERVERLESS and that cvat_server reaches nuclio:8070 "
            "(components/serverless/docker-compose.serverless.yml)",
        )

    def why_not_listed(self, name: str, wanted: set[str]) -> Diagnosis:
        labels = self.labels(name)
        return Diagnosis(
            "cvat_server",
            "/api/lambda/functions "
            + (
                f"does not list {name}"
                if labels is None
                else f"lists {name} with labels {sorted(labels)}"
            ),
            observed=f"listed: {sorted(self.listed)}",
            expected=f"{name} with labels {sorted(wanted)}",
            consequence="CVAT cannot map the function's labels onto the project's, so its "
            "predictions are dropped",
            fix="metadata.annotations.type and spec in the function's function.yaml",
        )
