"""One read of the Docker engine, shared by the container, network and port checks, and the
lookup of the stack's containers by their Compose labels (project and service), falling back
to the profile's container name, so a fork that drops `container_name` is still checked.

    snapshot = StackSnapshot(docker.from_env(), profile)
    snapshot.find("cvat_server")        # the container of service cvat_server in project cvat
    snapshot.find("nuclio-nuclio-pth-lama")   # a function container, by its nuclio.io labels
    snapshot.refresh()                  # after the stack changed (a wait, a fault)

Checks that wait on a container's state reload that container themselves; everything else
reads the same snapshot, so a run costs one listing, not one inspect per check.
"""

from __future__ import annotations

from typing import Any

import docker
from docker.models.containers import Container as DockerContainer

from criobe_verify.profile import Profile

FUNCTION_PREFIX = "nuclio-nuclio-"


class StackSnapshot:
    def __init__(self, client: docker.DockerClient, profile: Profile) -> None:
        self.client = client
        self.profile = profile
        self._containers: list[DockerContainer] = []
        self._networks: dict[str, Any] = {}
        self.refresh()

    def refresh(self) -> None:
        self._containers = self.client.containers.list(all=True)
        self._networks = {}

    @property
    def containers(self) -> list[DockerContainer]:
        return list(self._containers)

    def _by_labels(self, labels: dict[str, str]) -> list[DockerContainer]:
        return [
            c
            for c in self._containers
            if all((c.labels or {}).get(k) == v for k, v in labels.items())
        ]

    def find(self, name: str) -> DockerContainer | None:
        """The container the profile calls `name` (a [[containers]] name or a function's
        nuclio-nuclio-<name>), found by labels first, then by container name."""
        candidates: list[DockerContainer] = []
        if name.startswith(FUNCTION_PREFIX):
            function = name.removeprefix(FUNCTION_PREFIX)
            candidates = self._by_labels(
                {"nuclio.io/function-name": function, "nuclio.io/namespace": "nuclio"}
            )
        else:
            spec = next((c for c in self.profile.containers if c.name == name), None)
            if spec is not None:
                candidates = self._by_labels(
                    {
                        "com.docker.compose.project": self.profile.compose_project,
                        "com.docker.compose.service": spec.service,
                    }
                )
        if candidates:
            # A scaled service has several: the one named as the profile says, else the first.
            return next((c for c in candidates if c.name == name), candidates[0])
        return next((c for c in self._containers if c.name == name), None)

    def in_project(self) -> list[DockerContainer]:
        """Every container of the compose project and every function container."""
        return [
            c
            for c in self._containers
            if (c.labels or {}).get("com.docker.compose.project") == self.profile.compose_project
            or (c.labels or {}).get("nuclio.io/function-name")
            or c.name.startswith(FUNCTION_PREFIX)
        ]

    def network(self, name: str):
        if name not in self._networks:
            try:
                self._networks[name] = self.client.networks.get(name)
            except docker.errors.NotFound:
                self._networks[name] = None
        return self._networks[name]


def display_name(expected: str, container: DockerContainer | None) -> str:
    """How messages name a container: the profile's name, and the real one if it differs."""
    if container is None or container.name == expected:
        return expected
    return f"{expected} (container {container.name})"
