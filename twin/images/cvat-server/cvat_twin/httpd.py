"""A small threaded HTTP/1.1 framework on the standard library: Request, Response, Router
and a server factory. The CVAT-specific behaviour lives in cvat_twin.server."""

import json
import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class HTTPError(Exception):
    def __init__(self, status, detail=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class NotFound(HTTPError):
    def __init__(self, detail=None):
        super().__init__(404, detail)


class MethodNotAllowed(HTTPError):
    def __init__(self, method, allowed):
        super().__init__(405, f'Method "{method}" not allowed.')
        self.allowed = allowed


class Request:
    def __init__(self, method, target, headers, body, client):
        parts = urlsplit(target)
        self.method = method
        self.target = target
        self.path = parts.path or "/"
        self.query_string = parts.query
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers  # email.message.Message: case-insensitive .get()
        self.body = body
        self.client = client
        self.params = {}
        self.context = {}

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def query_param(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default


class Response:
    def __init__(self, body=b"", status=200, content_type="text/html; charset=utf-8", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        self.status = status
        self.headers = []  # list of (name, value); order kept
        if content_type:
            self.headers.append(("Content-Type", content_type))
        for name, value in (headers or {}).items():
            self.headers.append((name, value))
        self.data = None  # payload of an API response
        self.is_api = False  # rendered after content negotiation (cvat_twin.server)

    def set_header(self, name, value):
        self.headers = [(n, v) for n, v in self.headers if n.lower() != name.lower()]
        self.headers.append((name, value))

    def get_header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default


class Router:
    def __init__(self):
        self.routes = []  # (regex, {method: handler})

    def route(self, pattern, methods=("GET",)):
        regex = re.compile(pattern)

        def decorator(func):
            for existing_regex, handlers in self.routes:  # noqa: B007 (kept after break)
                if existing_regex.pattern == regex.pattern:
                    break
            else:
                handlers = {}
                self.routes.append((regex, handlers))
            for method in methods:
                handlers[method.upper()] = func
            return func

        return decorator

    def resolve(self, method, path):
        for regex, handlers in self.routes:
            match = regex.match(path)
            if not match:
                continue
            handler = handlers.get(method)
            if handler is None and method == "HEAD":
                handler = handlers.get("GET")
            if handler is None:
                allowed = sorted(handlers)
                if "GET" in allowed and "HEAD" not in allowed:
                    allowed.append("HEAD")
                raise MethodNotAllowed(method, allowed)
            return handler, match.groupdict()
        raise NotFound()


def make_handler(app, server_version="twin"):
    """app(request) -> Response. Access is logged without query strings or headers."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self):
            return server_version

        def send_response(self, code, message=None):
            # No Server header unless the app names one.
            self.log_request(code)
            self.send_response_only(code, message)
            if server_version:
                self.send_header("Server", server_version)
            self.send_header("Date", self.date_time_string())

        def log_message(self, fmt, *args):  # silence the default access log
            pass

        def _read_body(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    line = self.rfile.readline().strip()
                    size = int(line.split(b";", 1)[0] or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _dispatch(self):
            started = time.monotonic()
            body = self._read_body()
            request = Request(self.command, self.path, self.headers, body, self.client_address)
            try:
                response = app(request)
            except Exception as exc:  # last resort; the app handles its own errors
                print(f"unhandled error: {exc!r}", file=sys.stderr, flush=True)
                response = Response(b"Internal Server Error", 500, "text/plain")
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            payload = b"" if self.command == "HEAD" else response.body
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            elapsed = (time.monotonic() - started) * 1000
            print(
                f"INFO:     {self.client_address[0]}:{self.client_address[1]} - "
                f'"{self.command} {request.path} {self.request_version}" {response.status} '
                f"({elapsed:.0f} ms)",
                file=sys.stderr,
                flush=True,
            )

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    return Handler


def serve(app, host, port, server_version="twin", fd=None):
    """A threaded server on (host, port), or on the listening socket inherited as `fd`
    (supervisord's fcgi-program hands every process of the group the same one as fd 0)."""
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    if fd is None:
        return ThreadingHTTPServer((host, port), make_handler(app, server_version))
    httpd = ThreadingHTTPServer((host, port), make_handler(app, server_version), False)
    httpd.socket.close()
    httpd.socket = socket.socket(fileno=fd)
    # Several processes accept on this socket: a blocking accept() in one that lost the race
    # would hold its serve_forever() (and its shutdown on SIGTERM) until the next connection.
    httpd.socket.setblocking(False)
    httpd.server_address = httpd.socket.getsockname()[:2]
    return httpd
