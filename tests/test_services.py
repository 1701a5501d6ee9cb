"""Services layer (CVAT part): the API answers as CVAT 2.29.0 does, with the bridge's own
credentials, the bridge's cvat-sdk supports the server, and the webhooks worker takes jobs
from its queue.

    pytest -m services

The bridge logs in to CVAT with CVAT_USER/CVAT_PWD (or CVAT_USERNAME/CVAT_PASSWORD, the
other documented set) from bridge/.env and calls it at CVAT_URL with its own cvat-sdk: all of
it is checked as the bridge uses it, from inside the bridge container.
"""

from __future__ import annotations

import time

import httpx
import pytest
from criobe_verify.fixtures.cvat import LOGIN_CHECK, cvat_client
from criobe_verify.fixtures.probe_plan import SDK_CALL, cvat_url_call
from packaging import version as pv

from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.probes import ProbeUnavailable
from criobe_verify.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.services


def _about(profile) -> dict:
    with cvat_client(profile) as client:
        r = client.get("/api/server/about")
    if r.status_code != 200:
        fail(Diagnosis("cvat_server", f"GET /api/server/about answered {r.status_code}"))
    return r.json()


def _health(profile) -> tuple[int, dict]:
    with cvat_client(profile) as client:
        r = client.get("/api/server/health/", params={"format": "json"})
    try:
        checks = r.json()
    except ValueError:
        checks = {}
    return r.status_code, checks if isinstance(checks, dict) else {}


@check("services/cvat-version", guide="post-install", policy=True)
def test_cvat_reports_the_profiles_version(profile):
    about = _about(profile)
    if about.get("version") == profile.cvat_version:
        return
    fail(
        Diagnosis(
            "cvat_server",
            f"/api/server/about reports version {about.get('version')!r}",
            expected=f"{profile.cvat_version!r} (profile {profile.name})",
            consequence=f"the CRIOBE bridge and functions are verified against CVAT "
            f"{profile.cvat_version}, not this release",
            fix=f"CVAT_VERSION=v{profile.cvat_version} docker compose ... up -d, or update the "
            "profile after verifying the new version",
        )
    )


@check("services/cvat-health-working", guide="post-install")
def test_cvat_health_reports_every_backend_working(profile):
    status, checks = _health(profile)
    broken = {k: v for k, v in checks.items() if v != "working"}
    if status == 200 and checks and not broken:
        return
    consequence = "CVAT cannot serve its users"
    fix = "docker logs cvat_server"
    if "DatabaseBackend" in broken:
        consequence = "CVAT cannot reach its database (cvat_db): nothing can be read or saved"
        fix = "docker compose ... up -d cvat_db; docker logs cvat_db"
    elif any(k.startswith("Cache backend") for k in broken):
        consequence = "a cache backend (Redis) is down: queues and frames fail"
        fix = "check cvat_redis_inmem / cvat_redis_ondisk"
    elif "DiskUsage" in broken:
        consequence = "Docker's disk is ≥ 90 % full"
        fix = "free disk space on Docker's root"
    fail(
        Diagnosis(
            "cvat_server",
            f"GET /api/server/health/?format=json answered {status}",
            observed="; ".join(f"{k}: {v!r}" for k, v in broken.items()) or "no checks",
            expected="every backend 'working'",
            consequence=consequence,
            fix=fix,
        )
    )


@check("services/cvat-accepts-bridge-credentials", guide=("step-2", "step-4"))
def test_cvat_accepts_the_bridge_credentials(profile, bridge_credentials, bridge_login):
    r = bridge_login
    c = bridge_credentials
    try:
        key = r.json().get("key") if r.status_code == 200 else None
    except (ValueError, AttributeError):
        key = None
    if key:
        return
    if r.status_code >= 500:
        status, checks = _health(profile)
        broken = {k: v for k, v in checks.items() if v != "working"}
        fail(
            Diagnosis(
                "cvat_server",
                f"POST /api/auth/login answered {r.status_code}: a server error, not a verdict "
                "on the credentials",
                observed=f"health {status}: "
                + ("; ".join(f"{k}: {v!r}" for k, v in broken.items()) or "all working"),
                expected="200 with a token",
                consequence="nobody can log in, the bridge included",
                fix="fix the failing backend (see the health check); docker logs cvat_server",
            )
        )
    fail(
        Diagnosis(
            "bridge",
            "CVAT refuses the credentials in the bridge's environment",
            observed=f"{c.user_var}={c.username!r}, {c.password_var}=[REDACTED]: POST "
            f"/api/auth/login answered {r.status_code} {r.text[:200]!r}",
            expected="a token for the admin created after install",
            consequence="every webhook the bridge handles fails when it calls CVAT",
            fix=f"set {c.password_var} in bridge/.env to the password of CVAT user "
            f"{c.username!r}, then docker compose ... up -d bridge",
        )
    )


@check("services/bridge-user-is-admin", guide="step-4")
def test_bridge_user_is_a_cvat_admin(cvat_api, depends_on):
    """CVAT's permissions read the user's groups: is_staff or is_superuser alone grant
    nothing there; membership of the `admin` group does."""
    depends_on(LOGIN_CHECK)
    me = cvat_api.get("/api/users/self").json()
    groups = me.get("groups") or []
    if "admin" in groups:
        return
    fail(
        Diagnosis(
            "cvat_server",
            f"the bridge's user {me.get('username')!r} is not in CVAT's admin group",
            observed=f"groups {groups}, is_superuser={me.get('is_superuser')}, "
            f"is_staff={me.get('is_staff')}",
            why="CVAT decides privileges by group membership, not by the Django flags",
            expected="'admin' in groups",
            consequence="the bridge cannot create tasks in every project nor read every job (403)",
            fix="docker exec -it cvat_server bash -ic 'python3 ~/manage.py createsuperuser' "
            "and put that user in bridge/.env, or add the user to the admin group in "
            "CVAT's admin page (/admin)",
        )
    )


@check("services/bridge-cvat-sdk-supports-server", guide="step-7")
def test_bridge_cvat_sdk_supports_the_server_version(profile, container_named, prober):
    """The client that talks to CVAT is the bridge's own cvat-sdk, not the suite's."""
    try:
        sdk = prober.run(container_named("bridge"), *SDK_CALL)
    except ProbeUnavailable as exc:
        pytest.skip(f"cannot read the bridge's cvat-sdk: {exc}")
    server = pv.Version(_about(profile)["version"])
    if not sdk.ok:
        fail(
            Diagnosis(
                "bridge",
                "has no importable cvat-sdk",
                observed=sdk.error or "",
                expected="cvat-sdk installed in the bridge's image",
                consequence="the bridge cannot talk to CVAT",
                fix=f"pip install cvat-sdk=={server} in the bridge's image",
            )
        )
    supported = [pv.Version(v) for v in sdk.supported]
    if any((server.major, server.minor) == (v.major, v.minor) for v in supported):
        return
    fail(
        Diagnosis(
            "bridge",
            f"its cvat-sdk {sdk.version} ({sdk.file}) supports CVAT "
            + ", ".join(f"{v.major}.{v.minor}" for v in supported),
            observed=f"the server is {server}",
            expected=f"an SDK whose window covers {server.major}.{server.minor}",
            consequence="the SDK warns and may misread the server's answers",
            fix=f"pip install cvat-sdk=={server} in the bridge's image, then rebuild it "
            "(docker compose ... up -d --build bridge)",
        )
    )


@check("services/bridge-cvat-url-accepted", guide=("step-2", "step-7"))
def test_bridge_cvat_url_is_accepted_by_cvat(bridge_env, container_named, prober):
    url = bridge_env.get("CVAT_URL")
    if not url:
        fail(
            Diagnosis(
                "bridge",
                "CVAT_URL is not set in its environment",
                expected="CVAT_URL=http://cvat-server:8080 in bridge/.env",
                consequence="the bridge cannot reach CVAT",
                fix="set it in bridge/.env",
            )
        )
    target = url.rstrip("/") + "/api/server/about"
    r = prober.run(container_named("bridge"), *cvat_url_call(url))
    if r.status == 200:
        return
    host = httpx.URL(url).host
    fail(
        Diagnosis(
            "bridge",
            f"GET {target} from inside the bridge "
            + (f"answered {r.status}" if r.ok else "failed"),
            observed=repr(r.body)[:120] if r.ok else r.error or "",
            why=f"{host!r} contains '_', which Django's host validation refuses even with "
            "ALLOWED_HOSTS='*' (DisallowedHost, 400): use the alias cvat-server"
            if "_" in host
            else "",
            expected="200 from CVAT",
            consequence="every call the bridge makes to CVAT fails",
            fix="CVAT_URL=http://cvat-server:8080 in bridge/.env"
            + (f", or add {host!r} to ALLOWED_HOSTS on cvat_server" if "_" not in host else ""),
        )
    )


@check("services/webhooks-worker-takes-jobs", guide="post-install")
def test_webhooks_worker_takes_jobs_from_the_webhooks_queue(
    cvat_api, cvat_scratch, profile, container_named, prober, depends_on
):
    """A job really enqueued on `webhooks` and really consumed: an event's delivery record
    exists only once cvat_worker_webhooks ran the job (whatever the target answered)."""
    depends_on(LOGIN_CHECK)
    g = profile.gateway
    project = cvat_scratch.project()
    webhook = cvat_scratch.webhook(
        project["id"], f"http://{g.hostname}:{g.port}{g.path}", ["update:project"]
    )
    r = cvat_api.patch(f"/api/projects/{project['id']}", json={"name": project["name"] + "-x"})
    if r.status_code != 200:
        fail(
            Diagnosis(
                "cvat_server", f"PATCH /api/projects/{project['id']} answered {r.status_code}"
            )
        )
    started = time.monotonic()

    def delivered() -> tuple[bool, str]:
        deliveries = cvat_scratch.deliveries(webhook["id"])
        return bool(deliveries), f"{len(deliveries)} deliveries"

    try:
        wait_until(delivered, timeout=30, what="the update:project delivery", interval=0.05)
        return
    except WaitTimeout:
        pass
    worker = container_named("cvat_worker_webhooks")
    procs = prober.run(worker, "processes_with", "webhooks").processes
    shown = "; ".join(f"pid {p.pid} state {p.state}: {p.command[:90]}" for p in procs)
    stopped = [p for p in procs if p.state == "T"]
    fail(
        Diagnosis(
            "cvat_worker_webhooks",
            f"no RQ worker took the update:project job from the 'webhooks' queue in "
            f"{time.monotonic() - started:.0f} s",
            observed=f"processes: {shown or 'none with webhooks in their command line'}",
            why="its worker process is stopped (state T): alive, but taking no job"
            if stopped
            else "",
            expected="a delivery record within seconds",
            consequence="every webhook event stays queued, so the pipeline never chains (pings "
            "still work: cvat_server sends those itself)",
            fix="docker restart cvat_worker_webhooks; docker logs cvat_worker_webhooks",
        )
    )


@check("services/bridge-log-hides-secrets", guide="step-2", policy=True)
def test_bridge_log_does_not_show_its_secrets(container_named, bridge_credentials, bridge_env):
    """Whoever can read `docker logs bridge` (or a log shipper) must not learn the CVAT admin
    password or the webhook secret. The whole log is scanned, as a stream."""
    secrets_by_var = {bridge_credentials.password_var: bridge_credentials.password}
    if bridge_env.get("WEBHOOK_SECRET"):
        secrets_by_var["WEBHOOK_SECRET"] = bridge_env["WEBHOOK_SECRET"]
    wanted = {var: s.encode() for var, s in secrets_by_var.items() if len(s) >= 4}
    found = dict.fromkeys(wanted, 0)
    tails = dict.fromkeys(wanted, b"")
    for chunk in container_named("bridge").logs(
        stream=True, follow=False, stdout=True, stderr=True
    ):
        for var, secret in wanted.items():
            # A chunk can split a secret: keep the previous chunk's end, one byte too short
            # to hold the whole secret (so nothing is counted twice).
            window = tails[var] + chunk
            found[var] += window.count(secret)
            tails[var] = window[-(len(secret) - 1) :]
    shown = {var: n for var, n in found.items() if n}
    if shown:
        fail(
            Diagnosis(
                "bridge",
                "its log shows " + " and ".join(f"{var} ({n}×)" for var, n in shown.items()),
                observed="the value in docker logs bridge (not repeated here)",
                expected="secrets never logged (print '(set)' instead)",
                consequence="anyone with access to the Docker logs can log in to CVAT as admin"
                if bridge_credentials.password_var in shown
                else "anyone with access to the Docker logs can sign webhooks",
                fix="stop logging the settings' values in the bridge; then change the password "
                "in CVAT and bridge/.env, since the old one has been seen",
            )
        )
