"""Containers layer: every container the profile expects exists, runs, is not crash-looping,
is healthy where its image has a health check, keeps the programs supervisord runs in it
alive, and has the expected image and restart policy (those two are policy checks).

    pytest -m containers --profile profiles/criobe.toml

One check per container, so a waiver or a failure names exactly one; each check on a container
depends on its existence check, so a missing container is not also reported "not running".
"""

from __future__ import annotations

import datetime

import pytest

from criobe_verify.check import check
from criobe_verify.compose import OVERLAY_OF, guide_command
from criobe_verify.containers import describe_state, logs_tail
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.probes import exec_in, missing_tool
from criobe_verify.snapshot import display_name
from criobe_verify.supervisor import (
    SETTLE_S,
    STATUS_CMD,
    UNSETTLED,
    from_rpc,
    parse_status,
    restarted,
)
from criobe_verify.waiting import settle

pytestmark = [pytest.mark.containers, pytest.mark.guide("step-3")]


# What breaks for a coral-lab user when a container is down: the consequence in a failure.
ROLE = {
    "traefik": "CVAT's UI and API on :8080 are unreachable",
    "cvat_server": "the CVAT API, logins and webhook pings fail",
    "cvat_ui": "the CVAT web UI does not load",
    "cvat_db": "CVAT cannot read or save anything",
    "cvat_redis_inmem": "CVAT's queues stop: no task creation, no webhook delivery",
    "cvat_redis_ondisk": "CVAT's media cache fails: frames do not load",
    "cvat_opa": "every permission check fails, so CVAT answers 403s",
    "cvat_worker_webhooks": "webhook events are never delivered to the bridge",
    "cvat_worker_annotation": "automatic annotation requests stay queued",
    "cvat_worker_import": "imports stay queued",
    "cvat_worker_export": "exports stay queued",
    "cvat_worker_chunks": "frame chunks are never prepared",
    "cvat_utils": "scheduled clean-ups do not run",
    "nuclio": "CVAT cannot list or call the models",
    "bridge": "no webhook is answered, so the pipeline never chains",
}


def role(name: str) -> str:
    if name.startswith("nuclio-nuclio-"):
        return f"function {name.removeprefix('nuclio-nuclio-')} cannot be called"
    return ROLE.get(name, "part of the stack is missing")


def _fix(container) -> str:
    service = container.labels.get("com.docker.compose.service") if container else None
    return guide_command("up", "-d", *([service] if service else []))


@check("containers/exists")
def test_container_exists(expected_container, stack_container, profile):
    name, optional = expected_container
    if stack_container(name) is not None:
        return
    if optional:
        pytest.skip(f"{name}: optional in profile {profile.name} and not deployed")
    hint = ""
    if name in OVERLAY_OF:
        hint = f"was {OVERLAY_OF[name]} left out of the -f list?"
    elif name.startswith("nuclio-nuclio-"):
        hint = "deploy it with nuctl deploy --project-name cvat --platform local"
    fail(
        Diagnosis(
            name,
            "no such container",
            why=hint,
            expected=f"a container for it (profile {profile.name})",
            consequence=role(name),
            fix=guide_command("up", "-d"),
        )
    )


@check("containers/running")
def test_container_is_running(expected_container, stack_container, depends_on):
    name, _ = expected_container
    depends_on("containers/exists")
    c = stack_container(name)
    state = c.attrs["State"]
    if state.get("Status") in ("running", "restarting"):
        return
    fail(
        Diagnosis(
            display_name(name, c),
            describe_state(state),
            expected="running",
            consequence=role(name),
            fix=_fix(c),
            logs=logs_tail(c),
        )
    )


def _started_at(state: dict) -> datetime.datetime | None:
    text = (state.get("StartedAt") or "").split(".")[0].rstrip("Z")
    try:
        return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


@check("containers/not-crash-looping")
def test_container_is_not_crash_looping(expected_container, stack_container, profile, depends_on):
    """A crash loop is a container its restart policy keeps restarting: RestartCount above
    zero with a recent start, or restarting now. One that recovered long ago is not."""
    name, _ = expected_container
    depends_on("containers/exists")
    c = stack_container(name)
    state = c.attrs["State"]
    restarts = c.attrs.get("RestartCount", 0)
    started = _started_at(state)
    age = (datetime.datetime.now(datetime.UTC) - started).total_seconds() if started else None
    window = profile.stability.recent_restart_s
    looping = state.get("Restarting") or (restarts > 0 and age is not None and age < window)
    if not looping:
        return
    fail(
        Diagnosis(
            display_name(name, c),
            "is crash-looping",
            observed=f"restart count {restarts}, last start {age:.0f} s ago"
            if age is not None
            else f"restart count {restarts}, {describe_state(state)}",
            expected=f"no restart by its policy in the last {window:.0f} s",
            consequence=f"{role(name)} each time it goes down",
            fix=f"read its logs (docker logs {c.name}) and fix the cause; then {_fix(c)}",
            logs=logs_tail(c),
        )
    )


def _health(c) -> dict:
    return c.attrs["State"].get("Health") or {}


def _decided(c) -> tuple[bool, str]:
    c.reload()
    status = _health(c).get("Status")
    return status != "starting", f"health {status!r}"


@check("containers/healthy")
def test_container_is_healthy(health_checked_container, stack_container, depends_on):
    """Containers the profile says have a health check (the Nuclio dashboard and functions
    probe http://127.0.0.1:8082/ready) must have one and pass it."""
    name = health_checked_container
    depends_on("containers/exists")
    c = stack_container(name)
    if not (c.attrs["Config"].get("Healthcheck") or {}).get("Test"):
        fail(
            Diagnosis(
                display_name(name, c),
                "its image has no HEALTHCHECK",
                expected="one (Nuclio images probe http://127.0.0.1:8082/ready)",
                consequence="a hung process looks healthy",
                fix="use the profile's image",
            )
        )
    if _health(c).get("Status") == "starting":
        # 'starting' is not a verdict yet: wait, bounded, for the probe to decide.
        settle(lambda: _decided(c), timeout=60, what=f"{c.name}'s health check")
    health = _health(c)
    if health.get("Status") == "healthy":
        return
    last = (health.get("Log") or [{}])[-1]
    fail(
        Diagnosis(
            display_name(name, c),
            f"health {health.get('Status')!r}",
            observed=f"failing streak {health.get('FailingStreak')}, last probe exit "
            f"{last.get('ExitCode')}: {(last.get('Output') or '').strip()[:200]!r}",
            expected="'healthy'",
            consequence=role(name),
            fix=f"docker logs {c.name}; {_fix(c)}",
            logs=logs_tail(c),
        )
    )


@check("containers/other-health-checks-pass")
def test_other_health_checks_pass(stack_snapshot, expected_containers, profile):
    """Any other stack container whose image brings a health check passes it."""
    wanted = {c.name for c in profile.containers if c.healthcheck}
    problems = []
    for name in expected_containers:
        c = stack_snapshot.find(name)
        if c is None or name in wanted or name.startswith("nuclio-nuclio-"):
            continue
        status = _health(c).get("Status")
        if status not in (None, "healthy", "starting"):
            problems.append(
                Diagnosis(
                    display_name(name, c),
                    f"health {status!r}",
                    expected="'healthy'",
                    consequence=role(name),
                    fix=f"docker logs {c.name}",
                    logs=logs_tail(c),
                )
            )
    if problems:
        fail(*problems)


@check("containers/image-matches-profile", policy=True)
def test_container_image_matches_profile(imaged_container, stack_container, profile, depends_on):
    spec = imaged_container
    depends_on("containers/exists")
    c = stack_container(spec.name)
    image = c.attrs["Config"].get("Image", "")
    if image == spec.image:
        return
    fail(
        Diagnosis(
            display_name(spec.name, c),
            f"runs image {image!r}",
            expected=f"{spec.image!r} (profile {profile.name})",
            consequence="a different CVAT/Nuclio release than the one verified is running",
            fix=f"set the tag in the compose file (CVAT_VERSION=v{profile.cvat_version}) and "
            f"{_fix(c)}, or update the profile once the new release is verified",
        )
    )


@check("containers/restart-policy-matches-profile", policy=True)
def test_container_restart_policy_matches_profile(
    profiled_container, stack_container, profile, depends_on
):
    spec = profiled_container
    depends_on("containers/exists")
    c = stack_container(spec.name)
    policy = (c.attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
    if policy == spec.restart:
        return
    fail(
        Diagnosis(
            display_name(spec.name, c),
            f"restart policy {policy!r}",
            expected=repr(spec.restart),
            consequence=f"after a reboot or a crash it stays down and {role(spec.name)}",
            fix=f"restart: {spec.restart} in its compose service, then {_fix(c)}",
        )
    )


def _settled_programs(c) -> list:
    """STARTING (within startsecs) and BACKOFF (between retries) are no verdict yet: ask
    `supervisorctl status` again, bounded, until supervisord settles on RUNNING or gives the
    program up."""
    programs: list = []

    def look() -> tuple[bool, str]:
        programs[:] = parse_status(exec_in(c, STATUS_CMD)[1])
        waiting = [f"{p.name} {p.state}" for p in programs if p.state in UNSETTLED]
        return not waiting, ", ".join(waiting) or "settled"

    settle(look, timeout=SETTLE_S, what=f"supervisord's programs in {c.name}")
    return programs


# Last in the layer: it reads the probe prefetch's answers, which the checks above (the
# Docker snapshot's alone) leave time to arrive.
@check("containers/supervised-programs-running")
def test_supervised_programs_are_running(
    supervised_container, stack_container, supervisor_status, profile, depends_on
):
    """supervisord restarts a crashing program inside the container, so the container's own
    restart count never moves: `supervisorctl status` shows the state and the uptime."""
    name = supervised_container
    depends_on("containers/exists", "containers/running")
    c = stack_container(name)
    answer = supervisor_status.get(name) or {}
    if answer.get("ok"):
        programs = from_rpc(answer["processes"])
    else:  # the control socket is what supervisorctl uses too: ask it, and say what it says
        code, out = exec_in(c, STATUS_CMD)
        if missing_tool(code, out):
            pytest.skip(
                f"{name}: has no supervisorctl ({out.strip()[-120:]}) and its control socket "
                f"did not answer ({answer.get('error', 'no python3')}); CVAT's server image has both"
            )
        programs = parse_status(out)
    if any(p.state in UNSETTLED for p in programs):
        programs = _settled_programs(c)
    if not programs:
        fail(
            Diagnosis(
                display_name(name, c),
                f"`{' '.join(STATUS_CMD)}` gave no program list",
                observed=answer.get("error", ""),
                expected="supervisord answering on its control socket, as in CVAT's images",
                consequence="nothing in the container is supervised as CVAT expects",
                fix=f"docker logs {c.name}; {_fix(c)}",
                logs=logs_tail(c),
            )
        )
    started = _started_at(c.attrs["State"])
    age = (datetime.datetime.now(datetime.UTC) - started).total_seconds() if started else 0
    window = profile.stability.recent_restart_s
    problems = [
        Diagnosis(
            display_name(name, c),
            f"supervisord program {p.name} is {p.state}",
            observed=p.detail,
            expected="RUNNING",
            consequence=f"{role(name)} ({p.name} is not running)",
            fix=f"docker logs {c.name} shows why; then docker restart {c.name}",
            logs=logs_tail(c),
        )
        for p in programs
        if p.required and p.state != "RUNNING"
    ]
    problems += [
        Diagnosis(
            display_name(name, c),
            f"supervisord restarted {p.name} {p.uptime_s} s ago",
            observed=f"{p.name} up {p.uptime_s} s, its siblings up "
            f"{max(q.uptime_s or 0 for q in programs)} s",
            why="it exited and supervisord respawned it inside the container",
            expected=f"no restart in the last {window:.0f} s",
            consequence=f"{role(name)} while it is down, and work in flight is lost",
            fix=f"docker logs {c.name} around that time shows why it exited",
            logs=logs_tail(c),
        )
        for p in restarted(programs, age)
        if p.required and p.uptime_s < window
    ]
    if problems:
        fail(*problems)
