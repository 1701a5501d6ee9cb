"""Gateway layer: the path a webhook takes from CVAT to the bridge, checked by behaviour.

    pytest -m gateway --gateway-ip 172.17.0.1

In cvat_server (pings) and cvat_worker_webhooks (events) CVAT sends webhooks through its own
Smokescreen on 127.0.0.1:4750 to http://bridge.gateway:8000. Each container's Smokescreen
must be alive, bridge.gateway must resolve to the platform's host gateway, the bridge must
answer through the proxy, and Smokescreen must still refuse stack-private addresses (SSRF
protection). SMOKESCREEN_OPTS is read only to explain a failure.
"""

from __future__ import annotations

import ipaddress

import pytest

from criobe_verify.probes import run_probe
from criobe_verify.smokescreen import allows, explain, fix_line

pytestmark = pytest.mark.gateway

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
    return f" Its log says: {fatal[-1].strip()}" if fatal else ""


def test_smokescreen_is_listening(
    gateway_container, stack_container, smokescreen_opts, gateway_ip, profile
):
    container = stack_container(gateway_container)
    proxy = profile.gateway.proxy
    _, proc = run_probe(container, "process", "smokescreen")
    _, port = run_probe(container, "listening", proxy)
    if proc.get("ok") and port.get("ok"):
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
    elif not proc.get("ok"):
        cause = (
            f"SMOKESCREEN_OPTS {_opts_text(smokescreen_opts)} is valid, so the process was "
            "stopped or crashed; supervisord does not restart a Smokescreen that exited 0"
        )
    else:
        cause = f"the process runs but {proxy} does not accept connections ({port.get('error')})"
    pytest.fail(
        f"{gateway_container}: no Smokescreen listening on {proxy} "
        f"({'no smokescreen process' if not proc.get('ok') else 'process alive'}): {cause}.{_fatal_log_line(container)} "
        f"{_role(gateway_container).capitalize()} from {gateway_container} fails with 502. Fix: "
        + (
            f"{fix_line(gateway_ip)} in {OVERLAY}, then docker compose up -d"
            if smokescreen_opts is None or smokescreen_opts.fatal
            else f"docker restart {gateway_container}"
        ),
        pytrace=False,
    )


def test_bridge_gateway_resolves_to_platform_gateway(
    gateway_container, stack_container, gateway_ip, profile
):
    container = stack_container(gateway_container)
    hostname = profile.gateway.hostname
    _, result = run_probe(container, "resolve", hostname)
    addresses = result.get("addresses") or []
    if addresses and addresses[0] == gateway_ip and len(addresses) == 1:
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
    observed = ", ".join(addresses) if addresses else f"nothing ({result.get('error')})"
    pytest.fail(
        f"{gateway_container}: {hostname} resolves to {observed}, expected {gateway_ip} (the "
        f"host gateway on this platform; --gateway-ip overrides); {why}. {_role(gateway_container).capitalize()} "
        f"to http://{hostname}:{profile.gateway.port} fails. Fix: extra_hosts: "
        f'["{hostname}:host-gateway"] on {gateway_container} in {OVERLAY}, then docker compose up -d',
        pytrace=False,
    )


def test_bridge_answers_through_smokescreen(
    gateway_container, stack_container, smokescreen_opts, gateway_ip, profile, depends_on
):
    depends_on(f"{THIS}test_smokescreen_is_listening[{gateway_container}]")
    depends_on(f"{THIS}test_bridge_gateway_resolves_to_platform_gateway[{gateway_container}]")
    g = profile.gateway
    url = f"http://{g.hostname}:{g.port}{g.path}"
    _, r = run_probe(stack_container(gateway_container), "proxy_get", g.proxy, url)
    if r.get("ok") and r["status"] == 200:
        return
    if not r.get("ok"):
        what = f"failed: {r.get('error')}"
    else:
        what = f"was refused: {r['status']} {(r.get('error_header') or r['body'].strip())[:300]!r}"
    if r.get("status") == 407 and smokescreen_opts is not None:
        why = f"SMOKESCREEN_OPTS is {_opts_text(smokescreen_opts)}: {explain(smokescreen_opts, gateway_ip, g.port)}"
    elif r.get("status") == 502:
        why = (
            f"Smokescreen let it through but nothing answered at {gateway_ip}:{g.port}: is the "
            f"bridge running and published on {g.port} on all interfaces?"
        )
    else:
        why = f"SMOKESCREEN_OPTS is {_opts_text(smokescreen_opts)}"
    pytest.fail(
        f"{gateway_container}: a request through Smokescreen ({g.proxy}) to {g.hostname}:{g.port} "
        f"{what}. {why} — expected --allow-address={gateway_ip}, so {_role(gateway_container)} "
        f"to the bridge fails. Fix: {fix_line(gateway_ip)} on {gateway_container} in {OVERLAY}",
        pytrace=False,
    )


def test_smokescreen_refuses_private_address(
    gateway_container,
    stack_container,
    stack_network_ip,
    smokescreen_opts,
    gateway_ip,
    profile,
    depends_on,
):
    depends_on(f"{THIS}test_smokescreen_is_listening[{gateway_container}]")
    g = profile.gateway
    ip = stack_network_ip(g.private_target)
    url = f"http://{ip}:{g.private_port}/"
    _, r = run_probe(stack_container(gateway_container), "proxy_get", g.proxy, url)
    header = (r.get("error_header") or "") if r.get("ok") else ""
    if r.get("ok") and r["status"] == 407 and "Deny: Private Range" in header:
        return
    observed = f"{r['status']} {header[:200]!r}" if r.get("ok") else r.get("error")
    reason = ""
    if smokescreen_opts is not None:
        addr = ipaddress.ip_address(ip)
        covering = [
            x
            for x in smokescreen_opts.allow_ranges
            if addr in ipaddress.ip_network(x, strict=False)
        ]
        if smokescreen_opts.unsafe_allow_private_ranges:
            reason = " --unsafe-allow-private-ranges turns the protection off."
        elif covering:
            reason = f" --allow-range={covering[0]} covers the stack network."
        elif allows(smokescreen_opts, ip, g.private_port):
            reason = f" --allow-address admits {ip}."
    pytest.fail(
        f"{gateway_container}: Smokescreen ({g.proxy}) answered {observed} for {url} "
        f"({g.private_target}), expected 407 'Deny: Private Range'. SMOKESCREEN_OPTS is "
        f"{_opts_text(smokescreen_opts)}.{reason} SSRF protection is off: a webhook target URL "
        f"can reach CVAT's database and every container of the stack. Fix: allow only the "
        f"gateway: {fix_line(gateway_ip)} in {OVERLAY}",
        pytrace=False,
    )
