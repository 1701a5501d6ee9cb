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

import secrets

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect
from criobe_verify.resources.webhook import NO_LAB_WEBHOOKS, LabWebhooks

pytestmark = pytest.mark.webhooks

GET_ONLY_HEALTH = (
    "The bridge's /health is GET-only (405 to the ping's POST); the profile accepts that "
    "(bridge.health_accepts_post = false)."
)


@pytest.fixture(scope="module")
def bridge_webhook(cvat_scratch, bridge):
    """A project webhook on the bridge's /health, as the guide's verification sets one up.
    Module-scoped per process: under -n each worker has its own, so no check reads what
    another check found."""
    project = cvat_scratch.project()
    return cvat_scratch.webhook(project.id, bridge.webhook_target, ["update:job", "update:task"])


@check("webhooks/ping-reaches-bridge", guide="post-install")
def test_webhook_ping_reaches_the_bridge(bridge_webhook, bridge_direct_answer):
    ping = bridge_webhook.ping()
    expect(
        ping.came_from(bridge_direct_answer),
        lambda: bridge_webhook.why_not_the_bridge(ping, bridge_direct_answer, "cvat_server"),
    )


@check("webhooks/ping-shows-200", guide="post-install")
def test_webhook_ping_shows_200_as_the_guide_expects(
    bridge_webhook, profile, report_note, depends_on
):
    """The guide's own check: the ping of a webhook on /health shows 200. Whether the real
    bridge's /health accepts POST is unknown; the profile says whether a 405 fails."""
    depends_on("webhooks/ping-reaches-bridge")
    ping = bridge_webhook.ping()
    if ping.status_code == 405 and not profile.bridge.health_accepts_post:
        report_note(GET_ONLY_HEALTH)
        return
    expect(ping.status_code == 200, lambda: bridge_webhook.why_ping_not_200(ping))


@check("webhooks/job-update-delivered", guide="post-install")
def test_job_update_event_is_delivered_to_the_bridge(
    cvat_scratch, bridge_webhook, bridge_direct_answer
):
    _, job = cvat_scratch.task_with_one_job(bridge_webhook.project_id)
    cvat_scratch.session.update_job(job.id, state="in progress")
    not_sent = bridge_webhook.why_event_not_sent(
        f"PATCH /api/jobs/{job.id} {{'state': 'in progress'}}"
    )
    delivery = bridge_webhook.delivery("update:job", within=30, unready=not_sent)
    expect(
        delivery.came_from(bridge_direct_answer),
        lambda: bridge_webhook.why_event_lost(delivery, bridge_direct_answer),
    )


@check("webhooks/signed-delivery-verifies", guide=("step-2", "post-install"))
def test_signed_delivery_verifies_against_the_raw_body(
    cvat_scratch, webhook_receiver, profile, depends_on
):
    depends_on("webhooks/ping-reaches-bridge")
    secret, target = secrets.token_hex(16), webhook_receiver.url(profile.gateway.hostname)
    webhook = cvat_scratch.webhook(cvat_scratch.project().id, target, ["update:job"], secret=secret)
    ping = webhook.ping()
    got = webhook_receiver.last()
    expect(got, lambda: webhook_receiver.why_nothing_arrived(ping, target, profile.gateway.port))
    expect(
        got.verifies(secret) and got.event == "ping",
        lambda: webhook_receiver.why_signature_fails(got, secret),
    )


@pytest.fixture(scope="module")
def lab_webhooks(cvat_session, cvat_lambda_functions, profile) -> LabWebhooks:
    return LabWebhooks(cvat_session, profile.gateway.hostname, cvat_lambda_functions)


@check("webhooks/lab-webhooks-name-existing-targets", guide="post-install")
def test_lab_webhooks_name_existing_projects_and_functions(lab_webhooks, report_note):
    if not lab_webhooks:
        report_note(NO_LAB_WEBHOOKS)
        return
    bad = lab_webhooks.misnamed()
    expect(not bad, lambda: lab_webhooks.why_misnamed(bad))


@check("webhooks/lab-webhooks-deliveries-200", guide="post-install")
def test_lab_webhooks_newest_deliveries_were_answered_200(lab_webhooks, report_note):
    if not lab_webhooks:
        report_note(NO_LAB_WEBHOOKS)
        return
    failing = lab_webhooks.failing()
    expect(not failing, lambda: lab_webhooks.why_failing(failing))
