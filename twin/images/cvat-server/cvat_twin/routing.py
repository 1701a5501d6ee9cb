"""What endpoint modules need: the URL router and the response helpers."""

from .httpd import HTTPError, NotFound, Response, Router  # noqa: F401  (re-exported)

ROUTER = Router()

# (compiled pattern, Allow header) for views whose Allow is not DRF's default (viewset actions
# declare their own methods: "GET, POST" on /api/webhooks, "POST" on .../ping).
ROUTER_ALLOW = []


def route(pattern, methods=("GET",), allow=None):
    """ROUTER.route with an optional explicit Allow header."""
    import re

    if allow is not None:
        ROUTER_ALLOW.append((re.compile(pattern), allow))
    return ROUTER.route(pattern, methods=methods)


# django/views/defaults.py
ERROR_PAGE_TEMPLATE = """
<!doctype html>
<html lang="en">
<head>
  <title>%(title)s</title>
</head>
<body>
  <h1>%(title)s</h1><p>%(details)s</p>
</body>
</html>
"""


def api(data, status=200, headers=None):
    """An API (DRF) response: rendered as JSON after content negotiation."""
    response = Response(b"", status, content_type=None, headers=headers)
    response.data = data
    response.is_api = True
    return response


def error_page(status, title, details=""):
    """Django's default HTML error page (no 400.html/404.html/500.html template in CVAT)."""
    return Response(ERROR_PAGE_TEMPLATE % {"title": title, "details": details}, status)
