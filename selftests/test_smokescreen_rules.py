"""The Smokescreen stand-in against the recording of the real one (cases.json); no Docker.

* every recorded case (option set x target x http|connect): the stand-in's pure answer function
  gives the same status line, X-Smokescreen-Error, headers (Date excepted) and body, from the
  recorded resolved addresses and what listened where;
* what ``requests`` saw, and the recorded CANONICAL-PROXY-DECISION lines;
* every option set that refused to start: same exit status, stdout and stderr (script run);
* end to end on 127.0.0.1: forwarding (plain HTTP and CONNECT) with --allow-address=127.0.0.1,
  and loopback refused ('Deny: Not Global Unicast') without it.

cases.json: $SMOKESCREEN_CASES or selftests/data/contracts/smokescreen/cases.json.
"""

from __future__ import annotations

import errno
import http.client
import http.server
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from selftests.data import CONTRACTS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "twin" / "images" / "cvat-server" / "smokescreen" / "smokescreen.py"
# The repository's copy of the recording (selftests/data).
CASES_PATH = Path(
    os.environ.get(
        "SMOKESCREEN_CASES",
        CONTRACTS / "smokescreen" / "cases.json",
    )
)


def _load_stand_in():
    spec = importlib.util.spec_from_file_location("smokescreen_stand_in", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sm = _load_stand_in()

# The recording is the truth the stand-in is held to: without it the replay must fail, not skip.
DATA = json.loads(CASES_PATH.read_text())

DENY_RE = re.compile(r"to host '([^']+)': The destination address \(([^)]+)\)")
RFC3339NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")

# README target table: an HTTP server on the host gateway's port 8000, PostgreSQL on cvat_db;
# nothing listens anywhere else.
LISTENING_TARGETS = {"bridge_gateway_8000", "ip_172_17_0_1_8000", "cvat_db_5432"}


def _recorded_resolver() -> str:
    match = re.search(r"resolver (\S+)", DATA["smokescreen"]["ran_in"])
    assert match, DATA["smokescreen"]["ran_in"]
    return sm.join_host_port(match.group(1).rstrip(","), 53)


def _recorded_addresses() -> dict[str, str]:
    """authority -> the address it resolved to, as the recorded deny messages name it."""
    seen: dict[str, set[str]] = {}
    for case in DATA["cases"]:
        for mode in ("plain_http", "connect"):
            error = case[mode]["x_smokescreen_error"] or ""
            for host, ip in DENY_RE.findall(error):
                seen.setdefault(host, set()).add(ip)
    assert all(len(ips) == 1 for ips in seen.values()), seen
    return {host: ips.pop() for host, ips in seen.items()}


def _resolution(authority: str):
    host, _port = sm.split_host_port(authority)
    if sm.parse_ip(host) is not None:
        return host
    addresses = _recorded_addresses()
    if authority in addresses:
        return addresses[authority]
    # never refused by a rule anywhere in the recording: it did not resolve
    return sm.lookup_error(host, _recorded_resolver())


def _config(argv: list[str]):
    parsed = sm.parse_command_line(argv[1:])
    assert parsed.config is not None, parsed
    return parsed.config


def _request_info(request_line: str, *, close: bool):
    method, _target, proto = request_line.split(" ")
    version = tuple(int(x) for x in proto.removeprefix("HTTP/").split("."))
    return sm.RequestInfo(method=method, version=version, wants_close=close)


def _expected(case: dict, mode: str, *, close: bool = True):
    recorded = case["plain_http" if mode == "http" else "connect"]
    return sm.answer_for(
        _config(case["argv"]),
        mode,
        case["authority"],
        _resolution(case["authority"]),
        connect="ok" if case["target"] in LISTENING_TARGETS else "refused",
        request=_request_info(recorded["request_line"], close=close),
    )


def _without_date(headers) -> list[tuple[str, str]]:
    return [(k, "<date>" if k == "Date" else v) for k, v in headers]


def _case_params():
    if DATA is None:
        return []
    return [
        pytest.param(case, mode, id=f"{case['option_set']}-{case['target']}-{mode}")
        for case in DATA["cases"]
        for mode in ("http", "connect")
    ]


# ---------------------------------------------------------------------------------------------
# replay of the recording through the pure functions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "mode"), _case_params())
def test_recorded_answer(case, mode):
    recorded = case["plain_http" if mode == "http" else "connect"]
    answer = _expected(case, mode)
    if answer is None:  # allowed plain HTTP: the target's own answer is relayed
        assert mode == "http"
        assert recorded["status"] == 200, recorded["status_line"]
        assert recorded["x_smokescreen_error"] is None
        assert "X-Smokescreen-Error" not in dict(recorded["headers"])
        return
    assert answer.status_line == recorded["status_line"]
    assert answer.x_smokescreen_error == recorded["x_smokescreen_error"]
    assert answer.body.decode() == recorded["body"]
    assert _without_date(answer.headers) == _without_date(recorded["headers"])


@pytest.mark.parametrize(("case", "mode"), _case_params())
def test_what_requests_saw(case, mode):
    """requests 2.32.3 (keep-alive, no Connection: close) got the same answers."""
    if mode == "http":
        seen = case["requests_http_proxy"]
        answer = _expected(case, mode, close=False)
        if answer is None:
            assert seen["status"] == 200
            return
        assert (seen["status"], seen["reason"]) == (answer.status, sm.status_text(answer.status))
        assert seen["body"] == answer.body.decode()
        assert list(seen["headers"].items()) == [(k, v) for k, v in answer.headers if k != "Date"]
    else:
        seen = case.get("requests_https_via_connect")
        answer = _expected(case, mode)
        if seen is None:
            assert answer == sm.CONNECT_ESTABLISHED
            return
        code_and_reason = answer.status_line.split(" ", 1)[1]
        assert f"Tunnel connection failed: {code_and_reason}" in seen["message"]
        assert seen["exception"] == "requests.exceptions.ProxyError"


def test_every_target_resolution_is_known():
    addresses = _recorded_addresses()
    assert addresses["bridge.gateway:8000"] == "172.17.0.1"
    assert addresses["localhost:8000"] == "127.0.0.1"
    assert isinstance(_resolution("no-such-host.invalid:80"), sm.ResolveFailure)


def _decision_params():
    if DATA is None:
        return []
    params = []
    for log in DATA["decision_logs"]:
        for i, line in enumerate(log["log_lines"]):
            if line["msg"] == "CANONICAL-PROXY-DECISION":
                params.append(pytest.param(log["argv"], line, id=f"{log['argv'][-1]}-{i}"))
    return params


@pytest.mark.parametrize(("argv", "line"), _decision_params())
def test_recorded_decision_log_line(argv, line):
    config = _config(argv)
    authority = line["requested_host"]
    target = next(t for t in DATA["targets"] if t["authority"] == authority)
    outbound = sm.normalize_host(authority, "" if line["proxy_type"] == "connect" else "http")
    decision = sm.decide(config, outbound, _resolution(authority))
    listening = target["id"] in LISTENING_TARGETS
    error = decision.error
    content_length = None
    if decision.allow and not decision.resolve_failed and not listening:
        ip, port = decision.resolved_ip, decision.port
        error = sm.dial_error_text(ip, port, ConnectionRefusedError(errno.ECONNREFUSED, "x"))
    if line["proxy_type"] == "connect" and decision.allow and not decision.resolve_failed:
        error = None  # logged before dialing; the failure comes in a line of its own
    else:
        answer = sm.answer_for(
            config,
            line["proxy_type"],
            authority,
            _resolution(authority),
            connect="ok" if listening else "refused",
        )
        content_length = len(answer.body) if answer is not None else line.get("content_length")
    level, fields = sm.decision_log_entry(
        decision, error=error, content_length=content_length, lookup_ms=0
    )
    assert level == line["level"]
    for key, value in fields.items():
        if key != "dns_lookup_time_ms":
            assert line[key] == value, key
    own = {"conn_establish_time_ms", "outbound_local_addr", "outbound_remote_addr"}
    context = {"id", "inbound_remote_addr", "proxy_type", "requested_host", "start_time"}
    context |= {"trace_id", "level", "msg", "time"}
    assert set(line) - set(fields) - context <= own


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout
    )


def _refusing_sets():
    if DATA is None:
        return []
    return [pytest.param(s, id=s["id"]) for s in DATA["option_sets"] if not s["started"]]


@pytest.mark.parametrize("option_set", _refusing_sets())
def test_refuses_to_start_like_the_recording(option_set):
    result = _run(*option_set["argv"][1:])
    assert result.returncode == option_set["exit_status"]
    assert result.stdout == option_set["stdout"]
    ours, theirs = result.stderr.splitlines(), option_set["stderr"].splitlines()
    assert len(ours) == len(theirs) == 1
    ours_json, theirs_json = json.loads(ours[0]), json.loads(theirs[0])
    assert list(ours_json) == list(theirs_json) == ["level", "msg", "time"]
    assert ours_json["level"] == theirs_json["level"] == "fatal"
    assert ours_json["msg"] == theirs_json["msg"]
    assert RFC3339NANO.fullmatch(ours_json["time"])
    assert ours[0].replace(ours_json["time"], "T") == theirs[0].replace(theirs_json["time"], "T")


def test_started_option_sets_parse():
    for option_set in DATA["option_sets"]:
        parsed = sm.parse_command_line(option_set["argv"][1:])
        assert (parsed.config is not None) == option_set["started"], option_set["id"]
        if option_set["started"]:
            port = dict(a.partition("=")[::2] for a in option_set["argv"][1:]).get("--listen-port")
            assert parsed.config.listen_port == int(port or 4750)
            assert parsed.config.listen_ip == "127.0.0.1"


def test_version():
    result = _run("--version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "smokescreen version devel\n",
        "",
    )


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--no-such-flag"], "flag provided but not defined: -no-such-flag"),
        (["--listen-port=abc"], 'invalid value "abc" for flag -listen-port: parse error'),
        (["--allow-address"], "flag needs an argument: -allow-address"),
        (["stray"], "Received unexpected non-option argument(s)"),
        (["--listen-port=70000"], "Invalid listen-port: 70000"),
        (["--deny-range", "10.0.0.0/33"], "invalid CIDR address: 10.0.0.0/33"),
    ],
)
def test_bad_command_lines_refuse_to_start(args, msg):
    parsed = sm.parse_command_line(["--listen-ip=127.0.0.1", *args])
    assert parsed.config is None
    assert parsed.exit_status == 1
    assert parsed.fatal == f"Could not create configuration: {msg}"


def test_word_split_and_space_separated_forms():
    parsed = sm.parse_command_line(
        [
            "--listen-ip",
            "127.0.0.1",
            "--allow-address",
            "172.17.0.1:8000",
            "-allow-range=10.0.0.0/8",
        ]
    )
    config = parsed.config
    assert config is not None and config.listen_port == 4750
    assert [str(r.network) for r in config.allow_ranges] == ["10.0.0.0/8", "172.17.0.1/32"]
    assert [r.port for r in config.allow_ranges] == [0, 8000]


# ---------------------------------------------------------------------------------------------
# policy details the recording does not show (source order, stripe/smokescreen@eb1ac09)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "ip", "port", "rule"),
    [
        ([], "8.8.8.8", 443, "Allow: Default"),
        ([], "127.0.0.1", 80, "Deny: Not Global Unicast"),
        ([], "169.254.169.254", 80, "Deny: Not Global Unicast"),
        ([], "::1", 80, "Deny: Not Global Unicast"),
        ([], "fd00::1", 80, "Deny: Private Range"),
        (["--allow-address=127.0.0.1"], "127.0.0.1", 80, "Allow: User Configured"),
        (["--allow-address=127.0.0.1:81"], "127.0.0.1", 80, "Deny: Not Global Unicast"),
        (["--deny-address=8.8.8.8"], "8.8.8.8", 53, "Deny: User Configured"),
        (
            ["--deny-range=8.8.0.0/16", "--allow-address=8.8.8.8"],
            "8.8.8.8",
            53,
            "Allow: User Configured",
        ),
        (["--unsafe-allow-private-ranges"], "10.1.2.3", 80, "Allow: Default"),
        (["--unsafe-allow-private-ranges"], "127.0.0.1", 80, "Deny: Not Global Unicast"),
    ],
)
def test_classification(options, ip, port, rule):
    assert sm.classify_addr(_config(["smokescreen", *options]), ip, port) == rule


def test_additional_message_on_502_and_407():
    config = _config(["smokescreen", "--additional-error-message-on-deny=Ask the admin"])
    answer = sm.answer_for(config, "http", "10.0.0.1:80", "10.0.0.1")
    base = (
        "Egress proxying is denied to host '10.0.0.1:80': The destination address (10.0.0.1) "
        "was denied by rule 'Deny: Private Range'. destination address was denied by rule, "
        "see error."
    )
    assert answer.body == f"{base}\n\nAsk the admin\n\n".encode()
    assert answer.x_smokescreen_error == f"{base}  Ask the admin"


def test_invalid_names_never_reach_dns(monkeypatch):
    def no_dns(*_args, **_kwargs):
        raise AssertionError("DNS was asked about a .invalid name")

    monkeypatch.setattr(sm.socket, "getaddrinfo", no_dns)
    failure = sm.resolve_host("no-such-host.invalid")
    assert isinstance(failure, sm.ResolveFailure)
    assert failure.error == f"lookup no-such-host.invalid on {sm.first_nameserver()}: no such host"


def test_go_header_canonicalisation():
    assert sm.canonical_header_key("content-type") == "Content-Type"
    assert sm.canonical_header_key("x-smokescreen-ERROR") == "X-Smokescreen-Error"
    assert sm.canonical_header_key("www-authenticate") == "Www-Authenticate"
    assert sm.canonical_header_key("bad header") == "bad header"


# ---------------------------------------------------------------------------------------------
# end to end on 127.0.0.1
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Target(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict]] = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _Target.seen.append(
            {
                "requestline": self.requestline,
                "headers": list(self.headers.items()),
                "body": body,
            }
        )
        payload = b'{"status":"healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-lower-case", "yes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *_args):
        pass


@pytest.fixture(scope="module")
def target():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@dataclass
class StandIn:
    proc: subprocess.Popen
    port: int
    log_path: Path

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def log(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@pytest.fixture
def stand_in(tmp_path):
    started: list[StandIn] = []

    def start(*options: str) -> StandIn:
        port = _free_port()
        log_path = tmp_path / f"smokescreen-{port}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(SCRIPT),
                    "--listen-ip=127.0.0.1",
                    f"--listen-port={port}",
                    *options,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        instance = StandIn(proc, port, log_path)
        started.append(instance)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return instance
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the stand-in did not start listening")

    yield start
    for instance in started:
        if instance.proc.poll() is None:
            instance.proc.kill()
            instance.proc.wait()


def _exchange(port: int, request: bytes, *, until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
            if not until_close and b"\r\n\r\n" in data:
                return data


def _parse(raw: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], [tuple(line.split(": ", 1)) for line in lines[1:]], body


def _deny_message(authority: str, ip: str, rule: str) -> str:
    return (
        f"Egress proxying is denied to host '{authority}': The destination address ({ip}) was "
        f"denied by rule '{rule}'. destination address was denied by rule, see error."
    )


def _recorded_keys(msg: str, proxy_type: str, level: str) -> set[str] | None:
    if DATA is None:
        return None
    for log in DATA["decision_logs"]:
        for line in log["log_lines"]:
            if (line["msg"], line.get("proxy_type"), line["level"]) == (msg, proxy_type, level):
                return set(line)
    return None


def _assert_log_shape(lines: list[dict], msg: str, proxy_type: str, level: str) -> None:
    ours = [entry for entry in lines if (entry["msg"], entry.get("proxy_type"), entry["level"]) == (msg, proxy_type, level)]  # fmt: skip
    assert ours, (msg, proxy_type, level, lines)
    recorded = _recorded_keys(msg, proxy_type, level)
    if recorded is not None:
        assert set(ours[0]) == recorded


def test_end_to_end_forwarding_with_loopback_allowed(target, stand_in):
    proxy = stand_in("--allow-address=127.0.0.1")
    authority = f"127.0.0.1:{target}"
    _Target.seen.clear()

    raw = _exchange(
        proxy.port,
        f"GET http://{authority}/health?probe=1 HTTP/1.1\r\nHost: {authority}\r\n"
        "User-Agent: probe/1\r\nProxy-Connection: keep-alive\r\nAccept-Encoding: br\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    status_line, headers, body = _parse(raw)
    assert status_line == "HTTP/1.1 200 OK"
    assert [k for k, _ in headers] == [
        "Content-Length",
        "Content-Type",
        "Date",
        "Server",
        "X-Lower-Case",
        "Connection",
    ]
    assert dict(headers)["Connection"] == "close"
    assert body == b'{"status":"healthy"}'
    upstream = _Target.seen[-1]
    assert upstream["requestline"] == "GET /health?probe=1 HTTP/1.1"
    assert upstream["headers"][:2] == [("Host", authority), ("User-Agent", "probe/1")]
    sent = dict(upstream["headers"])
    assert "Proxy-Connection" not in sent
    assert sent["Accept-Encoding"] == "gzip"

    raw = _exchange(
        proxy.port,
        f"POST http://{authority}/hook HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 7\r\n"
        'Content-Type: application/json\r\nConnection: close\r\n\r\n{"a":1}'.encode(),
    )
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert _Target.seen[-1]["body"] == b'{"a":1}'
    assert dict(_Target.seen[-1]["headers"])["Content-Length"] == "7"

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        established = b""
        while len(established) < len(b"HTTP/1.0 200 OK\r\n\r\n"):
            established += s.recv(1)
        assert established == b"HTTP/1.0 200 OK\r\n\r\n"
        s.sendall(
            f"GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode()
        )
        tunnelled = b""
        while chunk := s.recv(65536):
            tunnelled += chunk
    status_line, headers, body = _parse(tunnelled)
    assert status_line == "HTTP/1.0 200 OK"  # the target's own answer, untouched
    assert ("x-lower-case", "yes") in headers
    assert body == b'{"status":"healthy"}'

    # keep-alive, the way requests / http.client use the proxy
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for _ in range(2):
        conn.request("GET", f"http://{authority}/health")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b'{"status":"healthy"}')
        assert response.getheader("Connection") is None
    conn.close()

    assert proxy.stop() == 0
    lines = proxy.log()
    _assert_log_shape(lines, "CANONICAL-PROXY-DECISION", "http", "info")
    _assert_log_shape(lines, "CANONICAL-PROXY-DECISION", "connect", "info")
    _assert_log_shape(lines, "CANONICAL-PROXY-CN-CLOSE", "connect", "info")
    close = next(entry for entry in lines if entry["msg"] == "CANONICAL-PROXY-CN-CLOSE")
    assert close["bytes_out"] == len(f"GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")  # fmt: skip
    assert close["bytes_in"] == len(tunnelled)
    assert [entry["msg"] for entry in lines][-4:] == [
        "quitting gracefully",
        "Waiting for all connections to become idle...",
        "All connections are idle. Continuing with shutdown...",
        "All connections idle: closing all remaining connections.",
    ]


def test_end_to_end_loopback_refused_without_allowance(target, stand_in):
    proxy = stand_in()
    authority = f"127.0.0.1:{target}"
    message = _deny_message(authority, "127.0.0.1", "Deny: Not Global Unicast")
    _Target.seen.clear()

    status_line, headers, body = _parse(
        _exchange(
            proxy.port,
            f"GET http://{authority}/health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode(),
        )
    )
    assert status_line == "HTTP/1.1 407 Proxy Authentication Required"
    assert [k for k, _ in headers] == [
        "Content-Type",
        "X-Smokescreen-Error",
        "Date",
        "Content-Length",
        "Connection",
    ]
    values = dict(headers)
    assert values["Content-Type"] == "text/plain"
    assert values["X-Smokescreen-Error"] == message
    assert values["Content-Length"] == str(len(message) + 1)
    assert values["Connection"] == "close"
    assert body == f"{message}\n".encode()

    status_line, headers, body = _parse(
        _exchange(proxy.port, f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    )
    assert status_line == "HTTP/1.1 407 Request rejected by proxy"
    assert headers == [
        ("Content-Length", str(len(message) + 1)),
        ("Content-Type", "text/plain"),
        ("X-Smokescreen-Error", message),
    ]
    assert body == f"{message}\n".encode()

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", f"http://{authority}/health")
    response = conn.getresponse()
    assert (response.status, response.reason) == (407, "Proxy Authentication Required")
    assert response.read() == f"{message}\n".encode()
    conn.close()

    assert _Target.seen == []
    assert proxy.stop() == 0
    lines = proxy.log()
    _assert_log_shape(lines, "CANONICAL-PROXY-DECISION", "http", "warning")
    _assert_log_shape(lines, "CANONICAL-PROXY-DECISION", "connect", "warning")
    denied = [entry for entry in lines if entry["msg"] == "CANONICAL-PROXY-DECISION"]
    assert all(entry["allow"] is False and entry["enforce_would_deny"] is True for entry in denied)
    assert denied[0]["decision_reason"] == message.split(": ", 1)[1].removesuffix(".")


def test_end_to_end_unresolvable_and_closed_port(stand_in):
    proxy = stand_in("--allow-address=127.0.0.1")
    closed = f"127.0.0.1:{_free_port()}"
    resolve = f"Failed to resolve remote hostname: lookup no-such-host.invalid on {sm.first_nameserver()}: no such host"  # fmt: skip
    connect = "Failed to connect to remote host: <nil>"
    for authority, message in (("no-such-host.invalid:80", resolve), (closed, connect)):
        status_line, headers, body = _parse(
            _exchange(
                proxy.port,
                f"GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode(),
            )
        )
        assert status_line == "HTTP/1.1 502 Bad Gateway"
        assert dict(headers)["X-Smokescreen-Error"] == message
        assert body == f"{message}\n".encode()
        status_line, headers, body = _parse(
            _exchange(
                proxy.port, f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
            )
        )
        assert status_line == "HTTP/1.1 502 Bad gateway"
        assert [k for k, _ in headers] == ["Content-Length", "Content-Type", "X-Smokescreen-Error"]
        assert body == f"{message}\n".encode()
    assert proxy.stop() == 0
    lines = proxy.log()
    _assert_log_shape(lines, "CANONICAL-PROXY-DECISION", "http", "error")
    _assert_log_shape(lines, "CANONICAL-PROXY-DECISION", "connect", "error")
    errors = [
        entry for entry in lines if entry["msg"] == "CANONICAL-PROXY-DECISION" and "error" in entry
    ]
    assert any(entry["error"].endswith("connect: connection refused") for entry in errors)


def test_end_to_end_survives_clients_that_go_away(target, stand_in):
    proxy = stand_in("--allow-address=127.0.0.1")
    authority = f"127.0.0.1:{target}"
    socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GET http://" + authority.encode() + b"/health HTTP/1.1\r\nHo")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\n\r\n".encode())
        s.recv(19)
    status_line, _, _ = _parse(_exchange(proxy.port, b"garbage\r\n\r\n"))
    assert status_line == "HTTP/1.1 400 Bad Request"
    raw = _exchange(
        proxy.port,
        f"GET http://{authority}/health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert proxy.stop() == 0
