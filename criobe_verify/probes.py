"""Probes run inside a stack container with its own python3 (CVAT's image has no curl/ss
guarantee, but always Python), each printing one JSON line.

    code, result = run_probe(container, "proxy_get", "127.0.0.1:4750", url)
    result["status"], result["error_header"]
    # (407, "Egress proxying is denied to host 'bridge.gateway:8000': ...")
"""

from __future__ import annotations

import json
from typing import Any

from criobe_verify.containers import exec_output

PROBES = r"""
import json, os, socket, sys

def resolve(name):
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
        return {"ok": True, "addresses": sorted({i[4][0] for i in infos})}
    except socket.gaierror as exc:
        return {"ok": False, "error": str(exc)}

def listening(hostport):
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "error": str(exc)}

def _procs():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if words:
            yield {"pid": int(pid), "argv": words}

def process(name):
    # the program itself, or a script run by an interpreter (argv[1])
    found = [p for p in _procs() if any(os.path.basename(w) == name for w in p["argv"][:2])]
    return {"ok": bool(found), "processes": found}

def processes_with(word):
    found = [p for p in _procs() if word in p["argv"]]
    return {"ok": bool(found), "processes": found}

def proxy_get(proxy, url):
    import http.client
    host, port = proxy.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", url, headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read(4096).decode(errors="replace")
        return {"ok": True, "status": r.status, "reason": r.reason,
                "error_header": r.getheader("X-Smokescreen-Error"), "body": body}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

def http_get(url, host_header=""):
    import urllib.request, urllib.error
    req = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return {"ok": True, "status": r.status, "body": r.read(4096).decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        return {"ok": True, "status": exc.code, "body": exc.read(4096).decode(errors="replace")}
    except (OSError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

print(json.dumps(globals()[sys.argv[1]](*sys.argv[2:])))
"""


def run_probe(container: Any, probe: str, *args: str, timeout_s: int = 30) -> tuple[int, dict]:
    """Run one probe; a container without python3 or a crashing probe gives {'ok': False}."""
    code, out = exec_output(container, ["python3", "-c", PROBES, probe, *args], timeout_s)
    line = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        return code, json.loads(line)
    except ValueError:
        return code, {"ok": False, "error": f"probe exited {code}: {out.strip()[-300:]!r}"}
