"""The Smokescreen of one container that sends webhooks: all the suite knows about it.

CVAT sends every webhook from cvat_server (pings) and cvat_worker_webhooks (event deliveries)
through its own Smokescreen, an egress proxy on 127.0.0.1:4750 run by supervisord with
SMOKESCREEN_OPTS, to http://bridge.gateway:8000 (extra_hosts `bridge.gateway:host-gateway`).
So in each of them Smokescreen must be alive and listening, bridge.gateway must resolve to the
host gateway of this engine, the bridge must answer through the proxy, and Smokescreen must
still refuse stack-private addresses (SSRF protection). The facts are behaviour, asked by
probes inside the container; SMOKESCREEN_OPTS is parsed (criobe_verify/smokescreen.py) only to
explain a failure.

    smokescreen = Smokescreen("cvat_server", lambda: container, prober, profile.gateway,
                              gateway_ip=lambda: "172.17.0.1", stack_ip=stack_network_ip)
    answer = smokescreen.get(smokescreen.bridge_url)          # a ProxyAnswer
    expect(answer.status == 200, lambda: smokescreen.why_bridge_refused(answer))
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

from criobe_verify.containers import container_env, extra_hosts
from criobe_verify.diagnosis import Diagnosis
from criobe_verify.gateway import platform_of_address
from criobe_verify.probe_answers import Listening, ProcessList, ProxyAnswer, Resolution
from criobe_verify.probes import Call, Prober
from criobe_verify.profile import Gateway, Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts
from criobe_verify.smokescreen import SmokescreenOptions, allows, explain, fix_line, parse_options

OVERLAY = "bridge/docker-compose.bridge.yml"  # where the guide sets SMOKESCREEN_OPTS
# What each sending container sends through its Smokescreen: what breaks when it is wrong.
ROLE = {
    "cvat_server": "every webhook ping",
    "cvat_worker_webhooks": "every webhook event delivery",
}
PRIVATE_DENIAL = "Deny: Private Range"  # Smokescreen's X-Smokescreen-Error for a private IP


# The calls, named once for the declaration and the facts alike.
def _process() -> Call:
    return ("process", "smokescreen")


def _listening(g: Gateway) -> Call:
    return ("listening", g.proxy)


def _resolve(g: Gateway) -> Call:
    return ("resolve", g.hostname)


def _through(g: Gateway, url: str) -> Call:
    return ("proxy_get", g.proxy, url)


def _bridge_url(g: Gateway) -> str:
    return f"http://{g.hostname}:{g.port}{g.path}"


def _private_url(g: Gateway, ip: str) -> str:
    return f"http://{ip}:{g.private_port}/"


class Smokescreen(Resource):
    """The Smokescreen in one sending container (the profile's [gateway] containers)."""

    parameter = "gateway_container"

    def __init__(
        self,
        name: str,
        find: Callable[[], Any],
        prober: Prober | None,
        gateway: Gateway,
        *,
        gateway_ip: Callable[[], str],
        stack_ip: Callable[[str], str],
        strict: bool = False,
    ) -> None:
        super().__init__(name, find, prober, strict=strict)
        self.gateway = gateway
        self._gateway_ip = gateway_ip
        self._stack_ip = stack_ip
        self._answers: dict[str, ProxyAnswer] = {}

    @classmethod
    def probes(cls, param: str, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        g = profile.gateway
        for call in (_process(), _listening(g), _resolve(g), _through(g, _bridge_url(g))):
            yield Declared(param, call)
        private_ip = facts.stack_ip(g.private_target)
        if private_ip:  # none: the private check fails on that before probing
            yield Declared(param, _through(g, _private_url(g, private_ip)))

    # --- what it is configured with ------------------------------------------------------

    @property
    def proxy(self) -> str:
        return self.gateway.proxy

    @cached_property
    def options(self) -> SmokescreenOptions | None:
        """SMOKESCREEN_OPTS as the container was created with it (None: unset)."""
        env = container_env(self.container)
        return parse_options(env["SMOKESCREEN_OPTS"]) if "SMOKESCREEN_OPTS" in env else None

    @cached_property
    def gateway_ip(self) -> str:
        """What bridge.gateway must be: the address host-gateway gives this engine's
        containers (--gateway-ip, the profile, or Docker's own answer)."""
        return self._gateway_ip()

    @property
    def bridge_url(self) -> str:
        """The bridge as a webhook names it: http://bridge.gateway:8000/health."""
        return _bridge_url(self.gateway)

    @cached_property
    def private_ip(self) -> str:
        """The stack-private address it must refuse: the private target's (cvat_db's)."""
        return self._stack_ip(self.gateway.private_target)

    @property
    def private_url(self) -> str:
        return _private_url(self.gateway, self.private_ip)

    # --- what it does --------------------------------------------------------------------

    @cached_property
    def process(self) -> ProcessList:
        return self._probe(*_process())

    @cached_property
    def listening(self) -> Listening:
        return self._probe(*_listening(self.gateway))

    def resolve_gateway(self) -> Resolution:
        """What bridge.gateway resolves to inside the container."""
        return self._probe(*_resolve(self.gateway))

    def get(self, url: str) -> ProxyAnswer:
        """A GET through the proxy, as CVAT's webhook sender makes it (asked once per url)."""
        if url not in self._answers:
            self._answers[url] = self._probe(*_through(self.gateway, url))
        return self._answers[url]

    def refuses_as_private(self, answer: ProxyAnswer) -> bool:
        """Smokescreen's own refusal of a private address: 407 'Deny: Private Range'."""
        return answer.status == 407 and PRIVATE_DENIAL in (answer.error_header or "")

    # --- the ways it can be wrong --------------------------------------------------------

    def why_not_listening(self, process: ProcessList, port: Listening) -> Diagnosis:
        opts = self.options
        if opts is None:
            cause = (
                "SMOKESCREEN_OPTS is not defined, so supervisord cannot expand "
                "%(ENV_SMOKESCREEN_OPTS)s (cvat-ai/cvat#6449)"
            )
        elif opts.fatal:
            cause = (
                f"SMOKESCREEN_OPTS is {self._opts_text} and Smokescreen refuses to start "
                f"on it: {opts.fatal!r} (it takes IPs only)"
            )
        elif not process.found:
            cause = (
                f"SMOKESCREEN_OPTS {self._opts_text} is valid, so the process was "
                "stopped or crashed; supervisord does not restart a Smokescreen that exited 0"
            )
        else:
            cause = (
                f"the process runs ({process.processes[0].command}) but {self.proxy} does not "
                f"accept connections ({port.error}): is it listening on another address or "
                "port?"
            )
        config_fix = opts is None or opts.fatal
        return Diagnosis(
            self.name,
            f"no Smokescreen listening on {self.proxy}",
            observed="no smokescreen process" if not process.found else "process alive",
            why=" ".join(filter(None, [cause, self._fatal_log_line()])),
            expected=f"Smokescreen accepting on {self.proxy}",
            consequence=f"{self._role} from {self.name} fails with 502",
            fix=f"{fix_line(self.gateway_ip)} in {OVERLAY}, then docker compose up -d"
            if config_fix
            else f"docker restart {self.name}",
        )

    def why_gateway_misresolved(self, resolution: Resolution) -> Diagnosis:
        hostname, addresses = self.gateway.hostname, list(resolution.addresses)
        extra = extra_hosts(self.container)
        mapping = [e for e in extra if e.split(":", 1)[0] == hostname]
        if not mapping:
            why = (
                f"extra_hosts has no {hostname} entry (has {extra or 'none'}): the "
                f"'{hostname}:host-gateway' mapping from {OVERLAY} was not merged into "
                f"{self.name}"
            )
        else:
            why = f"extra_hosts maps {mapping[0]!r}"
        other = [platform_of_address(a) for a in addresses if platform_of_address(a)]
        if other and addresses[0] != self.gateway_ip:
            why += f"; {addresses[0]} is the host gateway of {other[0]}, not of this engine"
        return Diagnosis(
            self.name,
            f"{hostname} resolves to "
            + (", ".join(addresses) if addresses else f"nothing ({resolution.error})"),
            why=why,
            expected=f"{self.gateway_ip} (what host-gateway is inside this engine's "
            "containers; --gateway-ip overrides)",
            consequence=f"{self._role} to http://{hostname}:{self.gateway.port} fails",
            fix=f'extra_hosts: ["{hostname}:host-gateway"] on {self.name} in {OVERLAY}, '
            "then docker compose up -d",
        )

    def why_bridge_refused(self, answer: ProxyAnswer) -> Diagnosis:
        g, opts = self.gateway, self.options
        if not answer.ok:
            what, observed = "failed", answer.error or ""
        else:
            detail = (answer.error_header or answer.body.strip())[:300]
            what, observed = "was refused", f"{answer.status} {detail!r}"
        if answer.status == 407 and opts is not None:
            why = f"SMOKESCREEN_OPTS is {self._opts_text}: {explain(opts, self.gateway_ip, g.port)}"
        elif answer.status == 502:
            why = (
                f"Smokescreen let it through but nothing answered at {self.gateway_ip}:{g.port}: "
                f"is the bridge running and published on {g.port} on all interfaces?"
            )
        else:
            why = f"SMOKESCREEN_OPTS is {self._opts_text}"
        return Diagnosis(
            self.name,
            f"a request through Smokescreen ({g.proxy}) to {g.hostname}:{g.port} {what}",
            observed=observed,
            why=why,
            expected=f"--allow-address={self.gateway_ip}",
            consequence=f"{self._role} to the bridge fails",
            fix=f"{fix_line(self.gateway_ip)} on {self.name} in {OVERLAY}",
        )

    def why_private_answered(self, answer: ProxyAnswer) -> Diagnosis:
        g, header = self.gateway, answer.error_header or ""
        observed = f"{answer.status} {header[:200]!r}" if answer.ok else answer.error or ""
        reason = self._private_allowed_by()
        return Diagnosis(
            self.name,
            f"Smokescreen ({g.proxy}) answered a request to {self.private_url} "
            f"({g.private_target})",
            observed=observed,
            why=f"SMOKESCREEN_OPTS is {self._opts_text}" + (f"; {reason}" if reason else ""),
            expected=f"407 '{PRIVATE_DENIAL}'",
            consequence="SSRF protection is off: a webhook target URL can reach CVAT's "
            "database and every container of the stack",
            fix=f"allow only the gateway: {fix_line(self.gateway_ip)} in {OVERLAY}",
        )

    # --- explaining ----------------------------------------------------------------------

    @property
    def _role(self) -> str:
        return ROLE.get(self.name, "every request CVAT proxies from this container")

    @property
    def _opts_text(self) -> str:
        return "unset" if self.options is None else repr(self.options.raw)

    def _fatal_log_line(self) -> str:
        """Smokescreen's (or supervisord's) last fatal line in the container's log."""
        logs = self.container.logs(tail=200).decode("utf-8", "replace").splitlines()
        fatal = [line for line in logs if '"level":"fatal"' in line or "cannot be expanded" in line]
        return f"its log says: {fatal[-1].strip()}" if fatal else ""

    def _private_allowed_by(self) -> str:
        """Which option lets the private target through, as far as the options say."""
        opts, ip = self.options, self.private_ip
        if opts is None:
            return ""
        addr = ipaddress.ip_address(ip)
        covering = [r for r in opts.allow_ranges if addr in ipaddress.ip_network(r, strict=False)]
        if opts.unsafe_allow_private_ranges:
            return "--unsafe-allow-private-ranges turns the protection off"
        if covering:
            return f"--allow-range={covering[0]} covers the stack network"
        if allows(opts, ip, self.gateway.private_port):
            return f"--allow-address admits {ip}"
        return ""
