"""What endpoint modules need: the URL router and the response helpers."""

from .httpd import HTTPError, NotFound, Response, Router  # noqa: F401  (re-exported)

ROUTER = Router()

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
