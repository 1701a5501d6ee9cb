"""The CVAT API twin: a subset of CVAT v2.29.0's REST API on 0.0.0.0:8080.

Request pipeline, in the order Django/DRF apply it in CVAT:
  1. X-Request-Id (CVAT's RequestTrackingMiddleware)
  2. Host validation against ALLOWED_HOSTS (Django CommonMiddleware -> DisallowedHost -> 400)
  3. URL resolution (unknown path -> Django's HTML 404 page; wrong method -> DRF 405)
  4. content negotiation and versioning for API views (DRF, Accept header)
  5. security headers (SecurityMiddleware, XFrameOptionsMiddleware), gzip (GZipMiddleware)

Endpoints are registered on cvat_twin.routing.ROUTER by the modules of cvat_twin.api.
Run with `python3 -m cvat_twin.runserver`.
"""

import gzip
import json
import logging
import re
import secrets
import sys
import traceback
import uuid

from . import api as _endpoints  # noqa: F401  (registers the endpoints on ROUTER)
from . import hosts, settings
from .api.common import ApiError
from .httpd import HTTPError, MethodNotAllowed, NotFound, Response, serve
from .routing import ROUTER, ROUTER_ALLOW, api, error_page

SECURITY_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)

# Vary as Django's middlewares patch it: DRF adds Accept, GZipMiddleware Accept-Encoding (bodies
# of 200 bytes or more), then CORS Origin and the session Cookie (a view may change the tail).
DEFAULT_VARY_TAIL = "Origin, Cookie"

# DRF renderers in CVAT's order: plain JSON by default, CVAT's vendor type when asked for.
RENDERER_MEDIA_TYPES = ("application/json", "application/vnd.cvat+json")
ALLOWED_API_VERSIONS = ("2.0",)


def _setup_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


security_logger = logging.getLogger("django.security.DisallowedHost")
request_logger = logging.getLogger("django.request")
server_logger = logging.getLogger("cvat.server")


# --- DRF content negotiation (rest_framework/negotiation.py, utils/mediatypes.py) ---------


class _MediaType:
    def __init__(self, text):
        main, *params = [p.strip() for p in text.split(";")]
        self.orig = text.strip()
        self.main_type, _, self.sub_type = main.partition("/")
        self.params = {}
        for param in params:
            key, _, value = param.partition("=")
            if key:
                self.params[key.strip()] = value.strip()

    def match(self, other):
        for key in self.params:
            if key != "q" and other.params.get(key) != self.params.get(key):
                return False
        if self.sub_type != "*" and other.sub_type != "*" and other.sub_type != self.sub_type:
            return False
        return not (
            self.main_type != "*" and other.main_type != "*" and other.main_type != self.main_type
        )

    @property
    def precedence(self):
        if self.main_type == "*":
            return 0
        if self.sub_type == "*":
            return 1
        if not self.params or list(self.params) == ["q"]:
            return 2
        return 3


def negotiate(accept_header):
    """Return the accepted media type (with parameters), or None when nothing fits (406)."""
    accepts = [t.strip() for t in (accept_header or "*/*").split(",") if t.strip()]
    by_precedence = [[], [], [], []]
    for text in accepts:
        by_precedence[3 - _MediaType(text).precedence].append(text)
    for group in by_precedence:
        for renderer_type in RENDERER_MEDIA_TYPES:
            for text in group:
                wanted = _MediaType(text)
                renderer = _MediaType(renderer_type)
                if renderer.match(wanted):
                    if renderer.precedence > wanted.precedence:
                        extra = tuple(f"{k}={v}" for k, v in wanted.params.items() if k != "q")
                        return ";".join((renderer_type, *extra))
                    return text
    return None


def render_api(request, response):
    accepted = negotiate(request.header("Accept"))
    data, status = response.data, response.status
    if accepted is None:
        accepted = RENDERER_MEDIA_TYPES[0]
        data, status = {"detail": "Could not satisfy the request Accept header."}, 406
    else:
        version = _MediaType(accepted).params.get("version")
        if version is not None and version not in ALLOWED_API_VERSIONS:
            data, status = {"detail": 'Invalid version in "Accept" header.'}, 406
    body = (
        b""
        if data is None
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
            "utf-8"
        )
    )
    rendered = Response(body, status, content_type=accepted)
    for name, value in response.headers:
        if name.lower() == "set-cookie":
            rendered.headers.append((name, value))
        else:
            rendered.set_header(name, value)
    if rendered.get_header("Vary") is None:
        tokens = ["Accept"]
        if len(body) >= 200:
            tokens.append("Accept-Encoding")
        tail = getattr(response, "context_vary", None) or DEFAULT_VARY_TAIL
        rendered.set_header("Vary", ", ".join(tokens) + ", " + tail)
    return rendered


# --- the application ------------------------------------------------------------------------


def _raw_host(request):
    # Django's _get_raw_host(): X-Forwarded-Host is not trusted (USE_X_FORWARDED_HOST is off).
    host = request.header("Host")
    if host is None:
        host = f"{settings.SERVER_BIND}:{settings.SERVER_PORT}"
    return host


_DRF_METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


def _allow_header(methods):
    """The Allow header in DRF's order (APIView.allowed_methods)."""
    methods = set(methods) | {"OPTIONS"}
    return ", ".join(m for m in _DRF_METHOD_ORDER if m in methods)


def _route_allow(request):
    for regex, allow in ROUTER_ALLOW:
        if regex.match(request.path):
            return allow
    return None


def _allowed_methods(request):
    try:
        ROUTER.resolve("__none__", request.path)
    except MethodNotAllowed as exc:
        return exc.allowed
    except NotFound:
        return []
    return []


def _set_allow(request, response):
    allow = _route_allow(request)
    if allow is None:
        allowed = _allowed_methods(request)
        allow = _allow_header(allowed) if allowed else None
    if allow:
        response.set_header("Allow", allow)


def handle(request):
    try:
        hosts.get_host(_raw_host(request), settings.allowed_hosts())
    except hosts.DisallowedHost as exc:
        security_logger.error(str(exc))
        request_logger.warning("Bad Request: %s", request.path)
        return error_page(400, "Bad Request (400)")

    try:
        if request.method == "OPTIONS":
            allowed = _allowed_methods(request)
            if not allowed:
                raise NotFound()
            allow = _allow_header(allowed)
            response = api(
                {
                    "name": "CVAT",
                    "description": "",
                    "renders": list(RENDERER_MEDIA_TYPES),
                    "parses": ["application/json"],
                },
                headers={"Allow": allow},
            )
        else:
            handler, params = ROUTER.resolve(request.method, request.path)
            request.params = params
            response = handler(request)
            if response.is_api and response.get_header("Allow") is None:
                _set_allow(request, response)
    except ApiError as exc:
        response = api(exc.data, exc.status, headers=exc.headers)
        if exc.vary:
            response.context_vary = exc.vary
        _set_allow(request, response)
    except MethodNotAllowed as exc:
        request_logger.warning("Method Not Allowed: %s", request.path)
        response = api({"detail": exc.detail}, 405, headers={"Allow": _allow_header(exc.allowed)})
    except NotFound:
        request_logger.warning("Not Found: %s", request.path)
        return error_page(404, "Not Found", "The requested resource was not found on this server.")
    except HTTPError as exc:
        response = api({"detail": exc.detail or ""}, exc.status)
    except Exception:
        request_logger.error("Internal Server Error: %s\n%s", request.path, traceback.format_exc())
        page = error_page(500, "Server Error (500)")
        # django-cors-headers patches Vary on every response, Django's error pages included
        page.set_header("Vary", "Origin")
        return page

    if response.is_api:
        response = render_api(request, response)
    return response


def _compress_string(data, max_random_bytes=100):
    """django.utils.text.compress_string as GZipMiddleware calls it (Django 4.2): level 6, and
    against BREACH a gzip file name of 0-99 random bytes. So a body of a few hundred bytes is
    sent compressed or not by chance, and a compressed one's length varies (recorded)."""
    data = gzip.compress(data, compresslevel=6, mtime=0)
    header = bytearray(data[:10])
    header[3] = gzip.FNAME
    return bytes(header) + b"a" * secrets.randbelow(max_random_bytes) + b"\x00" + data[10:]


def _gzip(request, response):
    # django.middleware.gzip.GZipMiddleware
    if len(response.body) < 200 or response.get_header("Content-Encoding"):
        return response
    vary = response.get_header("Vary")
    if vary is None:
        response.set_header("Vary", "Accept-Encoding")
    elif "accept-encoding" not in vary.lower():
        response.set_header("Vary", vary + ", Accept-Encoding")
    if not re.search(r"\bgzip\b", request.header("Accept-Encoding") or ""):
        return response
    compressed = _compress_string(response.body)
    if len(compressed) >= len(response.body):
        return response
    response.body = compressed
    response.set_header("Content-Encoding", "gzip")
    return response


def app(request):
    request_id = str(uuid.uuid4())
    response = handle(request)
    for name, value in SECURITY_HEADERS:
        if response.get_header(name) is None:
            response.set_header(name, value)
    response.set_header("X-Request-Id", request_id)
    return _gzip(request, response)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m cvat_twin.runserver")
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    _setup_logging()
    httpd = serve(app, settings.SERVER_BIND, settings.SERVER_PORT, server_version="", fd=args.fd)
    host, port = httpd.server_address
    server_logger.info("CVAT API twin listening on %s:%d", host, port)
    import signal
    import threading

    def _stop(_signum, _frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
    return 0
