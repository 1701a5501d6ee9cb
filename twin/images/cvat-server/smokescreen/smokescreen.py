#!/usr/bin/env python3
"""Stand-in for Stripe's Smokescreen egress proxy, the build CVAT 2.29.0 ships (stripe/smokescreen@eb1ac09).

Python 3.11, standard library only. Installed as ``smokescreen`` in the CI twin's cvat-server
image and started like the real one: ``smokescreen --listen-ip=127.0.0.1 $SMOKESCREEN_OPTS``.

Behaviour reproduced from the recording in selftests/data/contracts/smokescreen (cases.json):

* rules apply to the resolved IP of the requested host, in Smokescreen's order: not global
  unicast / loopback (unless allow-listed) -> allow list -> deny list -> RFC 1918 / fc00::/7
  (unless --unsafe-allow-private-ranges) -> allowed;
* refusals: 407 (denied), 502 (name does not resolve, connection failed), 504 (connect timed
  out), with Smokescreen's exact status lines, header order, X-Smokescreen-Error and body;
* allowed plain HTTP is forwarded and the answer relayed the way goproxy behind Go's net/http
  server relays it (canonical header names, sorted, Date / Content-Length / chunking added by
  "the Go server"); allowed CONNECT answers ``HTTP/1.0 200 OK`` and tunnels;
* bad option values refuse to start: exit 1, empty stdout, one logrus JSON line on stderr;
* one JSON CANONICAL-PROXY-DECISION line per request on stderr, CANONICAL-PROXY-CN-CLOSE when
  a tunnel closes, exit 0 on SIGTERM.

The decision logic is pure (``parse_command_line``, ``normalize_host``, ``classify_addr``,
``decide``, ``refusal_answer``, ``answer_for``); the socket layer (``Proxy``) only resolves,
dials and moves bytes.

Names under the reserved ``.invalid`` TLD (RFC 6761) are answered NXDOMAIN without any DNS
query.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

VERSION_LINE = "smokescreen version devel"
DEFAULT_PORT = 4750
DEFAULT_CONNECT_TIMEOUT = 10.0  # --timeout, cmd/smokescreen.go
UPSTREAM_IO_TIMEOUT = (
    300.0  # not in eb1ac09 (no timeout); keeps a dead upstream from pinning a thread
)
CLIENT_IDLE_TIMEOUT = 300.0  # same, for a keep-alive client that never sends its next request
MAX_HEADER_BYTES = (1 << 20) + 4096  # Go's http.DefaultMaxHeaderBytes plus its 4096 slack
MAX_POST_HANDLER_READ = 256 << 10  # Go's maxPostHandlerReadBytes
CHUNKING_BUFFER = 2048  # Go's bufferBeforeChunkingSize
IO_CHUNK = 64 * 1024
MAX_CONNECTIONS = 1024  # concurrent client connections served; more wait in the backlog

RULE_ALLOW_DEFAULT = "Allow: Default"
RULE_ALLOW_USER = "Allow: User Configured"
RULE_DENY_NOT_GLOBAL_UNICAST = "Deny: Not Global Unicast"
RULE_DENY_PRIVATE_RANGE = "Deny: Private Range"
RULE_DENY_USER = "Deny: User Configured"

DENY_MSG_TMPL = "Egress proxying is denied to host '{host}': {reason}."
DENY_RULE_SUFFIX = "destination address was denied by rule, see error"
ACL_NOT_CONFIGURED = "Egress ACL is not configured"
# The build CVAT ships prints "<nil>" instead of the dial error (the cause is only logged).
CONNECT_FAILED_MSG = "Failed to connect to remote host: <nil>"
# Not recorded; same shape as the connect failure (see the report / README of the twin).
CONNECT_TIMEOUT_MSG = "Timed out connecting to remote host: <nil>"
RESOLVE_FAILED_PREFIX = "Failed to resolve remote hostname: "
INTERNAL_ERROR_PREFIX = "An unexpected error occurred: "
NON_PROXY_MSG = "This is a proxy server. Does not respond to non-proxy requests."

ERROR_HEADER = "X-Smokescreen-Error"
ROLE_HEADER = "X-Smokescreen-Role"
TRACE_HEADER = "X-Smokescreen-Trace-ID"

PROXY_HTTP = "http"
PROXY_CONNECT = "connect"

PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)

# net/http StatusText (Go), used by "the Go server" for plain-HTTP status lines.
GO_STATUS_TEXT = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
    414: "Request URI Too Long", 415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable", 417: "Expectation Failed", 418: "I'm a teapot",
    421: "Misdirected Request", 422: "Unprocessable Entity", 423: "Locked",
    424: "Failed Dependency", 425: "Too Early", 426: "Upgrade Required",
    428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
    510: "Not Extended", 511: "Network Authentication Required",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Small Go look-alikes (pure)
# --------------------------------------------------------------------------------------------

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header_key(key: str) -> str:
    """Go's http.CanonicalHeaderKey: 'content-type' -> 'Content-Type'; invalid keys unchanged."""
    if not key or any(c not in _TCHAR for c in key):
        return key
    out = []
    upper = True
    for c in key:
        if upper and "a" <= c <= "z":
            c = c.upper()
        elif not upper and "A" <= c <= "Z":
            c = c.lower()
        out.append(c)
        upper = c == "-"
    return "".join(out)


def go_header_value(value: str) -> str:
    """What Go's Header.Write puts on the wire: newlines to spaces, then TrimString."""
    return value.replace("\r", " ").replace("\n", " ").strip(" \t\r\n")


def status_text(code: int) -> str:
    return GO_STATUS_TEXT.get(code, "")


def has_token(value: str | None, token: str) -> bool:
    if not value:
        return False
    return any(part.strip().lower() == token for part in value.split(","))


def http_date(now: float | None = None) -> str:
    return email.utils.formatdate(now if now is not None else time.time(), usegmt=True)


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort; raises ValueError with Go's AddrError text."""

    def fail(why: str) -> ValueError:
        return ValueError(f"address {hostport}: {why}")

    i = hostport.rfind(":")
    if i < 0:
        raise fail("missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 == len(hostport):
            raise fail("missing port in address")
        if end + 1 != i:
            if hostport[end + 1] == ":":
                raise fail("too many colons in address")
            raise fail("missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise fail("too many colons in address")
    if "[" in hostport[j:]:
        raise fail("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise fail("unexpected ']' in address")
    return host, hostport[i + 1 :]


def join_host_port(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP (no zones); IPv4-mapped IPv6 comes back as IPv4 like Go's To4()."""
    if not text or "%" in text or "/" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def go_atoi(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None


def is_global_unicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Go's IP.IsGlobalUnicast (which already excludes loopback)."""
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return False
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local)


# --------------------------------------------------------------------------------------------
# Configuration and command line (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRange:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int = 0  # 0: every port

    def matches(self, ip, port: int) -> bool:
        if self.port != 0 and port != self.port:
            return False
        return ip.version == self.network.version and ip in self.network


@dataclass(frozen=True)
class Config:
    listen_ip: str = ""
    listen_port: int = DEFAULT_PORT
    allow_ranges: tuple[RuleRange, ...] = ()
    deny_ranges: tuple[RuleRange, ...] = ()
    unsafe_allow_private_ranges: bool = False
    additional_error_message_on_deny: str = ""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


class ConfigError(Exception):
    pass


def parse_ranges(values: Iterable[str]) -> tuple[RuleRange, ...]:
    """--allow-range / --deny-range, Go's net.ParseCIDR."""
    out = []
    for s in values:
        addr, sep, mask = s.partition("/")
        ip = None
        if sep and "%" not in addr:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                ip = None
        bits = 32 if isinstance(ip, ipaddress.IPv4Address) else 128
        if ip is None or not re.fullmatch(r"[0-9]+", mask) or int(mask) > bits:
            raise ConfigError(f"invalid CIDR address: {s}")
        net = ipaddress.ip_network(f"{ip}/{int(mask)}", strict=False)
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:
                net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False)
        out.append(RuleRange(net))
    return tuple(out)


def parse_addresses(values: Iterable[str]) -> tuple[RuleRange, ...]:
    """--allow-address / --deny-address: IP or IP:PORT (pkg/smokescreen/config.go)."""
    out = []
    for s in values:
        ip = parse_ip(s)
        port = 0
        if ip is None:
            try:
                ip_str, port_str = split_host_port(s)
            except ValueError:
                raise ConfigError(f"address must be in the form ip[:port], got {s}") from None
            ip = parse_ip(ip_str)
            if ip is None:
                raise ConfigError(f"invalid IP address '{ip_str}'")
            parsed = go_atoi(port_str)
            if parsed is None:
                raise ConfigError(f"invalid port number '{port_str}'")
            port = parsed
        out.append(RuleRange(ipaddress.ip_network(ip), port))
    return tuple(out)


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds; ValueError when invalid."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(text)
    total = 0.0
    pattern = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
    pos = 0
    while pos < len(s):
        m = pattern.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(text)
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse_go_uint(text: str) -> int:
    """strconv.ParseUint(s, 0, 64) as Go's flag package uses it."""
    s = text.replace("_", "") if re.match(r"0[xXbBoO]", text) else text
    for prefix, base in (("0x", 16), ("0X", 16), ("0b", 2), ("0B", 2), ("0o", 8), ("0O", 8)):
        if s.startswith(prefix) and len(s) > 2:
            return int(s[2:], base)
    if re.fullmatch(r"0[0-7]+", s):
        return int(s, 8)
    if re.fullmatch(r"[0-9]+", s):
        return int(s)
    raise ValueError(text)


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# Flags of cmd/smokescreen.go. kind: bool | string | uint | duration | slice.
FLAGS: dict[str, tuple[str, str, str]] = {
    # name: (kind, placeholder, usage)
    "help": ("bool", "", "Show this help text."),
    "config-file": ("string", "FILE", "Load configuration from FILE.  Command line options override values in the file."),
    "listen-ip": ("string", "IP", "Listen on interface with address IP.\n\t\tThis argument is ignored when running under Einhorn. (default: any)"),
    "listen-port": ("uint", "PORT", "Listen on port PORT.\n\t\tThis argument is ignored when running under Einhorn. (default: 4750)"),
    "timeout": ("duration", "DURATION", "Time out after DURATION when connecting. (default: 10s)"),
    "proxy-protocol": ("bool", "", "Enable PROXY protocol support."),
    "deny-range": ("slice", "RANGE", "Add RANGE(in CIDR notation) to list of blocked IP ranges.  Repeatable."),
    "allow-range": ("slice", "RANGE", "Add RANGE (in CIDR notation) to list of allowed IP ranges.  Repeatable."),
    "deny-address": ("slice", "value", "Add IP[:PORT] to list of blocked IPs.  Repeatable."),
    "allow-address": ("slice", "value", "Add IP[:PORT] to list of allowed IPs.  Repeatable."),
    "egress-acl-file": ("string", "FILE", "Validate egress traffic against FILE"),
    "expose-prometheus-metrics": ("bool", "", "Expose metrics via prometheus."),
    "prometheus-endpoint": ("string", "ENDPOINT", 'Expose prometheus metrics on ENDPOINT. Requires --expose-prometheus-metrics to be set. Defaults to "/metrics" (default: "/metrics")'),
    "prometheus-port": ("string", "PORT", 'Expose prometheus metrics on PORT. Requires --expose-prometheus-metrics to be set. Defaults to "9810" (default: "9810")'),
    "resolver-address": ("slice", "ADDRESS", "Make DNS requests to ADDRESS (IP:port).  Repeatable."),
    "statsd-address": ("string", "ADDRESS", 'Send metrics to statsd at ADDRESS (IP:port). (default: "127.0.0.1:8200")'),
    "tls-server-bundle-file": ("string", "FILE", "Authenticate to clients using key and certs from FILE"),
    "tls-client-ca-file": ("slice", "FILE", "Validate client certificates using Certificate Authority from FILE"),
    "tls-crl-file": ("slice", "FILE", "Verify validity of client certificates against Certificate Revocation List from FILE"),
    "additional-error-message-on-deny": ("string", "MESSAGE", "Display MESSAGE in the HTTP response if proxying request is denied"),
    "disable-acl-policy-action": ("slice", "POLICY ACTION", 'Disable usage of a POLICY ACTION such as "open" in the egress ACL'),
    "stats-socket-dir": ("string", "DIR", 'Enable connection tracking. Will expose one UDS in DIR going by the name of "track-{pid}.sock".\n\t\tThis should be an absolute path with all symlinks, if any, resolved.'),
    "stats-socket-file-mode": ("string", "FILE_MODE", 'Set the filemode to FILE_MODE on the statistics socket (default: "700")'),
    "unsafe-allow-private-ranges": ("bool", "", "Allow private ip ranges by default"),
    "version": ("bool", "", "print the version"),
    "v": ("bool", "", ""),
}  # fmt: skip

# Real flags this stand-in does not implement: refuse to start rather than silently differ.
UNSUPPORTED_FLAGS = frozenset(
    {
        "config-file",
        "egress-acl-file",
        "proxy-protocol",
        "tls-server-bundle-file",
        "tls-client-ca-file",
        "tls-crl-file",
        "resolver-address",
        "expose-prometheus-metrics",
        "stats-socket-dir",
    }
)


def help_text() -> str:
    lines = [
        "NAME:",
        "   smokescreen - A simple HTTP proxy that prevents SSRF and can restrict destinations",
        "",
        "USAGE:",
        "   smokescreen [global options]  ",
        "",
        "VERSION:",
        "   devel",
        "",
        "GLOBAL OPTIONS:",
    ]
    entries = []
    for name, (kind, placeholder, usage) in FLAGS.items():
        if name == "v":
            continue
        label = f"--{name}, -v" if name == "version" else f"--{name}"
        if kind != "bool":
            label += f" {placeholder}"
            if kind == "slice":
                label = f"{label} [ --{name} {placeholder} ]"
        entries.append((label, usage))
    width = min(max(len(label) for label, _ in entries), 46) + 2
    lines.extend(f"   {label.ljust(width)}{usage}" for label, usage in entries)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CommandLine:
    """What the command line leads to: a config to run, or an exit with output."""

    config: Config | None
    exit_status: int = 0
    stdout: str = ""
    fatal: str | None = None  # the logrus fatal message, written as JSON on stderr


def parse_command_line(args: list[str]) -> CommandLine:
    """urfave/cli v1 + Go's flag package + cmd.NewConfiguration + main (args without argv[0])."""
    values: dict[str, object] = {}
    rest = list(args)
    positional: list[str] = []
    while rest:
        s = rest[0]
        if len(s) < 2 or s[0] != "-":
            positional = rest
            break
        minuses = 2 if s[1] == "-" else 1
        if s == "--":
            positional = rest[1:]
            break
        name = s[minuses:]
        if not name or name[0] in "-=":
            return _usage_error(f"bad flag syntax: {s}")
        rest = rest[1:]
        has_value, value = False, ""
        eq = name.find("=", 1)
        if eq > 0:
            name, value, has_value = name[:eq], name[eq + 1 :], True
        if name not in FLAGS:
            if name in ("help", "h"):
                return _usage_error("flag: help requested")
            return _usage_error(f"flag provided but not defined: -{name}")
        kind = FLAGS[name][0]
        if kind == "bool":
            if has_value:
                if value in _GO_TRUE:
                    parsed = True
                elif value in _GO_FALSE:
                    parsed = False
                else:
                    return _usage_error(
                        f"invalid boolean value {json.dumps(value)} for -{name}: parse error"
                    )
            else:
                parsed = True
            values[name] = parsed
            continue
        if not has_value:
            if not rest:
                return _usage_error(f"flag needs an argument: -{name}")
            value, rest = rest[0], rest[1:]
        try:
            if kind == "uint":
                values[name] = parse_go_uint(value)
            elif kind == "duration":
                values[name] = parse_go_duration(value)
            elif kind == "slice":
                values.setdefault(name, [])
                values[name].append(value)  # type: ignore[union-attr]
            else:
                values[name] = value
        except ValueError:
            return _usage_error(f"invalid value {json.dumps(value)} for flag -{name}: parse error")

    if values.get("version") or values.get("v"):
        return CommandLine(None, 0, VERSION_LINE + "\n")
    if values.get("help"):
        return CommandLine(None, 0, help_text())
    if positional:
        return _fatal("Received unexpected non-option argument(s)")
    for name in sorted(UNSUPPORTED_FLAGS):
        if name in values:
            return _fatal(f"--{name} is not supported by this Smokescreen stand-in")
    port = int(values.get("listen-port", DEFAULT_PORT))  # type: ignore[arg-type]
    if port > 65535:
        return _fatal(f"Invalid listen-port: {port}")
    mode = values.get("stats-socket-file-mode")
    if mode is not None and not re.fullmatch(r"[+-]?[0-7]{1,3}", str(mode)):
        return _fatal(f'strconv.ParseInt: parsing "{mode}": invalid syntax')
    try:
        deny = parse_ranges(values.get("deny-range", []))  # type: ignore[arg-type]
        allow = parse_ranges(values.get("allow-range", []))  # type: ignore[arg-type]
        deny += parse_addresses(values.get("deny-address", []))  # type: ignore[arg-type]
        allow += parse_addresses(values.get("allow-address", []))  # type: ignore[arg-type]
    except ConfigError as exc:
        return _fatal(str(exc))
    config = Config(
        listen_ip=str(values.get("listen-ip", "")),
        listen_port=port,
        allow_ranges=allow,
        deny_ranges=deny,
        unsafe_allow_private_ranges=bool(values.get("unsafe-allow-private-ranges", False)),
        additional_error_message_on_deny=str(values.get("additional-error-message-on-deny", "")),
        connect_timeout=float(values.get("timeout", DEFAULT_CONNECT_TIMEOUT)),  # type: ignore[arg-type]
    )
    return CommandLine(config)


def _fatal(reason: str) -> CommandLine:
    return CommandLine(None, 1, "", f"Could not create configuration: {reason}")


def _usage_error(reason: str) -> CommandLine:
    # urfave/cli prints "Incorrect Usage." and the help on stdout, then main() dies.
    return CommandLine(
        None,
        1,
        f"Incorrect Usage. {reason}\n\n{help_text()}",
        f"Could not create configuration: {reason}",
    )


# --------------------------------------------------------------------------------------------
# Policy (pure)
# --------------------------------------------------------------------------------------------


def classify_addr(config: Config, ip, port: int) -> str:
    """pkg/smokescreen/smokescreen.go classifyAddr: the rule for one resolved address."""
    if isinstance(ip, str):
        ip = parse_ip(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    allowed = any(r.matches(ip, port) for r in config.allow_ranges)
    if not is_global_unicast(ip) or ip.is_loopback:
        return RULE_ALLOW_USER if allowed else RULE_DENY_NOT_GLOBAL_UNICAST
    if allowed:
        return RULE_ALLOW_USER
    if any(r.matches(ip, port) for r in config.deny_ranges):
        return RULE_DENY_USER
    private = any(ip.version == n.version and ip in n for n in PRIVATE_NETWORKS)
    if private and not config.unsafe_allow_private_ranges:
        return RULE_DENY_PRIVATE_RANGE
    return RULE_ALLOW_DEFAULT


class DenyError(Exception):
    """A request refused with 407 (Smokescreen's denyError)."""


def normalize_host(host_port: str, scheme: str) -> str:
    """normalizeHost: 'host[:port]' -> 'host:port' (port from the scheme when missing)."""
    host = host_port
    if host_port.rfind("]") < host_port.rfind(":"):
        try:
            host, port_str = split_host_port(host_port)
        except ValueError as exc:
            raise DenyError(f"unable to parse host: {exc}") from None
        parsed = go_atoi(port_str)
        if parsed is None:
            raise DenyError(
                f'invalid port number 0: strconv.Atoi: parsing "{port_str}": invalid syntax'
            )
        port = parsed
    else:
        if scheme == "":
            port = 0
        elif scheme == "http":
            port = 80
        elif scheme == "https":
            port = 443
        else:
            try:
                port = socket.getservbyname(scheme, "tcp")
            except OSError:
                raise DenyError(
                    f"unable to determine port: lookup tcp/{scheme}: unknown port"
                ) from None
    ip = parse_ip(host)
    if ip is not None:
        host = str(ip)
    elif host.startswith("[") or host.endswith("]"):
        raise DenyError("unable to parse destination host")
    return join_host_port(host, port)


@dataclass(frozen=True)
class ResolveFailure:
    """A name that did not resolve; ``error`` is Go's DNSError text."""

    error: str


def lookup_error(name: str, server: str, reason: str = "no such host") -> ResolveFailure:
    return ResolveFailure(f"lookup {name} on {server}: {reason}")


@dataclass(frozen=True)
class Decision:
    """checkIfRequestShouldBeProxied: what the log calls allow / decision_reason / error."""

    allow: bool
    reason: str  # decision_reason
    rule: str | None = None  # classification of the resolved address
    resolved_ip: str | None = None
    port: int = 0
    error: str | None = None  # resolve error (then the request fails with 502)
    enforce_would_deny: bool = False

    @property
    def denied(self) -> bool:
        return not self.allow

    @property
    def resolve_failed(self) -> bool:
        return self.error is not None


def decide(config: Config, outbound_host: str, resolution: str | ResolveFailure) -> Decision:
    """outbound_host: normalize_host(...) ('host:port'); resolution: an IP or a ResolveFailure."""
    _host, port_str = split_host_port(outbound_host)
    port = int(port_str)
    if isinstance(resolution, ResolveFailure):
        return Decision(True, ACL_NOT_CONFIGURED, port=port, error=resolution.error)
    ip = parse_ip(resolution)
    if ip is None:
        raise ValueError(f"not an IP address: {resolution!r}")
    rule = classify_addr(config, ip, port)
    if rule in (RULE_ALLOW_DEFAULT, RULE_ALLOW_USER):
        return Decision(True, ACL_NOT_CONFIGURED, rule, str(ip), port)
    reason = f"The destination address ({ip}) was denied by rule '{rule}'. {DENY_RULE_SUFFIX}"
    return Decision(False, reason, rule, str(ip), port, enforce_would_deny=True)


# --------------------------------------------------------------------------------------------
# Answers (pure)
# --------------------------------------------------------------------------------------------


@dataclass
class Header:
    """Go's http.Header: canonical keys, values in order, written sorted by key."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, value: str) -> None:
        self.values.setdefault(canonical_header_key(key), []).append(value)

    def set(self, key: str, value: str) -> None:
        self.values[canonical_header_key(key)] = [value]

    def get(self, key: str) -> str:
        v = self.values.get(canonical_header_key(key))
        return v[0] if v else ""

    def has(self, key: str) -> bool:
        return canonical_header_key(key) in self.values

    def delete(self, key: str) -> None:
        self.values.pop(canonical_header_key(key), None)

    def lines(self) -> list[tuple[str, str]]:
        return [(k, go_header_value(v)) for k in sorted(self.values) for v in self.values[k]]


@dataclass(frozen=True)
class RequestInfo:
    """What Go's server knows about the client request when it writes the answer."""

    method: str = "GET"
    version: tuple[int, int] = (1, 1)
    wants_close: bool = False  # Connection: close (or HTTP/1.0 without keep-alive)
    wants_10_keepalive: bool = False
    body_unread: int = 0  # request body bytes left unread (-1: unknown / chunked)
    expect_continue_unsent: bool = False  # Expect: 100-continue and no 100 sent

    @property
    def is11(self) -> bool:
        return self.version >= (1, 1)


@dataclass(frozen=True)
class Answer:
    status: int
    status_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    close: bool = True  # the proxy closes the client connection after this answer

    @property
    def x_smokescreen_error(self) -> str | None:
        for k, v in self.headers:
            if k == ERROR_HEADER:
                return v
        return None

    def raw_head(self) -> bytes:
        lines = [self.status_line, *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


CONNECT_ESTABLISHED = Answer(200, "HTTP/1.0 200 OK", (), b"", close=False)

# kind -> (status code, reason phrase goproxy's Response.Write puts on CONNECT refusals)
REFUSAL_STATUS = {
    "deny": (407, "Request rejected by proxy"),
    "resolve": (502, "Bad gateway"),
    "connect": (502, "Bad gateway"),
    "timeout": (504, "Gateway timeout"),
    "internal": (500, "Internal server error"),
}


def refusal_message(kind: str, requested_host: str, detail: str = "") -> str:
    """rejectResponse's message (before --additional-error-message-on-deny)."""
    if kind == "deny":
        return DENY_MSG_TMPL.format(host=requested_host, reason=detail)
    if kind == "resolve":
        return RESOLVE_FAILED_PREFIX + detail
    if kind == "connect":
        return CONNECT_FAILED_MSG
    if kind == "timeout":
        return CONNECT_TIMEOUT_MSG
    if kind == "internal":
        return INTERNAL_ERROR_PREFIX + detail
    raise ValueError(kind)


def sniff_content_type(data: bytes) -> str:
    """A reduced Go http.DetectContentType (first 512 bytes)."""
    data = data[:512]
    stripped = data.lstrip(b"\t\n\x0c\r ")
    upper = stripped[:14].upper()
    html_tags = (
        b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT",
        b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--",
    )  # fmt: skip
    for tag in html_tags:
        if upper.startswith(tag) and len(stripped) > len(tag) and stripped[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if stripped.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    magic = (
        (b"%PDF-", "application/pdf"), (b"%!PS-Adobe-", "application/postscript"),
        (b"\xfe\xff", "text/plain; charset=utf-16be"), (b"\xff\xfe", "text/plain; charset=utf-16le"),
        (b"\xef\xbb\xbf", "text/plain; charset=utf-8"), (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
        (b"BM", "image/bmp"), (b"\x1f\x8b\x08", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"), (b"\x00asm", "application/wasm"),
    )  # fmt: skip
    for prefix, ctype in magic:
        if data.startswith(prefix):
            return ctype
    if data.startswith(b"RIFF") and data[8:14] == b"WEBPVP":
        return "image/webp"
    if any(b <= 0x08 or b == 0x0B or 0x0E <= b <= 0x1A or 0x1C <= b <= 0x1F for b in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


@dataclass(frozen=True)
class ResponseHead:
    status_line: str
    headers: tuple[tuple[str, str], ...]
    chunked: bool
    close: bool
    discard_request_body: bool


def body_allowed(status: int) -> bool:
    return not (100 <= status <= 199 or status in (204, 304))


def go_response_head(
    req: RequestInfo,
    status: int,
    header: Header,
    first: bytes,
    complete: bool,
    now: float | None = None,
) -> ResponseHead:
    """Go's net/http chunkWriter.writeHeader for a handler that copies a body.

    ``first``: the start of the body (what Go buffers, at most 2048 bytes); ``complete``: the
    handler was done by then (the whole body fits the buffer).
    """
    h = Header({k: list(v) for k, v in header.values.items()})
    is_head = req.method == "HEAD"
    te = h.get("Transfer-Encoding")
    has_te = te != ""
    extra_date = extra_clen = extra_ctype = extra_conn = extra_te = ""
    close = False

    content_length = -1
    if h.has("Content-Length"):
        cl = go_atoi(h.get("Content-Length"))
        if cl is not None and cl >= 0 and not h.get("Content-Length").startswith("+"):
            content_length = cl
        else:
            h.delete("Content-Length")
    if (
        complete
        and not has_te
        and body_allowed(status)
        and not h.has("Content-Length")
        and (not is_head or first)
    ):
        content_length = len(first)
        extra_clen = str(len(first))

    if req.wants_10_keepalive and h.get("Content-Length") and h.get("Connection") == "keep-alive":
        close = False
    has_cl = content_length != -1
    if req.wants_10_keepalive and (is_head or has_cl or not body_allowed(status)):
        if not h.has("Connection"):
            extra_conn = "keep-alive"
    elif not req.is11 or req.wants_close:
        close = True
    if h.get("Connection") == "close":
        close = True
    if req.expect_continue_unsent and req.body_unread != 0:
        close = True

    discard = False
    if req.body_unread != 0 and not close:
        if req.body_unread > MAX_POST_HANDLER_READ:
            close = True
            h.delete("Connection")
            extra_conn = "close"
        else:
            discard = True

    if body_allowed(status):
        if not h.get("Content-Encoding") and not h.has("Content-Type") and not has_te and first:
            extra_ctype = sniff_content_type(first)
    else:
        for k in (
            ("Content-Type", "Content-Length", "Transfer-Encoding")
            if status == 304
            else (
                "Content-Length",
                "Transfer-Encoding",
            )
        ):
            h.delete(k)
    if not h.has("Date"):
        extra_date = http_date(now)
    if has_cl and has_te and te != "identity":
        h.delete("Content-Length")
        has_cl = False

    chunked = False
    if is_head or not body_allowed(status) or has_cl:
        h.delete("Transfer-Encoding")
    elif req.is11:
        if has_te and te == "identity":
            close = True
            h.delete("Transfer-Encoding")
        else:
            chunked = True
            extra_te = "chunked"
            if has_te and te == "chunked":
                h.delete("Transfer-Encoding")
    else:
        close = True
        h.delete("Transfer-Encoding")
    if chunked:
        h.delete("Content-Length")
        extra_clen = ""
    if close and not has_token(h.get("Connection"), "close") and status != 101:
        h.delete("Connection")
        extra_conn = "close" if req.is11 else ""

    version = "HTTP/1.1" if req.is11 else "HTTP/1.0"
    text = status_text(status) or f"status code {status}"
    lines = h.lines()
    if extra_date:
        lines.append(("Date", extra_date))
    if extra_clen:
        lines.append(("Content-Length", extra_clen))
    for k, v in (
        ("Content-Type", extra_ctype),
        ("Connection", extra_conn),
        ("Transfer-Encoding", extra_te),
    ):
        if v:
            lines.append((k, v))
    return ResponseHead(f"{version} {status:03d} {text}", tuple(lines), chunked, close, discard)


def refusal_answer(
    config: Config,
    proxy_type: str,
    requested_host: str,
    kind: str,
    detail: str = "",
    *,
    request: RequestInfo | None = None,
    now: float | None = None,
) -> Answer:
    """rejectResponse, written by goproxy (CONNECT) or by the Go server (plain HTTP).

    kind: deny (detail = the decision reason) | resolve (detail = the lookup error) |
    connect | timeout | internal (detail = the error).
    """
    request = request or RequestInfo(method="CONNECT" if proxy_type == PROXY_CONNECT else "GET")
    code, connect_reason = REFUSAL_STATUS[kind]
    msg = refusal_message(kind, requested_host, detail)
    if config.additional_error_message_on_deny:
        msg = f"{msg}\n\n{config.additional_error_message_on_deny}\n"
    body = (msg + "\n").encode()
    header = Header()
    header.add("Content-Type", "text/plain")
    header.set(ERROR_HEADER, msg)
    if proxy_type == PROXY_CONNECT:
        # goproxy.NewResponse + http.Response.Write: Content-Length first, then the sorted map.
        version = f"HTTP/{request.version[0]}.{request.version[1]}"
        headers = (("Content-Length", str(len(body))), *header.lines())
        return Answer(code, f"{version} {code} {connect_reason}", headers, body, close=True)
    head = go_response_head(request, code, header, body, complete=True, now=now)
    return Answer(code, head.status_line, head.headers, body, close=head.close)


def answer_for(
    config: Config,
    proxy_type: str,
    requested_host: str,
    resolution: str | ResolveFailure,
    connect: str = "ok",
    *,
    scheme: str = "http",
    request: RequestInfo | None = None,
    now: float | None = None,
) -> Answer | None:
    """The proxy's own answer to one request, or None when it relays the target's answer.

    requested_host: the request's host ('host:port' as sent); resolution: what the host
    resolved to (an IP) or a ResolveFailure; connect: what dialing the allowed address does
    (ok | refused | timeout).
    """
    if proxy_type == PROXY_CONNECT:
        scheme = ""
    try:
        outbound = normalize_host(requested_host, scheme)
    except DenyError as exc:
        return refusal_answer(
            config, proxy_type, requested_host, "deny", str(exc), request=request, now=now
        )
    decision = decide(config, outbound, resolution)
    if decision.resolve_failed:
        return refusal_answer(
            config,
            proxy_type,
            requested_host,
            "resolve",
            decision.error or "",
            request=request,
            now=now,
        )
    if decision.denied:
        return refusal_answer(
            config, proxy_type, requested_host, "deny", decision.reason, request=request, now=now
        )
    if connect == "refused":
        return refusal_answer(
            config, proxy_type, requested_host, "connect", request=request, now=now
        )
    if connect == "timeout":
        return refusal_answer(
            config, proxy_type, requested_host, "timeout", request=request, now=now
        )
    if proxy_type == PROXY_CONNECT:
        return CONNECT_ESTABLISHED
    return None


# --------------------------------------------------------------------------------------------
# Logging (logrus JSONFormatter look-alike)
# --------------------------------------------------------------------------------------------


def rfc3339(ts: float | None = None) -> str:
    """logrus' default JSON timestamp: RFC 3339, seconds, local zone ('Z' for UTC)."""
    dt = datetime.fromtimestamp(ts if ts is not None else time.time()).astimezone()
    off = dt.utcoffset()
    if not off:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + dt.strftime("%z")[:3] + ":" + dt.strftime("%z")[3:]


def rfc3339nano(ns: int | None = None, utc: bool = True) -> str:
    """Go's time.RFC3339Nano (trailing zeros of the fraction dropped)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    if utc:
        base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        zone = "Z"
    else:
        dt = datetime.fromtimestamp(secs).astimezone()
        base = dt.strftime("%Y-%m-%dT%H:%M:%S")
        z = dt.strftime("%z")
        zone = "Z" if z in ("+0000", "") else f"{z[:3]}:{z[3:]}"
    fraction = f"{frac:09d}".rstrip("0")
    return f"{base}.{fraction}{zone}" if fraction else f"{base}{zone}"


def _go_json_str(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    return (
        out.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_json_float(f: float) -> str:
    if f == 0:
        return "0"
    a = abs(f)
    if 1e-6 <= a < 1e21:
        text = format(Decimal(repr(f)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    mant, exp = f"{f:e}".split("e")
    mant = repr(float(mant))
    mant = mant[:-2] if mant.endswith(".0") else mant
    exp_i = int(exp)
    return f"{mant}e{'-' if exp_i < 0 else '+'}{abs(exp_i):d}"


def go_json(fields: dict[str, object]) -> str:
    parts = []
    for key in sorted(fields):
        v = fields[key]
        if isinstance(v, bool):
            enc = "true" if v else "false"
        elif isinstance(v, int):
            enc = str(v)
        elif isinstance(v, float):
            enc = _go_json_float(v)
        elif v is None:
            enc = "null"
        else:
            enc = _go_json_str(str(v))
        parts.append(f"{_go_json_str(key)}:{enc}")
    return "{" + ",".join(parts) + "}"


class Log:
    def __init__(self, stream=None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, level: str, msg: str, fields: dict[str, object] | None = None) -> None:
        entry = dict(fields or {})
        entry.update(level=level, msg=msg, time=rfc3339())
        line = go_json(entry) + "\n"
        with self._lock:
            stream = self._stream or sys.stderr
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):
                pass


def fatal_line(msg: str) -> str:
    """The standard logrus logger of cmd/smokescreen (JSON, RFC3339Nano)."""
    return go_json({"level": "fatal", "msg": msg, "time": rfc3339nano(utc=False)}) + "\n"


_xid_lock = threading.Lock()
_xid_counter = int.from_bytes(os.urandom(3), "big")
_xid_machine = os.urandom(3)


def new_xid() -> str:
    """rs/xid: 12 bytes (time, machine, pid, counter), base32hex lowercase, 20 characters."""
    global _xid_counter
    with _xid_lock:
        _xid_counter = (_xid_counter + 1) & 0xFFFFFF
        counter = _xid_counter
    raw = (
        int(time.time()).to_bytes(4, "big")
        + _xid_machine
        + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        + counter.to_bytes(3, "big")
    )
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


def decision_log_entry(
    decision: Decision | None,
    *,
    error: str | None = None,
    is_deny_error: bool = False,
    content_length: int | None = None,
    lookup_ms: int = 0,
) -> tuple[str, dict[str, object]]:
    """logProxy's level and own fields (the request context's fields come on top).

    error: pctx.Error -- a resolve or dial error, or a host that could not be parsed
    (is_deny_error); a rule denial leaves it unset. content_length: the answer's body length,
    or the target's Content-Length (-1 unknown); None when there was no answer yet (CONNECT).
    """
    fields: dict[str, object] = {"dns_lookup_time_ms": lookup_ms}
    if decision is not None:
        fields.update(role="", project="")
    if content_length is not None:
        fields["content_length"] = content_length
    if decision is not None:
        fields["decision_reason"] = decision.reason
        fields["enforce_would_deny"] = decision.enforce_would_deny
        fields["allow"] = decision.allow
    if error is not None:
        fields["error"] = error
    if error is not None and not is_deny_error:
        level = "error"
    elif decision is not None and decision.allow:
        level = "info"
    else:
        level = "warning"
    return level, fields


# --------------------------------------------------------------------------------------------
# Resolution (system resolver; /etc/hosts first, in file order, like Go's resolver)
# --------------------------------------------------------------------------------------------


def first_nameserver(path: str = "/etc/resolv.conf") -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return join_host_port(parts[1].split("%")[0], 53)
    except OSError:
        pass
    return "127.0.0.1:53"


def hosts_lookup(name: str, path: str = "/etc/hosts") -> str | None:
    wanted = name.lower().rstrip(".")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split("#", 1)[0].split()
                if len(fields) < 2:
                    continue
                ip = parse_ip(fields[0].split("%")[0])
                if ip is None:
                    continue
                if any(f.lower().rstrip(".") == wanted for f in fields[1:]):
                    return str(ip)
    except OSError:
        pass
    return None


def resolve_host(host: str) -> str | ResolveFailure:
    """An IP for host, or Go's DNSError text. Never queries DNS for *.invalid (RFC 6761)."""
    ip = parse_ip(host)
    if ip is not None:
        return str(ip)
    name = host.lower().rstrip(".")
    server = first_nameserver()
    if name == "invalid" or name.endswith(".invalid"):
        return lookup_error(host, server)
    found = hosts_lookup(host)
    if found is not None:
        return found
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except UnicodeError:
        return lookup_error(host, server)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_FAIL", -4)):
            return lookup_error(host, server, "server misbehaving")
        return lookup_error(host, server)
    except OSError:
        return lookup_error(host, server, "server misbehaving")
    for info in infos:
        ip = parse_ip(str(info[4][0]).split("%")[0])
        if ip is not None:
            return str(ip)
    return ResolveFailure(f"lookup {host}: no IPs resolved")


def dial_error_text(ip: str, port: int, exc: BaseException) -> str:
    where = f"dial tcp {join_host_port(ip, port)}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{where}: i/o timeout"
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
        return f"{where}: connect: {text[:1].lower()}{text[1:]}"
    return f"{where}: {exc}"


# --------------------------------------------------------------------------------------------
# HTTP/1.x wire helpers
# --------------------------------------------------------------------------------------------


class ProtocolError(Exception):
    pass


class HeadersTooLarge(ProtocolError):
    pass


class StatusError(ProtocolError):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class Reader:
    """A buffered reader over a socket that can hand back what it buffered (for CONNECT)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(IO_CHUNK)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, limit: int) -> bytes:
        """A line with its terminator; b'' at EOF; HeadersTooLarge past limit."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > limit:
                raise HeadersTooLarge()
            start = len(self.buf)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read(self, n: int) -> bytes:
        """Up to n bytes (at least one unless EOF)."""
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def take_buffer(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


def read_head(
    reader: Reader, limit: int = MAX_HEADER_BYTES
) -> tuple[str, Header, list[tuple[str, str]]] | None:
    """First line and headers; None at a clean EOF before any byte."""
    budget = limit
    line = reader.readline(budget)
    while line in (b"\r\n", b"\n"):  # Go tolerates leading empty lines
        line = reader.readline(budget)
    if not line:
        return None
    budget -= len(line)
    if not line.endswith(b"\n"):
        raise ProtocolError("unexpected EOF")
    first = line.rstrip(b"\r\n").decode("latin-1")
    header = Header()
    raw: list[tuple[str, str]] = []
    while True:
        line = reader.readline(max(budget, 0))
        budget -= len(line)
        if budget < 0:
            raise HeadersTooLarge()
        if not line.endswith(b"\n"):
            raise ProtocolError("unexpected EOF")
        text = line.rstrip(b"\r\n").decode("latin-1")
        if text == "":
            break
        if text[0] in " \t" and raw:
            key, value = raw[-1]
            value = f"{value} {text.strip()}"
            raw[-1] = (key, value)
            header.values[canonical_header_key(key)][-1] = value
            continue
        key, sep, value = text.partition(":")
        if not sep or not key or key != key.strip() or any(c not in _TCHAR for c in key):
            raise ProtocolError("malformed MIME header line")
        value = value.strip(" \t")
        raw.append((key, value))
        header.add(key, value)
    return first, header, raw


def iter_chunked(reader: Reader) -> Iterator[bytes]:
    while True:
        line = reader.readline(4096)
        if not line.endswith(b"\n"):
            raise ProtocolError("unexpected EOF in chunked body")
        size_text = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_text):
            raise ProtocolError("invalid chunk length")
        size = int(size_text, 16)
        if size == 0:
            while True:  # trailers
                t = reader.readline(MAX_HEADER_BYTES)
                if not t.endswith(b"\n"):
                    raise ProtocolError("unexpected EOF in trailer")
                if t in (b"\r\n", b"\n"):
                    return
        while size:
            data = reader.read(min(size, IO_CHUNK))
            if not data:
                raise ProtocolError("unexpected EOF in chunk")
            size -= len(data)
            yield data
        crlf = reader.readline(16)
        if crlf not in (b"\r\n", b"\n"):
            raise ProtocolError("malformed chunk terminator")


def iter_length(reader: Reader, length: int) -> Iterator[bytes]:
    while length > 0:
        data = reader.read(min(length, IO_CHUNK))
        if not data:
            raise ProtocolError("unexpected EOF")
        length -= len(data)
        yield data


def iter_until_eof(reader: Reader) -> Iterator[bytes]:
    while True:
        data = reader.read(IO_CHUNK)
        if not data:
            return
        yield data


def iter_gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for chunk in chunks:
        out = d.decompress(chunk, IO_CHUNK)
        while out:
            yield out
            out = d.decompress(d.unconsumed_tail, IO_CHUNK) if d.unconsumed_tail else b""
    tail = d.flush()
    if tail:
        yield tail


def send_all(sock: socket.socket, data: bytes) -> None:
    if data:
        sock.sendall(data)


def set_keepalive(sock: socket.socket) -> None:
    """Go enables TCP keep-alive (15 s) on accepted and dialed connections."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), 15)
    except OSError:
        pass


def sock_addr(addr) -> str:
    """Go's TCPAddr.String(); IPv4-mapped IPv6 shown as IPv4 like Go."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0]).split("%")[0]
        ip = parse_ip(host)
        return join_host_port(str(ip) if ip is not None else host, addr[1])
    return str(addr)


# --------------------------------------------------------------------------------------------
# The proxy (sockets)
# --------------------------------------------------------------------------------------------


@dataclass
class ClientRequest:
    method: str
    target: str
    version: tuple[int, int]
    header: Header
    scheme: str = ""
    host: str = ""  # req.Host
    request_uri: str = "/"
    content_length: int = 0  # -1: chunked
    wants_close: bool = False
    wants_10_keepalive: bool = False
    expect_continue: bool = False

    def info(self, body_unread: int = 0, continue_unsent: bool = False) -> RequestInfo:
        return RequestInfo(
            self.method,
            self.version,
            self.wants_close,
            self.wants_10_keepalive,
            body_unread,
            continue_unsent,
        )


_METHOD_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_client_request(first: str, header: Header) -> ClientRequest:
    """Go's http.ReadRequest essentials (raises ProtocolError / StatusError)."""
    method, sp1, rest = first.partition(" ")
    target, sp2, proto = rest.partition(" ")
    if not sp1 or not sp2:
        raise ProtocolError("malformed HTTP request")
    m = re.fullmatch(r"HTTP/([0-9])\.([0-9])", proto)
    if not m:
        raise ProtocolError("malformed HTTP version")
    version = (int(m.group(1)), int(m.group(2)))
    if not _METHOD_RE.fullmatch(method):
        raise ProtocolError("invalid method")
    if version[0] != 1:
        raise StatusError(505, "unsupported protocol version")
    req = ClientRequest(method, target, version, header)
    hosts = header.values.get("Host", [])
    if len(hosts) > 1:
        raise StatusError(400, "too many Host headers")
    if version >= (1, 1) and not hosts and method != "CONNECT":
        raise StatusError(400, "missing required Host header")
    if method == "CONNECT" and not target.startswith("/"):
        req.host = target
    else:
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^#]*)(#.*)?", target)
        if m:
            req.scheme = m.group(1).lower()
            authority = m.group(2)
            if "@" in authority:
                authority = authority.rsplit("@", 1)[1]
            req.host = authority
            req.request_uri = m.group(3) or "/"
            if req.request_uri.startswith("?"):
                req.request_uri = "/" + req.request_uri
        else:
            req.request_uri = target
        if not req.host:
            req.host = hosts[0] if hosts else ""
    header.delete("Host")
    conn = ",".join(header.values.get("Connection", []))
    if version == (1, 0):
        req.wants_10_keepalive = has_token(conn, "keep-alive")
        req.wants_close = has_token(conn, "close") or not req.wants_10_keepalive
    else:
        req.wants_close = has_token(conn, "close")
    te = header.values.get("Transfer-Encoding")
    if te and version < (1, 1):
        header.delete("Transfer-Encoding")  # Go ignores Transfer-Encoding before HTTP/1.1
        te = None
    if te:
        if len(te) != 1 or te[0].strip().lower() != "chunked":
            raise StatusError(501, "unsupported transfer encoding")
        req.content_length = -1
        header.delete("Content-Length")
        header.delete("Transfer-Encoding")
    elif header.has("Content-Length"):
        cls = {v.strip() for v in header.values["Content-Length"]}
        if len(cls) != 1 or not re.fullmatch(r"[0-9]+", next(iter(cls))):
            raise ProtocolError("bad Content-Length")
        req.content_length = int(next(iter(cls)))
    req.expect_continue = version >= (1, 1) and header.get("Expect").lower() == "100-continue"
    return req


@dataclass
class Ctx:
    """smokescreenContext: the logger fields of one proxied request."""

    proxy_type: str
    requested_host: str
    inbound: str
    trace_id: str
    start_ns: int = field(default_factory=time.time_ns)
    id: str = field(default_factory=new_xid)
    extra: dict[str, object] = field(default_factory=dict)

    def fields(self) -> dict[str, object]:
        base: dict[str, object] = {
            "id": self.id,
            "inbound_remote_addr": self.inbound,
            "proxy_type": self.proxy_type,
            "requested_host": self.requested_host,
            "start_time": rfc3339nano(self.start_ns),
            "trace_id": self.trace_id,
        }
        base.update(self.extra)
        return base


class Proxy:
    def __init__(self, config: Config, log: Log | None = None) -> None:
        self.config = config
        self.log = log or Log()
        self.listener: socket.socket | None = None
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._tunnels: set[Tunnel] = set()
        self._tunnels_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def listen(self) -> socket.socket:
        ip, port = self.config.listen_ip, self.config.listen_port
        if ":" in ip:
            raise OSError(f"listen tcp: address {ip}:{port}: too many colons in address")
        if ip == "":
            try:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                bind_addr: tuple = ("::", port)
            except OSError:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                bind_addr = ("0.0.0.0", port)
        else:
            try:
                family, _, _, _, bind_addr = socket.getaddrinfo(
                    ip, port, socket.AF_UNSPEC, socket.SOCK_STREAM
                )[0]
            except socket.gaierror:
                raise OSError(
                    f"listen tcp: lookup {ip} on {first_nameserver()}: no such host"
                ) from None
            sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(bind_addr)
            sock.listen(socket.SOMAXCONN)
        except OSError as exc:
            sock.close()
            text = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(f"listen tcp {ip}:{port}: bind: {text[:1].lower()}{text[1:]}") from None
        self.listener = sock
        return sock

    def serve_forever(self) -> None:
        assert self.listener is not None
        while not self.stopping.is_set():
            self._slots.acquire()
            try:
                conn, addr = self.listener.accept()
            except OSError:
                self._slots.release()
                if self.stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            t = threading.Thread(target=self._serve_client, args=(conn, addr), daemon=True)
            try:
                t.start()
            except RuntimeError:
                conn.close()
                self._slots.release()

    def shutdown(self, wait: float = 2.0) -> None:
        self.stopping.set()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.close()
        with self._tunnels_lock:
            tunnels = list(self._tunnels)
        for tunnel in tunnels:
            tunnel.close()
        deadline = time.monotonic() + wait
        for tunnel in tunnels:
            tunnel.done.wait(max(0.0, deadline - time.monotonic()))

    # -- one client connection ---------------------------------------------------------------

    def _serve_client(self, conn: socket.socket, addr) -> None:
        inbound = sock_addr(addr)
        hijacked = False
        try:
            set_keepalive(conn)
            conn.settimeout(CLIENT_IDLE_TIMEOUT)
            reader = Reader(conn)
            while not self.stopping.is_set():
                try:
                    head = read_head(reader)
                except HeadersTooLarge:
                    self._bad_request(conn, "431 Request Header Fields Too Large")
                    return
                except ProtocolError:
                    self._bad_request(conn, "400 Bad Request")
                    return
                if head is None:
                    return
                first, header, _raw = head
                try:
                    req = parse_client_request(first, header)
                except StatusError as exc:
                    if exc.code == 501:
                        send_all(
                            conn,
                            b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nUnsupported transfer encoding",
                        )
                    else:
                        self._bad_request(conn, f"{exc.code} {status_text(exc.code)}: {exc.text}")
                    return
                except ProtocolError:
                    self._bad_request(conn, "400 Bad Request")
                    return
                if req.method == "CONNECT":
                    hijacked = True
                    self._handle_connect(conn, reader, req, inbound)
                    return
                if not self._handle_http(conn, reader, req, inbound):
                    return
        except OSError:
            pass
        except Exception as exc:  # keep serving other clients whatever happens here
            self.log.write("error", f"stand-in: unexpected error: {exc!r}")
        finally:
            if not hijacked:
                with contextlib.suppress(OSError):
                    conn.close()
            self._slots.release()

    @staticmethod
    def _bad_request(conn: socket.socket, public: str) -> None:
        text = f"HTTP/1.1 {public}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{public}"
        with contextlib.suppress(OSError):
            send_all(conn, text.encode("latin-1", "replace"))

    # -- logging helpers ---------------------------------------------------------------------

    def _log_decision(
        self,
        ctx: Ctx,
        decision: Decision | None,
        *,
        error: str | None = None,
        is_deny_error: bool = False,
        content_length: int | None = None,
        lookup_ms: int = 0,
    ) -> None:
        """logProxy: the CANONICAL-PROXY-DECISION line."""
        if decision is not None:
            ctx.extra.setdefault("role", "")
            ctx.extra.setdefault("project", "")
        level, own = decision_log_entry(
            decision,
            error=error,
            is_deny_error=is_deny_error,
            content_length=content_length,
            lookup_ms=lookup_ms,
        )
        fields = ctx.fields()
        fields.update(own)
        self.log.write(level, "CANONICAL-PROXY-DECISION", fields)

    def _refuse(self, ctx: Ctx, kind: str, detail: str, request: RequestInfo) -> Answer:
        answer = refusal_answer(
            self.config, ctx.proxy_type, ctx.requested_host, kind, detail, request=request
        )
        if kind != "deny":  # rejectResponse logs non-deny errors itself
            self.log.write("error", refusal_message(kind, ctx.requested_host, detail), ctx.fields())
        return answer

    def _resolve(self, outbound: str) -> tuple[str | ResolveFailure, int]:
        host, _port = split_host_port(outbound)
        start = time.monotonic()
        result = resolve_host(host)
        return result, int((time.monotonic() - start) * 1000)

    def _dial(self, ctx: Ctx, ip: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        start = time.monotonic()
        try:
            sock.settimeout(
                self.config.connect_timeout if self.config.connect_timeout > 0 else None
            )
            sock.connect((ip, port))
        except BaseException:
            sock.close()
            raise
        ctx.extra["conn_establish_time_ms"] = int((time.monotonic() - start) * 1000)
        try:
            ctx.extra["outbound_local_addr"] = sock_addr(sock.getsockname())
            ctx.extra["outbound_remote_addr"] = sock_addr(sock.getpeername())
        except OSError:
            pass
        set_keepalive(sock)
        sock.settimeout(UPSTREAM_IO_TIMEOUT)
        return sock

    # -- CONNECT -----------------------------------------------------------------------------

    def _handle_connect(
        self, conn: socket.socket, reader: Reader, req: ClientRequest, inbound: str
    ) -> None:
        ctx = Ctx(PROXY_CONNECT, req.host, inbound, req.header.get(TRACE_HEADER))
        info = req.info()
        upstream: socket.socket | None = None
        owned_by_tunnel = False
        try:
            try:
                outbound = normalize_host(req.host, "")
            except DenyError as exc:
                answer = self._refuse(ctx, "deny", str(exc), info)
                self._log_decision(
                    ctx, None, error=str(exc), is_deny_error=True, content_length=len(answer.body)
                )
                send_all(conn, answer.raw_head() + answer.body)
                return
            resolution, lookup_ms = self._resolve(outbound)
            decision = decide(self.config, outbound, resolution)
            if decision.resolve_failed:
                answer = self._refuse(ctx, "resolve", decision.error or "", info)
                self._log_decision(
                    ctx,
                    decision,
                    error=decision.error,
                    content_length=len(answer.body),
                    lookup_ms=lookup_ms,
                )
                send_all(conn, answer.raw_head() + answer.body)
                return
            if decision.denied:
                answer = self._refuse(ctx, "deny", decision.reason, info)
                self._log_decision(
                    ctx, decision, content_length=len(answer.body), lookup_ms=lookup_ms
                )
                send_all(conn, answer.raw_head() + answer.body)
                return
            self._log_decision(ctx, decision, lookup_ms=lookup_ms)
            assert decision.resolved_ip is not None
            try:
                upstream = self._dial(ctx, decision.resolved_ip, decision.port)
            except TimeoutError:
                answer = self._refuse(ctx, "timeout", "", info)
                send_all(conn, answer.raw_head() + answer.body)
                return
            except OSError:
                answer = self._refuse(ctx, "connect", "", info)
                send_all(conn, answer.raw_head() + answer.body)
                return
            send_all(conn, b"HTTP/1.0 200 OK\r\n\r\n")
            tunnel = Tunnel(self, ctx, conn, upstream, reader.take_buffer())
            upstream, owned_by_tunnel = None, True
            tunnel.run()
            return
        except OSError:
            pass
        finally:
            if upstream is not None:
                upstream.close()
            if not owned_by_tunnel:
                with contextlib.suppress(OSError):
                    conn.close()

    def register(self, tunnel: Tunnel) -> None:
        with self._tunnels_lock:
            self._tunnels.add(tunnel)

    def unregister(self, tunnel: Tunnel) -> None:
        with self._tunnels_lock:
            self._tunnels.discard(tunnel)

    # -- plain HTTP --------------------------------------------------------------------------

    def _write_answer(
        self,
        conn: socket.socket,
        answer: Answer,
        req: ClientRequest,
        reader: Reader,
        body_unread: int,
    ) -> bool:
        """Write a proxy-made answer; True when the client connection stays open."""
        head = go_response_head(
            req.info(body_unread, req.expect_continue),
            answer.status,
            _header_from_lines(answer.headers, drop=("Date", "Content-Length", "Connection")),
            answer.body,
            complete=True,
        )
        if head.discard_request_body and not _discard_body(reader, req, body_unread):
            head = go_response_head(
                req.info(MAX_POST_HANDLER_READ + 1, req.expect_continue),
                answer.status,
                _header_from_lines(answer.headers, drop=("Date", "Content-Length", "Connection")),
                answer.body,
                complete=True,
            )
        payload = b"" if req.method == "HEAD" else answer.body
        send_all(conn, _raw_head(head) + payload)
        return not head.close

    def _handle_http(
        self, conn: socket.socket, reader: Reader, req: ClientRequest, inbound: str
    ) -> bool:
        """One plain proxied request; True when the client connection stays open."""
        body_unread = req.content_length
        if not req.scheme:
            header = Header()
            header.set("Content-Type", "text/plain; charset=utf-8")
            header.set("X-Content-Type-Options", "nosniff")
            body = (NON_PROXY_MSG + "\n").encode()
            return self._write_answer(
                conn, Answer(500, "", tuple(header.lines()), body), req, reader, body_unread
            )

        ctx = Ctx(PROXY_HTTP, req.host, inbound, req.header.get(TRACE_HEADER))
        req.header.delete(ROLE_HEADER)
        req.header.delete(TRACE_HEADER)
        info = req.info(body_unread, req.expect_continue)

        def refuse(
            kind: str,
            detail: str,
            decision: Decision | None,
            *,
            error: str | None,
            deny: bool,
            lookup_ms: int = 0,
        ) -> bool:
            answer = self._refuse(ctx, kind, detail, info)
            self._log_decision(
                ctx,
                decision,
                error=error,
                is_deny_error=deny,
                content_length=len(answer.body),
                lookup_ms=lookup_ms,
            )
            return self._write_answer(conn, answer, req, reader, body_unread)

        try:
            outbound = normalize_host(req.host, req.scheme)
        except DenyError as exc:
            return refuse("deny", str(exc), None, error=str(exc), deny=True)
        resolution, lookup_ms = self._resolve(outbound)
        decision = decide(self.config, outbound, resolution)
        if decision.resolve_failed:
            return refuse(
                "resolve",
                decision.error or "",
                decision,
                error=decision.error,
                deny=False,
                lookup_ms=lookup_ms,
            )
        if decision.denied:
            return refuse(
                "deny",
                decision.reason,
                decision,
                error=None,  # a rule denial leaves pctx.Error unset
                deny=True,
                lookup_ms=lookup_ms,
            )
        if req.scheme not in ("http", "https"):
            err = f'unsupported protocol scheme "{req.scheme}"'
            return refuse("internal", err, decision, error=err, deny=False, lookup_ms=lookup_ms)
        assert decision.resolved_ip is not None
        try:
            upstream = self._dial(ctx, decision.resolved_ip, decision.port)
        except TimeoutError as exc:
            err = dial_error_text(decision.resolved_ip, decision.port, exc)
            return refuse("timeout", "", decision, error=err, deny=False, lookup_ms=lookup_ms)
        except OSError as exc:
            err = dial_error_text(decision.resolved_ip, decision.port, exc)
            return refuse("connect", "", decision, error=err, deny=False, lookup_ms=lookup_ms)
        try:
            return self._forward(conn, reader, req, ctx, decision, upstream, lookup_ms, refuse)
        finally:
            with contextlib.suppress(OSError):
                upstream.close()

    def _forward(self, conn, reader, req, ctx, decision, upstream, lookup_ms, refuse) -> bool:  # type: ignore[no-untyped-def]
        host_only, _ = split_host_port(normalize_host(req.host, req.scheme))
        if req.scheme == "https":
            try:
                tls = ssl.create_default_context()
                upstream = tls.wrap_socket(upstream, server_hostname=host_only.strip("[]"))
            except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                return refuse(
                    "internal", str(exc), decision, error=str(exc), deny=False, lookup_ms=lookup_ms
                )

        # goproxy removeProxyHeaders + Go's Transport/Request.write
        header = Header({k: list(v) for k, v in req.header.values.items()})
        close_upstream = req.header.get("Connection") == "close"
        for name in (
            "Accept-Encoding",
            "Proxy-Connection",
            "Proxy-Authenticate",
            "Proxy-Authorization",
            "Connection",
        ):
            header.delete(name)
        user_agent = header.get("User-Agent") if header.has("User-Agent") else "Go-http-client/1.1"
        header.delete("User-Agent")
        header.delete("Content-Length")
        request_gzip = req.method != "HEAD" and not header.has("Range")
        lines = [f"{req.method} {req.request_uri} HTTP/1.1", f"Host: {req.host}"]
        if user_agent:
            lines.append(f"User-Agent: {go_header_value(user_agent)}")
        if close_upstream:
            lines.append("Connection: close")
        cl = req.content_length
        if cl > 0 or (cl == 0 and req.method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {cl}")
        elif cl < 0:
            lines.append("Transfer-Encoding: chunked")
        lines.extend(f"{k}: {v}" for k, v in header.lines())
        if request_gzip:
            lines.append("Accept-Encoding: gzip")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

        if req.expect_continue and cl != 0:
            send_all(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            send_all(upstream, head_bytes)
            if cl > 0:
                for chunk in iter_length(reader, cl):
                    send_all(upstream, chunk)
            elif cl < 0:
                for chunk in iter_chunked(reader):
                    send_all(upstream, b"%x\r\n%s\r\n" % (len(chunk), chunk))
                send_all(upstream, b"0\r\n\r\n")
        except ProtocolError:
            return False  # the client's body is broken: nothing more can be said on this connection

        # Go's Transport reads the answer
        up_reader = Reader(upstream)
        try:
            while True:
                head = read_head(up_reader)
                if head is None:
                    raise ProtocolError("EOF")
                status_line, resp_header, _ = head
                m = re.fullmatch(r"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: .*)?", status_line)
                if not m:
                    raise ProtocolError(
                        f'net/http: HTTP/1.x transport connection broken: malformed HTTP response "{status_line}"'
                    )
                status = int(m.group(3))
                if 100 <= status <= 199 and status != 101:
                    continue
                break
        except (OSError, ProtocolError) as exc:
            err = str(exc) or "EOF"
            if isinstance(exc, TimeoutError | socket.timeout):
                err = f"read tcp {ctx.extra.get('outbound_local_addr', '')}->{ctx.extra.get('outbound_remote_addr', '')}: i/o timeout"
            return refuse("internal", err, decision, error=err, deny=False, lookup_ms=lookup_ms)
        resp_version = (int(m.group(1)), int(m.group(2)))

        # body framing (Go's transfer reader)
        te = resp_header.values.get("Transfer-Encoding", [])
        chunked = bool(te) and te[-1].strip().lower() == "chunked"
        resp_header.delete("Transfer-Encoding")
        if resp_version >= (1, 1) and has_token(
            ",".join(resp_header.values.get("Connection", [])), "close"
        ):
            resp_header.delete("Connection")
        no_body = req.method == "HEAD" or not body_allowed(status)
        content_length = -1
        body: Iterator[bytes]
        if no_body:
            body = iter(())
            content_length = (
                0 if not body_allowed(status) else _int_or(resp_header.get("Content-Length"), -1)
            )
        elif chunked:
            resp_header.delete("Content-Length")
            body = iter_chunked(up_reader)
        elif (
            resp_header.has("Content-Length")
            and go_atoi(resp_header.get("Content-Length")) is not None
        ):
            content_length = int(resp_header.get("Content-Length"))
            body = iter_length(up_reader, content_length)
        else:
            body = iter_until_eof(up_reader)
        if request_gzip and not no_body and resp_header.get("Content-Encoding").lower() == "gzip":
            resp_header.delete("Content-Encoding")
            resp_header.delete("Content-Length")
            content_length = -1
            body = iter_gunzip(body)
        resp_header.delete(ERROR_HEADER)  # OnResponse drops it for allowed requests

        self._log_decision(ctx, decision, content_length=content_length, lookup_ms=lookup_ms)

        # goproxy copies the answer into Go's ResponseWriter
        first = bytearray()
        complete = False
        try:
            while len(first) <= CHUNKING_BUFFER:
                chunk = next(body, None)
                if chunk is None:
                    complete = True
                    break
                first += chunk
        except (OSError, ProtocolError, zlib.error):
            complete = True  # what arrived is all there is; the connection closes below
            req.wants_close = True
        out_head = go_response_head(req.info(0), status, resp_header, bytes(first), complete)
        payload_head = _raw_head(out_head)
        if req.method == "HEAD":
            send_all(conn, payload_head)
            return not out_head.close
        if out_head.chunked:
            send_all(conn, payload_head + (b"%x\r\n%s\r\n" % (len(first), first) if first else b""))
            try:
                for chunk in body:
                    send_all(conn, b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (ProtocolError, zlib.error, TimeoutError):
                return False
            send_all(conn, b"0\r\n\r\n")
            return not out_head.close
        send_all(conn, payload_head + bytes(first))
        if not complete:
            try:
                for chunk in body:
                    send_all(conn, chunk)
            except (ProtocolError, zlib.error, TimeoutError):
                return False
        return not out_head.close


def _int_or(text: str, default: int) -> int:
    v = go_atoi(text) if text else None
    return v if v is not None else default


def _header_from_lines(lines: Iterable[tuple[str, str]], drop: tuple[str, ...] = ()) -> Header:
    h = Header()
    for k, v in lines:
        if k not in drop:
            h.add(k, v)
    return h


def _raw_head(head: ResponseHead) -> bytes:
    lines = [head.status_line, *(f"{k}: {v}" for k, v in head.headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _discard_body(reader: Reader, req: ClientRequest, unread: int) -> bool:
    """Read and drop an unread request body of at most 256 KiB; False if too big or broken."""
    try:
        if unread > 0:
            for _ in iter_length(reader, unread):
                pass
        elif unread < 0:
            seen = 0
            for chunk in iter_chunked(reader):
                seen += len(chunk)
                if seen > MAX_POST_HANDLER_READ:
                    return False
        return True
    except (OSError, ProtocolError):
        return False


class Tunnel:
    """A CONNECT tunnel; the upstream side is Smokescreen's InstrumentedConn."""

    def __init__(
        self, proxy: Proxy, ctx: Ctx, client: socket.socket, upstream: socket.socket, early: bytes
    ) -> None:
        self.proxy = proxy
        self.ctx = ctx
        self.client = client
        self.upstream = upstream
        self.early = early
        self.bytes_in = 0
        self.bytes_out = 0
        self.start_ns = time.time_ns()
        self.last_activity_ns = self.start_ns
        self.error = ""
        self.done = threading.Event()
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while True:
                data = src.recv(IO_CHUNK)
                if not data:
                    break
                dst.sendall(data)
                with self._lock:
                    self.last_activity_ns = time.time_ns()
                    if outbound:
                        self.bytes_out += len(data)
                    else:
                        self.bytes_in += len(data)
        except OSError as exc:
            if not self._closed and not self.error:
                self.error = str(exc)
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def run(self) -> None:
        self.proxy.register(self)
        try:
            for s in (self.client, self.upstream):
                s.settimeout(None)
            if self.early:
                self.upstream.sendall(self.early)
                self.bytes_out += len(self.early)
            back = threading.Thread(
                target=self._pump, args=(self.upstream, self.client, False), daemon=True
            )
            back.start()
            self._pump(self.client, self.upstream, True)
            back.join()
        except OSError as exc:
            self.error = self.error or str(exc)
        finally:
            for s in (self.client, self.upstream):
                with contextlib.suppress(OSError):
                    s.close()
            end_ns = time.time_ns()
            fields = self.ctx.fields()
            fields.update(
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                duration=(end_ns - self.start_ns) / 1e9,
                end_time=rfc3339nano(end_ns),
                error=self.error,
                last_activity=rfc3339nano(self.last_activity_ns),
            )
            self.proxy.log.write("info", "CANONICAL-PROXY-CN-CLOSE", fields)
            self.proxy.unregister(self)
            self.done.set()


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result = parse_command_line(args)
    if result.stdout:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
    if result.fatal is not None:
        sys.stderr.write(fatal_line(result.fatal))
        sys.stderr.flush()
        return result.exit_status
    if result.config is None:
        return result.exit_status

    log = Log()
    proxy = Proxy(result.config, log)
    stop = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    log.write("info", "starting")
    try:
        proxy.listen()
    except OSError as exc:
        log.write("fatal", f"can't find listener{exc.args[0] if exc.args else exc}")
        return 1
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    while not stop.wait(3600):
        pass
    log.write("info", "quitting gracefully")
    log.write("info", "Waiting for all connections to become idle...")
    log.write("info", "All connections are idle. Continuing with shutdown...")
    log.write("info", "All connections idle: closing all remaining connections.")
    proxy.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
