"""The stack's Docker network (`cvat_cvat`): whether it exists, who is on it under which
aliases, and what names resolve to inside a container, with the diagnosis of each way it can
be wrong. CVAT reaches Nuclio as `nuclio`, the bridge reaches CVAT as `cvat-server`: all of it
is Docker DNS on that network.

    net = StackNetwork(snapshot, profile)
    expect(net.exists, net.why_missing)
    membership = net.membership(containers["bridge"])
    expect(membership.on_network, membership.why_off_network)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.probe_answers import Resolution
from criobe_verify.probes import ProbeUnavailable
from criobe_verify.profile import Container, DnsProbe, Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts
from criobe_verify.resources.container import StackContainer
from criobe_verify.snapshot import FUNCTION_PREFIX, StackSnapshot


class StackNetwork:
    def __init__(self, snapshot: StackSnapshot, profile: Profile) -> None:
        self.snapshot, self.profile, self.name = snapshot, profile, profile.network
        self.network = snapshot.network(profile.network)

    @property
    def exists(self) -> bool:
        return self.network is not None

    @property
    def driver(self) -> str | None:
        return self.network.attrs.get("Driver") if self.network is not None else None

    def members_by_ip(self) -> dict[str, str]:
        """IPv4 address → container name, read fresh (a check may follow a change)."""
        self.network.reload()
        return {
            endpoint["IPv4Address"].split("/")[0]: endpoint["Name"]
            for endpoint in (self.network.attrs.get("Containers") or {}).values()
        }

    def membership(self, container: StackContainer) -> Membership:
        return Membership(container, self.name)

    def why_missing(self) -> Diagnosis:
        return Diagnosis(
            f"network {self.name}",
            "does not exist",
            why=f"compose project {self.profile.compose_project!r} creates it from "
            "docker-compose.yml's network 'cvat'; was the stack started with another "
            "project name (-p) or from a directory of another name?",
            expected="it to exist",
            consequence="no container of the stack can reach another by name",
            fix="start the stack from the checkout, whose docker-compose.yml says name: cvat",
        )

    def why_wrong_driver(self) -> Diagnosis:
        return Diagnosis(f"network {self.name}", f"driver {self.driver!r}", expected="'bridge'")


@dataclass(frozen=True)
class Membership:
    """A container's endpoint on the stack network."""

    container: StackContainer
    network: str

    @property
    def networks(self) -> dict[str, Any]:
        return self.container.container.attrs["NetworkSettings"].get("Networks") or {}

    @property
    def on_network(self) -> bool:
        return self.network in self.networks

    @property
    def aliases(self) -> set[str]:
        endpoint = self.networks.get(self.network) or {}
        return set(endpoint.get("Aliases") or []) | set(endpoint.get("DNSNames") or [])

    def missing_aliases(self, spec: Container) -> list[str]:
        return [a for a in spec.aliases if a not in self.aliases]

    def why_off_network(self) -> Diagnosis:
        c = self.container
        on = ", ".join(sorted(self.networks)) or "no network"
        return Diagnosis(
            c.label,
            f"is on {on}",
            expected=self.network,
            consequence="the other stack containers cannot resolve or reach it",
            fix=(
                f"spec.platform.attributes.network: {self.network} in its function.yaml"
                if c.name.startswith(FUNCTION_PREFIX)
                else "networks: [cvat] in its compose service"
            )
            + f", or docker network connect {self.network} {c.container.name}",
        )

    def why_aliases_missing(self, spec: Container) -> list[Diagnosis]:
        return [
            Diagnosis(
                self.container.label,
                f"alias {alias!r} missing on {self.network}",
                observed=f"has {sorted(self.aliases)}",
                expected=repr(alias),
                consequence=(
                    "the bridge's CVAT_URL http://cvat-server:8080 does not resolve, and "
                    "http://cvat_server:8080 is refused by Django's host check"
                    if alias == "cvat-server"
                    else f"clients using {alias!r} fail"
                ),
                fix=f"networks: cvat: aliases: [{alias}] on service {spec.service}",
            )
            for alias in self.missing_aliases(spec)
        ]


class NameResolver(Resource):
    """What the stack's names resolve to inside one container (its resolver, its /etc/hosts),
    asked by probes; a container without python3 is probed from a helper sharing its network
    namespace (criobe_verify.probes)."""

    parameter = "dns_probe"

    def __init__(self, probe: DnsProbe, find, prober, network: StackNetwork, *, strict: bool):
        super().__init__(probe.source, find, prober, strict=strict)
        self.names, self.network = probe.names, network

    @classmethod
    def probes(cls, param: DnsProbe, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        for name in param.names:
            yield Declared(param.source, ("resolve", name))

    @cached_property
    def lookups(self) -> dict[str, Resolution]:
        """Each name as the container's resolver answered it (skips, saying why, where
        nothing can be asked from inside the container)."""
        try:
            return {name: self._probe("resolve", name) for name in self.names}
        except ProbeUnavailable as exc:
            pytest.skip(f"cannot look names up from inside it: {exc}")

    def wrong(self) -> list[str]:
        """Names that do not resolve, or resolve to no container of the stack network."""
        members = self._members
        return [n for n, r in self.lookups.items() if not any(a in members for a in r.addresses)]

    @cached_property
    def _members(self) -> dict[str, str]:
        return self.network.members_by_ip()

    def why_wrong(self) -> list[Diagnosis]:
        net = self.network.name
        found = []
        for name in self.wrong():
            answer = self.lookups[name]
            if not answer.addresses:
                found.append(
                    Diagnosis(
                        self.name,
                        f"cannot resolve {name}",
                        observed=answer.error or "no address",
                        why="Docker's resolver (127.0.0.11) answers only containers on the "
                        "same network",
                        expected=f"the address of a container on {net}",
                        consequence=f"{self.name} cannot reach {name}",
                        fix=f"check /etc/resolv.conf in {self.name} and that both are on {net}",
                    )
                )
            else:
                found.append(
                    Diagnosis(
                        self.name,
                        f"{name} resolves to {', '.join(answer.addresses)}",
                        expected=f"a container on {net} "
                        f"({', '.join(sorted(self._members.values()))})",
                        consequence=f"{self.name} talks to something else than {name}",
                        fix=f"remove the stale /etc/hosts or extra_hosts entry for {name}",
                    )
                )
        return found
