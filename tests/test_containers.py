"""Containers layer: every container the profile expects exists, runs, stays up, is healthy
where its image has a health check, and has the expected image and restart policy.

    pytest -m containers --profile profiles/criobe.toml

Each check lists every offending container, with its state, the consequence for the stack,
its last log lines and the command that fixes it.
"""

from __future__ import annotations

import time

import pytest

from criobe_verify.compose import OVERLAY_OF, guide_command
from criobe_verify.containers import describe_state, logs_tail

pytestmark = pytest.mark.containers

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


def _role(name: str) -> str:
    if name.startswith("nuclio-nuclio-"):
        return f"function {name.removeprefix('nuclio-nuclio-')} cannot be called"
    return ROLE.get(name, "part of the stack is missing")


def _fix(container) -> str:
    service = container.labels.get("com.docker.compose.service") if container else None
    if service:
        return guide_command("up", "-d", service)
    return guide_command("up", "-d")


def _present(expected_containers, stack_container):
    for name in expected_containers:
        container = stack_container(name)
        if container is not None:
            yield name, container


def test_expected_containers_exist(expected_containers, stack_container, profile):
    missing = [
        name
        for name, optional in expected_containers.items()
        if not optional and stack_container(name) is None
    ]
    assert not missing, "\n".join(
        f"{name}: no such container (profile {profile.name} expects it) — {_role(name)}. "
        f"Fix: {guide_command('up', '-d')}"
        + (f" (was {OVERLAY_OF[name]} left out of the -f list?)" if name in OVERLAY_OF else "")
        + (
            " (deploy it with nuctl deploy --project-name cvat)"
            if name.startswith("nuclio-nuclio-")
            else ""
        )
        for name in missing
    )


def test_containers_are_running(expected_containers, stack_container):
    stopped = [
        (name, c)
        for name, c in _present(expected_containers, stack_container)
        if c.attrs["State"].get("Status") not in ("running", "restarting")
    ]
    assert not stopped, "\n".join(
        f"{name}: {describe_state(c.attrs['State'])} — expected running; {_role(name)}. "
        f"Fix: {_fix(c)}\n  last log lines:\n{logs_tail(c)}"
        for name, c in stopped
    )


def test_no_container_is_restarting(expected_containers, stack_container):
    # A crash loop shows as 'restarting' or as a RestartCount that grows while we watch.
    first = {
        name: c.attrs["RestartCount"] for name, c in _present(expected_containers, stack_container)
    }
    time.sleep(3)
    looping = []
    for name, c in _present(expected_containers, stack_container):
        count = c.attrs["RestartCount"]
        if c.attrs["State"].get("Restarting") or count > first.get(name, count):
            looping.append((name, c, count))
    assert not looping, "\n".join(
        f"{name}: restarting (restart count {count}, {describe_state(c.attrs['State'])}) — "
        f"expected to stay up; {_role(name)} while it loops.\n  last log lines:\n{logs_tail(c)}"
        for name, c, count in looping
    )


def test_containers_with_healthcheck_are_healthy(expected_containers, stack_container, profile):
    wants_check = {c.name for c in profile.containers if c.healthcheck} | {
        f.container for f in profile.functions
    }
    problems = []
    deadline = time.monotonic() + 60
    for name, c in _present(expected_containers, stack_container):
        has_check = bool((c.attrs["Config"].get("Healthcheck") or {}).get("Test"))
        if not has_check:
            if name in wants_check:
                problems.append(
                    f"{name}: its image has no HEALTHCHECK, expected one (Nuclio images probe "
                    "http://127.0.0.1:8082/ready) — a hung process would look healthy."
                )
            continue
        # 'starting' is not a verdict yet: wait, bounded, for the probe to decide.
        while c.attrs["State"]["Health"]["Status"] == "starting" and time.monotonic() < deadline:
            time.sleep(2)
            c.reload()
        health = c.attrs["State"]["Health"]
        if health["Status"] != "healthy":
            last = (health.get("Log") or [{}])[-1]
            problems.append(
                f"{name}: health {health['Status']!r} (failing streak {health.get('FailingStreak')}), "
                f"expected 'healthy'; last probe exit {last.get('ExitCode')}: "
                f"{(last.get('Output') or '').strip()[:200]!r} — {_role(name)}.\n"
                f"  last log lines:\n{logs_tail(c)}"
            )
    assert not problems, "\n".join(problems)


def test_container_images_match_profile(stack_container, profile):
    wrong = []
    for spec in profile.containers:
        c = stack_container(spec.name)
        if c is None or spec.image is None:
            continue
        image = c.attrs["Config"].get("Image", "")
        if image != spec.image:
            wrong.append(
                f"{spec.name}: image {image!r}, expected {spec.image!r} (profile {profile.name}). "
                f"A different tag means a different CVAT/Nuclio release than the one verified. "
                f"Fix: set the tag in the compose file (CVAT_VERSION=v{profile.cvat_version}) and "
                f"{_fix(c)}"
            )
    assert not wrong, "\n".join(wrong)


def test_container_restart_policies_match_profile(stack_container, profile):
    wrong = []
    for spec in profile.containers:
        c = stack_container(spec.name)
        if c is None:
            continue
        policy = (c.attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
        if policy != spec.restart:
            wrong.append(
                f"{spec.name}: restart policy {policy!r}, expected {spec.restart!r} — after a "
                f"reboot or a crash it stays down and {_role(spec.name)}. Fix: restart: "
                f"{spec.restart} in its compose service, then {_fix(c)}"
            )
    assert not wrong, "\n".join(wrong)
