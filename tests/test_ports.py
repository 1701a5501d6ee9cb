"""Ports layer: each published port answers its protocol, the bridge's port is reachable at
the Docker gateway the way CVAT reaches it, and the exposure audit (policy): nothing the profile
keeps internal is published on a public interface, whatever host port it is mapped to and
also through `network_mode: host`, and public ports are published on every interface.

    pytest -m ports

Replaces two of the install guide's checks: Nuclio 1.13 has no /api/healthz (the dashboard
answers /api/versions), and CVAT's about names itself "Computer Vision Annotation Tool".
"""

from __future__ import annotations

import httpx
import pytest
from criobe_verify.fixtures.probe_plan import bridge_at_gateway_call

from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.http import http_client
from criobe_verify.profile import Port

pytestmark = pytest.mark.ports

CVAT_NAME = "Computer Vision Annotation Tool"


def _request(who: str, url: str, method: str = "GET", **kwargs) -> httpx.Response:
    """One request from the host; a transport error fails naming `who` and the likely cause."""
    try:
        with http_client(timeout=10, follow_redirects=False) as client:
            return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    container = who.split()[0]
    fail(
        Diagnosis(
            who,
            f"{method} {url} failed",
            observed=error,
            expected="an HTTP answer",
            consequence="the port is published but nothing answers behind it",
            fix=f"check that {container} listens on the port it publishes (docker port "
            f"{container}) and its logs (docker logs {container})",
        )
    )


@pytest.mark.guide("step-5")
def test_cvat_ui_answers_head_through_traefik(profile):
    r = _request(
        "traefik (:8080)", f"{profile.cvat_url}/", "HEAD", headers={"Host": profile.cvat_host}
    )
    content_type = r.headers.get("content-type", "")
    if r.status_code == 200 and "text/html" in content_type:
        return
    fail(
        Diagnosis(
            "traefik (:8080)",
            f"HEAD / with Host {profile.cvat_host} answered {r.status_code}",
            observed=content_type or "no content type",
            why="404 means Traefik has no router for this Host: CVAT_HOST must match the name "
            "users browse to"
            if r.status_code == 404
            else "",
            expected="200 text/html from cvat_ui",
            consequence="the CVAT web UI does not load",
            fix="check cvat_ui and traefik (docker logs traefik)",
        )
    )


@pytest.mark.guide("post-install")
def test_cvat_api_answers_about_through_traefik(profile, report_note):
    report_note(
        "The guide's check greps the about answer for 'CVAT'; the real name is "
        f"{CVAT_NAME!r}, checked exactly."
    )
    url = f"{profile.cvat_url}/api/server/about"
    r = _request("traefik (:8080)", url, headers={"Host": profile.cvat_host})
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code == 200 and isinstance(body, dict) and body.get("name") == CVAT_NAME:
        return
    fail(
        Diagnosis(
            "cvat_server via traefik",
            f"GET {url} (Host {profile.cvat_host}) answered {r.status_code}",
            observed=repr(r.text[:200]),
            why="400 is Django's DisallowedHost: the host is not in ALLOWED_HOSTS"
            if r.status_code == 400
            else "",
            expected=f"200 with name {CVAT_NAME!r}",
            consequence="no client (the UI, the SDK, the bridge) can use CVAT's API",
            fix="add the host to ALLOWED_HOSTS; docker logs cvat_server",
        )
    )


@pytest.mark.guide("post-install")
def test_nuclio_dashboard_answers_api_versions(profile, report_note):
    report_note(
        "The guide probes /api/healthz, which Nuclio 1.13 does not serve (its /live and "
        "/ready are on the unpublished :8082); /api/versions is the dashboard's own answer."
    )
    url = f"{profile.nuclio_url}/api/versions"
    r = _request("nuclio (:8070)", url)
    try:
        label = r.json()["dashboard"]["label"]
    except (ValueError, KeyError, TypeError):
        label = None
    if r.status_code == 200 and label:
        return
    fail(
        Diagnosis(
            "nuclio (:8070)",
            f"GET {url} answered {r.status_code}",
            observed=repr(r.text[:200]),
            expected="200 with {'dashboard': {'label': ...}}",
            consequence="functions cannot be deployed or listed",
            fix="docker logs nuclio",
        )
    )


@pytest.mark.guide("step-7", "post-install")
def test_bridge_answers_health(profile):
    url = f"{profile.bridge_url}/health"
    r = _request("bridge (:8000)", url)
    try:
        ok = r.status_code == 200 and r.json().get("status") == "healthy"
    except (ValueError, AttributeError):
        ok = False
    if ok:
        return
    fail(
        Diagnosis(
            "bridge (:8000)",
            f"GET {url} answered {r.status_code}",
            observed=repr(r.text[:200]),
            expected='200 {"status": "healthy"}',
            consequence="no webhook is handled",
            fix="docker logs bridge",
        )
    )


def _bindings(container) -> list[str]:
    ports = container.attrs["NetworkSettings"].get("Ports") or {}
    return [
        f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}->{key}"
        for key, values in ports.items()
        for b in values or []
    ]


@pytest.mark.guide("step-8")
def test_bridge_port_is_reachable_at_docker_gateway(profile, gateway_ip, container_named, prober):
    """From inside cvat_server, straight to the gateway (no Smokescreen): the leg of a
    webhook's path that the bridge's port binding decides."""
    spec = next(p for p in profile.ports if p.exposure == "gateway")
    url = f"http://{gateway_ip}:{spec.port}/health"
    result = prober.run(
        container_named("cvat_server"), *bridge_at_gateway_call(profile, gateway_ip)
    )
    if result.status == 200:
        return
    published = _bindings(container_named(spec.container))
    loopback_only = bool(published) and all(p.startswith("127.") for p in published)
    fail(
        Diagnosis(
            spec.container,
            f"GET {url} from inside cvat_server "
            + (f"answered {result.status}" if result.ok else "failed"),
            observed=result.error or repr(result.body)[:200],
            why=f"it publishes {', '.join(published) or 'nothing'}"
            + (": bound to 127.0.0.1 only, unreachable at the gateway" if loopback_only else ""),
            expected=f"200 at the Docker gateway {gateway_ip} (bridge.gateway)",
            consequence="every webhook fails",
            fix=f'publish it as "{spec.port}:8000" in bridge/docker-compose.bridge.yml',
        )
    )


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


def _published_offenders(container, port: int) -> list[str]:
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


def _host_network_offender(container, port: int) -> str | None:
    if container.attrs["HostConfig"].get("NetworkMode") != "host":
        return None
    exposed = container.attrs["Config"].get("ExposedPorts") or {}
    if f"{port}/tcp" in exposed:
        return f"runs with network_mode: host, so its {port} listens on every host interface"
    return None


@pytest.mark.policy
@pytest.mark.guide("prereq", "step-3")
def test_internal_port_is_not_published_on_public_interface(
    internal_port, stack_snapshot, listeners, engine_host, stack_host
):
    offenders: list[str] = []
    for c in stack_snapshot.in_project():
        offenders += [f"{c.name} {what}" for what in _published_offenders(c, internal_port)]
        host_mode = _host_network_offender(c, internal_port)
        if host_mode:
            offenders.append(f"{c.name} {host_mode}")
    note = ""
    if engine_host.local:
        # Cross-check what really listens: a process in a host-network container binds the
        # host's sockets directly, with no port binding Docker could report.
        by_id = {c.id: c.name for c in stack_snapshot.containers}
        for lst in listeners():
            if lst.port != internal_port or lst.is_loopback:
                continue
            if lst.process.startswith("docker-proxy"):
                continue  # a published port, already named above
            owner = _container_of(stack_host, lst.process, by_id)
            offenders.append(
                f"{lst.address}:{lst.port} is listening ({lst.process or 'unknown process'}"
                + (f", in container {owner}" if owner else "")
                + ")"
            )
    else:
        note = " (the engine host's sockets were not visible; Docker's port table only)"
    if not offenders:
        return
    risk, where = EXPOSURE_RISK.get(internal_port, ("the profile keeps it internal", "its service"))
    fail(
        Diagnosis(
            f"port {internal_port}",
            "is reachable on a public interface" + note,
            observed="; ".join(dict.fromkeys(offenders)),
            expected="no public binding",
            consequence=risk,
            fix=f'remove the ports: entry of {where}, or bind it as "127.0.0.1:{internal_port}:'
            f'{internal_port}"; no network_mode: host',
        )
    )


def _container_of(stack_host, process: str, by_id: dict[str, str]) -> str | None:
    """The container a host process runs in, from its cgroup (docker-<id>.scope, /docker/<id>)."""
    pid = process.partition("pid=")[2].split(",")[0].strip()
    if not pid.isdigit():
        return None
    cgroup = stack_host.run("cat /proc/%s/cgroup", pid).stdout
    for cid, name in by_id.items():
        if cid in cgroup:
            return name
    return None


@pytest.mark.policy
@pytest.mark.guide("step-3")
def test_public_port_is_published_on_all_interfaces(public_port: Port, stack_container):
    """The profile says lab members reach this port from their machines."""
    c = stack_container(public_port.container)
    if c is None:
        pytest.skip(f"depends on container {public_port.container}, which is missing")
    bindings = [
        b.get("HostIp") or "0.0.0.0"
        for key, values in (c.attrs["NetworkSettings"].get("Ports") or {}).items()
        for b in values or []
        if b.get("HostPort") == str(public_port.port)
    ]
    if any(address in ("0.0.0.0", "::", "") for address in bindings):
        return
    fail(
        Diagnosis(
            public_port.container,
            f"publishes {public_port.port} on {', '.join(bindings) or 'no interface'}",
            expected='0.0.0.0 (exposure = "public" in the profile)',
            consequence="lab members cannot reach it from their machines",
            fix=f'"{public_port.port}:{public_port.port}" in its compose service, or set '
            'exposure = "loopback" in the profile if a reverse proxy fronts it',
        )
    )
