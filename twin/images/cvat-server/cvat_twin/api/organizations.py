"""/api/organizations (cvat/apps/organizations): what the lab's organization webhooks hang on.

Any user may create one and becomes its owner (a membership with role `owner`); an admin
lists and reads every organization, anyone else the ones they are an active member of.
The organization an object belongs to comes from the request's context (common.org_context).
"""

import re

from .. import db
from ..routing import route
from .common import (
    ApiError,
    base_url,
    is_admin,
    iso,
    json_body,
    load_user,
    now,
    paginate,
    require_privilege,
    require_user,
    respond,
    user_brief,
)

_SLUG_RE = re.compile(r"^[a-zA-Z\d]+$")


def organization_read(cur, base, org):
    return {
        "id": org["id"],
        "slug": org["slug"],
        "name": org["name"],
        "description": org["description"],
        "created_date": iso(org["created_date"]),
        "updated_date": iso(org["updated_date"]),
        "contact": org["contact"],
        "owner": user_brief(base, load_user(cur, org["owner_id"])),
    }


def _visible(cur, user):
    if is_admin(user):
        cur.execute("SELECT * FROM twin_organization ORDER BY id DESC")
    else:
        cur.execute(
            "SELECT o.* FROM twin_organization o JOIN twin_membership m"
            " ON m.organization_id = o.id WHERE m.user_id = %s AND m.is_active ORDER BY o.id DESC",
            (user["id"],),
        )
    return cur.fetchall()


@route(r"^/api/organizations/?$", methods=("GET", "POST"), allow="GET, POST, HEAD, OPTIONS")
def organizations(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        if request.method == "GET":
            rows = _visible(cur, user)
            return respond(paginate(request, [organization_read(cur, base, o) for o in rows]))
        require_privilege(user, "worker")
        data = json_body(request)
        slug = data.get("slug")
        if not slug:
            raise ApiError(400, {"slug": ["This field is required."]})
        if len(slug) > 16 or not _SLUG_RE.match(slug):
            raise ApiError(400, {"slug": ["Enter a valid slug (letters and digits, ≤ 16)."]})
        cur.execute("SELECT 1 FROM twin_organization WHERE slug = %s", (slug,))
        if cur.fetchone():
            raise ApiError(400, {"slug": ["organization with this slug already exists."]})
        stamp = now()
        cur.execute(
            "INSERT INTO twin_organization (slug, name, description, contact, owner_id,"
            " created_date, updated_date) VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING *",
            (slug, data.get("name") or "", data.get("description") or "",
             db.Json(data.get("contact") or {}), user["id"], stamp, stamp),
        )  # fmt: skip
        org = cur.fetchone()
        cur.execute(
            "INSERT INTO twin_membership (user_id, organization_id, role, is_active, joined_date)"
            " VALUES (%s, %s, 'owner', true, %s)",
            (user["id"], org["id"], stamp),
        )
        body = organization_read(cur, base, org)
    return respond(body, 201)


@route(
    r"^/api/organizations/(?P<id>\d+)/?$",
    methods=("GET", "PATCH", "DELETE"),
    allow="GET, PATCH, DELETE, HEAD, OPTIONS",
)
def organization_detail(request):
    base = base_url(request)
    with db.transaction() as cur:
        user = require_user(cur, request)
        found = [o for o in _visible(cur, user) if o["id"] == int(request.params["id"])]
        if not found:
            raise ApiError(404, {"detail": "Not found."})
        org = found[0]
        if request.method == "GET":
            return respond(organization_read(cur, base, org))
        if not is_admin(user) and org["owner_id"] != user["id"]:
            raise ApiError(403, {"detail": "You do not have permission to perform this action."})
        if request.method == "DELETE":
            cur.execute("DELETE FROM twin_organization WHERE id = %s", (org["id"],))
            return respond(None, 204)
        data = json_body(request)
        for field in ("name", "description"):
            if field in data:
                cur.execute(
                    f"UPDATE twin_organization SET {field} = %s WHERE id = %s",
                    (data[field] or "", org["id"]),
                )
        if "contact" in data:
            cur.execute(
                "UPDATE twin_organization SET contact = %s WHERE id = %s",
                (db.Json(data["contact"] or {}), org["id"]),
            )
        cur.execute(
            "UPDATE twin_organization SET updated_date = %s WHERE id = %s RETURNING *",
            (now(), org["id"]),
        )
        return respond(organization_read(cur, base, cur.fetchone()))
