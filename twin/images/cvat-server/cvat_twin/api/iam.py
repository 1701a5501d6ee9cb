"""/api/auth/*, /api/users/* (cvat/apps/iam, dj-rest-auth)."""

from .. import auth
from ..routing import route
from .common import (
    ApiError,
    base_url,
    check_owner,
    is_admin,
    iso,
    json_body,
    now,
    paginate,
    require_user,
    respond,
    user_brief,
)


def user_full(base, user):
    """UserSerializer: `groups` are the names of the user's groups (auth_user_groups), whatever
    is_staff and is_superuser say; `user` must come from auth.with_groups."""
    return {
        **user_brief(base, user),
        "email": user["email"],
        "groups": user["groups"],
        "is_staff": user["is_staff"],
        "is_superuser": user["is_superuser"],
        "is_active": user["is_active"],
        "last_login": iso(user["last_login"]),
        "date_joined": iso(user["date_joined"]),
        "has_analytics_access": user["is_superuser"],
    }


def _login_response(cur, user, data, status):
    key = auth.get_or_create_token(cur, user["id"])
    session = auth.create_session(cur, user["id"])
    # django.contrib.auth.login -> update_last_login saves the user, and that post_save puts
    # a superuser that is staff back in `admin` (cvat/apps/iam/signals.py).
    cur.execute(
        "UPDATE twin_user SET last_login = %s WHERE id = %s RETURNING *", (now(), user["id"])
    )
    auth.user_saved(cur, cur.fetchone(), created=False)
    response = respond(dict(data, key=key), status, vary="Cookie, Origin")
    for cookie in auth.session_cookies(session, auth.new_csrf_token()):
        response.headers.append(("Set-Cookie", cookie))
    return response


@route(r"^/api/auth/login/?$", methods=("POST",), allow="POST, OPTIONS")
def login(request):
    from .. import db

    data = json_body(request)
    with db.transaction() as cur:
        try:
            auth.authenticate(cur, request)  # a session cookie without CSRF token -> 403
        except auth.AuthFailed as exc:
            raise ApiError(exc.status, {"detail": exc.detail}, vary="Origin, Cookie") from None
        username = data.get("username") or ""
        email = data.get("email") or ""
        password = data.get("password") or ""
        if username:
            cur.execute("SELECT * FROM twin_user WHERE username = %s", (username,))
        else:
            cur.execute("SELECT * FROM twin_user WHERE lower(email) = lower(%s)", (email,))
        user = cur.fetchone()
        if (
            user is None
            or not user["is_active"]
            or not auth.check_password(password, user["password"])
        ):
            raise ApiError(
                400, {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        return _login_response(cur, user, {}, 200)


@route(r"^/api/auth/logout/?$", methods=("POST", "GET"), allow="GET, POST, HEAD, OPTIONS")
def logout(request):
    from .. import db

    cookies = auth.parse_cookies(request.header("Cookie"))
    with db.transaction() as cur:
        if cookies.get("sessionid"):
            cur.execute("DELETE FROM twin_session WHERE key = %s", (cookies["sessionid"],))
    return respond({"detail": "Successfully logged out."})


@route(r"^/api/auth/register/?$", methods=("POST",), allow="POST, OPTIONS")
def register(request):
    from .. import db

    data = json_body(request)
    errors = {}
    for field in ("username", "email", "password1", "password2"):
        if not data.get(field):
            errors[field] = ["This field is required."]
    if not errors and data["password1"] != data["password2"]:
        errors["non_field_errors"] = ["The two password fields didn't match."]
    if errors:
        raise ApiError(400, errors)
    with db.transaction() as cur:
        cur.execute("SELECT 1 FROM twin_user WHERE username = %s", (data["username"],))
        if cur.fetchone():
            raise ApiError(400, {"username": ["A user with that username already exists."]})
        user = auth.create_user(
            cur, data["username"], data["password1"], email=data["email"],
            first_name=data.get("first_name", ""), last_name=data.get("last_name", ""),
        )  # fmt: skip
        body = {
            "username": user["username"],
            "email": user["email"],
            "first_name": user["first_name"],
            "last_name": user["last_name"],
            "email_verification_required": False,
        }
        response = _login_response(cur, user, body, 201)
        response.headers.append(("Set-Cookie", "messages=; Path=/; SameSite=Lax"))
        return response


@route(r"^/api/users/self/?$", allow="GET, HEAD, OPTIONS")
def users_self(request):
    from .. import db

    with db.transaction() as cur:
        user = require_user(cur, request)
        return respond(user_full(base_url(request), user))


@route(r"^/api/users/?$", allow="GET, HEAD, OPTIONS")
def users_list(request):
    from .. import db

    with db.transaction() as cur:
        me = require_user(cur, request)
        # users.rego: an admin lists everyone; anyone else (no organization) only themselves.
        if is_admin(me):
            cur.execute("SELECT * FROM twin_user ORDER BY id")
        else:
            cur.execute("SELECT * FROM twin_user WHERE id = %s", (me["id"],))
        users = [user_full(base_url(request), auth.with_groups(cur, u)) for u in cur.fetchall()]
    return respond(paginate(request, users))


@route(
    r"^/api/users/(?P<id>\d+)/?$",
    methods=("GET", "DELETE"),
    allow="GET, PATCH, DELETE, HEAD, OPTIONS",
)
def users_retrieve(request):
    from .. import db

    with db.transaction() as cur:
        me = require_user(cur, request)
        cur.execute("SELECT * FROM twin_user WHERE id = %s", (int(request.params["id"]),))
        user = cur.fetchone()
        if user is None:
            raise ApiError(404, {"detail": "Not found."})
        # users.rego: view and delete are the user's own or an admin's.
        check_owner(me, user["id"])
        if request.method == "DELETE":
            cur.execute("DELETE FROM twin_user WHERE id = %s", (user["id"],))
            return respond(None, 204)
        return respond(user_full(base_url(request), auth.with_groups(cur, user)))
