"""Users, password hashes, tokens, sessions and request authentication, as Django 4.2 and
DRF do them in CVAT: TokenAuthentication, SessionAuthentication (with CSRF), BasicAuthentication."""

import base64
import binascii
import datetime
import hashlib
import hmac
import secrets

from . import db

PBKDF2_ITERATIONS = 600000  # Django 4.2's PBKDF2PasswordHasher.iterations
SESSION_AGE = datetime.timedelta(weeks=2)
_SALT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def make_password(password, salt=None, iterations=PBKDF2_ITERATIONS):
    salt = salt or "".join(secrets.choice(_SALT_CHARS) for _ in range(22))
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def check_password(password, encoded):
    try:
        algorithm, iterations, salt, _hash = encoded.split("$", 3)
    except (AttributeError, ValueError):
        return False
    if algorithm != "pbkdf2_sha256":
        return False
    return hmac.compare_digest(make_password(password, salt, int(iterations)), encoded)


# cvat/settings/base.py: IAM_ROLES in priority order, IAM_ADMIN_ROLE, IAM_DEFAULT_ROLE.
IAM_ROLES = ("admin", "user", "worker")
IAM_ADMIN_ROLE = "admin"
IAM_DEFAULT_ROLE = "user"


def _add_group(cur, user_id, name):
    cur.execute(
        "INSERT INTO auth_user_groups (user_id, group_id) SELECT %s, id FROM auth_group"
        " WHERE name = %s ON CONFLICT (user_id, group_id) DO NOTHING",
        (user_id, name),
    )


def user_saved(cur, user, created):
    """cvat/apps/iam/signals.py create_user (post_save of User, IAM_TYPE BASIC): a superuser
    that is also staff is put in `admin` at every save, created or not (a password login
    saves last_login, so it counts); any other user gets `user` only when created."""
    if user["is_superuser"] and user["is_staff"]:
        _add_group(cur, user["id"], IAM_ADMIN_ROLE)
    elif created:
        _add_group(cur, user["id"], IAM_DEFAULT_ROLE)


def user_groups(cur, user_id):
    """Names of the user's groups, as UserSerializer's `groups` lists them."""
    cur.execute(
        "SELECT g.name FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id"
        " WHERE ug.user_id = %s ORDER BY g.id",
        (user_id,),
    )
    return [row["name"] for row in cur.fetchall()]


def with_groups(cur, user):
    """The user row with `groups` and `privilege` (cvat/apps/iam/middleware.py: the
    first of the user's groups in IAM_ROLES order, None when it has none)."""
    if user is None:
        return None
    groups = user_groups(cur, user["id"])
    roles = [r for r in IAM_ROLES if r in groups]
    return {**user, "groups": groups, "privilege": roles[0] if roles else None}


def create_user(cur, username, password, email="", first_name="", last_name="", superuser=False):
    cur.execute(
        "INSERT INTO twin_user (username, email, first_name, last_name, password, is_staff,"
        " is_superuser, date_joined) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *",
        (username, email, first_name, last_name, make_password(password), superuser, superuser,
         db.now()),
    )  # fmt: skip
    user = cur.fetchone()
    user_saved(cur, user, created=True)
    return with_groups(cur, user)


def get_or_create_token(cur, user_id):
    cur.execute("SELECT key FROM twin_token WHERE user_id = %s", (user_id,))
    row = cur.fetchone()
    if row:
        return row["key"]
    key = secrets.token_hex(20)
    cur.execute("INSERT INTO twin_token (key, user_id) VALUES (%s, %s)", (key, user_id))
    return key


def create_session(cur, user_id):
    key = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
    cur.execute(
        "INSERT INTO twin_session (key, user_id, expire_date) VALUES (%s, %s, %s)",
        (key, user_id, db.now() + SESSION_AGE),
    )
    return key


def new_csrf_token():
    return "".join(secrets.choice(_SALT_CHARS) for _ in range(32))


def parse_cookies(header):
    cookies = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies[name.strip()] = value.strip()
    return cookies


def session_cookies(session_key, csrf_token):
    """Set-Cookie values in the order CVAT's login answers them."""
    expires = (db.now() + SESSION_AGE).strftime("%a, %d %b %Y %H:%M:%S GMT")
    age = int(SESSION_AGE.total_seconds())
    return [
        f"csrftoken={csrf_token}; expires={expires}; Max-Age={age}; Path=/; SameSite=Lax",
        "sessionfresh=1; Path=/; SameSite=Lax",
        f"sessionid={session_key}; expires={expires}; HttpOnly; Max-Age={age}; Path=/;"
        " SameSite=Lax",
    ]


class AuthFailed(Exception):
    def __init__(self, status, detail, www_authenticate=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.www_authenticate = www_authenticate


UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def authenticate(cur, request):
    """Return the user row or None (anonymous); raise AuthFailed (401/403) like DRF."""
    header = request.header("Authorization") or ""
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "token":
        key = credentials.strip()
        if not key or " " in key:
            raise AuthFailed(401, "Invalid token header. No credentials provided.", "Token")
        cur.execute(
            "SELECT u.* FROM twin_token t JOIN twin_user u ON u.id = t.user_id WHERE t.key = %s",
            (key,),
        )
        user = cur.fetchone()
        if user is None:
            raise AuthFailed(401, "Invalid token.", "Token")
        if not user["is_active"]:
            raise AuthFailed(401, "User inactive or deleted.", "Token")
        return with_groups(cur, user)
    cookies = parse_cookies(request.header("Cookie"))
    session_key = cookies.get("sessionid")
    if session_key:
        cur.execute(
            "SELECT u.* FROM twin_session s JOIN twin_user u ON u.id = s.user_id"
            " WHERE s.key = %s AND s.expire_date > now()",
            (session_key,),
        )
        user = cur.fetchone()
        if user is not None and user["is_active"]:
            if request.method in UNSAFE:
                _enforce_csrf(request, cookies)
            return with_groups(cur, user)
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthFailed(
                401, "Invalid basic header. Credentials not correctly base64 encoded.", "Token"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthFailed(401, "Invalid basic header. No credentials provided.", "Token")
        cur.execute("SELECT * FROM twin_user WHERE username = %s", (username,))
        user = cur.fetchone()
        if user is None or not check_password(password, user["password"]):
            raise AuthFailed(401, "Invalid username/password.", "Token")
        if not user["is_active"]:
            raise AuthFailed(401, "User inactive or deleted.", "Token")
        return with_groups(cur, user)
    return None


def _enforce_csrf(request, cookies):
    # django.middleware.csrf.CsrfViewMiddleware as DRF's SessionAuthentication applies it
    cookie = cookies.get("csrftoken")
    if not cookie:
        raise AuthFailed(403, "CSRF Failed: CSRF cookie not set.")
    token = request.header("X-CSRFToken")
    if not token:
        raise AuthFailed(403, "CSRF Failed: CSRF token missing.")
    if _unmask(token) != _unmask(cookie):
        raise AuthFailed(403, "CSRF Failed: CSRF token incorrect.")


def _unmask(token):
    if len(token) != 64:
        return token
    mask, masked = token[:32], token[32:]
    chars = _SALT_CHARS
    try:
        return "".join(chars[(chars.index(x) - chars.index(y)) % len(chars)]
                       for x, y in zip(masked, mask, strict=True))  # fmt: skip
    except ValueError:
        return token
