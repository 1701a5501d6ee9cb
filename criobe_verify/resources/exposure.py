"""The exposure audit: where a port the profile keeps internal is reachable from outside, by
Docker's port table (any host port a container port is mapped to: a remapped `16379:6379`
counts), by `network_mode: host`, and by what really listens on the engine host's sockets;
and how a port lab members must reach is published.

    audit = InternalPort(8070, snapshot, listeners(), engine_host, stack_host)
    expect(not audit.offenders, audit.why_public)
"""

from __future__ import annotations

from typing import Any

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.profile import Port

# Why each internal port must stay internal, and where the fix goes.
EXPOSURE_RISK = {
    5432: (
        "PostgreSQL (cvat_db) trusts every connection in CVAT's compose",
        "cvat_db in docker-compose.yml",
    ),
    6379: (
        "Redis (cvat_redis_inmem) has no password in CVAT's compose",
        "cvat_redis_inmem in docker-compose.yml",
    ),
    6666: (
        "kvrocks (cvat_redis_ondisk) has no password in CVAT's compose",
        "cvat_redis_ondisk in docker-compose.yml",
    ),
    8070: (
        "the Nuclio dashboard has no authentication and drives the Docker socket, so anyone "
        "who reaches it runs containers as root on this host",
        "nuclio in components/serverless/docker-compose.serverless.yml (the stock file "
        "publishes '8070:8070')",
    ),
}


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "[::1]", "localhost")


def published_offenders(container: Any, port: int) -> list[str]:
    """Bindings on a public address of container port `port` or of host port `port`."""
    found = []
    for key, values in (container.attrs["NetworkSettings"].get("Ports") or {}).items():
        container_port = key.split("/")[0]
        for b in values or []:
            address = b.get("HostIp") or "0.0.0.0"
            if _is_loopback(address):
                continue
            if container_port == str(port) or b.get("HostPort") == str(port):
                shown = f"{address}:{b['HostPort']}".replace(":::", "[::]:")
                found.append(f"publishes {key} on {shown}")
    return found


def host_network_offender(container: Any, port: int) -> str | None:
    if container.attrs["HostConfig"].get("NetworkMode") != "host":
        return None
    exposed = container.attrs["Config"].get("ExposedPorts") or {}
    if f"{port}/tcp" in exposed:
        return f"runs with network_mode: host, so its {port} listens on every host interface"
    return None


def container_of(stack_host: Any, process: str, by_id: dict[str, str]) -> str | None:
    """The container a host process runs in, from its cgroup (docker-<id>.scope, /docker/<id>)."""
    pid = process.partition("pid=")[2].split(",")[0].strip()
    if not pid.isdigit():
        return None
    cgroup = stack_host.run("cat /proc/%s/cgroup", pid).stdout
    return next((name for cid, name in by_id.items() if cid in cgroup), None)


class InternalPort:
    """A port the profile keeps internal, audited across the stack's containers and the
    engine host's listening sockets."""

    def __init__(
        self, port: int, snapshot: Any, listeners: list, engine_host: Any, stack_host: Any
    ):
        self.port = port
        self.note = ""
        found: list[str] = []
        for c in snapshot.in_project():
            found += [f"{c.name} {what}" for what in published_offenders(c, port)]
            if host_mode := host_network_offender(c, port):
                found.append(f"{c.name} {host_mode}")
        if engine_host.local:
            # Cross-check what really listens: a process in a host-network container binds the
            # host's sockets directly, with no port binding Docker could report.
            by_id = {c.id: c.name for c in snapshot.containers}
            for lst in listeners:
                if lst.port != port or lst.is_loopback or lst.process.startswith("docker-proxy"):
                    continue  # docker-proxy: a published port, already named above
                owner = container_of(stack_host, lst.process, by_id)
                found.append(
                    f"{lst.address}:{lst.port} is listening ({lst.process or 'unknown process'}"
                    + (f", in container {owner}" if owner else "")
                    + ")"
                )
        else:
            self.note = " (the engine host's sockets were not visible; Docker's port table only)"
        self.offenders = list(dict.fromkeys(found))

    def why_public(self) -> Diagnosis:
        risk, where = EXPOSURE_RISK.get(self.port, ("the profile keeps it internal", "its service"))
        return Diagnosis(
            f"port {self.port}",
            "is reachable on a public interface" + self.note,
            observed="; ".join(self.offenders),
            expected="no public binding",
            consequence=risk,
            fix=f'remove the ports: entry of {where}, or bind it as "127.0.0.1:{self.port}:'
            f'{self.port}"; no network_mode: host',
        )


class PublicPort:
    """A port the profile says lab members reach from their machines."""

    def __init__(self, spec: Port, container: Any) -> None:
        self.spec, self.container = spec, container
        self.addresses = [
            b.get("HostIp") or "0.0.0.0"
            for values in (container.attrs["NetworkSettings"].get("Ports") or {}).values()
            for b in values or []
            if b.get("HostPort") == str(spec.port)
        ]

    @property
    def on_all_interfaces(self) -> bool:
        return any(address in ("0.0.0.0", "::", "") for address in self.addresses)

    def why_not_public(self) -> Diagnosis:
        port = self.spec.port
        return Diagnosis(
            self.spec.container,
            f"publishes {port} on {', '.join(self.addresses) or 'no interface'}",
            expected='0.0.0.0 (exposure = "public" in the profile)',
            consequence="lab members cannot reach it from their machines",
            fix=f'"{port}:{port}" in its compose service, or set exposure = "loopback" in the '
            "profile if a reverse proxy fronts it",
        )
