"""Webhooks layer: CVAT delivers webhooks to the bridge the way the CRIOBE pipeline needs.

    pytest -m webhooks

A ping is sent by cvat_server itself; events (update:job, update:task) are queued and sent by
cvat_worker_webhooks, each through its own Smokescreen: both paths are exercised. A delivery
"reached the bridge" when its recorded answer is the bridge's own, i.e. equals what a direct
POST to the bridge from inside cvat_cvat gets, not Smokescreen's 407/502/504. Everything
created carries the run prefix and is deleted at the end.

The lab's own webhooks to the bridge (the guide's post-install step; none on a new install)
are read, never changed or pinged: each must name a project and a function that exist, and
its newest delivery must have been answered 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

import pytest

from criobe_verify.bridge_hooks import BridgeHook
from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.webhooks

SMOKESCREEN_STATUSES = {407: "Smokescreen refused it", 502: "Smokescreen could not connect",
                        504: "Smokescreen timed out"}  # fmt: skip


def _describe(delivery: dict) -> str:
    return f"{delivery['status_code']} {str(delivery.get('response') or '')[:300]!r}"


@pytest.fixture(scope="module")
def bridge_webhook(cvat_scratch, profile):
    """A project webhook on the bridge's /health, as the guide's verification sets one up.
    Module-scoped per process: under -n each worker has its own, so no check reads what
    another check found."""
    g = profile.gateway
    project = cvat_scratch.project()
    target = f"http://{g.hostname}:{g.port}{g.path}"
    webhook = cvat_scratch.webhook(project["id"], target, ["update:job", "update:task"])
    return project, webhook


def _ping(cvat_api, webhook: dict) -> dict:
    """POST /api/webhooks/<id>/ping: cvat_server sends it at once and returns the delivery."""
    r = cvat_api.post(f"/api/webhooks/{webhook['id']}/ping")
    if r.status_code != 200:
        fail(Diagnosis("cvat_server", f"ping answered {r.status_code}", observed=r.text[:300]))
    return r.json()


@pytest.fixture(scope="module")
def bridge_direct_answer(container_named, prober, profile) -> dict:
    """What the bridge answers a webhook-like POST sent straight to it on cvat_cvat."""
    g = profile.gateway
    url = f"http://bridge:8000{g.path}"
    r = prober.run(container_named("cvat_server"), "http_request", "POST", url, "", "{}")
    if not r.ok:
        fail(
            Diagnosis(
                "bridge",
                f"a POST to {url} from inside cvat_server failed",
                observed=r.error or "",
                consequence="the bridge cannot be reached on the stack network",
            )
        )
    return {"status": r.status, "body": r.body, "url": url}


def _reached_bridge(delivery: dict, direct: dict) -> bool:
    return delivery["status_code"] == direct["status"] and (
        str(delivery.get("response") or "").strip() == direct["body"].strip()
    )


def _not_the_bridge(delivery: dict, direct: dict, sender: str, path: str) -> Diagnosis:
    status = delivery["status_code"]
    return Diagnosis(
        sender,
        f"the delivery to {path} did not come back from the bridge",
        observed=_describe(delivery),
        why=SMOKESCREEN_STATUSES.get(status, "another answer than the bridge's own")
        + f" (a direct POST to the bridge answers {direct['status']} {direct['body'][:80]!r})",
        expected="the bridge's own answer",
        consequence="CVAT's webhooks never reach the bridge, so nothing is automated",
        fix=f"see the gateway layer's checks for {sender} (SMOKESCREEN_OPTS, bridge.gateway)",
    )


@check("webhooks/ping-reaches-bridge", guide="post-install")
def test_webhook_ping_reaches_the_bridge(cvat_api, bridge_webhook, bridge_direct_answer):
    _, webhook = bridge_webhook
    delivery = _ping(cvat_api, webhook)
    if not _reached_bridge(delivery, bridge_direct_answer):
        fail(_not_the_bridge(delivery, bridge_direct_answer, "cvat_server", webhook["target_url"]))


@check("webhooks/ping-shows-200", guide="post-install")
def test_webhook_ping_shows_200_as_the_guide_expects(
    cvat_api, bridge_webhook, profile, report_note, depends_on
):
    """The guide's own check: the ping of a webhook on /health shows 200. Whether the real
    bridge's /health accepts POST is unknown; the profile says whether a 405 fails."""
    depends_on("webhooks/ping-reaches-bridge")
    _, webhook = bridge_webhook
    ping = _ping(cvat_api, webhook)
    status = ping["status_code"]
    if status == 200:
        return
    if status == 405 and not profile.bridge.health_accepts_post:
        report_note(
            "The bridge's /health is GET-only (405 to the ping's POST); the profile accepts "
            "that (bridge.health_accepts_post = false)."
        )
        return
    fail(
        Diagnosis(
            "bridge",
            f"the ping of a webhook to {webhook['target_url']} shows {status}",
            observed=_describe(ping),
            why="405: /health accepts GET only; the guide expects its ping to show 200"
            if status == 405
            else "",
            expected="200, as the install guide's post-installation check says",
            consequence="the guide's verification step fails for the lab",
            fix="let /health accept POST in the bridge, or set bridge.health_accepts_post = "
            "false in the profile if a GET-only /health is intended",
        )
    )


@check("webhooks/job-update-delivered", guide="post-install")
def test_job_update_event_is_delivered_to_the_bridge(
    cvat_api, cvat_scratch, bridge_webhook, bridge_direct_answer
):
    project, webhook = bridge_webhook
    _, job = cvat_scratch.task_with_one_job(project["id"])
    r = cvat_api.patch(f"/api/jobs/{job['id']}", json={"state": "in progress"})
    if r.status_code != 200:
        fail(Diagnosis("cvat_server", f"PATCH /api/jobs/{job['id']} answered {r.status_code}"))
    found: dict = {}

    def delivered() -> tuple[bool, str]:
        found["d"] = next(
            (d for d in cvat_scratch.deliveries(webhook["id"]) if d["event"] == "update:job"),
            None,
        )
        return found["d"] is not None, "no update:job delivery yet"

    try:
        wait_until(delivered, timeout=30, what="the update:job delivery", interval=0.05)
    except WaitTimeout:
        fail(
            Diagnosis(
                "cvat_worker_webhooks",
                f"no update:job delivery for webhook {webhook['id']} 30 s after PATCH "
                f"/api/jobs/{job['id']} {{'state': 'in progress'}}",
                why="events are queued on RQ queue 'webhooks' and only cvat_worker_webhooks "
                "sends them",
                expected="a delivery within seconds",
                consequence="no job or task event reaches the bridge",
                fix="docker logs cvat_worker_webhooks; docker restart cvat_worker_webhooks",
            )
        )
    delivery = found["d"]
    if _reached_bridge(delivery, bridge_direct_answer):
        return
    ping = _ping(cvat_api, webhook)  # cvat_server's own path, to tell the two senders apart
    diagnosis = _not_the_bridge(
        delivery, bridge_direct_answer, "cvat_worker_webhooks", webhook["target_url"]
    )
    if ping["status_code"] != delivery["status_code"]:
        diagnosis = Diagnosis(
            "cvat_worker_webhooks",
            f"the update:job event to {webhook['target_url']} was delivered with "
            f"{_describe(delivery)}, while the ping from cvat_server was delivered with "
            f"{ping['status_code']}",
            why="events go through cvat_worker_webhooks' own Smokescreen"
            + (
                ": a 407 there with a working ping means SMOKESCREEN_OPTS allows the gateway "
                "on cvat_server but not on cvat_worker_webhooks"
                if delivery["status_code"] == 407
                else ""
            ),
            expected="the bridge's own answer",
            consequence="every job and task event is lost, so the pipeline never chains",
            fix='SMOKESCREEN_OPTS: "--allow-address=<gateway>" on cvat_worker_webhooks in '
            "bridge/docker-compose.bridge.yml",
        )
    fail(diagnosis)


@check("webhooks/signed-delivery-verifies", guide=("step-2", "post-install"))
def test_signed_delivery_verifies_against_the_raw_body(
    cvat_api, cvat_scratch, webhook_receiver, profile, depends_on
):
    depends_on("webhooks/ping-reaches-bridge")
    project = cvat_scratch.project()
    secret = secrets.token_hex(16)
    target = f"http://{profile.gateway.hostname}:{webhook_receiver.port}/criobe-verify-hook"
    webhook = cvat_scratch.webhook(project["id"], target, ["update:job"], secret=secret)
    delivery = cvat_api.post(f"/api/webhooks/{webhook['id']}/ping").json()
    received = webhook_receiver.requests()
    if not received:
        fail(
            Diagnosis(
                "cvat_server",
                f"a signed ping to {target} did not arrive",
                observed=f"delivery {_describe(delivery)}",
                why=f"the bridge's port works, so Smokescreen may allow only port "
                f"{profile.gateway.port} of the gateway (--allow-address=IP:PORT): valid for "
                "the bridge, but this check's receiver listens on another port",
                expected="the ping at the suite's receiver",
                consequence="the signature cannot be checked",
                fix="use --allow-address=<gateway> without a port to run this check",
            )
        )
    headers, body = received[-1]
    signature = headers.get("X-Signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected) or json.loads(body).get("event") != "ping":
        fail(
            Diagnosis(
                "cvat_server",
                "the ping's X-Signature-256 does not verify against the raw body with the "
                "webhook's secret",
                observed=repr(signature),
                expected=f"{expected[:20]}…",
                consequence="a bridge that checks WEBHOOK_SECRET rejects every delivery",
                fix="check that nothing between CVAT and the bridge rewrites the body",
            )
        )


def _all(cvat_api, path: str) -> list[dict]:
    results, page = [], 1
    while True:
        r = cvat_api.get(path, params={"page_size": 100, "page": page})
        if r.status_code != 200:
            fail(Diagnosis("cvat_server", f"GET {path} answered {r.status_code}",
                           observed=r.text[:300]))  # fmt: skip
        body = r.json()
        results += body.get("results", [])
        if not body.get("next"):
            return results
        page += 1


@pytest.fixture(scope="module")
def lab_webhooks(cvat_api, profile) -> list[BridgeHook]:
    hooks = [BridgeHook.parse(w, profile.gateway.hostname) for w in _all(cvat_api, "/api/webhooks")]
    return [h for h in hooks if h is not None]


def _none_yet(report_note) -> None:
    report_note(
        "No webhook of the lab's points at the bridge yet (the guide's post-install step adds "
        "them); the e2e layer checks the pipeline with webhooks of its own."
    )


@check("webhooks/lab-webhooks-name-existing-targets", guide="post-install")
def test_lab_webhooks_name_existing_projects_and_functions(
    cvat_api, cvat_lambda_functions, lab_webhooks, report_note
):
    if not lab_webhooks:
        _none_yet(report_note)
        return
    projects = {p["id"]: p["name"] for p in _all(cvat_api, "/api/projects")}
    r = cvat_lambda_functions()
    functions = {f["id"] for f in r.json()} if r.status_code == 200 else set()
    bad = [
        f"webhook {h.id} of project {projects.get(h.project_id, h.project_id)!r} → /{h.endpoint}: "
        + "; ".join(problems)
        for h in lab_webhooks
        if (problems := h.problems(set(projects), functions))
    ]
    if bad:
        fail(
            Diagnosis(
                "cvat_server",
                f"{len(bad)} of the lab's {len(lab_webhooks)} webhook(s) to the bridge name "
                "what CVAT does not have",
                observed="; ".join(bad[:5]),
                why=""
                if r.status_code == 200
                else f"GET /api/lambda/functions answered "
                f"{r.status_code}, so no model_name can be found",
                expected="target_proj_id the id of the next stage's project (its URL in CVAT: "
                "/projects/<id>), model_name a function CVAT lists",
                consequence="the bridge answers those deliveries with an error and the quadrat "
                "stops at that stage",
                fix="edit the webhook in CVAT (Project → Actions → Setup webhooks)",
            )
        )


@check("webhooks/lab-webhooks-deliveries-200", guide="post-install")
def test_lab_webhooks_newest_deliveries_were_answered_200(
    cvat_api, cvat_scratch, lab_webhooks, report_note
):
    if not lab_webhooks:
        _none_yet(report_note)
        return
    bad = []
    for hook in lab_webhooks:
        deliveries = cvat_scratch.deliveries(hook.id)
        if deliveries and deliveries[0]["status_code"] != 200:
            d = deliveries[0]
            bad.append(f"webhook {hook.id} → /{hook.endpoint}: {d['event']} at "
                       f"{d.get('updated_date') or d.get('created_date')} {_describe(d)}")  # fmt: skip
    if bad:
        refused = any(" 403 " in b for b in bad)
        fail(
            Diagnosis(
                "bridge",
                f"the newest delivery of {len(bad)} of the lab's webhook(s) failed",
                observed="; ".join(bad[:5]),
                why="403: the webhook's secret is not WEBHOOK_SECRET in bridge/.env (or the "
                "webhook has none and the bridge requires one)"
                if refused
                else "",
                expected="200 from the bridge",
                consequence="those stages do not run for the lab's quadrats",
                fix="give the webhook the secret in bridge/.env (or empty both)"
                if refused
                else "the bridge's log at that time (docker logs bridge) says why",
            )
        )
