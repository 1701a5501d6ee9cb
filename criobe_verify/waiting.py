"""Bounded waits in the manner of testcontainers' wait strategies: each strategy reports
(ready, status) or raises WaitFailed when waiting longer cannot help (a container exited,
turned unhealthy or restarted); every wait logs progress and fails with what it last saw.

    >>> wait_until(lambda: (True, "ready"), timeout=5, what="nothing")
    'ready'
    >>> strategy = AllOf(Predicate("db", lambda: (True, "up")), Predicate("api", lambda: (True, "200")))
    >>> wait_for(strategy, timeout=5, what="stack")
    'db: up; api: 200'

Used by the bring-up (every service polled at once, not one after the other) and by the waits
inside checks. A check waits with `wait_or_fail`: the strategy owns its timeout message, a
Diagnosis built from what it last saw (the strategy's `unready`), so the check fails with it:

    >>> Appears("a delivery", lambda: ({"event": "ping"}, "1 delivery"), explain=print).wait(5)
    {'event': 'ping'}

`Appears` is "something the stack makes appears" (a delivery, a task's data, an e2e stage's
result); `LogLine` a line in a container's log (status and log tail when it does not come).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from criobe_verify.containers import describe_state, logs_tail
from criobe_verify.diagnosis import Diagnosis, fail

log = logging.getLogger("criobe_verify")
T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """Not ready in time; `diagnosis` is the strategy's own account, where it has one."""

    def __init__(self, message: str, diagnosis: Diagnosis | None = None) -> None:
        super().__init__(message)
        self.diagnosis = diagnosis


class WaitFailed(WaitTimeout):
    """Waiting longer cannot help; the message names the container and shows its logs."""


@dataclass(frozen=True)
class Unready:
    """How a wait ended without its thing: what a strategy's diagnosis is built from.

    >>> Unready(timeout_s=30, waited_s=30.4, last="0 deliveries").ended
    'not there after 30 s'
    >>> Unready(timeout_s=30, waited_s=4.2, last="", gave_up="the bridge exited").ended
    'the bridge exited (4 s in)'
    """

    timeout_s: float
    waited_s: float
    last: str  # the last status the strategy reported
    gave_up: str = ""  # why waiting longer could not help; "" on a plain timeout

    @property
    def ended(self) -> str:
        # The bound, not the wait: a slow last look overshoots it by up to one poll.
        if self.gave_up:
            return f"{self.gave_up} ({self.waited_s:.0f} s in)"
        return f"not there after {self.timeout_s:.0f} s"


@dataclass
class Stopwatch:
    """Seconds since it was made, on the clock the waits use (stage timings of the e2e run).

    >>> Stopwatch().elapsed() < 1
    True
    """

    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def since(self, earlier: Stopwatch) -> float:
        """When this one started, in seconds after `earlier` started."""
        return self.started - earlier.started


def wait_until(
    probe: Callable[[], tuple[bool, str]],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    log_every: float = 10.0,
    on_timeout: Callable[[], str] | None = None,
    backoff: float = 1.0,
    max_interval: float | None = None,
    unready: Callable[[Unready], Diagnosis | None] | None = None,
) -> str:
    """Poll `probe` until it returns (True, status); log the status every `log_every` s.

    The pause starts at `interval` and grows by `backoff` up to `max_interval` (poll soon
    for what usually comes at once, then less often). On timeout raise WaitTimeout naming
    `what`, the last status and `on_timeout()`'s diagnosis (container states, log tails), so
    the error explains itself; where `unready` gives a Diagnosis (also for a WaitFailed of the
    probe), the error carries it.
    """
    clock = Stopwatch()
    last_log = 0.0
    status = "not probed yet"
    pause = interval
    while True:
        try:
            ok, status = probe()
        except WaitFailed as exc:
            found = (
                unready(Unready(timeout, clock.elapsed(), status, str(exc))) if unready else None
            )
            if found is None:
                raise
            raise WaitFailed(str(found), found) from exc
        if ok:
            return status
        waited = clock.elapsed()
        if waited >= timeout:
            found = unready(Unready(timeout, waited, status)) if unready else None
            if found is not None:
                raise WaitTimeout(str(found), found)
            detail = on_timeout() if on_timeout else ""
            raise WaitTimeout(
                f"{what}: not ready after {timeout:.0f} s; last status: {status}"
                + (f"\n{detail}" if detail else "")
            )
        if waited - last_log >= log_every:
            log.warning("waiting for %s (%.0f s): %s", what, waited, status)
            last_log = waited
        # Never sleep past the bound: the last look comes at the timeout, not a pause later.
        time.sleep(max(0.0, min(pause, timeout - waited)))
        pause = min(pause * backoff, max_interval or pause * backoff)


class WaitStrategy:
    """Reports (ready, status); `name` says what is waited for. `check` raises WaitFailed
    when waiting longer cannot help; `unready` turns how the wait ended into the strategy's
    own Diagnosis (None: the generic "not ready after N s" with `diagnose()`'s text)."""

    name: str

    def check(self) -> tuple[bool, str]:
        raise NotImplementedError

    def diagnose(self) -> str:
        return ""

    def unready(self, how: Unready) -> Diagnosis | None:
        return None


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
    backoff: float = 1.0,
    max_interval: float | None = None,
) -> str:
    """Run the strategy until ready; WaitFailed at once, WaitTimeout with its diagnosis."""
    return wait_until(
        strategy.check,
        timeout=timeout,
        what=what,
        interval=interval,
        log_every=log_every,
        on_timeout=strategy.diagnose,
        backoff=backoff,
        max_interval=max_interval,
        unready=strategy.unready,
    )


def settle(
    look: Callable[[], tuple[bool, str]], *, timeout: float, what: str, interval: float = 1.0
) -> str:
    """Give a state that is no verdict yet (a health check 'starting', a supervisord program
    in BACKOFF) up to `timeout` to become one, and return what it last was: the caller
    judges whatever the state is then, so running out of time is no failure here.

    >>> settle(lambda: (False, "health 'starting'"), timeout=0, what="nuclio's health")
    "health 'starting'"
    """
    last = "not looked yet"

    def remembered() -> tuple[bool, str]:
        nonlocal last
        ok, last = look()
        return ok, last

    try:
        return wait_until(remembered, timeout=timeout, what=what, interval=interval)
    except WaitFailed:
        raise
    except WaitTimeout:
        return last


def wait_or_fail(strategy: WaitStrategy, *, timeout: float, what: str, **pace: float) -> str:
    """`wait_for` inside a check: a wait that ends unready fails the check with the
    strategy's Diagnosis (one without a Diagnosis is raised as it is)."""
    try:
        return wait_for(strategy, timeout=timeout, what=what, **pace)
    except WaitTimeout as exc:
        if exc.diagnosis is None:
            raise
        diagnosis = exc.diagnosis
    fail(diagnosis)  # outside the except: the report shows the diagnosis, not the chain


@dataclass
class Appears(WaitStrategy, Generic[T]):
    """Something the stack makes appears: `look()` returns (it, or None while absent; what it
    saw), and raises WaitFailed when it can no longer come. `hopeless()`, asked every
    `every` s after the first look (a costlier look), says why it cannot come any more ('' while
    it still can).
    `explain` builds the Diagnosis of a wait that ended without it.

        delivery = Appears("the update:job delivery", look, explain=why_not_sent).wait(30)
    """

    name: str
    look: Callable[[], tuple[T | None, str]]
    explain: Callable[[Unready], Diagnosis]
    hopeless: Callable[[], str] | None = None
    every: float = 2.0
    found: T | None = None
    _asked: Stopwatch | None = None
    _seen: str = ""

    def check(self) -> tuple[bool, str]:
        self.found, self._seen = self.look()
        if self.found is not None:
            return True, self._seen
        # hopeless() costs more than a look (a container's state, every delivery): asked
        # `every` s from the first look on, not on each, nor before the thing had a chance.
        if self._asked is None:
            self._asked = Stopwatch()
        elif self.hopeless is not None and self._asked.elapsed() >= self.every:
            self._asked = Stopwatch()
            why = self.hopeless()
            if why:
                raise WaitFailed(why)
        return False, self._seen

    def unready(self, how: Unready) -> Diagnosis:
        # A hopeless look gives up within its own check: what that look saw is the last status.
        return self.explain(dataclasses.replace(how, last=self._seen or how.last))

    def wait(self, timeout: float, **pace: float) -> T:
        """What appeared; the check fails with `explain`'s Diagnosis when nothing did."""
        wait_or_fail(self, timeout=timeout, what=self.name, **pace)
        assert self.found is not None
        return self.found


@dataclass
class LogLine(WaitStrategy):
    """`text` in a container's log (a server saying it listens); fails at once when the
    container stops, and names its status and log tail when the line does not come."""

    name: str
    container: Any  # a docker Container
    text: str
    consequence: str = ""

    def check(self) -> tuple[bool, str]:
        if self.text.encode() in self.container.logs():
            return True, f"{self.text!r} logged"
        self.container.reload()
        status = self.container.status
        if status in ("exited", "dead"):
            raise WaitFailed(f"it is {status}")
        return False, f"status {status!r}, {self.text!r} not logged yet"

    def unready(self, how: Unready) -> Diagnosis:
        try:
            self.container.reload()
            state = describe_state(self.container.attrs["State"])
        except Exception as exc:  # removed while we waited
            state = f"gone ({exc})"
        return Diagnosis(
            self.name,
            f"{self.text!r} not in its log: {how.ended}",
            observed=state,
            consequence=self.consequence,
            logs=logs_tail(self.container),
        )
