"""The probe program run the way a container runs it (`python3 -c <text> <probe> <args>`), its
JSON read into the typed answers the checks use: no Docker, this machine's python3."""

from __future__ import annotations

import ast
import http.server
import json
import socket
import subprocess
import sys
import threading

import pytest

from criobe_verify.probe_answers import (
    HttpAnswer,
    Listening,
    ProcessList,
    ProxyAnswer,
    Resolution,
    parse_answer,
)
from criobe_verify.probes import PROGRAM


def probe(*words: str):
    """What a container's exec gives the Prober, parsed as the Prober parses it."""
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, *words], capture_output=True, text=True, timeout=30
    ).stdout
    return parse_answer(words[0], json.loads(out.strip().splitlines()[-1]), "exec")


class ProxyLike(http.server.BaseHTTPRequestHandler):
    """Answers a proxied GET (an absolute URL) the way Smokescreen denies one."""

    def do_GET(self):
        self.send_response(407, "Proxy Authentication Required")
        self.send_header("X-Smokescreen-Error", f"Deny: Private Range ({self.path})")
        self.end_headers()
        self.wfile.write(b"denied")

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    server = http.server.HTTPServer(("127.0.0.1", 0), ProxyLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_probe_prints_one_json_line_that_parses_into_its_typed_answer(proxy):
    answer = probe("proxy_get", proxy, "http://10.0.0.5:5432/")
    assert answer == ProxyAnswer(
        status=407,
        reason="Proxy Authentication Required",
        error_header="Deny: Private Range (http://10.0.0.5:5432/)",
        body="denied",
        via="exec",
    )


def test_a_failed_probe_is_an_answer_with_its_error():
    resolution = probe("resolve", "no-such-host.invalid")
    assert isinstance(resolution, Resolution) and not resolution.ok and resolution.error
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
    port = closed.getsockname()[1]
    try:
        listening = probe("listening", f"127.0.0.1:{port}")
    finally:
        closed.close()
    assert isinstance(listening, Listening) and not listening.accepting
    assert "refused" in (listening.error or "").lower()


def test_the_process_probes_read_proc_without_any_tool():
    child = subprocess.Popen(["sleep", "30"])
    try:
        found = probe("processes_with", "30")
        assert isinstance(found, ProcessList) and found.found
        mine = next(p for p in found.processes if p.pid == child.pid)
        assert mine.argv == ("sleep", "30") and mine.command == "sleep 30"
        assert not probe("process", "no-such-program-here").found
    finally:
        child.kill()
        child.wait()


def test_a_batch_answers_each_call_in_order(proxy):
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, "batch", json.dumps([["resolve", "localhost"],
                                                              ["http_get", f"http://{proxy}/"]])],
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    results = json.loads(out)["results"]
    assert parse_answer("resolve", results[0], "exec").addresses == ("127.0.0.1",)
    http_answer = parse_answer("http_get", results[1], "exec")
    assert http_answer == HttpAnswer(status=407, body="denied", via="exec")


def test_the_program_keeps_to_an_old_python3s_grammar():
    """It runs on whatever python3 a stack image carries: no syntax newer than 3.6, no
    `from __future__ import annotations` (3.6 lacks it)."""
    tree = ast.parse(PROGRAM, feature_version=(3, 6))
    futures = [
        n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "__future__"
    ]
    assert not futures
