"""Replay the recorded Smokescreen truth table against the stand-in inside a running container.

Not a test module. For a twin-marked selftest, once the stand-in is installed in the
cvat-server image as ``smokescreen``:

    from selftests.smokescreen_replay import replay_in_container

    mismatches = replay_in_container("cvat_server")
    assert not mismatches, "\\n".join(mismatches)

For every option set of cases.json, one ``docker exec <container> python3 -c <client>`` runs,
inside the container, ``smokescreen --listen-ip=127.0.0.1 --listen-port=<free port> <options>``
and sends each recorded target its plain-HTTP request and its CONNECT request over real
sockets (then stops it with SIGTERM). Option sets that refused to start are run the same way
and their exit status, stdout and stderr ``msg`` are compared.

Addresses of the recording that belong to that recording's containers are substituted in the
options, the targets and the expected texts: ``172.23.0.2`` (cvat_db on cvat_cvat) becomes the
live cvat_db address; pass ``substitutions`` for others (e.g. ``{"172.22.0.1": "..."}``).
Compared: status line, X-Smokescreen-Error, body; for answers that come from the target itself
(200), its body and the tunnelled status only when ``check_target`` is true.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from selftests.data import CONTRACTS

# The repository's copy of the recording (selftests/data).
CASES_PATH = Path(
    os.environ.get(
        "SMOKESCREEN_CASES",
        CONTRACTS / "smokescreen" / "cases.json",
    )
)
RECORDED_CVAT_DB_IP = "172.23.0.2"

# Runs inside the container (python3, standard library only). Input: JSON on stdin.
CLIENT = r"""
import json, os, signal, socket, subprocess, sys, tempfile, time

TIMEOUT = 20.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_response(sock, head_only=False):
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [line.split(": ", 1) for line in lines[1:] if ": " in line]
    if head_only:
        return lines[0], headers, body
    length = None
    for key, value in headers:
        if key.lower() == "content-length":
            length = int(value)
    while length is None or len(body) < length:
        data = sock.recv(65536)
        if not data:
            break
        body += data
    if length is not None:
        body = body[:length]
    return lines[0], headers, body


def answer(status_line, headers, body):
    return {"status_line": status_line, "headers": headers,
            "body": body.decode("utf-8", "replace")}


def plain(port, authority, path):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(("GET http://%s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (authority, path, authority)).encode())
        return answer(*read_response(s))


def connect(port, authority, path):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
        status_line, headers, rest = read_response(s, head_only=True)
        if status_line.split(" ")[1:2] != ["200"]:
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
            while length is None or len(rest) < length:
                data = s.recv(65536)
                if not data:
                    break
                rest += data
            return answer(status_line, headers, rest)
        result = answer(status_line, headers, rest)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (path, authority)).encode())
        result["through_tunnel"] = answer(*read_response(s))
        return result


def run_set(option_set, requests):
    port = free_port()
    argv = ["smokescreen", "--listen-ip=127.0.0.1", "--listen-port=%d" % port] + option_set["args"]
    err = tempfile.TemporaryFile()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=out, stderr=err)
    result = {"id": option_set["id"], "answers": {}}
    deadline = time.monotonic() + 10
    listening = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            listening = True
            break
        except OSError:
            time.sleep(0.1)
    if listening:
        for req in requests:
            for mode, fn in (("http", plain), ("connect", connect)):
                key = "%s/%s" % (req["target"], mode)
                try:
                    result["answers"][key] = fn(port, req["authority"], req["path"])
                except Exception as exc:
                    result["answers"][key] = {"error": repr(exc)}
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out.seek(0)
    err.seek(0)
    result.update(listening=listening, exit_status=proc.returncode,
                  stdout=out.read().decode("utf-8", "replace"),
                  stderr=err.read().decode("utf-8", "replace"))
    return result


job = json.load(sys.stdin)
results = [run_set(s, [r for r in job["requests"] if r["option_set"] == s["id"]])
           for s in job["option_sets"]]
json.dump(results, sys.stdout)
"""


def load_cases(path: Path = CASES_PATH) -> dict:
    return json.loads(Path(path).read_text())


def container_ip(container: str, network: str, docker: str = "docker") -> str:
    out = subprocess.run(
        [docker, "inspect", "-f", "{{json .NetworkSettings.Networks}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[network]["IPAddress"]


def _sub(text, subs: Mapping[str, str]):
    if text is None:
        return None
    for old, new in subs.items():
        text = text.replace(old, new)
    return text


def _options(argv: list[str]) -> list[str]:
    """The recorded argv without the program name and the listen address / port."""
    return [a for a in argv[1:] if not a.startswith(("--listen-ip", "--listen-port"))]


def _header(headers, name: str):
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def _compare(
    where: str, mode: str, expected: dict, got: dict, subs, check_target: bool
) -> list[str]:
    if "error" in got:
        return [f"{where}: client error {got['error']}"]
    problems = []
    # The proxy's own answers (refusals, the CONNECT "200") always; the target's only on request.
    own_answer = (
        mode == "connect"
        or expected["x_smokescreen_error"] is not None
        or expected["status"] != 200
    )
    if got["status_line"] != expected["status_line"]:
        problems.append(
            f"{where}: status line {got['status_line']!r}, recorded {expected['status_line']!r}"
        )
    want_error = _sub(expected["x_smokescreen_error"], subs)
    got_error = _header(got["headers"], "X-Smokescreen-Error")
    if got_error != want_error:
        problems.append(f"{where}: X-Smokescreen-Error {got_error!r}, recorded {want_error!r}")
    if (own_answer or check_target) and got["body"] != _sub(expected["body"], subs):
        problems.append(f"{where}: body {got['body']!r}, recorded {_sub(expected['body'], subs)!r}")
    tunnel = expected.get("through_tunnel")
    if tunnel and check_target:
        got_tunnel = got.get("through_tunnel")
        if not got_tunnel:
            problems.append(f"{where}: nothing came through the tunnel")
        else:
            if got_tunnel["status_line"].split(" ")[1:2] != [str(tunnel["status"])]:
                problems.append(
                    f"{where}: tunnelled status {got_tunnel['status_line']!r}, "
                    f"recorded {tunnel['status_line']!r}"
                )
            if got_tunnel["body"] != tunnel["body"]:
                problems.append(
                    f"{where}: tunnelled body {got_tunnel['body']!r}, recorded {tunnel['body']!r}"
                )
    return problems


def replay_in_container(
    container: str,
    *,
    cases_path: Path = CASES_PATH,
    cvat_db_container: str = "cvat_db",
    network: str = "cvat_cvat",
    substitutions: Mapping[str, str] | None = None,
    check_target: bool = True,
    docker: str = "docker",
    timeout: float = 900,
) -> list[str]:
    """Replay cases.json inside ``container``; returns the mismatches (empty: indistinguishable)."""
    data = load_cases(cases_path)
    subs = {RECORDED_CVAT_DB_IP: container_ip(cvat_db_container, network, docker)}
    subs.update(substitutions or {})
    subs = {old: new for old, new in subs.items() if old != new}

    targets = {t["id"]: t for t in data["targets"]}
    option_sets = [
        {"id": s["id"], "args": [_sub(a, subs) for a in _options(s["argv"])]}
        for s in data["option_sets"]
    ]
    requests = [
        {
            "option_set": case["option_set"],
            "target": case["target"],
            "authority": _sub(case["authority"], subs),
            "path": targets[case["target"]]["path"],
        }
        for case in data["cases"]
    ]
    proc = subprocess.run(
        [docker, "exec", "-i", container, "python3", "-c", CLIENT],
        input=json.dumps({"option_sets": option_sets, "requests": requests}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        return [f"replay client failed in {container} (exit {proc.returncode}): {proc.stderr}"]
    results = {r["id"]: r for r in json.loads(proc.stdout)}

    mismatches: list[str] = []
    for option_set in data["option_sets"]:
        sid = option_set["id"]
        got = results[sid]
        if not option_set.get("started", True):
            if got["listening"]:
                mismatches.append(f"{sid}: started, but the real one refused to start")
            if got["exit_status"] != option_set["exit_status"]:
                mismatches.append(
                    f"{sid}: exit status {got['exit_status']}, recorded {option_set['exit_status']}"
                )
            if got["stdout"] != option_set["stdout"]:
                mismatches.append(
                    f"{sid}: stdout {got['stdout']!r}, recorded {option_set['stdout']!r}"
                )
            want = [json.loads(line)["msg"] for line in option_set["stderr"].splitlines()]
            try:
                have = [json.loads(line)["msg"] for line in got["stderr"].splitlines()]
            except (ValueError, KeyError):
                have = [got["stderr"]]
            if have != [_sub(m, subs) for m in want]:
                mismatches.append(f"{sid}: stderr msg {have!r}, recorded {want!r}")
            continue
        if not got["listening"]:
            mismatches.append(f"{sid}: did not start: {got['stderr']!r}")
            continue
        if got["exit_status"] != 0:
            mismatches.append(f"{sid}: exit status {got['exit_status']} after SIGTERM, expected 0")
        for case in (c for c in data["cases"] if c["option_set"] == sid):
            for mode, key in (("http", "plain_http"), ("connect", "connect")):
                where = f"{sid}/{case['target']}/{mode}"
                answer = got["answers"].get(f"{case['target']}/{mode}")
                if answer is None:
                    mismatches.append(f"{where}: not sent")
                    continue
                mismatches.extend(_compare(where, mode, case[key], answer, subs, check_target))
    return mismatches
