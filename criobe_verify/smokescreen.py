"""Read a SMOKESCREEN_OPTS string the way Smokescreen (stripe/smokescreen@eb1ac09) would, to
explain a failure the gateway layer observed. The checks themselves are behavioural; this
only says which option is missing, wrong or fatal, and the line that fixes it.

    >>> opts = parse_options("--allow-address=172.17.0.1:9999")
    >>> explain(opts, gateway_ip="172.17.0.1", port=8000)
    'allows 172.17.0.1 on port 9999 only, but the bridge listens on 8000'
    >>> parse_options("--allow-address=bridge.gateway").fatal
    'address must be in the form ip[:port], got bridge.gateway'
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

from criobe_verify.gateway import PLATFORM_OF


@dataclass
class SmokescreenOptions:
    raw: str
    allow: list[tuple[str, int | None]] = field(default_factory=list)
    allow_ranges: list[str] = field(default_factory=list)
    deny: list[tuple[str, int | None]] = field(default_factory=list)
    unsafe_allow_private_ranges: bool = False
    fatal: str | None = None  # Smokescreen's own fatal message: it refuses to start


def _address(value: str) -> tuple[str, int | None]:
    """Smokescreen's ip[:port] rule: a hostname is fatal, so is a port that is not a number."""
    host, sep, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    host = host if sep else value
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if sep:
            raise ValueError(f"invalid IP address '{host}'") from None
        raise ValueError(f"address must be in the form ip[:port], got {value}") from None
    if sep and not port.isdigit():
        raise ValueError(f"invalid port number '{port}'")
    return host, int(port) if sep else None


def parse_options(raw: str) -> SmokescreenOptions:
    opts = SmokescreenOptions(raw=raw)
    words = shlex.split(raw)
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        takes_value = name in ("--allow-address", "--deny-address", "--allow-range", "--deny-range")
        if takes_value and not eq and i + 1 < len(words):
            value, i = words[i + 1], i + 1
        i += 1
        try:
            if name == "--allow-address":
                opts.allow.append(_address(value))
            elif name == "--deny-address":
                opts.deny.append(_address(value))
            elif name == "--allow-range":
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise ValueError(f"invalid CIDR address: {value}") from None
                if "/" not in value:
                    raise ValueError(f"invalid CIDR address: {value}")
                opts.allow_ranges.append(value)
            elif name == "--unsafe-allow-private-ranges":
                opts.unsafe_allow_private_ranges = True
        except ValueError as exc:
            opts.fatal = opts.fatal or str(exc)
    return opts


def allows(opts: SmokescreenOptions, ip: str, port: int) -> bool:
    """Whether the options let a request to ip:port through (private ranges are denied)."""
    if opts.fatal:
        return False
    addr = ipaddress.ip_address(ip)
    if any(a == ip and p in (None, port) for a, p in opts.allow):
        return True
    if any(addr in ipaddress.ip_network(r, strict=False) for r in opts.allow_ranges):
        return True
    # The deny list is read after the allow list: it only bites where the address would
    # otherwise pass (a global address, or any under --unsafe-allow-private-ranges).
    if any(a == ip and p in (None, port) for a, p in opts.deny):
        return False
    return opts.unsafe_allow_private_ranges or addr.is_global


def explain(opts: SmokescreenOptions, gateway_ip: str, port: int) -> str:
    """Why these options do not let webhooks reach the bridge at gateway_ip:port."""
    if opts.fatal:
        return f"Smokescreen refuses to start on it ({opts.fatal!r}: it takes IPs only)"
    if not opts.raw.strip():
        return "it is empty, so Smokescreen denies every private address, the gateway included"
    same_ip = [(a, p) for a, p in opts.allow if a == gateway_ip]
    if same_ip and all(p not in (None, port) for _, p in same_ip):
        ports = ", ".join(str(p) for _, p in same_ip)
        return f"allows {gateway_ip} on port {ports} only, but the bridge listens on {port}"
    others = [a for a, _ in opts.allow if a != gateway_ip and a in PLATFORM_OF]
    if others and not same_ip:
        where = PLATFORM_OF[others[0]]
        return (
            f"allows {others[0]}, the gateway of {where}, but on this platform bridge.gateway "
            f"is {gateway_ip}"
        )
    if allows(opts, gateway_ip, port):
        return f"it allows {gateway_ip}:{port}, so the options are not the cause"
    return f"nothing in it allows {gateway_ip}"


def fix_line(gateway_ip: str) -> str:
    return f'SMOKESCREEN_OPTS: "--allow-address={gateway_ip}"'
