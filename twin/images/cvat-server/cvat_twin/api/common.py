"""Shared helpers of the engine endpoints: authentication, permissions, pagination, URLs."""

import json
from urllib.parse import urlencode

from .. import auth, db
from ..routing import HTTPError, api

PERMISSION_DENIED = "You do not have permission to perform this action."


class Denied(HTTPError):
    def __init__(self, detail=PERMISSION_DENIED):
        super().__init__(403, detail)


def base_url(request):
    return f"http://{request.header('Host') or 'localhost:8080'}"


def user_brief(base, user):
    if user is None:
        return None
    return {
        "url": f"{base}/api/users/{user['id']}",
        "id": user["id"],
        "username": user["username"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
    }


def load_user(cur, user_id):
    if user_id is None:
        return None
    cur.execute("SELECT * FROM twin_user WHERE id = %s", (user_id,))
    return cur.fetchone()


def require_user(cur, request):
    try:
        user = auth.authenticate(cur, request)
    except auth.AuthFailed as exc:
        headers = {"WWW-Authenticate": exc.www_authenticate} if exc.www_authenticate else None
        raise ApiError(exc.status, {"detail": exc.detail}, headers) from None
    if user is None:
        raise ApiError(
            401,
            {"detail": "Authentication credentials were not provided."},
            {"WWW-Authenticate": "Token"},
        )
    request.context["user"] = user
    return user


class ApiError(Exception):
    def __init__(self, status, data, headers=None, vary=None):
        super().__init__(status)
        self.status = status
        self.data = data
        self.headers = headers or {}
        self.vary = vary


def json_body(request):
    if not request.body:
        return {}
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, {"detail": f"JSON parse error - {exc}"}) from None
    return data


def is_admin(user):
    """CVAT's rules (utils.is_admin) read the privilege from the user's groups; is_staff and
    is_superuser alone grant nothing."""
    return user.get("privilege") == "admin"


def require_privilege(user, role="user"):
    """utils.has_perm(role): the user's privilege ranks at least `role` (admin > user > worker).
    A user in no IAM group has no privilege and can create nothing."""
    order = ("admin", "user", "worker")
    if user.get("privilege") not in order[: order.index(role) + 1]:
        raise ApiError(403, {"detail": PERMISSION_DENIED}, vary="Origin")


def check_owner(user, *owner_ids):
    if is_admin(user):
        return
    if user["id"] not in {o for o in owner_ids if o is not None}:
        raise ApiError(403, {"detail": PERMISSION_DENIED}, vary="Origin")


def paginate(request, items):
    try:
        page = int(request.query_param("page", "1"))
        size = int(request.query_param("page_size", "10"))
    except ValueError:
        raise ApiError(404, {"detail": "Invalid page."}) from None
    if size <= 0:
        size = 10
    count = len(items)
    start = (page - 1) * size
    if page < 1 or (start >= count and page != 1):
        raise ApiError(404, {"detail": "Invalid page."})

    def link(p):
        query = {k: v[-1] for k, v in request.query.items()}
        if p == 1:
            query.pop("page", None)
        else:
            query["page"] = str(p)
        qs = urlencode(query)
        return f"{base_url(request)}{request.path}" + (f"?{qs}" if qs else "")

    return {
        "count": count,
        "next": link(page + 1) if start + size < count else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": items[start : start + size],
    }


def respond(data, status=200, headers=None, vary=None):
    response = api(data, status, headers=headers)
    if vary:
        response.context_vary = vary
    return response


now = db.now
iso = db.iso


def org_context(cur, request):
    """The organization a request works in (cvat/apps/iam/middleware.py): `org_id`, or the
    slug from `org` or `X-Organization` (both given: they must agree); none of them (or an
    empty slug, the UI's personal workspace) is the sandbox, None. A member, or an admin,
    may work in an organization."""
    org_id = request.query_param("org_id")
    slug = request.query_param("org")
    header = request.header("X-Organization")
    if org_id is not None and (slug is not None or header is not None):
        raise ApiError(400, ['You cannot specify "org_id" query parameter with "org" query '
                             'parameter or "X-Organization" HTTP header at the same time.'])  # fmt: skip
    if slug is not None and header is not None and slug != header:
        raise ApiError(400, ['You cannot specify "org" query parameter and "X-Organization" '
                             "HTTP header with different values."])  # fmt: skip
    slug = slug if slug is not None else header
    if slug:
        cur.execute("SELECT * FROM twin_organization WHERE slug = %s", (slug,))
    elif org_id:
        try:
            cur.execute("SELECT * FROM twin_organization WHERE id = %s", (int(org_id),))
        except ValueError:
            raise ApiError(404, {"detail": "No Organization matches the given query."}) from None
    else:
        return None
    org = cur.fetchone()
    if org is None:
        raise ApiError(404, {"detail": "No Organization matches the given query."})
    user = request.context.get("user")
    if user is not None and not is_admin(user):
        cur.execute(
            "SELECT 1 FROM twin_membership WHERE user_id = %s AND organization_id = %s"
            " AND is_active",
            (user["id"], org["id"]),
        )
        if cur.fetchone() is None:
            raise ApiError(403, {"detail": "You are not a member of the organization"})
    return org


def in_context(rows, org):
    """An admin's listing (OPA's filter): every object in the sandbox context, the
    organization's objects in an organization context."""
    if org is None:
        return rows
    return [r for r in rows if r.get("organization_id") == org["id"]]
