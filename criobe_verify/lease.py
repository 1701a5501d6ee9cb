"""A run's lease on the stack: one at a time writes to CVAT and loads the functions.

Two runs against one stack (two CI jobs, a lab member and a cron job) would see each other:
the other run's calls in the latency loop, its deliveries and derived tasks in the bridge's
log while the e2e run watches for anything happening twice. So a run takes a lease before
its first scratch object or timed call, and the second run waits for the first (bounded,
saying whom it waits for), then runs alone.

The lease lives in CVAT, the one thing every run against a stack shares, whichever machine
it runs on (two CI runners against one lab CVAT share no file system): a project named
`<run prefix>-lease`, without labels, whose `bug_tracker` field says who holds it
(`criobe-verify lease host=<host> pid=<pid> ttl=<s>`). CVAT hands out project ids in
creation order, so the live lease with the lowest id holds the stack and the others queue
behind it, first come first served, without a compare-and-set CVAT does not offer. The run
renews its lease every HEARTBEAT_S (a PATCH, which moves the project's `updated_date`) and
deletes it at the end; a run killed with SIGKILL stops renewing, and its lease expires TTL_S
after its last renewal, or at once for a run on the same host whose process is gone (the
lease names host and pid: a CI job's `criobe-verify cleanup` step after a killed run). Ages are read on CVAT's clock alone (`updated_date` against the
answer's Date header), so two machines' clocks need not agree.

`criobe-verify cleanup` skips a prefix whose lease is live, saying so, and removes an
expired lease with its prefix's projects: the projects of a prefix without a lease were left
by a run that died (a run takes its lease before it creates anything, and deletes it last).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta  # noqa: F401 (timedelta, UTC: the doctests')
from email.utils import parsedate_to_datetime

import httpx

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.waiting import Stopwatch, WaitTimeout, wait_until

log = logging.getLogger("criobe_verify")

SUFFIX = "-lease"
TTL_S = 120  # a lease not renewed for this long belongs to a run that died
HEARTBEAT_S = 20  # several renewals per TTL: one slow answer does not expire a live run
PROGRESS_S = 30  # how often a waiting run says so
WAIT_S = 1800  # how long a run waits for the runs ahead of it (a whole run, e2e included)
_TEXT = re.compile(
    r"^criobe-verify lease host=(?P<host>\S+) pid=(?P<pid>\d+) ttl=(?P<ttl>\d+)(?: run=(?P<run>\S+))?"
)
# The run prefix (cleanup.RUN_PREFIX) of a lease's project name.
_NAME = re.compile(r"^(?P<prefix>criobe-verify-\d{14}-[0-9a-f]{6})" + re.escape(SUFFIX) + "$")


def lease_text(host: str, pid: int, ttl_s: int = TTL_S, beat: int = 0, run: str = "") -> str:
    """What a lease project's bug_tracker holds (a renewal changes `beat`, so CVAT saves);
    `run` names the run when its pytest-xdist workers each hold a lease of their own.

    >>> lease_text("ci-runner-3", 4242, run="criobe-verify-run-x1y2")
    'criobe-verify lease host=ci-runner-3 pid=4242 ttl=120 run=criobe-verify-run-x1y2 beat=0'
    """
    return (
        f"criobe-verify lease host={host} pid={pid} ttl={ttl_s}"
        + (f" run={run}" if run else "")
        + f" beat={beat}"
    )


def lease_name(prefix: str) -> str:
    return prefix + SUFFIX


def is_lease(name: str) -> bool:
    """
    >>> is_lease("criobe-verify-20261207012345-a1b2c3-lease"), is_lease("criobe-verify-20261207012345-a1b2c3-project-1")
    (True, False)
    """
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class Lease:
    """One run's lease, as CVAT lists it."""

    project_id: int
    prefix: str
    host: str
    pid: int
    ttl_s: int
    renewed: datetime  # the project's updated_date, CVAT's clock
    run: str = ""  # the run it belongs to ("": its prefix's own, a run without workers)

    @property
    def run_id(self) -> str:
        return self.run or self.prefix

    def age_s(self, now: datetime) -> float:
        return (now - self.renewed).total_seconds()

    def live(self, now: datetime) -> bool:
        """Renewed within its TTL, and not known dead: a run on this host whose process is
        gone (SIGKILL) frees the stack at once instead of TTL_S later."""
        return self.age_s(now) <= self.ttl_s and not self.dead_here()

    def dead_here(self) -> bool:
        """Its run was on this host and its process is gone. Another host's is judged by its
        renewals alone; a reused pid reads as alive, which only makes the lease wait its TTL.

        >>> at = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)
        >>> Lease(7, "p", socket.gethostname(), os.getpid(), 120, at).dead_here()
        False
        >>> Lease(7, "p", "elsewhere", 2**22 + 1, 120, at).dead_here()
        False
        """
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's process: alive
            return False
        return False

    def holder(self, now: datetime) -> str:
        """
        >>> at = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)
        >>> Lease(7, "criobe-verify-20261207045900-a1b2c3", "ci-3", 42, 120, at).holder(at + timedelta(seconds=9))
        'run criobe-verify-20261207045900-a1b2c3 (host ci-3, pid 42, renewed 9 s ago)'
        """
        return (
            f"run {self.prefix} (host {self.host}, pid {self.pid}, "
            f"renewed {self.age_s(now):.0f} s ago)"
        )


def parse(project: dict) -> Lease | None:
    """The lease a CVAT project is, or None (any other project, or a lease project whose
    bug_tracker was changed by hand: its prefix is then treated as unleased).

    >>> lease = parse({"id": 7, "name": "criobe-verify-20261207045900-a1b2c3-lease",
    ...     "bug_tracker": "criobe-verify lease host=ci-3 pid=42 ttl=120 beat=3",
    ...     "updated_date": "2026-12-07T05:00:00.123456Z"})
    >>> lease.prefix, lease.host, lease.pid, lease.ttl_s, lease.renewed.isoformat()
    ('criobe-verify-20261207045900-a1b2c3', 'ci-3', 42, 120, '2026-12-07T05:00:00.123456+00:00')
    >>> parse({"id": 8, "name": "reef 2024", "bug_tracker": "", "updated_date": "2026-12-07T05:00:00Z"})
    """
    name = _NAME.match(str(project.get("name") or ""))
    text = _TEXT.match(str(project.get("bug_tracker") or ""))
    if not name or not text or not project.get("updated_date"):
        return None
    return Lease(
        int(project["id"]),
        name["prefix"],
        text["host"],
        int(text["pid"]),
        int(text["ttl"]),
        datetime.fromisoformat(str(project["updated_date"]).replace("Z", "+00:00")),
        text["run"] or "",
    )


def leases(projects: Iterable[dict]) -> list[Lease]:
    """The leases among CVAT's projects, oldest first (the queue's order)."""
    return sorted(filter(None, map(parse, projects)), key=lambda lease: lease.project_id)


def ahead_of(run: str, mine: int, all_leases: Iterable[Lease], now: datetime) -> list[Lease]:
    """The live leases of the runs ahead of mine (my lease: project id `mine` of run `run`):
    the runs this one waits for. A run's place is its oldest live lease, so the xdist workers
    of one run never wait for each other nor for a run that came after their first; an
    expired lease (its run died) holds nothing.

    >>> at = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)
    >>> q = [Lease(5, "criobe-verify-20261207045000-000001", "a", 1, 120, at - timedelta(seconds=300)),
    ...      Lease(6, "criobe-verify-20261207045500-000002", "b", 2, 120, at - timedelta(seconds=10)),
    ...      Lease(9, "criobe-verify-20261207045900-000003", "c", 3, 120, at)]
    >>> [lease.pid for lease in ahead_of("criobe-verify-20261207045900-000003", 9, q, at)]
    [2]
    >>> ahead_of("criobe-verify-20261207045500-000002", 6, q, at)
    []

    Run R's workers took leases 10 and 12; run T took 11 between them: T waits for R, and
    R's second worker waits for nobody.

    >>> w = [Lease(10, "criobe-verify-20261207050000-00000a", "h", 10, 120, at, "R"),
    ...      Lease(11, "criobe-verify-20261207050001-00000b", "h", 11, 120, at, "T"),
    ...      Lease(12, "criobe-verify-20261207050002-00000c", "h", 12, 120, at, "R")]
    >>> [x.project_id for x in ahead_of("T", 11, w, at)], ahead_of("R", 12, w, at)
    ([10, 12], [])
    """
    live = [lease for lease in all_leases if lease.live(now)]
    place: dict[str, int] = {}
    for lease in live:
        place[lease.run_id] = min(place.get(lease.run_id, lease.project_id), lease.project_id)
    mine = min(mine, place.get(run, mine))
    return [lease for lease in live if lease.run_id != run and place[lease.run_id] < mine]


def live_prefixes(all_leases: Iterable[Lease], now: datetime) -> dict[str, Lease]:
    """The prefixes a live run still uses: cleanup leaves them alone."""
    return {lease.prefix: lease for lease in all_leases if lease.live(now)}


def server_now(answer: httpx.Response) -> datetime:
    """CVAT's clock, from its answer's Date header (the lease ages are read on it)."""
    return parsedate_to_datetime(answer.headers["date"])


def run_projects(http: httpx.Client) -> tuple[list[dict], datetime]:
    """CVAT's projects whose names look like a run's (leases included), every page, and
    CVAT's time when it answered (cleanup.py reads them too)."""
    found: list[dict] = []
    page, now = 1, None
    while True:
        answer = http.get(
            "/api/projects", params={"search": "criobe-verify-", "page_size": 100, "page": page}
        )
        answer.raise_for_status()
        now = now or server_now(answer)
        body = answer.json()
        found.extend(body.get("results", []))
        if not body.get("next"):
            return found, now
        page += 1


def list_leases(http: httpx.Client) -> tuple[list[Lease], datetime]:
    """Every lease in CVAT, and CVAT's time when it answered."""
    projects, now = run_projects(http)
    return leases(projects), now


class RunLease:
    """This run's lease: taken (after the runs ahead of it), renewed, released.

    lease = RunLease(session.http, prefix)
    lease.take(wait_s=1800)      # WaitTimeout, its diagnosis one line, when the runs ahead outlast it
    ...
    lease.release()
    """

    def __init__(
        self,
        http: httpx.Client,
        prefix: str,
        ttl_s: int = TTL_S,
        heartbeat_s: float = HEARTBEAT_S,
        run: str = "",
    ) -> None:
        self.http, self.prefix, self.ttl_s, self.heartbeat_s = http, prefix, ttl_s, heartbeat_s
        self.run = run
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.project_id: int | None = None
        self._stop = threading.Event()
        # The heartbeat runs beside the checks, on the same client (httpx's is thread-safe).
        self._beats: threading.Thread | None = None

    def take(
        self,
        wait_s: float = WAIT_S,
        say: Callable[[str], None] = log.warning,
        progress_s: float = PROGRESS_S,
    ) -> list[str]:
        """Create the lease, renew it from now on, and wait until no live lease is ahead of
        it; returns whom it waited for (empty when the stack was free)."""
        answer = self.http.post(
            "/api/projects",
            json={
                "name": lease_name(self.prefix),
                "labels": [],
                "bug_tracker": lease_text(self.host, self.pid, self.ttl_s, run=self.run),
            },
        )
        answer.raise_for_status()
        self.project_id = int(answer.json()["id"])
        self._beats = threading.Thread(target=self._renew, name="criobe-lease", daemon=True)
        self._beats.start()
        waited: list[str] = []
        clock = Stopwatch()
        progress = [0.0]  # when the wait last said how long it has waited

        def free() -> tuple[bool, str]:
            all_leases, now = list_leases(self.http)
            ahead = ahead_of(self.run or self.prefix, self.project_id or 0, all_leases, now)
            for lease in ahead:
                if lease.prefix not in waited:
                    waited.append(lease.prefix)
                    say(f"another run holds the stack: waiting for {lease.holder(now)}")
            if ahead and clock.elapsed() - progress[0] >= progress_s:
                progress[0] = clock.elapsed()
                say(f"still waiting for {len(ahead)} run(s) ahead: {clock.elapsed():.0f} s of "
                    f"at most {wait_s:.0f} s (--lease-wait)")  # fmt: skip
            return not ahead, "; ".join(lease.holder(now) for lease in ahead)

        def unready(how) -> Diagnosis:
            return Diagnosis(
                "stack lease",
                f"other runs still hold the stack after {how.timeout_s:.0f} s",
                observed=how.last,
                expected="the runs ahead of this one to finish (one run at a time)",
                consequence="this run did not write to CVAT nor time the functions",
                fix="run again when they end; a run that died frees the stack "
                f"{self.ttl_s} s after its last renewal (criobe-verify cleanup lists leases)",
            )

        try:
            wait_until(
                free,
                timeout=wait_s,
                what="the runs ahead of this one",
                interval=2,
                backoff=1.5,
                max_interval=10,
                log_every=PROGRESS_S,
                unready=unready,
            )
        except WaitTimeout as exc:
            self.release()
            say(f"gave up waiting for the stack after {wait_s:.0f} s: still held by "
                f"{exc.diagnosis.observed if exc.diagnosis else exc}; "
                f"fix: run again when it ends, or a longer --lease-wait")  # fmt: skip
            raise
        except BaseException:  # interrupted while waiting: hold nothing
            self.release()
            raise
        return waited

    def _renew(self) -> None:
        beat = 0
        while not self._stop.wait(self.heartbeat_s):
            beat += 1
            try:
                self.http.patch(
                    f"/api/projects/{self.project_id}",
                    json={
                        "bug_tracker": lease_text(self.host, self.pid, self.ttl_s, beat, self.run)
                    },
                )
            except httpx.HTTPError as exc:  # the next beat tries again; TTL_S covers a few
                log.warning("could not renew the stack lease %s: %s", self.prefix, exc)

    def release(self) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join(timeout=10)
        if self.project_id is not None:
            try:
                self.http.delete(f"/api/projects/{self.project_id}")
            except httpx.HTTPError as exc:  # expires TTL_S later; cleanup removes it then
                log.warning("could not release the stack lease %s: %s", self.prefix, exc)
            self.project_id = None
