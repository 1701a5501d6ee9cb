"""/api/server/* (cvat/apps/engine/views.py: ServerViewSet)."""

from .. import CVAT_VERSION
from ..routing import ROUTER, api

ABOUT = {
    "name": "Computer Vision Annotation Tool",
    "description": (
        "CVAT is completely re-designed and re-implemented version of Video Annotation Tool "
        "from Irvine, California tool. It is free, online, interactive video and image "
        "annotation tool for computer vision. It is being used by our team to annotate million "
        "of objects with different properties. Many UI and UX decisions are based on feedbacks "
        "from professional data annotation team."
    ),
    "version": CVAT_VERSION,
}


@ROUTER.route(r"^/api/server/about$", methods=("GET",))
def about(request):
    return api(dict(ABOUT))


# --- /api/server/health/ (django-health-check 3.18.3 with CVAT's backends) -------------------


def _check_database():
    from .. import db

    conn = db.connect(timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def _check_redis(host, port, password=""):
    import redis

    client = redis.Redis(host=host, port=port, password=password or None, socket_timeout=3,
                         socket_connect_timeout=3)  # fmt: skip
    key = "djangohealthcheck_test"
    client.set(key, "itworks", ex=2)
    if client.get(key) != b"itworks":
        raise RuntimeError("Cache key does not match")


def _check_opa():
    import urllib.request

    urllib.request.urlopen("http://opa:8181/health?bundles", timeout=3).read()


def _health_checks():
    from .. import settings

    return [
        ("Cache backend: default", lambda: _check_redis(
            settings.REDIS_INMEM_HOST, settings.REDIS_INMEM_PORT, settings.REDIS_INMEM_PASSWORD)),
        ("Cache backend: media", lambda: _check_redis(
            settings.env("CVAT_REDIS_ONDISK_HOST", "localhost"),
            int(settings.env("CVAT_REDIS_ONDISK_PORT", "6666") or 6666),
            settings.env("CVAT_REDIS_ONDISK_PASSWORD", ""))),
        ("DatabaseBackend", _check_database),
        ("DiskUsage", _check_disk),
        ("MemoryUsage", lambda: None),
        ("OPAHealthCheck", _check_opa),
    ]  # fmt: skip


def _check_disk():
    import shutil

    usage = shutil.disk_usage("/")
    if usage.used * 100 / usage.total >= 90:
        raise RuntimeError(f"{usage.used * 100 / usage.total:.1f}% disk usage exceeds 90%")


_FAILURE_TEXT = {
    "DatabaseBackend": "unavailable: Database error",
    "OPAHealthCheck": "unavailable: OPA health check failed",
}


@ROUTER.route(r"^/api/server/health/?$", methods=("GET",))
def health(request):
    import json as _json

    from ..httpd import Response

    results, ok = {}, True
    for name, check in _health_checks():
        try:
            check()
            results[name] = "working"
        except Exception as exc:
            ok = False
            if name.startswith("Cache backend"):
                results[name] = f"unavailable: Cache error: {exc.__class__.__name__}"
            elif name == "DiskUsage":
                results[name] = f"warning: {exc}"
            else:
                results[name] = _FAILURE_TEXT.get(name, f"unavailable: {exc}")
    status = 200 if ok else 500
    if request.query_param("format") == "json" or "json" in (request.header("Accept") or ""):
        return Response(_json.dumps(results), status, content_type="application/json")
    lines = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in results.items())
    return Response(f"<table>{lines}</table>", status)


def _to_bool(value):
    # cvat/apps/engine/views.py ServerViewSet.plugins reads the environment through to_bool
    return value.strip().lower() in ("true", "yes", "t", "y", "1", "on")


@ROUTER.route(r"^/api/server/plugins/?$", methods=("GET",))
def plugins(request):
    import os

    return api(
        {
            "GIT_INTEGRATION": False,
            "ANALYTICS": True,
            # the Models page: on where the serverless overlay sets CVAT_SERVERLESS=1
            "MODELS": _to_bool(os.environ.get("CVAT_SERVERLESS", "")),
            "PREDICT": False,
        }
    )
