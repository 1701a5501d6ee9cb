"""Services layer (CVAT part): the API answers as CVAT 2.29.0 does, with the bridge's own
credentials, and the webhooks worker is there to deliver events.

    pytest -m services

The bridge logs in to CVAT with CVAT_USER/CVAT_PWD (or CVAT_USERNAME/CVAT_PASSWORD, the
other documented set) from bridge/.env and calls it at CVAT_URL: both are checked as the
bridge uses them, from inside the bridge container.
"""

from __future__ import annotations

import httpx
import pytest
from packaging import version as pv

from criobe_verify.probes import run_probe
from fixtures.cvat import LOGIN_TEST, cvat_client, login

pytestmark = pytest.mark.services


def _about(profile) -> dict:
    with cvat_client(profile) as client:
        r = client.get("/api/server/about")
    if r.status_code != 200:
        pytest.fail(f"cvat_server: GET /api/server/about answered {r.status_code}", pytrace=False)
    return r.json()


def test_cvat_reports_the_profiles_version(profile):
    about = _about(profile)
    assert about.get("version") == profile.cvat_version, (
        f"cvat_server: /api/server/about reports version {about.get('version')!r}, expected "
        f"{profile.cvat_version!r} (profile {profile.name}): the CRIOBE bridge and functions "
        f"are verified against CVAT {profile.cvat_version}. Fix: CVAT_VERSION=v{profile.cvat_version} "
        "docker compose ... up -d (or update the profile after verifying the new version)."
    )


def test_cvat_health_reports_every_backend_working(profile):
    with cvat_client(profile) as client:
        r = client.get("/api/server/health/", params={"format": "json"})
    try:
        checks = r.json()
    except ValueError:
        checks = {}
    broken = {k: v for k, v in checks.items() if v != "working"} if isinstance(checks, dict) else {}
    assert r.status_code == 200 and checks and not broken, (
        f"cvat_server: GET /api/server/health/?format=json answered {r.status_code}; "
        + (
            "; ".join(f"{k}: {v!r}" for k, v in broken.items())
            if broken
            else f"body {r.text[:300]!r}"
        )
        + (
            " — CVAT cannot reach its database (cvat_db): nothing can be read or saved. "
            "Fix: docker compose ... up -d cvat_db; docker logs cvat_db"
            if "DatabaseBackend" in broken
            else ""
        )
        + (
            " — a cache backend (Redis) is down: queues and frames fail. Fix: check "
            "cvat_redis_inmem / cvat_redis_ondisk"
            if any(k.startswith("Cache backend") for k in broken)
            else ""
        )
        + (" — Docker's disk is ≥ 90 % full." if "DiskUsage" in broken else "")
    )


def test_cvat_accepts_the_bridge_credentials(profile, bridge_credentials):
    with cvat_client(profile) as client:
        r = login(client, bridge_credentials)
    c = bridge_credentials
    assert r.status_code == 200 and "key" in r.json(), (
        f"bridge: CVAT refuses the credentials in the bridge's environment ({c.user_var}="
        f"{c.username!r}, {c.password_var}=[REDACTED]): POST /api/auth/login answered "
        f"{r.status_code} {r.text[:200]!r}. Every webhook the bridge handles fails when it "
        f"calls CVAT. Fix: set {c.password_var} in bridge/.env to the password of CVAT user "
        f"{c.username!r} (the admin created after install), then docker compose ... up -d bridge."
    )


def test_bridge_user_is_a_cvat_admin(cvat_api, bridge_credentials, depends_on):
    depends_on(LOGIN_TEST)
    me = cvat_api.get("/api/users/self").json()
    assert me.get("is_superuser") or me.get("is_staff"), (
        f"cvat_server: the bridge's user {me.get('username')!r} is not an admin "
        f"(is_superuser={me.get('is_superuser')}, is_staff={me.get('is_staff')}): the bridge "
        "creates tasks in every project and reads every job, which a regular user cannot (403). "
        "Fix: docker exec -it cvat_server bash -ic 'python3 ~/manage.py createsuperuser' and "
        "put that user in bridge/.env."
    )


def test_cvat_sdk_supports_the_server_version(profile):
    from cvat_sdk.core.client import Client

    server = pv.Version(_about(profile)["version"])
    supported = Client.SUPPORTED_SERVER_VERSIONS
    ok = any((server.major, server.minor) == (v.major, v.minor) for v in supported)
    assert ok, (
        f"cvat-sdk {pv.Version(__import__('cvat_sdk').__version__)} supports CVAT "
        f"{', '.join(f'{v.major}.{v.minor}' for v in supported)}; the server is {server}. "
        "Fix: install the cvat-sdk whose version matches the server (pip install cvat-sdk=="
        f"{server})."
    )


def test_bridge_cvat_url_is_accepted_by_cvat(bridge_env, stack_container):
    url = bridge_env.get("CVAT_URL")
    assert url, "bridge: CVAT_URL is not set in its environment (bridge/.env)"
    _, r = run_probe(stack_container("bridge"), "http_get", url.rstrip("/") + "/api/server/about")
    host = httpx.URL(url).host
    ok = r.get("ok") and r.get("status") == 200
    assert ok, (
        f"bridge: GET {url}/api/server/about from inside the bridge "
        + (
            f"answered {r['status']} {r['body'][:120]!r}"
            if r.get("ok")
            else f"failed: {r.get('error')}"
        )
        + (
            f". {host!r} contains '_', which Django's host validation refuses even with "
            "ALLOWED_HOSTS='*' (DisallowedHost, 400): use the alias cvat-server. "
            if "_" in host
            else ". "
        )
        + "Every call the bridge makes to CVAT fails. Fix: CVAT_URL=http://cvat-server:8080 in "
        "bridge/.env"
        + (f", or add {host!r} to ALLOWED_HOSTS on cvat_server" if "_" not in host else "")
        + "."
    )


def test_webhooks_worker_consumes_the_webhooks_queue(stack_container):
    container = stack_container("cvat_worker_webhooks")
    _, procs = run_probe(container, "processes_with", "webhooks")
    workers = [p for p in procs.get("processes", []) if any("rq" in w for w in p["argv"][:4])]
    assert workers, (
        "cvat_worker_webhooks: the container runs but no RQ worker consumes the 'webhooks' "
        f"queue (processes: {[' '.join(p['argv'])[:80] for p in procs.get('processes', [])]}). "
        "CVAT queues every webhook event there, so none is delivered (pings still work: "
        "cvat_server sends those itself). Fix: docker restart cvat_worker_webhooks"
    )
