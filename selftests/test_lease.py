"""The stack lease (criobe_verify/lease.py) against a fake CVAT projects API: who goes first,
who waits and for whom, what a wait that runs out says and leaves, and what cleanup spares.
The twin proves the same with real runs (selftests/test_interrupt.py)."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from criobe_verify.cleanup import container_left_over, run_prefix
from criobe_verify.lease import (
    TTL_S,
    RunLease,
    ahead_of,
    lease_name,
    lease_text,
    leases,
    list_leases,
    live_prefixes,
)
from criobe_verify.waiting import WaitTimeout, wait_until

A = "criobe-verify-20261207050000-aaaaaa"
B = "criobe-verify-20261207050100-bbbbbb"
C = "criobe-verify-20261207050200-cccccc"


class FakeCvat:
    """CVAT's /api/projects as the lease uses it: ids in creation order, updated_date on
    every save, the Date header on every answer; `clock` is CVAT's time."""

    def __init__(self) -> None:
        self.clock = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)
        self.projects: dict[int, dict] = {}
        self.next_id = 100
        self.on_list = lambda n: None  # called with the listing's count, before it answers
        self.lists = 0

    def add(self, name: str, bug_tracker: str = "", age_s: float = 0) -> int:
        self.next_id += 1
        self.projects[self.next_id] = {
            "id": self.next_id,
            "name": name,
            "bug_tracker": bug_tracker,
            "updated_date": (self.clock - timedelta(seconds=age_s)).isoformat(),
        }
        return self.next_id

    def handler(self, request: httpx.Request) -> httpx.Response:
        headers = {"date": format_datetime(self.clock, usegmt=True)}
        path = request.url.path
        if request.method == "GET" and path == "/api/projects":
            self.lists += 1
            self.on_list(self.lists)
            search = request.url.params.get("search", "")
            results = [p for p in self.projects.values() if search in p["name"]]
            return httpx.Response(200, json={"results": results, "next": None}, headers=headers)
        if request.method == "POST" and path == "/api/projects":
            body = json.loads(request.content)
            pid = self.add(body["name"], body.get("bug_tracker", ""))
            return httpx.Response(201, json=self.projects[pid], headers=headers)
        pid = int(path.rsplit("/", 1)[1])
        if pid not in self.projects:
            return httpx.Response(404, headers=headers)
        if request.method == "PATCH":
            self.projects[pid].update(json.loads(request.content))
            self.projects[pid]["updated_date"] = self.clock.isoformat()
            return httpx.Response(200, json=self.projects[pid], headers=headers)
        if request.method == "DELETE":
            del self.projects[pid]
            return httpx.Response(204, headers=headers)
        return httpx.Response(405, headers=headers)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="http://cvat", transport=httpx.MockTransport(self.handler))


def elsewhere(prefix: str, pid: int = 42) -> tuple[str, str]:
    """A lease of a run on another machine (judged by its renewals alone)."""
    return lease_name(prefix), lease_text("ci-runner-7", pid)


def test_a_free_stack_is_taken_at_once_and_released_whole():
    cvat = FakeCvat()
    cvat.add("reef 2024")
    lease = RunLease(cvat.client(), A)
    said: list[str] = []
    assert lease.take(wait_s=5, say=said.append) == [] and said == []
    (mine,) = leases(cvat.projects.values())
    assert (mine.prefix, mine.host, mine.pid) == (A, socket.gethostname(), os.getpid())
    lease.release()
    assert [p["name"] for p in cvat.projects.values()] == ["reef 2024"]


def test_the_second_run_waits_for_the_first_saying_whose_then_goes():
    cvat = FakeCvat()
    first = cvat.add(*elsewhere(A))
    cvat.add(f"{A}-project-1")  # the first run's scratch: not a lease
    # The first run ends (deletes its lease) while the second is waiting.
    cvat.on_list = lambda n: cvat.projects.pop(first) if n == 2 else None
    said: list[str] = []
    lease = RunLease(cvat.client(), B)
    assert lease.take(wait_s=30, say=said.append, progress_s=0) == [A]
    assert said[0] == (
        f"another run holds the stack: waiting for run {A} (host ci-runner-7, pid 42, "
        "renewed 0 s ago)"
    )
    assert said[1].startswith("still waiting for 1 run(s) ahead: ") and said[1].endswith(
        "s of at most 30 s (--lease-wait)"
    )
    assert len(said) == 2  # the second look found the stack free
    lease.release()


def test_runs_queue_in_the_order_they_asked():
    """Three runs: the third waits for both ahead of it, not only for the one holding."""
    cvat = FakeCvat()
    cvat.add(*elsewhere(A, 1))
    cvat.add(*elsewhere(B, 2))
    said: list[str] = []
    with pytest.raises(WaitTimeout):
        RunLease(cvat.client(), C).take(wait_s=0.2, say=said.append)
    waits = [line.split("waiting for run ")[1][:35] for line in said if "waiting for run" in line]
    assert waits == [A, B]


def test_a_wait_that_runs_out_says_so_in_one_diagnosis_and_leaves_no_lease():
    cvat = FakeCvat()
    cvat.add(*elsewhere(A))
    said: list[str] = []
    with pytest.raises(WaitTimeout) as caught:
        RunLease(cvat.client(), B).take(wait_s=0.5, say=said.append)
    assert said[-1].startswith(
        f"gave up waiting for the stack after 0 s: still held by run {A} (host ci-runner-7"
    ) and said[-1].endswith("fix: run again when it ends, or a longer --lease-wait")
    assert "\n" not in said[-1]
    diagnosis = caught.value.diagnosis
    assert diagnosis is not None
    assert "other runs still hold the stack after 0 s" in str(diagnosis)
    assert diagnosis.observed.startswith(f"run {A} (host ci-runner-7, pid 42")
    assert "run again when they end" in str(diagnosis)
    assert [lease.prefix for lease in leases(cvat.projects.values())] == [A]


def test_an_interrupted_wait_leaves_no_lease():
    cvat = FakeCvat()
    cvat.add(*elsewhere(A))

    def ctrl_c(n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    cvat.on_list = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        RunLease(cvat.client(), B).take(wait_s=30, say=lambda line: None)
    assert [lease.prefix for lease in leases(cvat.projects.values())] == [A]


def test_a_dead_runs_lease_holds_nothing():
    """Expired (not renewed for its TTL, on CVAT's clock), or of a process gone on this
    host (SIGKILL): neither is waited for nor spared by cleanup."""
    cvat = FakeCvat()
    cvat.add(*elsewhere(A), age_s=TTL_S + 1)
    gone = 2**22 + 1  # above Linux's pid_max default: no such process
    cvat.add(lease_name(B), lease_text(socket.gethostname(), gone))
    cvat.add(*elsewhere(C), age_s=TTL_S - 1)  # renewed within its TTL: alive
    all_leases, now = list_leases(cvat.client())
    assert list(live_prefixes(all_leases, now)) == [C]
    lease = RunLease(cvat.client(), "criobe-verify-20261207050300-dddddd")
    with pytest.raises(WaitTimeout) as caught:
        lease.take(wait_s=0.2, say=lambda line: None)
    assert A not in str(caught.value.diagnosis) and B not in str(caught.value.diagnosis)


def test_a_renewal_moves_the_lease_on_cvats_clock():
    cvat = FakeCvat()
    lease = RunLease(cvat.client(), A, heartbeat_s=0.05)
    lease.take(wait_s=1, say=lambda line: None)
    cvat.clock += timedelta(seconds=TTL_S + 30)  # no renewal for longer than the TTL...
    wait_until(
        lambda: (live_prefixes(*list_leases(cvat.client())) != {}, "not renewed"),
        timeout=10,
        what="a renewal",
        interval=0.05,
    )  # ...until the heartbeat's PATCH: alive again, on CVAT's clock
    assert "beat=0" not in cvat.projects[lease.project_id]["bug_tracker"]
    lease.release()
    assert cvat.projects == {}


def test_cleanup_spares_a_live_runs_prefix_and_containers():
    live = {A: "lease"}
    assert run_prefix(f"{A}-project-2") == A and run_prefix(lease_name(A)) == A
    assert not container_left_over(f"{A}-receiver", "running", live)
    assert container_left_over(f"{B}-receiver", "running", live)
    assert container_left_over(f"{B}-receiver", "exited", {})
    # A running probe helper names no run: spared while any run holds a lease.
    assert not container_left_over("eager_turing", "running", live)
    assert container_left_over("eager_turing", "running", {})


def test_the_workers_of_one_run_never_wait_for_each_other():
    """pytest-xdist: each worker has a prefix and a lease of its own, under one run id; a run
    that asked between two workers' leases waits for the whole run."""
    cvat = FakeCvat()
    first = RunLease(cvat.client(), A, run="criobe-verify-run-r")
    assert first.take(wait_s=1, say=lambda line: None) == []
    cvat.add(lease_name(B), lease_text("ci-runner-7", 77, run="criobe-verify-run-t"))
    second = RunLease(cvat.client(), C, run="criobe-verify-run-r")
    assert second.take(wait_s=1, say=lambda line: None) == []
    all_leases, now = list_leases(cvat.client())
    (t_lease,) = [lease for lease in all_leases if lease.prefix == B]
    assert ahead_of("criobe-verify-run-t", t_lease.project_id, all_leases, now) != []
    first.release()
    second.release()
