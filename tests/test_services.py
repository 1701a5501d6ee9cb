"""Services layer (CVAT part): the API answers as CVAT 2.29.0 does, with the bridge's own
credentials, the bridge's cvat-sdk supports the server, and the webhooks worker takes jobs
from its queue.

    pytest -m services

The bridge logs in to CVAT with CVAT_USER/CVAT_PWD (or CVAT_USERNAME/CVAT_PASSWORD, the
other documented set) from bridge/.env and calls it at CVAT_URL with its own cvat-sdk: all of
it is checked as the bridge uses it, from inside the bridge container.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect
from criobe_verify.resources.cvat import LOGIN_CHECK

pytestmark = pytest.mark.services


@check("services/cvat-version", guide="post-install", policy=True)
def test_cvat_reports_the_profiles_version(cvat, profile):
    about = cvat.about()
    expect(about.version == profile.cvat_version, lambda: cvat.why_version_differs(about))


@check("services/cvat-health-working", guide="post-install")
def test_cvat_health_reports_every_backend_working(cvat):
    health = cvat.health()
    expect(health.working, lambda: cvat.why_unhealthy(health))


@check("services/cvat-accepts-bridge-credentials", guide=("step-2", "step-4"))
def test_cvat_accepts_the_bridge_credentials(cvat, bridge_login):
    expect(bridge_login.key, lambda: cvat.why_login_refused(bridge_login))


@check("services/bridge-user-is-admin", guide="step-4")
def test_bridge_user_is_a_cvat_admin(cvat_session, depends_on):
    """CVAT's permissions read the user's groups: is_staff or is_superuser alone grant
    nothing there; membership of the `admin` group does."""
    depends_on(LOGIN_CHECK)
    me = cvat_session.me()
    expect(me.is_admin, lambda: cvat_session.why_not_admin(me))


@check("services/bridge-cvat-sdk-supports-server", guide="step-7")
def test_bridge_cvat_sdk_supports_the_server_version(bridge, cvat):
    """The client that talks to CVAT is the bridge's own cvat-sdk, not the suite's."""
    sdk = bridge.cvat_sdk()
    server = cvat.about().version
    expect(sdk.installed, lambda: bridge.why_no_sdk(sdk, server))
    expect(sdk.supports(server), lambda: bridge.why_sdk_misses_the_server(sdk, server))


@check("services/bridge-cvat-url-accepted", guide=("step-2", "step-7"))
def test_bridge_cvat_url_is_accepted_by_cvat(bridge):
    expect(bridge.cvat_url, bridge.why_cvat_url_unset)
    answer = bridge.cvat_url_answer()
    expect(answer.status == 200, lambda: bridge.why_cvat_url_refused(answer))


@check("services/scratch-sets-off-no-lab-webhook", guide="post-install")
def test_scratch_objects_set_off_no_webhook_of_the_lab(cvat_scratch, depends_on):
    """What the suite creates in CVAT must not start the lab's own pipeline: CVAT 2.29.0
    sends an object's events to its organization's and its project's webhooks only, and the
    suite's first project lands in the bridge user's sandbox (or an organization no active
    webhook of the lab watches). Otherwise it is deleted at once and nothing more is made."""
    depends_on(LOGIN_CHECK, "services/bridge-user-is-admin")
    placed = cvat_scratch.placement()
    expect(not placed.watched_by, lambda: cvat_scratch.stopped)


@check("services/webhooks-worker-takes-jobs", guide="post-install")
def test_webhooks_worker_takes_jobs_from_the_webhooks_queue(
    cvat_scratch, webhooks_worker, bridge, depends_on
):
    """A job really enqueued on `webhooks` and really consumed: an event's delivery record
    exists only once cvat_worker_webhooks ran the job (whatever the target answered). The
    project is created as the bridge's user: one outside CVAT's admin group may create nothing."""
    depends_on(
        LOGIN_CHECK, "services/bridge-user-is-admin", "services/scratch-sets-off-no-lab-webhook"
    )
    project = cvat_scratch.project()
    webhook = cvat_scratch.webhook(project.id, bridge.webhook_target, ["update:project"])
    cvat_scratch.session.rename_project(project, project.name + "-x")
    webhook.delivery(None, within=30, unready=webhooks_worker.why_no_job_taken)


@check("services/bridge-log-hides-secrets", guide="step-2", policy=True)
def test_bridge_log_does_not_show_its_secrets(bridge, bridge_credentials):
    """Whoever can read `docker logs bridge` (or a log shipper) must not learn the CVAT admin
    password or the webhook secret. The whole log is scanned, as a stream."""
    shown = bridge.secrets_in_log()
    expect(not shown, lambda: bridge.why_log_shows_secrets(shown))
