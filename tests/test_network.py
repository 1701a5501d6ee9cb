"""Network layer: the stack's Docker network, who is on it, aliases and DNS between containers.

    pytest -m network

CVAT reaches Nuclio as `nuclio`, the bridge reaches CVAT as `cvat-server` and functions as
`nuclio-nuclio-<fn>`, OPA fetches its rules from `cvat-server`: all of it is Docker DNS on
`cvat_cvat`, so a container on another network, a missing alias or a broken resolver breaks
the pipeline silently. Name lookups run inside the container (its own resolver and
/etc/hosts); one without python3 is probed from a helper sharing its network namespace.
"""

from __future__ import annotations

import pytest

from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.probes import ProbeUnavailable
from criobe_verify.snapshot import display_name

pytestmark = [pytest.mark.network, pytest.mark.guide("step-3")]

THIS = "tests/test_network.py::"
NETWORK_CHECK = f"{THIS}test_stack_network_exists"


def _networks(container) -> dict:
    return container.attrs["NetworkSettings"].get("Networks") or {}


def test_stack_network_exists(stack_snapshot, profile):
    network = stack_snapshot.network(profile.network)
    if network is None:
        fail(
            Diagnosis(
                f"network {profile.network}",
                "does not exist",
                why=f"compose project {profile.compose_project!r} creates it from "
                "docker-compose.yml's network 'cvat'; was the stack started with another "
                "project name (-p) or from a directory of another name?",
                expected="it to exist",
                consequence="no container of the stack can reach another by name",
                fix="start the stack from the checkout, whose docker-compose.yml says name: cvat",
            )
        )
    driver = network.attrs.get("Driver")
    if driver != "bridge":
        fail(Diagnosis(f"network {profile.network}", f"driver {driver!r}", expected="'bridge'"))


def test_container_is_on_stack_network(networked_container, stack_container, profile, depends_on):
    name, _optional = networked_container
    depends_on(NETWORK_CHECK)
    c = stack_container(name)
    if c is None:
        pytest.skip(f"{name}: no such container (see the containers layer)")
    networks = sorted(_networks(c))
    if profile.network in networks:
        return
    function = name.startswith("nuclio-nuclio-")
    fail(
        Diagnosis(
            display_name(name, c),
            f"is on {', '.join(networks) or 'no network'}",
            expected=profile.network,
            consequence="the other stack containers cannot resolve or reach it",
            fix=(
                f"spec.platform.attributes.network: {profile.network} in its function.yaml"
                if function
                else "networks: [cvat] in its compose service"
            )
            + f", or docker network connect {profile.network} {c.name}",
        )
    )


def test_network_alias_is_set(aliased_container, stack_container, profile, depends_on):
    spec = aliased_container
    depends_on(NETWORK_CHECK)
    c = stack_container(spec.name)
    if c is None:
        pytest.skip(f"{spec.name}: no such container (see the containers layer)")
    endpoint = _networks(c).get(profile.network) or {}
    aliases = set(endpoint.get("Aliases") or []) | set(endpoint.get("DNSNames") or [])
    missing = [a for a in spec.aliases if a not in aliases]
    if not missing:
        return
    fail(
        *(
            Diagnosis(
                display_name(spec.name, c),
                f"alias {alias!r} missing on {profile.network}",
                observed=f"has {sorted(aliases)}",
                expected=repr(alias),
                consequence=(
                    "the bridge's CVAT_URL http://cvat-server:8080 does not resolve, and "
                    "http://cvat_server:8080 is refused by Django's host check"
                    if alias == "cvat-server"
                    else f"clients using {alias!r} fail"
                ),
                fix=f"networks: cvat: aliases: [{alias}] on service {spec.service}",
            )
            for alias in missing
        )
    )


def test_container_resolves_stack_names(
    dns_probe, stack_container, stack_snapshot, prober, profile, depends_on
):
    depends_on(NETWORK_CHECK)
    source = stack_container(dns_probe.source)
    if source is None:
        pytest.skip(f"{dns_probe.source}: no such container (see the containers layer)")
    network = stack_snapshot.network(profile.network)
    network.reload()
    by_ip = {
        endpoint["IPv4Address"].split("/")[0]: endpoint["Name"]
        for endpoint in (network.attrs.get("Containers") or {}).values()
    }
    problems = []
    try:
        results = prober.run_many(source, [("resolve", name) for name in dns_probe.names])
    except ProbeUnavailable as exc:
        pytest.skip(f"cannot look names up from inside it: {exc}")
    for name, result in zip(dns_probe.names, results, strict=True):
        if not result.addresses:
            problems.append(
                Diagnosis(
                    dns_probe.source,
                    f"cannot resolve {name}",
                    observed=result.error or "no address",
                    why="Docker's resolver (127.0.0.11) answers only containers on the same "
                    "network",
                    expected=f"the address of a container on {profile.network}",
                    consequence=f"{dns_probe.source} cannot reach {name}",
                    fix=f"check /etc/resolv.conf in {dns_probe.source} and that both are on "
                    f"{profile.network}",
                )
            )
        elif not any(a in by_ip for a in result.addresses):
            problems.append(
                Diagnosis(
                    dns_probe.source,
                    f"{name} resolves to {', '.join(result.addresses)}",
                    expected=f"a container on {profile.network} "
                    f"({', '.join(sorted(by_ip.values()))})",
                    consequence=f"{dns_probe.source} talks to something else than {name}",
                    fix=f"remove the stale /etc/hosts or extra_hosts entry for {name}",
                )
            )
    if problems:
        fail(*problems)
