"""Bounded waits in the manner of testcontainers' wait strategies: each strategy reports
(ready, status) or raises WaitFailed when waiting longer cannot help (a container exited,
turned unhealthy or restarted); every wait logs progress and fails with what it last saw.

    >>> wait_until(lambda: (True, "ready"), timeout=5, what="nothing")
    'ready'
    >>> strategy = AllOf(Predicate("db", lambda: (True, "up")), Predicate("api", lambda: (True, "200")))
    >>> wait_for(strategy, timeout=5, what="stack")
    'db: up; api: 200'

Used by the bring-up (every service polled at once, not one after the other) and by the waits
inside checks (a delivery to appear, a health check to leave 'starting').
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from criobe_verify.containers import describe_state, logs_tail

log = logging.getLogger("criobe_verify")


class WaitTimeout(TimeoutError):
    pass


class WaitFailed(WaitTimeout):
    """Waiting longer cannot help; the message names the container and shows its logs."""


def wait_until(
    probe: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    log_every: float = 10.0,
    on_timeout: Callable[[], str] | None = None,
) -> str:
    """Poll `probe` until it returns (True, status); log the status every `log_every` s.

    On timeout raise WaitTimeout naming `what`, the last status and `on_timeout()`'s diagnosis
    (container states, log tails), so the error explains itself.
    """
    start = time.monotonic()
    last_log = start
    status = "not probed yet"
    while True:
        ok, status = probe()
        if ok:
            return status
        now = time.monotonic()
        if now - start >= timeout:
            detail = on_timeout() if on_timeout else ""
            raise WaitTimeout(
                f"{what}: not ready after {timeout:.0f} s; last status: {status}"
                + (f"\n{detail}" if detail else "")
            )
        if now - last_log >= log_every:
            log.warning("waiting for %s (%.0f s): %s", what, now - start, status)
            last_log = now
        time.sleep(interval)


def wait_at_most(
    probe: Callable[[], tuple[bool, str]], *, timeout: float, what: str, interval: float = 1.0
) -> bool:
    """wait_until for a state that may rightly be undecided at the bound (a health check
    still 'starting', a program supervisord still retries): True once ready, False at the
    bound, never raises; the caller's diagnosis shows the undecided state.

    >>> wait_at_most(lambda: (False, "starting"), timeout=0, what="nothing")
    False
    """
    try:
        wait_until(probe, timeout=timeout, what=what, interval=interval)
    except WaitTimeout:
        return False
    return True


class WaitStrategy:
    """Reports (ready, status); `name` says what is waited for."""

    name: str

    def check(self) -> tuple[bool, str]:
        raise NotImplementedError

    def diagnose(self) -> str:
        return ""


@dataclass
class Predicate(WaitStrategy):
    """Any callable returning (ready, status)."""

    name: str
    probe: Callable[[], tuple[bool, str]]

    def check(self) -> tuple[bool, str]:
        return self.probe()


@dataclass
class HttpWait(WaitStrategy):
    """GET url until `accept(response)` says it is ready (default: status 200)."""

    name: str
    url: str
    headers: dict[str, str] | None = None
    accept: Callable[[httpx.Response], tuple[bool, str]] | None = None
    client: httpx.Client | None = None

    def check(self) -> tuple[bool, str]:
        try:
            get = self.client.get if self.client else httpx.get
            r = get(self.url, headers=self.headers or {}, timeout=5)
        except httpx.HTTPError as exc:
            return False, f"{self.url}: {type(exc).__name__}"
        if self.accept:
            return self.accept(r)
        return r.status_code == 200, f"{self.url} answered {r.status_code}"


@dataclass
class ContainerWait(WaitStrategy):
    """A container running (and healthy, where its image has a health check); fails fast when
    it exits, turns unhealthy or is restarted by its policy while we wait."""

    name: str
    find: Callable[[], Any]  # () -> docker Container or None, fresh from the engine
    healthy: bool = True
    _restarts: int | None = None

    def check(self) -> tuple[bool, str]:
        container = self.find()
        if container is None:
            return False, "not created"
        state = container.attrs["State"]
        restarts = container.attrs.get("RestartCount", 0)
        if self._restarts is None:
            self._restarts = restarts
        if state.get("Status") in ("exited", "dead") or restarts > self._restarts:
            raise WaitFailed(
                f"{self.name}: {describe_state(state)}, restart count {restarts} — it stopped "
                f"while the stack came up.\n  last log lines:\n{logs_tail(container)}"
            )
        health = (state.get("Health") or {}).get("Status")
        if self.healthy and health == "unhealthy":
            last = ((state.get("Health") or {}).get("Log") or [{}])[-1]
            raise WaitFailed(
                f"{self.name}: health 'unhealthy' (last probe: "
                f"{(last.get('Output') or '').strip()[:200]!r}).\n"
                f"  last log lines:\n{logs_tail(container)}"
            )
        if state.get("Status") != "running":
            return False, describe_state(state)
        if self.healthy and health not in (None, "healthy"):
            return False, f"health {health!r}"
        return True, "running" + (f", {health}" if health else "")

    def diagnose(self) -> str:
        container = self.find()
        if container is None:
            return f"{self.name}: not created"
        return (
            f"{self.name}: {describe_state(container.attrs['State'])}\n"
            f"  last log lines:\n{logs_tail(container)}"
        )


@dataclass
class AllOf(WaitStrategy):
    """Every strategy polled on each round, so the slowest service sets the pace."""

    strategies: Sequence[WaitStrategy]

    def __init__(self, *strategies: WaitStrategy) -> None:
        self.strategies = strategies

    def check(self) -> tuple[bool, str]:
        results = [(s, *s.check()) for s in self.strategies]
        waiting = [f"{s.name}: {status}" for s, ok, status in results if not ok]
        if waiting:
            return False, "; ".join(waiting)
        return True, "; ".join(f"{s.name}: {status}" for s, _, status in results)

    def diagnose(self) -> str:
        lines = []
        for s in self.strategies:
            try:
                ok, _ = s.check()
            except WaitFailed as exc:
                lines.append(str(exc))
                continue
            if not ok:
                lines.append(s.diagnose())
        return "\n".join(line for line in lines if line)


def wait_for(
    strategy: WaitStrategy,
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    log_every: float = 10.0,
) -> str:
    """Run the strategy until ready; WaitFailed at once, WaitTimeout with its diagnosis."""
    return wait_until(
        strategy.check,
        timeout=timeout,
        what=what,
        interval=interval,
        log_every=log_every,
        on_timeout=strategy.diagnose,
    )
