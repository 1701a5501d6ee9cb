"""LambdaGateway (cvat/apps/lambda_manager/views.py): how CVAT reaches the Nuclio dashboard and
the functions, with `requests` as CVAT does, so header order, JSON encoding and the text of
connection errors are the library's own.

    gateway.list()                         -> [LambdaFunction, ...]  (unknown kinds skipped)
    gateway.get("pth-yolo-gridcorners")    -> LambdaFunction         (requests.HTTPError on 404)
    gateway.invoke(function, {"image": b64})  POST to host.docker.internal:<httpPort>
"""

import logging
import os

import requests

from .. import CVAT_VERSION

log = logging.getLogger("cvat.lambda")

# cvat/settings/base.py NUCLIO, with production.py's host.
NUCLIO = {
    "SCHEME": os.environ.get("CVAT_NUCLIO_SCHEME", "http"),
    "HOST": os.environ.get("CVAT_NUCLIO_HOST", "nuclio"),
    "PORT": int(os.environ.get("CVAT_NUCLIO_PORT", "8070")),
    "DEFAULT_TIMEOUT": int(os.environ.get("CVAT_NUCLIO_DEFAULT_TIMEOUT", "120")),
    "FUNCTION_NAMESPACE": os.environ.get("CVAT_NUCLIO_FUNCTION_NAMESPACE", "nuclio"),
    "INVOKE_METHOD": os.environ.get(
        "CVAT_NUCLIO_INVOKE_METHOD",
        "dashboard" if "KUBERNETES_SERVICE_HOST" in os.environ else "direct",
    ),
}
ROOT_URL = "/api/functions"
# cvat/utils/http.py: the pinned requests is 2.32.3, whatever the twin's image carries.
USER_AGENT = f"CVAT/{CVAT_VERSION} python-requests/2.32.3"


def session():
    """cvat.utils.http.make_requests_session."""
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def http(method="get", url=None, headers=None, data=None):
    timeout = NUCLIO["DEFAULT_TIMEOUT"]
    gateway = f"{NUCLIO['SCHEME']}://{NUCLIO['HOST']}:{NUCLIO['PORT']}"
    extra_headers = {
        "x-nuclio-project-name": "cvat",
        "x-nuclio-function-namespace": NUCLIO["FUNCTION_NAMESPACE"],
        "x-nuclio-invoke-via": "domain-name",
        "X-Nuclio-Invoke-Timeout": f"{timeout}s",
    }
    if headers:
        extra_headers.update(headers)
    with session() as s:
        reply = s.request(
            method, gateway + (url or ""), headers=extra_headers, timeout=timeout, json=data
        )
        reply.raise_for_status()
        return reply.json()


def list_functions():
    from .function import InvalidFunctionMetadataError, LambdaFunction

    functions = []
    for item in http(url=ROOT_URL).values():
        try:
            functions.append(LambdaFunction(item))
        except InvalidFunctionMetadataError:
            log.error("Failed to parse lambda function metadata", exc_info=True)
    return functions


def get_function(func_id):
    from .function import LambdaFunction

    return LambdaFunction(http(url=f"{ROOT_URL}/{func_id}"))


def invoke(function, payload):
    if NUCLIO["INVOKE_METHOD"] == "dashboard":
        return http(
            method="post",
            url="/api/function_invocations",
            data=payload,
            headers={"x-nuclio-function-name": function.id, "x-nuclio-path": "/"},
        )
    # Inside a container CVAT goes through the host (Docker's host-gateway), else localhost.
    host = "host.docker.internal" if os.path.exists("/.dockerenv") else "localhost"
    with session() as s:
        reply = s.post(
            f"http://{host}:{function.port}", timeout=NUCLIO["DEFAULT_TIMEOUT"], json=payload
        )
        reply.raise_for_status()
        return reply.json()
