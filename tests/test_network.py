"""Network layer: the stack's Docker network, who is on it, aliases and DNS between containers.

    pytest -m network

CVAT reaches Nuclio as `nuclio`, the bridge reaches CVAT as `cvat-server` and functions as
`nuclio-nuclio-<fn>`: all of it is Docker DNS on `cvat_cvat`, so a container on another
network, a missing alias or a broken resolver breaks the pipeline silently.
"""

from __future__ import annotations

import pytest

from criobe_verify.containers import exec_output

pytestmark = pytest.mark.network


@pytest.fixture
def stack_network(docker_client, profile):
    import docker

    try:
        return docker_client.networks.get(profile.network)
    except docker.errors.NotFound:
        return None


def _networks(container) -> dict:
    return container.attrs["NetworkSettings"].get("Networks") or {}


def test_stack_network_exists(stack_network, profile):
    assert stack_network is not None, (
        f"network {profile.network}: does not exist — compose project {profile.compose_project!r} "
        f"creates it from docker-compose.yml's network 'cvat'. Was the stack started with another "
        f"project name (-p) or directory name? Fix: start it from the checkout with `name: cvat`."
    )
    driver = stack_network.attrs.get("Driver")
    assert driver == "bridge", f"network {profile.network}: driver {driver!r}, expected 'bridge'"


def test_stack_containers_are_on_stack_network(expected_containers, stack_container, profile):
    off = []
    for name in expected_containers:
        c = stack_container(name)
        if c is None:
            continue
        networks = sorted(_networks(c))
        if profile.network not in networks:
            off.append(
                f"{name}: on {', '.join(networks) or 'no network'}, expected {profile.network} — "
                f"other stack containers cannot resolve or reach it. Fix: networks: [cvat] in its "
                f"compose service (functions: platform.attributes.network: {profile.network}), or "
                f"docker network connect {profile.network} {name}"
            )
    assert not off, "\n".join(off)


def test_network_aliases_are_set(stack_container, profile):
    missing = []
    for spec in profile.containers:
        c = stack_container(spec.name)
        if c is None or not spec.aliases:
            continue
        endpoint = _networks(c).get(profile.network) or {}
        aliases = set(endpoint.get("Aliases") or []) | set(endpoint.get("DNSNames") or [])
        for alias in spec.aliases:
            if alias not in aliases:
                missing.append(
                    f"{spec.name}: alias {alias!r} missing on {profile.network} "
                    f"(has {sorted(aliases)}) — "
                    + (
                        "the bridge's CVAT_URL http://cvat-server:8080 does not resolve, and "
                        "http://cvat_server:8080 is refused by Django's host check. "
                        if alias == "cvat-server"
                        else f"clients using {alias!r} fail. "
                    )
                    + f"Fix: networks: cvat: aliases: [{alias}] on service {spec.service}."
                )
    assert not missing, "\n".join(missing)


def test_containers_resolve_each_other(stack_container, stack_network, profile):
    assert stack_network is not None, f"network {profile.network} missing"
    stack_network.reload()
    by_ip = {
        endpoint["IPv4Address"].split("/")[0]: endpoint["Name"]
        for endpoint in (stack_network.attrs.get("Containers") or {}).values()
    }
    problems = []
    for probe in profile.dns:
        source = stack_container(probe.source)
        if source is None:
            problems.append(f"{probe.source}: container missing, cannot probe DNS from it")
            continue
        for name in probe.names:
            code, out = exec_output(source, ["getent", "hosts", name])
            ip = out.split()[0] if code == 0 and out.split() else None
            if ip is None:
                problems.append(
                    f"{probe.source}: `getent hosts {name}` failed (exit {code}"
                    + (", timed out" if code == 124 else "")
                    + f"{': ' + out.strip()[:120] if out.strip() else ''}) — {probe.source} "
                    f"cannot reach {name}. Check /etc/resolv.conf in {probe.source} "
                    "(Docker's resolver is 127.0.0.11) and that both are on "
                    f"{profile.network}."
                )
            elif ip not in by_ip:
                problems.append(
                    f"{probe.source}: {name} resolves to {ip}, which is not a container on "
                    f"{profile.network} ({', '.join(sorted(by_ip.values()))}). Fix: remove the "
                    f"stale /etc/hosts or extra_hosts entry for {name}."
                )
    assert not problems, "\n".join(problems)
