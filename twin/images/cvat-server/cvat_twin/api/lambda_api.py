"""GET /api/lambda/functions (cvat/apps/lambda_manager/views.py: FunctionViewSet.list).

CVAT asks the Nuclio dashboard for the functions of project `cvat` and lists those whose
`metadata.annotations.type` it knows. When the dashboard cannot be reached the view answers
503 with the text of the `requests` exception as a JSON string (recorded: 26).
"""

import json
import os
import urllib.error
import urllib.request

from .. import db
from ..routing import route
from .common import require_user, respond

NUCLIO_HOST = os.environ.get("CVAT_NUCLIO_HOST", "nuclio")
NUCLIO_PORT = int(os.environ.get("CVAT_NUCLIO_PORT", "8070"))
KNOWN_TYPES = ("detector", "interactor", "reid", "tracker")


def _connection_error_text(reason):
    # requests/urllib3 wording for a failed connection, which the view returns verbatim.
    # socket.gaierror is an OSError: "[Errno -2] Name or service not known" when the
    # nuclio container is gone from Docker's DNS, "[Errno 111] Connection refused" when it runs.
    if isinstance(reason, OSError) and reason.errno:
        cause = f"[Errno {reason.errno}] {reason.strerror}"
    else:
        cause = str(reason)
    return (
        f"HTTPConnectionPool(host='{NUCLIO_HOST}', port={NUCLIO_PORT}): Max retries exceeded "
        "with url: /api/functions (Caused by NewConnectionError('<urllib3.connection."
        "HTTPConnection object at 0x7f60b4c1c150>: Failed to establish a new connection: "
        f"{cause}'))"
    )


def _function(entry):
    meta = entry.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = []
    for label in json.loads(annotations.get("spec") or "[]"):
        item = {"name": label["name"], "type": label.get("type", "any"),
                "attributes": label.get("attributes", [])}  # fmt: skip
        if label.get("sublabels"):
            item["sublabels"] = label["sublabels"]
        if label.get("svg"):
            item["svg"] = label["svg"]
        labels.append(item)
    return {
        "id": meta["name"],
        "kind": annotations.get("type"),
        "labels_v2": labels,
        "description": (entry.get("spec") or {})["description"],
        "name": annotations.get("name", meta["name"]),
        "version": int(annotations.get("version", 1)),
    }


@route(r"^/api/lambda/functions/?$", allow="GET, HEAD, OPTIONS")
def list_functions(request):
    with db.transaction() as cur:
        require_user(cur, request)
    req = urllib.request.Request(
        f"http://{NUCLIO_HOST}:{NUCLIO_PORT}/api/functions",
        headers={
            "x-nuclio-project-name": "cvat",
            "x-nuclio-function-namespace": "nuclio",
            "x-nuclio-invoke-via": "domain-name",
            "X-Nuclio-Invoke-Timeout": "120s",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            functions = json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return respond(exc.read().decode(errors="replace"), status=exc.code)
    except urllib.error.URLError as exc:
        # Recorded: this error answer's Vary has no Cookie (the session was not touched).
        return respond(_connection_error_text(exc.reason), status=503, vary="Origin")
    listed = [
        _function(entry)
        for entry in functions.values()
        if ((entry.get("metadata") or {}).get("annotations") or {}).get("type") in KNOWN_TYPES
    ]
    return respond(listed)
