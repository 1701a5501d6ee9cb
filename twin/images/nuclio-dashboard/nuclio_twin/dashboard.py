"""The dashboard twin.

    :8070            GET /                       a small HTML page (the real one serves its UI)
                     GET /api/versions           {"dashboard": {label, gitCommit, os, arch}}
                     GET /api/functions          map name -> function ({} when none)
                     GET /api/functions/<name>   one function, or 404 "Function not found"
                     GET /api/projects[/<name>]  map name -> project
    127.0.0.1:8082   GET /live, GET /ready       200 (health; not published)

There is no /api/healthz (Nuclio 1.13 has none). The namespace of a request comes only from
the x-nuclio-function-namespace header (default "nuclio"); x-nuclio-project-name filters
functions by the label nuclio.io/project-name. Functions live in STORE; later work fills it
(deployments through the Docker socket).
"""

import json
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from . import DEFAULT_NAMESPACE, VERSION


class Store:
    """Functions and projects by namespace; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.functions = {}  # (namespace, name) -> function dict
        # The local platform creates the "default" project when the dashboard starts.
        self.projects = {
            (DEFAULT_NAMESPACE, "default"): {
                "metadata": {"name": "default", "namespace": DEFAULT_NAMESPACE},
                "spec": {"description": "Default project"},
                "status": {},
            }
        }

    def list_functions(self, namespace, project=None):
        with self.lock:
            items = [
                f
                for (ns, _name), f in sorted(self.functions.items())
                if ns == namespace
                and (
                    project is None
                    or f.get("metadata", {}).get("labels", {}).get("nuclio.io/project-name")
                    == project
                )
            ]
        return {f["metadata"]["name"]: f for f in items}

    def get_function(self, namespace, name):
        with self.lock:
            return self.functions.get((namespace, name))

    def list_projects(self, namespace):
        with self.lock:
            return {name: p for (ns, name), p in sorted(self.projects.items()) if ns == namespace}

    def get_project(self, namespace, name):
        with self.lock:
            return self.projects.get((namespace, name))


STORE = Store()

INDEX_HTML = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Nuclio</title></head>
<body><div id="nuclio">Nuclio dashboard 1.13.0 (criobe-verify twin)</div></body>
</html>
"""


def _log(msg, **fields):
    record = {"level": "info", "name": "dashboard", "message": msg, **fields}
    print(json.dumps(record), file=sys.stderr, flush=True)


class DashboardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "nginx"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, content_type="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        _log("Handled request", method=self.command, path=urlsplit(self.path).path, status=status)

    def _namespace(self):
        return self.headers.get("x-nuclio-function-namespace") or DEFAULT_NAMESPACE

    def _drain(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(200, INDEX_HTML, "text/html; charset=utf-8")
        if path == "/api/versions":
            return self._send(200, {"dashboard": dict(VERSION)})
        if path in ("/api/functions", "/api/functions/"):
            project = self.headers.get("x-nuclio-project-name") or None
            return self._send(200, STORE.list_functions(self._namespace(), project))
        match = re.fullmatch(r"/api/functions/([^/]+)", path)
        if match:
            function = STORE.get_function(self._namespace(), unquote(match.group(1)))
            if function is None:
                return self._send(404, {"error": "Function not found"})
            return self._send(200, function)
        if path in ("/api/projects", "/api/projects/"):
            return self._send(200, STORE.list_projects(self._namespace()))
        match = re.fullmatch(r"/api/projects/([^/]+)", path)
        if match:
            project = STORE.get_project(self._namespace(), unquote(match.group(1)))
            if project is None:
                return self._send(404, {"error": "Project not found"})
            return self._send(200, project)
        return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def do_POST(self):
        self._drain()
        return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    do_PUT = do_DELETE = do_PATCH = do_POST


class HealthHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        path = urlsplit(self.path).path
        status = 200 if path in ("/live", "/ready") else 404
        body = b"{}\n" if status == 200 else b"404 page not found\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


def _server(address, handler):
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    return ThreadingHTTPServer(address, handler)


def main():
    api = _server(("0.0.0.0", 8070), DashboardHandler)
    health = _server(("127.0.0.1", 8082), HealthHandler)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        for s in (api, health)
    ]
    for thread in threads:
        thread.start()
    _log("Dashboard twin listening", api=":8070", health="127.0.0.1:8082", version=VERSION["label"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    for server in (api, health):
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
