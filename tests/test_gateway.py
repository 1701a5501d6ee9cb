"""Gateway layer: the path a webhook takes from CVAT to the bridge, checked by behaviour.

    pytest -m gateway --gateway-ip 172.17.0.1

In cvat_server (pings) and cvat_worker_webhooks (events) CVAT sends webhooks through its own
Smokescreen on 127.0.0.1:4750 to http://bridge.gateway:8000. Each container's Smokescreen
must be alive, bridge.gateway must resolve to the host gateway (what Docker's host-gateway is
on this engine), the bridge must answer through the proxy, and Smokescreen must still refuse
stack-private addresses (SSRF protection). SMOKESCREEN_OPTS is read only to explain a failure.
"""

from __future__ import annotations

import ipaddress

import pytest
from criobe_verify.fixtures.probe_plan import (
    bridge_through_proxy_call,
    gateway_resolve_call,
    private_through_proxy_call,
    smokescreen_calls,
)

from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.gateway import platform_of_address
from criobe_verify.smokescreen import allows, explain, fix_line

pytestmark = [pytest.mark.gateway, pytest.mark.guide("step-8")]

THIS = "tests/test_gateway.py::"
ROLE = {
    "cvat_server": "every webhook ping",
    "cvat_worker_webhooks": "every webhook event delivery",
}
OVERLAY = "bridge/docker-compose.bridge.yml"


def _role(name: str) -> str:
    return ROLE.get(name, "every request CVAT proxies from this container")


def _opts_text(opts) -> str:
    return "unset" if opts is None else repr(opts.raw)


def _fatal_log_line(container) -> str:
    logs = container.logs(tail=200).decode("utf-8", "replace").splitlines()
    fatal = [line for line in logs if '"level":"fatal"' in line or "cannot be expanded" in line]
    return f"its log says: {fatal[-1].strip()}" if fatal else ""


def test_smokescreen_is_listening(
    gateway_container, container_named, smokescreen_opts, gateway_ip, profile, prober
):
    container = container_named(gateway_container)
    proxy = profile.gateway.proxy
    proc, port = prober.run_many(container, smokescreen_calls(profile))
    if proc.found and port.accepting:
        return
    if smokescreen_opts is None:
        cause = (
            "SMOKESCREEN_OPTS is not defined, so supervisord cannot expand "
            "%(ENV_SMOKESCREEN_OPTS)s (cvat-ai/cvat#6449)"
        )
    elif smokescreen_opts.fatal:
        cause = (
            f"SMOKESCREEN_OPTS is {_opts_text(smokescreen_opts)} and Smokescreen refuses to start "
            f"on it: {smokescreen_opts.fatal!r} (it takes IPs only)"
        )
    elif not proc.found:
        cause = (
            f"SMOKESCREEN_OPTS {_opts_text(smokescreen_opts)} is valid, so the process was "
            "stopped or crashed; supervisord does not restart a Smokescreen that exited 0"
        )
    else:
        argv = proc.processes[0].command
        cause = (
            f"the process runs ({argv}) but {proxy} does not accept connections "
            f"({port.error}): is it listening on another address or port?"
        )
    config_fix = smokescreen_opts is None or smokescreen_opts.fatal
    fail(
        Diagnosis(
            gateway_container,
            f"no Smokescreen listening on {proxy}",
            observed="no smokescreen process" if not proc.found else "process alive",
            why=" ".join(filter(None, [cause, _fatal_log_line(container)])),
            expected=f"Smokescreen accepting on {proxy}",
            consequence=f"{_role(gateway_container)} from {gateway_container} fails with 502",
            fix=f"{fix_line(gateway_ip)} in {OVERLAY}, then docker compose up -d"
            if config_fix
            else f"docker restart {gateway_container}",
        )
    )


def test_bridge_gateway_resolves_to_platform_gateway(
    gateway_container, container_named, gateway_ip, profile, prober
):
    container = container_named(gateway_container)
    hostname = profile.gateway.hostname
    result = prober.run(container, *gateway_resolve_call(profile))
    addresses = list(result.addresses)
    if addresses == [gateway_ip]:
        return
    extra = container.attrs["HostConfig"].get("ExtraHosts") or []
    mapping = [e for e in extra if e.split(":", 1)[0] == hostname]
    if not mapping:
        why = (
            f"extra_hosts has no {hostname} entry (has {extra or 'none'}): the "
            f"'{hostname}:host-gateway' mapping from {OVERLAY} was not merged into "
            f"{gateway_container}"
        )
    else:
        why = f"extra_hosts maps {mapping[0]!r}"
    other = [platform_of_address(a) for a in addresses if platform_of_address(a)]
    if other and addresses[0] != gateway_ip:
        why += f"; {addresses[0]} is the host gateway of {other[0]}, not of this engine"
    fail(
        Diagnosis(
            gateway_container,
            f"{hostname} resolves to "
            + (", ".join(addresses) if addresses else f"nothing ({result.error})"),
            why=why,
            expected=f"{gateway_ip} (what host-gateway is inside this engine's containers; "
            "--gateway-ip overrides)",
            consequence=f"{_role(gateway_container)} to http://{hostname}:{profile.gateway.port} "
            "fails",
            fix=f'extra_hosts: ["{hostname}:host-gateway"] on {gateway_container} in {OVERLAY}, '
            "then docker compose up -d",
        )
    )


def test_bridge_answers_through_smokescreen(
    gateway_container, container_named, smokescreen_opts, gateway_ip, profile, prober, depends_on
):
    depends_on(f"{THIS}test_smokescreen_is_listening[{gateway_container}]")
    depends_on(f"{THIS}test_bridge_gateway_resolves_to_platform_gateway[{gateway_container}]")
    g = profile.gateway
    r = prober.run(container_named(gateway_container), *bridge_through_proxy_call(profile))
    if r.status == 200:
        return
    if not r.ok:
        what, observed = "failed", r.error
    else:
        detail = (r.error_header or r.body.strip())[:300]
        what, observed = "was refused", f"{r.status} {detail!r}"
    if r.status == 407 and smokescreen_opts is not None:
        why = (
            f"SMOKESCREEN_OPTS is {_opts_text(smokescreen_opts)}: "
            f"{explain(smokescreen_opts, gateway_ip, g.port)}"
        )
    elif r.status == 502:
        why = (
            f"Smokescreen let it through but nothing answered at {gateway_ip}:{g.port}: is the "
            f"bridge running and published on {g.port} on all interfaces?"
        )
    else:
        why = f"SMOKESCREEN_OPTS is {_opts_text(smokescreen_opts)}"
    fail(
        Diagnosis(
            gateway_container,
            f"a request through Smokescreen ({g.proxy}) to {g.hostname}:{g.port} {what}",
            observed=observed,
            why=why,
            expected=f"--allow-address={gateway_ip}",
            consequence=f"{_role(gateway_container)} to the bridge fails",
            fix=f"{fix_line(gateway_ip)} on {gateway_container} in {OVERLAY}",
        )
    )


def test_smokescreen_refuses_private_address(
    gateway_container,
    container_named,
    stack_network_ip,
    smokescreen_opts,
    gateway_ip,
    profile,
    prober,
    depends_on,
):
    depends_on(f"{THIS}test_smokescreen_is_listening[{gateway_container}]")
    g = profile.gateway
    ip = stack_network_ip(g.private_target)
    url = f"http://{ip}:{g.private_port}/"
    r = prober.run(container_named(gateway_container), *private_through_proxy_call(profile, ip))
    header = r.error_header or ""
    if r.status == 407 and "Deny: Private Range" in header:
        return
    observed = f"{r.status} {header[:200]!r}" if r.ok else r.error
    reason = ""
    if smokescreen_opts is not None:
        addr = ipaddress.ip_address(ip)
        covering = [
            x
            for x in smokescreen_opts.allow_ranges
            if addr in ipaddress.ip_network(x, strict=False)
        ]
        if smokescreen_opts.unsafe_allow_private_ranges:
            reason = "--unsafe-allow-private-ranges turns the protection off"
        elif covering:
            reason = f"--allow-range={covering[0]} covers the stack network"
        elif allows(smokescreen_opts, ip, g.private_port):
            reason = f"--allow-address admits {ip}"
    fail(
        Diagnosis(
            gateway_container,
            f"Smokescreen ({g.proxy}) answered a request to {url} ({g.private_target})",
            observed=observed,
            why=f"SMOKESCREEN_OPTS is {_opts_text(smokescreen_opts)}"
            + (f"; {reason}" if reason else ""),
            expected="407 'Deny: Private Range'",
            consequence="SSRF protection is off: a webhook target URL can reach CVAT's database "
            "and every container of the stack",
            fix=f"allow only the gateway: {fix_line(gateway_ip)} in {OVERLAY}",
        )
    )
