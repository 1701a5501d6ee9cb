"""A container of the stack: its state, health, image and restart policy as facts, and the
diagnosis of each way it can be wrong.

    containers = Containers(snapshot, profile)
    c = containers["cvat_ui"]
    c.exists, c.state.running, c.state.crash_looping(600), c.restart_policy
    expect(c.state.running, c.why_not_running)

Facts come from the run's one Docker listing (criobe_verify.snapshot); a container is looked
up by its Compose labels, then by name. Diagnoses name the container as the profile does (and
its real name when a fork renamed it), say what breaks for the lab, and give the compose
command that fixes it, with the container's last log lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from criobe_verify.compose import OVERLAY_OF, guide_command
from criobe_verify.containers import describe_state, logs_tail
from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import Diagnosis
from criobe_verify.profile import Profile
from criobe_verify.snapshot import FUNCTION_PREFIX, StackSnapshot, display_name
from criobe_verify.waiting import settle

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
# A health check still 'starting' is no verdict yet: how long to wait for one.
HEALTH_DECISION_S = 60.0


def role(name: str) -> str:
    """What a coral lab loses when this container is down.

    >>> role("nuclio-nuclio-pth-lama"), role("cvat_opa")
    ('function pth-lama cannot be called', 'every permission check fails, so CVAT answers 403s')
    """
    if name.startswith(FUNCTION_PREFIX):
        return f"function {name.removeprefix(FUNCTION_PREFIX)} cannot be called"
    return ROLE.get(name, "part of the stack is missing")


def _started_at(text: str | None) -> datetime.datetime | None:
    """Docker's StartedAt (nanoseconds, Z) as an aware datetime.

    >>> _started_at("2026-12-06T21:30:05.123456789Z").isoformat()
    '2026-12-06T21:30:05+00:00'
    >>> _started_at("0001-01-01T00:00:00Z").year, _started_at("") is None
    (1, True)
    """
    text = (text or "").split(".")[0].rstrip("Z")
    try:
        return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Health:
    """The container's Docker health check and its last verdict."""

    configured: bool
    status: str | None  # None: no health check; 'starting', 'healthy', 'unhealthy'
    failing_streak: int = 0
    last_exit: int | None = None
    last_output: str = ""

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> Health:
        health = attrs["State"].get("Health") or {}
        last = (health.get("Log") or [{}])[-1]
        return cls(
            configured=bool((attrs["Config"].get("Healthcheck") or {}).get("Test")),
            status=health.get("Status"),
            failing_streak=health.get("FailingStreak") or 0,
            last_exit=last.get("ExitCode"),
            last_output=(last.get("Output") or "").strip(),
        )


@dataclass(frozen=True)
class State:
    """Docker's state of the container, when the snapshot (or a reload) read it."""

    status: str
    restarting: bool
    restart_count: int
    started_at: datetime.datetime | None
    description: str  # "status 'exited' (exit code 137)", for messages
    read_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> State:
        state = attrs["State"]
        return cls(
            status=state.get("Status") or "",
            restarting=bool(state.get("Restarting")),
            restart_count=attrs.get("RestartCount", 0) or 0,
            started_at=_started_at(state.get("StartedAt")),
            description=describe_state(state),
        )

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")

    @property
    def age_s(self) -> float | None:
        """Seconds since it (re)started, None when Docker gives no start time."""
        if self.started_at is None:
            return None
        return (self.read_at - self.started_at).total_seconds()

    def crash_looping(self, window_s: float) -> bool:
        """Restarted by its policy within the window (or restarting now): a container that
        recovered long ago is not crash-looping."""
        age = self.age_s
        return self.restarting or (self.restart_count > 0 and age is not None and age < window_s)


class StackContainer:
    """One container the profile expects (a [[containers]] entry or a function's
    nuclio-nuclio-<name>), as the run's Docker listing shows it."""

    def __init__(self, name: str, found: Any, profile: Profile, optional: bool = False) -> None:
        self.name, self.container, self.profile, self.optional = name, found, profile, optional

    def __repr__(self) -> str:
        return f"StackContainer({self.name!r}, exists={self.exists})"

    @property
    def exists(self) -> bool:
        return self.container is not None

    @property
    def label(self) -> str:
        """How messages name it: the profile's name, and the real one if a fork renamed it."""
        return display_name(self.name, self.container)

    @property
    def state(self) -> State:
        return State.of(self.container.attrs)

    @property
    def health(self) -> Health:
        return Health.of(self.container.attrs)

    @property
    def image(self) -> str:
        return self.container.attrs["Config"].get("Image", "")

    @property
    def restart_policy(self) -> str:
        return (self.container.attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"

    @property
    def service(self) -> str | None:
        return (self.container.labels or {}).get("com.docker.compose.service")

    def logs(self) -> str:
        return logs_tail(self.container)

    def decided_health(self, timeout: float = HEALTH_DECISION_S) -> Health:
        """Its health once the check has decided: 'starting' is no verdict, so wait, bounded,
        for 'healthy' or 'unhealthy' (the container reloaded each second)."""

        def decided() -> tuple[bool, str]:
            self.container.reload()
            status = self.health.status
            return status != "starting", f"health {status!r}"

        if self.health.status == "starting":  # the run's listing is recent enough otherwise
            settle(decided, timeout=timeout, what=f"{self.name}'s health check")
        return self.health

    # -- diagnoses ----------------------------------------------------------------------

    def _fix(self) -> str:
        return guide_command(
            "up", "-d", *([self.service] if self.container and self.service else [])
        )

    def why_missing(self) -> Diagnosis:
        hint = ""
        if self.name in OVERLAY_OF:
            hint = f"was {OVERLAY_OF[self.name]} left out of the -f list?"
        elif self.name.startswith(FUNCTION_PREFIX):
            hint = "deploy it with nuctl deploy --project-name cvat --platform local"
        return Diagnosis(
            self.name,
            "no such container",
            why=hint,
            expected=f"a container for it (profile {self.profile.name})",
            consequence=role(self.name),
            fix=guide_command("up", "-d"),
        )

    def why_not_running(self) -> Diagnosis:
        return Diagnosis(
            self.label,
            self.state.description,
            expected="running",
            consequence=role(self.name),
            fix=self._fix(),
            logs=self.logs(),
        )

    def why_crash_looping(self, window_s: float) -> Diagnosis:
        state = self.state
        return Diagnosis(
            self.label,
            "is crash-looping",
            observed=f"restart count {state.restart_count}, last start {state.age_s:.0f} s ago"
            if state.age_s is not None
            else f"restart count {state.restart_count}, {state.description}",
            expected=f"no restart by its policy in the last {window_s:.0f} s",
            consequence=f"{role(self.name)} each time it goes down",
            fix=f"read its logs (docker logs {self.container.name}) and fix the cause; then "
            f"{self._fix()}",
            logs=self.logs(),
        )

    def why_no_healthcheck(self) -> Diagnosis:
        return Diagnosis(
            self.label,
            "its image has no HEALTHCHECK",
            expected="one (Nuclio images probe http://127.0.0.1:8082/ready)",
            consequence="a hung process looks healthy",
            fix="use the profile's image",
        )

    def why_unhealthy(self, health: Health) -> Diagnosis:
        return Diagnosis(
            self.label,
            f"health {health.status!r}",
            observed=f"failing streak {health.failing_streak}, last probe exit "
            f"{health.last_exit}: {health.last_output[:200]!r}",
            expected="'healthy'",
            consequence=role(self.name),
            fix=f"docker logs {self.container.name}; {self._fix()}",
            logs=self.logs(),
        )

    def why_other_health_fails(self) -> Diagnosis:
        return Diagnosis(
            self.label,
            f"health {self.health.status!r}",
            expected="'healthy'",
            consequence=role(self.name),
            fix=f"docker logs {self.container.name}",
            logs=self.logs(),
        )

    def why_image(self, expected: str) -> Diagnosis:
        return Diagnosis(
            self.label,
            f"runs image {self.image!r}",
            expected=f"{expected!r} (profile {self.profile.name})",
            consequence="a different CVAT/Nuclio release than the one verified is running",
            fix=f"set the tag in the compose file (CVAT_VERSION=v{self.profile.cvat_version}) "
            f"and {self._fix()}, or update the profile once the new release is verified",
        )

    def why_restart_policy(self, expected: str) -> Diagnosis:
        return Diagnosis(
            self.label,
            f"restart policy {self.restart_policy!r}",
            expected=repr(expected),
            consequence=f"after a reboot or a crash it stays down and {role(self.name)}",
            fix=f"restart: {expected} in its compose service, then {self._fix()}",
        )


class Containers:
    """The stack's containers by the profile's names, from one Docker listing.

    containers["cvat_server"] is a StackContainer (exists=False when there is none)."""

    def __init__(self, snapshot: StackSnapshot, profile: Profile) -> None:
        self.snapshot, self.profile = snapshot, profile
        self._optional = {c.name: c.optional for c in profile.containers}
        self._optional.update({f.container: f.optional for f in profile.functions})

    def __getitem__(self, name: str) -> StackContainer:
        return StackContainer(
            name, self.snapshot.find(name), self.profile, self._optional.get(name, False)
        )

    def existing(self, name: str) -> StackContainer:
        """The container, or a skip naming it when it does not exist: the containers layer
        has reported that already."""
        found = self[name]
        if not found.exists and found.optional:
            not_asked(f"{name}: optional in profile {self.profile.name} and not deployed")
        if not found.exists:
            import pytest

            pytest.skip(f"{name}: no such container (see the containers layer)")
        return found

    def other_health_failures(self) -> list[StackContainer]:
        """Containers whose image brings a health check the profile does not list (those
        and the functions' have a check of their own), failing it."""
        listed = {c.name for c in self.profile.containers if c.healthcheck}
        others = [
            self[n] for n in self._optional if n not in listed and not n.startswith(FUNCTION_PREFIX)
        ]
        # A check still 'starting' is no verdict: wait for it (bounded), as containers/healthy
        # does; a container recreated a moment ago would otherwise pass unjudged (CI saw it).
        return [
            c
            for c in others
            if c.exists and c.decided_health().status not in (None, "healthy", "starting")
        ]
