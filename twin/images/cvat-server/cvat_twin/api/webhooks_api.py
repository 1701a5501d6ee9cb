"""/api/webhooks (cvat/apps/webhooks/views.py)."""

import re

from .. import db, webhooks
from ..routing import route
from .common import (
    ApiError,
    base_url,
    check_owner,
    in_context,
    is_admin,
    iso,
    json_body,
    load_user,
    now,
    org_context,
    paginate,
    require_privilege,
    require_user,
    respond,
    user_brief,
)

_URL_RE = re.compile(r"^https?://([a-z0-9-]+(\.[a-z0-9-]+)+|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]|localhost)(:\d+)?(/.*)?$", re.I)  # fmt: skip


def webhook_read(cur, base, hook):
    return {
        "id": hook["id"],
        "url": f"{base}/api/webhooks/{hook['id']}",
        "target_url": hook["target_url"],
        "description": hook["description"],
        "type": hook["type"],
        "content_type": hook["content_type"],
        "is_active": hook["is_active"],
        "enable_ssl": hook["enable_ssl"],
        "created_date": iso(hook["created_date"]),
        "updated_date": iso(hook["updated_date"]),
        "owner": user_brief(base, load_user(cur, hook["owner_id"])),
        "project_id": hook["project_id"],
        "organization": hook.get("organization_id"),
        "events": hook["events"],
    }


def delivery_read(row):
    return {
        "id": row["id"],
        "webhook_id": row["webhook_id"],
        "event": row["event"],
        "status_code": row["status_code"],
        "redelivery": row["redelivery"],
        "created_date": iso(row["created_date"]),
        "updated_date": iso(row["updated_date"]),
        "changed_fields": row["changed_fields"],
        "request": row["request"],
        "response": row["response"],
    }


def _validate(data, partial=False, hook_type=None):
    errors = {}
    required = () if partial else ("target_url", "type", "events")
    for field in required:
        if field not in data:
            errors[field] = ["This field is required."]
    if "target_url" in data and not _URL_RE.match(str(data["target_url"] or "")):
        errors["target_url"] = ["Enter a valid URL."]
    if "type" in data and data["type"] not in ("project", "organization"):
        errors["type"] = [f'"{data["type"]}" is not a valid choice.']
    if "content_type" in data and data["content_type"] != "application/json":
        errors["content_type"] = [f'"{data["content_type"]}" is not a valid choice.']
    if "secret" in data and len(str(data["secret"] or "")) > 64:
        errors["secret"] = ["Ensure this field has no more than 64 characters."]
    if errors:
        raise ApiError(400, errors)
    kind = data.get("type", hook_type)
    if "events" in data:
        allowed = webhooks.PROJECT_EVENTS if kind == "project" else webhooks.ORGANIZATION_EVENTS
        if not isinstance(data["events"], list) or any(e not in allowed for e in data["events"]):
            raise ApiError(400, {"events": [f"Invalid events list for {kind} webhook"]})


def _get(cur, user, hook_id):
    cur.execute("SELECT * FROM twin_webhook WHERE id = %s", (hook_id,))
    hook = cur.fetchone()
    if hook is None:
        raise ApiError(404, {"detail": "Not found."})
    owners = [hook["owner_id"]]
    if hook["project_id"] is not None:
        cur.execute("SELECT owner_id FROM twin_project WHERE id = %s", (hook["project_id"],))
        row = cur.fetchone()
        owners.append(row and row["owner_id"])
    check_owner(user, *owners)
    return hook


@route(r"^/api/webhooks/?$", methods=("GET", "POST"), allow="GET, POST")
def webhooks_list(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        org = org_context(cur, request)
        if request.method == "GET":
            cur.execute("SELECT * FROM twin_webhook ORDER BY id DESC")
            rows = [h for h in cur.fetchall() if is_admin(user) or h["owner_id"] == user["id"]]
            rows = in_context(rows, org)
            project_id = request.query_param("project_id")
            if project_id is not None:
                rows = [h for h in rows if str(h["project_id"]) == project_id]
            return respond(paginate(request, [webhook_read(cur, base, h) for h in rows]))
        require_privilege(user)  # CVAT checks permissions before validating
        data = json_body(request)
        _validate(data)
        if data["type"] == "project":
            if data.get("project_id") is None:
                from ..routing import error_page

                return error_page(500, "Server Error (500)")
            cur.execute(
                "SELECT owner_id, organization_id FROM twin_project WHERE id = %s",
                (data["project_id"],),
            )
            project = cur.fetchone()
            if project is None:
                raise ApiError(
                    400,
                    {"project_id": [f'Invalid pk "{data["project_id"]}" - object does not exist.']},
                )
            check_owner(user, project["owner_id"])
        # WebhookWriteSerializer.create: a project webhook belongs to its project's
        # organization, an organization webhook to the request's (None: a sandbox one, which
        # select_webhooks never picks).
        org_id = project["organization_id"] if data["type"] == "project" else org and org["id"]
        stamp = now()
        cur.execute(
            "INSERT INTO twin_webhook (target_url, description, type, content_type, secret,"
            " is_active, enable_ssl, events, owner_id, project_id, created_date, updated_date,"
            " organization_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *",
            (data["target_url"], data.get("description") or "", data["type"],
             data.get("content_type") or "application/json", data.get("secret") or "",
             data.get("is_active", True), data.get("enable_ssl", True), db.Json(data["events"]),
             user["id"], data.get("project_id"), stamp, stamp, org_id),
        )  # fmt: skip
        body = webhook_read(cur, base, cur.fetchone())
    return respond(body, 201, headers={"Location": body["url"]})


@route(r"^/api/webhooks/events/?$", methods=("GET",), allow="GET")
def webhooks_events(request):
    with db.transaction() as cur:
        require_user(cur, request)
    kind = request.query_param("type", "all")
    if kind == "project":
        events = webhooks.PROJECT_EVENTS
    elif kind == "organization":
        events = webhooks.ORGANIZATION_EVENTS
    else:
        events = webhooks.ORGANIZATION_EVENTS
    return respond({"webhook_type": kind, "events": list(events)})


@route(
    r"^/api/webhooks/(?P<id>\d+)/?$",
    methods=("GET", "PATCH", "PUT", "DELETE"),
    allow="GET, PUT, PATCH, DELETE, HEAD, OPTIONS",
)
def webhook_detail(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        hook = _get(cur, user, int(request.params["id"]))
        if request.method == "GET":
            return respond(webhook_read(cur, base, hook))
        if request.method == "DELETE":
            cur.execute("DELETE FROM twin_webhook WHERE id = %s", (hook["id"],))
            return respond(None, 204)
        data = json_body(request)
        _validate(data, partial=request.method == "PATCH", hook_type=hook["type"])
        for field in ("target_url", "description", "content_type", "secret", "is_active",
                      "enable_ssl"):  # fmt: skip
            if field in data:
                cur.execute(f"UPDATE twin_webhook SET {field} = %s WHERE id = %s",
                            (data[field], hook["id"]))  # fmt: skip
        if "events" in data:
            cur.execute("UPDATE twin_webhook SET events = %s WHERE id = %s",
                        (db.Json(data["events"]), hook["id"]))  # fmt: skip
        cur.execute("UPDATE twin_webhook SET updated_date = %s WHERE id = %s RETURNING *",
                    (now(), hook["id"]))  # fmt: skip
        return respond(webhook_read(cur, base, cur.fetchone()))


@route(r"^/api/webhooks/(?P<id>\d+)/ping/?$", methods=("POST",), allow="POST")
def webhook_ping(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        hook = _get(cur, user, int(request.params["id"]))
        payload = {
            "event": "ping",
            "webhook": webhook_read(cur, base, hook),
            "sender": user_brief(base, user),
        }
    delivery = webhooks.send(hook, payload)
    return respond(delivery)


@route(r"^/api/webhooks/(?P<id>\d+)/deliveries/?$", methods=("GET",), allow="GET")
def deliveries(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        hook = _get(cur, user, int(request.params["id"]))
        cur.execute("SELECT * FROM twin_delivery WHERE webhook_id = %s ORDER BY id DESC",
                    (hook["id"],))  # fmt: skip
        return respond(paginate(request, [delivery_read(r) for r in cur.fetchall()]))


@route(r"^/api/webhooks/(?P<id>\d+)/deliveries/(?P<did>\d+)/?$", methods=("GET",), allow="GET")
def delivery_detail(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        hook = _get(cur, user, int(request.params["id"]))
        cur.execute("SELECT * FROM twin_delivery WHERE webhook_id = %s AND id = %s",
                    (hook["id"], int(request.params["did"])))  # fmt: skip
        row = cur.fetchone()
        if row is None:
            raise ApiError(404, {"detail": "Not found."})
        return respond(delivery_read(row))


@route(
    r"^/api/webhooks/(?P<id>\d+)/deliveries/(?P<did>\d+)/redelivery/?$",
    methods=("POST",),
    allow="POST",
)
def redelivery(request):
    with db.transaction() as cur:
        user = require_user(cur, request)
        hook = _get(cur, user, int(request.params["id"]))
        cur.execute("SELECT id FROM twin_delivery WHERE webhook_id = %s AND id = %s",
                    (hook["id"], int(request.params["did"])))  # fmt: skip
        if cur.fetchone() is None:
            raise ApiError(404, {"detail": "Not found."})
    webhooks.enqueue("cvat_twin.webhooks.redeliver", int(request.params["did"]))
    return respond({})
