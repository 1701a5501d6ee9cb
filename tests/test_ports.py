"""Ports layer: each published port answers its protocol from the host, and the exposure
audit: nothing the profile keeps internal is published on a public interface.

    pytest -m ports

Replaces two of the install guide's checks: Nuclio 1.13 has no /api/healthz (the dashboard
answers /api/versions), and CVAT's about names itself "Computer Vision Annotation Tool".
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.ports

CVAT_NAME = "Computer Vision Annotation Tool"


def _get(who: str, url: str, method: str = "GET", **kwargs) -> httpx.Response:
    """One request from the host; a transport error fails naming `who` and the likely cause."""
    try:
        return httpx.request(method, url, timeout=10, follow_redirects=False, **kwargs)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    pytest.fail(
        f"{who}: {method} {url} failed: {error}. The port is published but nothing answers "
        f"behind it: check that the container listens on the port it publishes (docker port "
        f"{who.split()[0]}) and its logs (docker logs {who.split()[0]}).",
        pytrace=False,
    )


def test_cvat_ui_answers_head_through_traefik(profile):
    r = _get("traefik (:8080)", f"{profile.cvat_url}/", "HEAD", headers={"Host": profile.cvat_host})
    content_type = r.headers.get("content-type", "")
    assert r.status_code == 200 and "text/html" in content_type, (
        f"traefik (:8080): HEAD / with Host {profile.cvat_host} answered {r.status_code} "
        f"({content_type or 'no content type'}), expected 200 text/html from cvat_ui. "
        + (
            "404 means Traefik has no router for this Host: CVAT_HOST must match the name "
            "users browse to. "
            if r.status_code == 404
            else ""
        )
        + "Fix: check cvat_ui and traefik (docker logs traefik)."
    )


def test_cvat_api_answers_about_through_traefik(profile, report_note):
    report_note(
        "The guide's check greps the about answer for 'CVAT'; the real name is "
        f"{CVAT_NAME!r}, checked exactly."
    )
    url = f"{profile.cvat_url}/api/server/about"
    r = _get("traefik (:8080)", url, headers={"Host": profile.cvat_host})
    try:
        body = r.json()
    except ValueError:
        body = None
    assert r.status_code == 200 and isinstance(body, dict) and body.get("name") == CVAT_NAME, (
        f"cvat_server via traefik: GET {url} (Host {profile.cvat_host}) answered {r.status_code} "
        f"{r.text[:200]!r}, expected 200 with name {CVAT_NAME!r}. "
        + (
            "400 is Django's DisallowedHost: add the host to ALLOWED_HOSTS. "
            if r.status_code == 400
            else ""
        )
        + "Fix: docker logs cvat_server."
    )


def test_nuclio_dashboard_answers_api_versions(profile, report_note):
    report_note(
        "The guide probes /api/healthz, which Nuclio 1.13 does not serve (its /live and "
        "/ready are on the unpublished :8082); /api/versions is the dashboard's own answer."
    )
    url = f"{profile.nuclio_url}/api/versions"
    r = _get("nuclio (:8070)", url)
    try:
        label = r.json()["dashboard"]["label"]
    except (ValueError, KeyError, TypeError):
        label = None
    assert r.status_code == 200 and label, (
        f"nuclio (:8070): GET {url} answered {r.status_code} {r.text[:200]!r}, expected 200 "
        "with {'dashboard': {'label': ...}}. Fix: docker logs nuclio."
    )


def test_bridge_answers_health(profile):
    url = f"{profile.bridge_url}/health"
    r = _get("bridge (:8000)", url)
    assert r.status_code == 200 and r.text and r.json().get("status") == "healthy", (
        f"bridge (:8000): GET {url} answered {r.status_code} {r.text[:200]!r}, expected 200 "
        '{"status": "healthy"}. Fix: docker logs bridge.'
    )


def test_bridge_port_is_reachable_at_docker_gateway(profile, gateway_ip, stack_container):
    spec = next(p for p in profile.ports if p.exposure == "gateway")
    url = f"http://{gateway_ip}:{spec.port}/health"
    try:
        r = httpx.get(url, timeout=10)
        outcome = f"answered {r.status_code}"
        ok = r.status_code == 200
    except httpx.HTTPError as exc:
        outcome, ok = f"failed: {type(exc).__name__}", False
    container = stack_container(spec.container)
    bindings = (
        (container.attrs["NetworkSettings"].get("Ports") or {}) if container is not None else {}
    )
    published = [
        f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}->{key}"
        for key, values in bindings.items()
        for b in values or []
    ]
    loopback_only = published and all(p.startswith("127.") for p in published)
    assert ok, (
        f"{spec.container}: GET {url} {outcome}; it publishes {', '.join(published) or 'nothing'}. "
        f"CVAT reaches the bridge at bridge.gateway:{spec.port}, i.e. the Docker gateway "
        f"{gateway_ip}"
        + (", but the port is bound to 127.0.0.1 only" if loopback_only else "")
        + ", so every webhook fails. Fix: publish it as "
        f'"{spec.port}:8000" in bridge/docker-compose.bridge.yml.'
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


def test_internal_port_is_not_published_on_public_interface(
    internal_port, docker_client, profile, expected_containers
):
    offenders: dict[str, list[str]] = {}
    for c in docker_client.containers.list():
        in_stack = c.name in expected_containers or (
            c.labels.get("com.docker.compose.project") == profile.compose_project
        )
        if not in_stack:
            continue
        for container_port, bindings in (c.attrs["NetworkSettings"].get("Ports") or {}).items():
            for b in bindings or []:
                address = b.get("HostIp") or "0.0.0.0"
                if b.get("HostPort") == str(internal_port) and not (
                    address.startswith("127.") or address == "::1"
                ):
                    offenders.setdefault(f"{c.name} publishes {container_port}", []).append(
                        f"{address}:{internal_port}".replace(":::", "[::]:")
                    )
    risk, where = EXPOSURE_RISK.get(internal_port, ("the profile keeps it internal", "its service"))
    assert not offenders, (
        "; ".join(f"{who} on {' and '.join(addrs)}" for who, addrs in offenders.items())
        + f" — port {internal_port} must stay off public interfaces: {risk}. Fix: remove the "
        f'ports: entry of {where}, or bind it as "127.0.0.1:{internal_port}:{internal_port}".'
    )
