"""Upgrades the twin can make, each caught by exactly the regression check that should catch it
(issue 15 item 6): the lab's data made on the twin with cvat-sdk (a project, two tasks, a
webhook), a baseline recorded (`--record-baseline`, the layers the upgrade needs), the upgrade
applied, the suite run again with `--baseline`, and the twin put back as it was.

    criobe-verify --stack twin --keep-up      # the twin must be up
    pytest selftests/test_upgrades.py -m twin

Each fault runs only the layers it needs (the regression layer comes with --baseline): the
data faults the host layer (seconds), the slower function the latency layer.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from selftests import PROJECT_ROOT
from selftests.test_baseline import lab_project
from selftests.twin import Twin

pytestmark = pytest.mark.twin

REGRESSION = (
    "regression/checks-still-pass",
    "regression/policy-checks-still-pass",
    "regression/lab-data-survived",
    "regression/configuration-as-before",
    "regression/latency-as-before",
    "regression/functions-answer-as-before",
)


@dataclass(frozen=True)
class Lab:
    """The lab's data on the twin (ids), and a logged-in CVAT client factory."""

    project: int
    task: int  # the task an upgrade disturbs
    other: int  # a task left alone
    webhook: int


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Twin:
    return Twin(tmp_path_factory.mktemp("upgrades"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory, twin: Twin) -> Iterator[Lab]:
    """A lab's data as a lab makes it (cvat-sdk): a project with a label, two tasks of one
    image, a webhook on the project to the bridge; one for the module (every upgrade but the
    deletion is reverted), removed at the end."""
    folder = tmp_path_factory.mktemp("lab")
    with lab_project(folder, "upgrade lab data", tasks=2) as (project, tasks):
        with twin.cvat() as cvat:
            r = cvat.post(
                "/api/webhooks",
                json={
                    "target_url": "http://bridge.gateway:8000/test-webhook",
                    "events": ["update:job"],
                    "type": "project",
                    "project_id": project.id,
                    "content_type": "application/json",
                    "is_active": True,
                },
            )
            assert r.status_code == 201, r.text
        yield Lab(project.id, tasks[0].id, tasks[1].id, r.json()["id"])
        # The webhook goes with its project (ON DELETE CASCADE, as in CVAT).


def _key(twin: Twin) -> str:
    return f"--baseline-key={twin.workdir / 'baseline.key'}"


@pytest.fixture(scope="module")
def host_baseline(tmp_path_factory, twin: Twin, lab: Lab) -> Path:
    """One baseline of the host layer (the inventory and the fingerprint) for the data and
    configuration upgrades: each is reverted after its run, so the next one compares with the
    same before; the task deletion, which cannot be reverted, comes last in this module."""
    folder = tmp_path_factory.mktemp("host") / "before"
    record(twin, folder, ("host",))
    return folder


def timed(twin: Twin, layers: tuple[str, ...]) -> None:
    """A run that times the stack starts on a settled host, as its baseline did."""
    if {"latency", "e2e"} & set(layers):
        twin.wait_quiet()


def record(twin: Twin, folder: Path, layers: tuple[str, ...], **suite) -> dict:
    """A baseline of the twin as it is (the suite's own run, as `criobe-verify baseline`)."""
    timed(twin, layers)
    summary = twin.suite(f"--record-baseline={folder}", _key(twin), layers=layers, **suite)
    assert (folder / "baseline.json").is_file(), summary["output"]
    return json.loads((folder / "baseline.json").read_text())


def after(twin: Twin, folder: Path, layers: tuple[str, ...], **suite) -> dict:
    timed(twin, layers)
    return twin.suite(f"--baseline={folder}", _key(twin), layers=layers, **suite)


def failed_regression(summary: dict) -> dict[str, str]:
    return {
        check: entry.get("message", "")
        for check, entry in summary["checks"].items()
        if entry["layer"] == "regression" and entry["outcome"] in ("failed", "error")
    }


def expect_only(summary: dict, check: str, *tokens: str, also: dict | None = None) -> None:
    """Exactly `check` (and the checks of `also`: check → tokens) of the regression layer
    fails, naming what changed; every other regression check ran."""
    regression = {c: e for c, e in summary["checks"].items() if e["layer"] == "regression"}
    assert set(regression) == set(REGRESSION), sorted(regression)
    failed = failed_regression(summary)
    expected = {check: tokens, **(also or {})}
    assert set(failed) == set(expected), (
        f"expected only {sorted(expected)} to fail: {failed}\n{summary['output']}"
    )
    for name, said in expected.items():
        print(f"{name}: {failed[name]}")  # the message, for the log of a -s run
        missing = [t for t in said if t not in failed[name]]
        assert not missing, f"{name} did not name {missing}:\n{failed[name]}"


def upgraded(
    twin: Twin,
    baseline: Path,
    layers: tuple[str, ...],
    apply: Callable[[], None],
    revert: Callable[[], None],
    **suite,
) -> dict:
    """The upgrade applied, the run against `baseline`, reverted (also when the run fails)."""
    try:
        apply()
        return after(twin, baseline, layers, **suite)
    finally:
        revert()


def upgrade(
    twin: Twin,
    tmp_path: Path,
    layers: tuple[str, ...],
    apply: Callable[[], None],
    revert: Callable[[], None],
    **suite,
) -> dict:
    """A baseline of its own, then the upgrade against it (`upgraded`)."""
    record(twin, tmp_path / "before", layers, **suite)
    return upgraded(twin, tmp_path / "before", layers, apply, revert, **suite)


# --- the lab's data and the configuration: one host-layer baseline ----------------------------


def _psql(twin: Twin, sql: str) -> str:
    return twin.exec("cvat_db", "psql", "-U", "root", "-d", "cvat", "-tA", "-c", sql)


def test_a_migration_that_deactivates_the_webhooks_is_named(twin, lab, host_baseline):
    """As a migration writing the table directly would (no API call, no delivery)."""

    def deactivate() -> None:
        _psql(twin, f"UPDATE twin_webhook SET is_active = false WHERE id = {lab.webhook}")

    def reactivate() -> None:
        _psql(twin, f"UPDATE twin_webhook SET is_active = true WHERE id = {lab.webhook}")

    summary = upgraded(twin, host_baseline, ("host",), deactivate, reactivate)
    expect_only(
        summary, "regression/lab-data-survived", f"webhook {lab.webhook}", "is_active", "False"
    )


def test_a_task_whose_frames_no_longer_load_is_named(twin, lab, host_baseline):
    """The frames renumbered out of the task (404), as media a migration lost; back after."""

    def lose() -> None:
        _psql(twin, f"UPDATE twin_frame SET frame = frame + 100000 WHERE task_id = {lab.task}")

    def restore() -> None:
        _psql(twin, f"UPDATE twin_frame SET frame = frame - 100000 WHERE task_id = {lab.task}")

    summary = upgraded(twin, host_baseline, ("host",), lose, restore)
    expect_only(summary, "regression/lab-data-survived", "frame 0")


def test_smokescreen_opts_edited_is_risky_drift(twin, lab, host_baseline):
    """cvat_worker_webhooks recreated with one more allowed address: it still delivers, but
    the setting the guide's step 8 makes changed."""
    opts = "--allow-address=172.17.0.1 --allow-address=172.17.0.9"
    overlay = (
        f"services:\n  cvat_worker_webhooks:\n    environment:\n      SMOKESCREEN_OPTS: {opts!r}\n"
    )
    summary = upgraded(
        twin,
        host_baseline,
        ("host",),
        lambda: twin.recreate("cvat_worker_webhooks", overlay=overlay),
        lambda: twin.restore("cvat_worker_webhooks"),
    )
    expect_only(
        summary,
        "regression/configuration-as-before",
        "cvat_worker_webhooks SMOKESCREEN_OPTS changed",
        "172.17.0.9",
    )


def test_a_task_deleted_is_named_by_lab_data_survived(twin, lab, host_baseline):
    """Last of the host-layer upgrades: nothing puts the task back."""

    def delete() -> None:
        with twin.cvat() as cvat:
            assert cvat.delete(f"/api/tasks/{lab.task}").status_code == 204

    summary = upgraded(twin, host_baseline, ("host",), delete, lambda: None)
    expect_only(
        summary, "regression/lab-data-survived", f"task {lab.task} 'reef 2024 quadrat 1' is gone"
    )


# --- timings and answers ----------------------------------------------------------------------

TIMED = ("latency", "e2e")


@pytest.fixture(scope="module")
def timing_baseline(tmp_path_factory, twin: Twin, lab: Lab) -> Path:
    """One baseline of the timed layers (ten calls per function, the e2e run) for the slower
    function and the restarts; a run that selects the latency layer alone lists the e2e
    checks as gone, never as regressions."""
    folder = tmp_path_factory.mktemp("timed") / "before"
    record(twin, folder, TIMED)
    return folder


def test_a_coral_function_three_times_slower_is_named_with_its_ratio(twin, lab, timing_baseline):
    """pth-yolo-coralsegv4 redeployed sleeping twice its baseline median per call: about
    three times the median (the latency layer alone). Where the baseline's median is over a
    third of the CPU budget (a slow host: CI saw 2.2 s against 9 s), three times it is over
    the budget too, and the policy check that passed before is named as well."""
    fn = "pth-yolo-coralsegv4"
    before = json.loads((timing_baseline / "baseline.json").read_text())
    delay = 2 * before["latency"][fn]["p50_s"]
    summary = upgraded(
        twin,
        timing_baseline,
        ("latency",),
        lambda: twin.redeploy(fn, env={"CRIOBE_TWIN_DELAY_S": f"{delay:.3f}"}),
        lambda: twin.restore_functions(fn),
    )
    budget = f"latency/within-budget[{fn}]"
    was = before["checks"][budget]["outcome"]
    over = was == "passed" and summary["checks"][budget]["outcome"] == "failed"
    also = {"regression/policy-checks-still-pass": (f"{budget} passed → failed",)} if over else {}
    expect_only(summary, "regression/latency-as-before", f"{fn} p50 ", "(×", also=also)


def test_a_gridcorners_image_whose_corners_moved_4_px_is_named(twin, lab, tmp_path):
    """pth-yolo-gridcorners redeployed answering every corner 4 px to the right (its
    `moved-4px` knob: a new model that still follows the contract). The inference layer
    alone: functions-answer-as-before names each corner with both positions. The synthetic
    sample's ground truth sees the 4 px too (accuracy, a policy check, flips); on a lab's photo
    with a looser accuracy bar the answer check alone would see it."""
    fn = "pth-yolo-gridcorners"

    def moved() -> None:
        twin.redeploy(fn, env={"CRIOBE_TWIN_FAULT": "moved-4px"})

    summary = upgrade(twin, tmp_path, ("inference",), moved, lambda: twin.restore_functions(fn))
    expect_only(
        summary,
        "regression/functions-answer-as-before",
        f"{fn} on ",
        "corner 1 ",
        "moved 4.0 px > 2 px",
        "golden_tolerance_px",
        also={
            "regression/policy-checks-still-pass": (
                f"inference/accurate-on-sample[{fn}] passed → failed",
            ),
        },
    )


def test_a_function_now_over_its_budget_flips_a_policy_check(twin, lab, tmp_path):
    """pth-yolo-gridcorners redeployed sleeping 2.8 s per call (CPU budget 2.5 s): the
    latency layer's budget check (policy) passed in the baseline and fails now, and the
    median is far slower: two regressions, both named (three calls each run, to be quick)."""
    fn = "pth-yolo-gridcorners"
    profile = (PROJECT_ROOT / "profiles" / "twin.toml").read_text()
    quick = profile.replace("calls = 10\nwarmup = 2", "calls = 3\nwarmup = 0")
    assert quick != profile
    summary = upgrade(
        twin,
        tmp_path,
        ("latency",),
        lambda: twin.redeploy(fn, env={"CRIOBE_TWIN_DELAY_S": "2.8"}),
        lambda: twin.restore_functions(fn),
        profile_text=quick,
    )
    expect_only(
        summary,
        "regression/policy-checks-still-pass",
        f"latency/within-budget[{fn}] passed → failed",
        also={"regression/latency-as-before": (f"{fn} p50 ",)},
    )


# --- a new bridge image ---------------------------------------------------------------------


def test_a_bridge_image_without_the_job_completed_endpoint_flips_the_e2e_checks(
    twin, lab, tmp_path
):
    """`up -d --build` made a bridge image (the same tag, criobe-twin/bridge:latest) whose
    job-completed endpoint, /crop-quadrat-and-create-new-task-webhook, is gone: the checks of
    the pipeline that passed in the baseline fail, and regression/checks-still-pass names
    them. The old image is tagged back and the bridge recreated after."""
    import io

    tag = "criobe-twin/bridge:latest"
    old = twin.docker.images.get(tag)
    dockerfile = (
        f"FROM {old.id}\nRUN sed -i 's#/crop-quadrat-and-create-new-task-webhook#"
        "/crop-quadrat-gone#' /app/criobe_bridge/app.py\n"
    )
    layers = ("webhooks", "e2e")

    def build() -> None:
        new, _ = twin.docker.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True)
        new.tag(tag)
        twin.recreate("bridge")

    def back() -> None:
        new_id = twin.docker.images.get(tag).id
        old.tag(tag)
        twin.recreate("bridge")
        if new_id != old.id:
            twin.docker.images.remove(new_id, force=True)

    summary = upgrade(twin, tmp_path, layers, build, back)
    expect_only(summary, "regression/checks-still-pass", "e2e/two-stage-exactly-once passed → ")
    assert twin.docker.images.get(tag).id == old.id


# --- a healthy restart ------------------------------------------------------------------------


def test_the_stack_restarted_three_times_gives_no_failed_regression_check(
    twin, lab, timing_baseline
):
    """`docker compose restart` of the twin (the same images, the same configuration) three
    times, each run against the one baseline: no regression check fails (drift listed as
    information is fine), the latency and e2e timings compared each time."""
    runs = []
    for _ in range(3):
        subprocess.run(
            ["docker", "restart", "-t", "10", "cvat_server", "cvat_worker_webhooks", "bridge"],
            check=True,
            capture_output=True,
        )
        twin.wait_ready()
        twin.settle_supervised()
        summary = after(twin, timing_baseline, TIMED)
        runs.append(failed_regression(summary))
        print({c: e["outcome"] for c, e in summary["checks"].items() if "regression/" in c})
        print(summary["output"][-1500:])
    assert runs == [{}, {}, {}], runs
