"""Interrupted runs and runs at once, against the twin (issue 16, items 5 and 6).

A run interrupted at a chosen point (picked by watching CVAT or the run's own progress, never
by sleeping) leaves nothing in CVAT, or, killed with SIGKILL, only what `criobe-verify
cleanup` then finds and removes, the task the bridge derives after the run died included;
the reports of an interrupted run are written. Two runs started together both pass, the
second waiting for the first and saying so, and a cleanup run between them spares both.

Each interruption runs one layer (webhooks ~5 s, e2e ~20 s, latency ~15 s on the 2-core CI
machine): about two minutes in all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import httpx
import pytest

from criobe_verify.lease import is_lease, leases
from criobe_verify.waiting import wait_until
from selftests import PROJECT_ROOT
from selftests.twin import TWIN_PROFILE, Twin

pytestmark = pytest.mark.twin

WAIT_S = 120  # bound on each moment waited for: a layer's run takes 5-25 s on the twin


def as_from_a_terminal() -> None:
    """The run starts with SIGINT at its default, as from a terminal where Ctrl-C reaches it.
    A program that a non-interactive shell starts in the background inherits SIGINT ignored
    (POSIX), and Python then installs no KeyboardInterrupt handler: under `nohup … &`, as CI
    may start these selftests, the run would never see the test's SIGINT (a CI-style run
    showed it: the run went on to the end and exited 1). SIGTERM, what a CI runner sends, is
    the suite's own handler's (cli.sigterm_as_interrupt) either way."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """One suite run in attach mode against the twin, its output in a file (unbuffered:
    its progress is read while it runs)."""

    def __init__(self, workdir: Path, name: str, *layers: str) -> None:
        self.reports = workdir / f"reports-{name}"
        self.log = workdir / f"{name}.out"
        cmd = [
            sys.executable, "-m", "criobe_verify.cli", "--reports", str(self.reports), "--",
            "--stack", "attach", "--strict-probes", f"--profile={TWIN_PROFILE}", "-v",
            *(f"--layer={layer}" for layer in layers),
        ]  # fmt: skip
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=PROJECT_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=as_from_a_terminal,
            )
        self.prefix: str | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str, condition: Callable[[], bool]) -> None:
        """Until condition() holds while the run is still running (bounded)."""

        def look() -> tuple[bool, str]:
            assert self.alive(), f"the run ended before {what}:\n{self.output()[-3000:]}"
            return condition(), f"not yet: {what}"

        wait_until(look, timeout=WAIT_S, what=what, interval=0.1)

    def wait_for_output(self, text: str) -> None:
        self.wait_for(f"{text!r} in the run's output", lambda: text in self.output())

    def lease_seen(self, cvat: httpx.Client) -> str:
        """The run's prefix, once its lease (which names its pid) is in CVAT."""

        def mine() -> bool:
            answer = cvat.get("/api/projects", params={"search": "criobe-verify-"})
            for lease in leases(answer.json()["results"]):
                if lease.pid == self.proc.pid:
                    self.prefix = lease.prefix
            return self.prefix is not None

        self.wait_for("the run's lease in CVAT", mine)
        assert self.prefix is not None
        return self.prefix

    def end(self, sig: signal.Signals | None = None) -> int:
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=180)
        finally:
            self.proc.kill()

    def summary(self) -> dict:
        path = self.reports / "summary.json"
        assert path.is_file(), f"no summary.json:\n{self.output()[-3000:]}"
        return json.loads(path.read_text())

    def assert_reports_say_interrupted(self) -> None:
        summary = self.summary()
        assert summary["stopped"] == "interrupted", summary.get("stopped")
        assert summary["verdict"]["status"] == "incomplete", summary["verdict"]
        assert (self.reports / "junit.xml").is_file() and (self.reports / "report.html").is_file()


@contextmanager
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    """The runs a test starts; any still running at its end is killed (and its leftovers,
    under its prefix, then removed by cleanup so the twin stays clean for the next test)."""
    started: list[Run] = []
    try:
        yield started
    finally:
        for run in started:
            run.proc.kill()
            run.proc.wait()
        if any(run.prefix for run in started):
            cleanup()


def cleanup(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", "cleanup", f"--profile={TWIN_PROFILE}", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def left_of(cvat: httpx.Client, prefix: str) -> list[str]:
    """What CVAT and Docker hold of a run: projects and tasks named under its prefix (the
    bridge's derived tasks too: `<prefix>-task_warped`), webhooks it created (their
    description is the prefix), its receiver container."""
    found = []
    for kind in ("projects", "tasks"):
        answer = cvat.get(f"/api/{kind}", params={"search": prefix, "page_size": 100})
        found += [f"{kind[:-1]} {x['id']} {x['name']}" for x in answer.json()["results"]]
    hooks = cvat.get("/api/webhooks", params={"page_size": 100}).json()["results"]
    found += [f"webhook {h['id']}" for h in hooks if h.get("description") == prefix]
    client = docker.from_env(timeout=30)
    found += [
        f"container {c.name}"
        for c in client.containers.list(all=True, filters={"name": prefix})
        if c.name.startswith(prefix)
    ]
    return found


def nothing_left(cvat: httpx.Client, prefix: str) -> None:
    """Until nothing of the run is left (a deletion answered is done; the bounded wait only
    covers a cascade CVAT finishes after answering)."""
    wait_until(
        lambda: (not (left := left_of(cvat, prefix)), f"left: {left}"),
        timeout=30,
        what=f"{prefix} gone",
        interval=0.5,
    )


def webhook_of(cvat: httpx.Client, prefix: str) -> bool:
    hooks = cvat.get("/api/webhooks", params={"page_size": 100}).json()["results"]
    return any(h.get("description") == prefix for h in hooks)


def job_in(cvat: httpx.Client, task_name: str, state: str) -> bool:
    """Whether the job of the task so named is in this state (in progress: the run started
    the stage; completed: the bridge's task webhook derives the next task)."""
    tasks = cvat.get("/api/tasks", params={"search": task_name}).json()["results"]
    for task in tasks:
        if task["name"] == task_name:
            jobs = cvat.get("/api/jobs", params={"task_id": task["id"]}).json()["results"]
            return any(job["state"] == state for job in jobs)
    return False


def task_named(cvat: httpx.Client, name: str) -> bool:
    tasks = cvat.get("/api/tasks", params={"search": name}).json()["results"]
    return any(task["name"] == name for task in tasks)


@pytest.fixture
def cvat(tmp_path: Path) -> Iterator[httpx.Client]:
    with Twin(tmp_path).cvat() as client:
        yield client


@contextmanager
def paused(container: str) -> Iterator[None]:
    """The container frozen (cgroup freezer: alive, runs nothing) until the block ends."""
    frozen = docker.from_env(timeout=30).containers.get(container)
    frozen.pause()
    try:
        yield
    finally:
        frozen.unpause()


def test_sigint_during_a_webhook_check_leaves_nothing(tmp_path, cvat):
    """Ctrl-C while a webhook check's project, webhook and receiver exist: the job-update
    check waits for a delivery that the paused webhooks worker holds back, so the moment lasts
    until the signal on any machine (the layer's six checks take 3 s in all). Its queued
    delivery, sent once the worker runs again, finds the webhook deleted and is dropped, as
    in CVAT."""
    with paused("cvat_worker_webhooks"), runs(tmp_path) as started:
        run = Run(tmp_path, "webhooks", "webhooks")
        started.append(run)
        prefix = run.lease_seen(cvat)
        run.wait_for_output("test_job_update_event_is_delivered_to_the_bridge")
        run.wait_for("the run's webhook in CVAT", lambda: webhook_of(cvat, prefix))
        assert run.end(signal.SIGINT) == 2, run.output()[-3000:]
        run.assert_reports_say_interrupted()
        nothing_left(cvat, prefix)


def test_sigterm_during_an_e2e_stage_leaves_nothing(tmp_path, cvat):
    """SIGTERM (a cancelled CI job) while the run waits for the corners of its task: its job
    is in progress, and the paused webhooks worker holds back the delivery that would start
    the bridge, so the moment lasts until the signal (the stage takes 0.6 s on the twin)."""
    with paused("cvat_worker_webhooks"), runs(tmp_path) as started:
        run = Run(tmp_path, "e2e-sigterm", "e2e")
        started.append(run)
        prefix = run.lease_seen(cvat)
        run.wait_for(
            "the corner stage started (the source job in progress)",
            lambda: job_in(cvat, f"{prefix}-task", "in progress"),
        )
        assert run.end(signal.SIGTERM) == 2, run.output()[-3000:]
        run.assert_reports_say_interrupted()
        nothing_left(cvat, prefix)


def test_sigkill_in_e2e_leaves_only_what_cleanup_removes(tmp_path, cvat):
    """SIGKILL the moment the run completes its source job: the bridge then derives the
    warped task for a run that is gone, into the run's own corals project; `cleanup` finds
    the run's lease dead (its process is gone from this host) and removes it all."""
    with runs(tmp_path) as started:
        run = Run(tmp_path, "e2e-sigkill", "e2e")
        started.append(run)
        prefix = run.lease_seen(cvat)
        run.wait_for(
            "the source job completed", lambda: job_in(cvat, f"{prefix}-task", "completed")
        )
        assert run.end(signal.SIGKILL) == -signal.SIGKILL
        wait_until(
            lambda: (task_named(cvat, f"{prefix}-task_warped"), "no warped task yet"),
            timeout=WAIT_S,
            what="the bridge's warped task of the dead run",
            interval=0.5,
        )
        assert left_of(cvat, prefix)
        said = cleanup()
        assert f"skipping {prefix}" not in said, said
        assert any(is_lease(line.split()[-1]) for line in said.splitlines()), said
        nothing_left(cvat, prefix)
        assert "0 left-over object(s) found" in cleanup("--dry-run")


def test_sigterm_in_the_latency_loop_leaves_nothing(tmp_path, cvat):
    """SIGTERM while the functions are timed: the second function's loop has begun."""
    with runs(tmp_path) as started:
        run = Run(tmp_path, "latency", "latency")
        started.append(run)
        # -v names each check as it starts: the second name, the second function's loop.
        run.wait_for(
            "the second function's latency loop",
            lambda: run.output().count("test_function_latency_is_within_budget[") >= 2,
        )
        prefix = run.lease_seen(cvat)
        assert run.end(signal.SIGTERM) == 2, run.output()[-3000:]
        run.assert_reports_say_interrupted()
        nothing_left(cvat, prefix)


def test_two_runs_at_once_both_pass_the_second_waiting(tmp_path, cvat):
    """Two runs of the webhooks and e2e layers started together: the second waits for the
    first, saying whose run it waits for, and both pass; a cleanup between them spares both
    (the first's scratch is in use, the second holds its place in the queue)."""
    with runs(tmp_path) as started:
        first = Run(tmp_path, "first", "webhooks", "e2e")
        started.append(first)
        a = first.lease_seen(cvat)
        second = Run(tmp_path, "second", "webhooks", "e2e")
        started.append(second)
        second.wait_for_output(f"another run holds the stack: waiting for run {a}")
        b = second.lease_seen(cvat)
        first.wait_for("the first run's webhook", lambda: webhook_of(cvat, a))
        said = cleanup()
        assert f"skipping {a}: leased by a live run {a}" in said, said
        assert f"skipping {b}: leased by a live run {b}" in said, said
        removed = [line for line in said.splitlines() if line.startswith(("deleting", "removing"))]
        assert not [line for line in removed if a in line or b in line], said
        for run in (first, second):
            code = run.end()
            summary = run.summary()
            assert code == 0 and summary["verdict"]["status"] == "works", run.output()[-3000:]
        nothing_left(cvat, a)
        nothing_left(cvat, b)
