"""Containers layer: every container the profile expects exists, runs, is not crash-looping,
is healthy where its image has a health check, keeps the programs supervisord runs in it
alive, and has the expected image and restart policy (those two are policy checks).

    pytest -m containers --profile profiles/criobe.toml

One check per container, so a waiver or a failure names exactly one; each check on a container
depends on its existence check, so a missing container is not also reported "not running".
What each check reads and how it explains a failure is the container resource's
(criobe_verify/resources/container.py).
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.containers, pytest.mark.guide("step-3")]


@check("containers/exists")
def test_container_exists(expected_container, containers):
    c = containers[expected_container[0]]
    if c.optional and not c.exists:
        not_asked(f"{c.name}: optional in profile {c.profile.name} and not deployed")
    expect(c.exists, c.why_missing)


@check("containers/running")
def test_container_is_running(expected_container, containers, depends_on):
    depends_on("containers/exists")
    c = containers[expected_container[0]]
    expect(c.state.running, c.why_not_running)


@check("containers/not-crash-looping")
def test_container_is_not_crash_looping(expected_container, containers, profile, depends_on):
    """A crash loop is a container its restart policy keeps restarting: RestartCount above
    zero with a recent start, or restarting now. One that recovered long ago is not."""
    depends_on("containers/exists")
    c, window = containers[expected_container[0]], profile.stability.recent_restart_s
    expect(not c.state.crash_looping(window), lambda: c.why_crash_looping(window))


@check("containers/healthy")
def test_container_is_healthy(health_checked_container, containers, depends_on):
    """Containers the profile says have a health check (the Nuclio dashboard and functions
    probe http://127.0.0.1:8082/ready) must have one and pass it."""
    depends_on("containers/exists")
    c = containers[health_checked_container]
    expect(c.health.configured, c.why_no_healthcheck)
    health = c.decided_health()
    expect(health.status == "healthy", lambda: c.why_unhealthy(health))


@check("containers/other-health-checks-pass")
def test_other_health_checks_pass(containers):
    """Any other stack container whose image brings a health check passes it."""
    failing = containers.other_health_failures()
    expect(not failing, lambda: [c.why_other_health_fails() for c in failing])


@check("containers/image-matches-profile", policy=True)
def test_container_image_matches_profile(imaged_container, containers, depends_on):
    depends_on("containers/exists")
    c = containers[imaged_container.name]
    expect(c.image == imaged_container.image, lambda: c.why_image(imaged_container.image))


@check("containers/restart-policy-matches-profile", policy=True)
def test_container_restart_policy_matches_profile(profiled_container, containers, depends_on):
    depends_on("containers/exists")
    c, wanted = containers[profiled_container.name], profiled_container.restart
    expect(c.restart_policy == wanted, lambda: c.why_restart_policy(wanted))


# Last in the layer: it reads the probe prefetch's answers, which the checks above (the
# Docker snapshot's alone) leave time to arrive.
@check("containers/supervised-programs-running")
def test_supervised_programs_are_running(supervisord, depends_on):
    """supervisord restarts a crashing program inside the container, so the container's own
    restart count never moves: `supervisorctl status` shows the state and the uptime."""
    depends_on("containers/exists", "containers/running")
    s = supervisord
    programs = s.settled_programs()
    expect(programs, s.why_no_programs)
    expect(not s.failing(programs), lambda: s.why_failing(programs))
