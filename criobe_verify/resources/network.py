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

from dataclasses import dataclass
from typing import Any

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.profile import Container, Profile
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


@dataclass(frozen=True)
class Lookup:
    """A name as a container's own resolver answered it."""

    name: str
    addresses: tuple[str, ...]
    error: str


class NameResolution:
    """What the stack's names resolve to inside one container (its resolver, its /etc/hosts),
    asked by probes; a container without python3 is probed from a helper sharing its network
    namespace."""

    def __init__(self, source: str, lookups: list[Lookup], network: StackNetwork) -> None:
        self.source, self.lookups, self.network = source, lookups, network
        self._members = network.members_by_ip()

    def wrong(self) -> list[Lookup]:
        """Names that do not resolve, or resolve to no container of the stack network."""
        return [lk for lk in self.lookups if not any(a in self._members for a in lk.addresses)]

    def why_wrong(self) -> list[Diagnosis]:
        name = self.network.name
        found = []
        for lk in self.wrong():
            if not lk.addresses:
                found.append(
                    Diagnosis(
                        self.source,
                        f"cannot resolve {lk.name}",
                        observed=lk.error or "no address",
                        why="Docker's resolver (127.0.0.11) answers only containers on the "
                        "same network",
                        expected=f"the address of a container on {name}",
                        consequence=f"{self.source} cannot reach {lk.name}",
                        fix=f"check /etc/resolv.conf in {self.source} and that both are on {name}",
                    )
                )
            else:
                found.append(
                    Diagnosis(
                        self.source,
                        f"{lk.name} resolves to {', '.join(lk.addresses)}",
                        expected=f"a container on {name} "
                        f"({', '.join(sorted(self._members.values()))})",
                        consequence=f"{self.source} talks to something else than {lk.name}",
                        fix=f"remove the stale /etc/hosts or extra_hosts entry for {lk.name}",
                    )
                )
        return found
