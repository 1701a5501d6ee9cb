"""Inject each fault of the table into the twin, run the suite, and check that exactly the
named checks fail with messages naming the fault; then revert and check the twin recovered.

    criobe-verify --stack twin --keep-up      # the twin must be up
    pytest selftests/test_faults.py -m twin
"""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from criobe_verify.waivers import id_matches
from selftests.fault_table import FAULTS, Fault, cheap_layers, in_ci, suite_layers, tokens
from selftests.twin import TWIN_PROFILE, Twin, port_held

INSTALLED = [f for f in FAULTS if f.phase == "installed"]
PREINSTALL = [f for f in FAULTS if f.phase == "preinstall"]


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Twin:
    return Twin(tmp_path_factory.mktemp("faults"))


def waived_by_profile(summary: dict) -> set[str]:
    return {w["check"] for w in summary.get("waived", [])}


def check_green(summary: dict, waived: set[str]) -> None:
    """Every check passed, but the findings the profile waives; nothing else, not even
    "not run" (a check that did not run is not a pass)."""
    outcomes = {tid: e["outcome"] for tid, e in summary["checks"].items()}
    bad = {tid: o for tid, o in outcomes.items() if o != "passed" and tid not in waived}
    assert not bad, f"not green: {bad}\n{summary['output']}"
    assert summary["verdict"]["status"] == "works", summary["verdict"]


def check_outcome(fault: Fault, summary: dict, waived: set[str] = frozenset()) -> None:
    tests = summary["checks"]
    failed = {tid: e for tid, e in tests.items() if e["outcome"] in ("failed", "error")}
    assert set(failed) == set(fault.fails), (
        f"{fault.id} ({fault.what}): expected exactly {sorted(fault.fails)} to fail; "
        f"failed: {sorted(failed)}\n{summary['output']}"
    )
    for tid, fragment in fault.fails.items():
        missing = [tok for tok in tokens(fragment) if tok not in failed[tid]["message"]]
        assert not missing, (
            f"{fault.id}: {tid} failed without naming the fault ({missing!r}):\n"
            f"{failed[tid]['message']}"
        )
    if "--strict-skips" in fault.suite_args:
        assert not summary["strict_problems"], (
            f"{fault.id}: a strict run found problems: {summary['strict_problems']}"
        )
        assert fault.fails or summary["exit_code"] == 0, summary["output"]
    for tid, entry in tests.items():
        assert entry["outcome"] != "not run", f"{fault.id}: {tid} did not run\n{summary['output']}"
        if entry["outcome"] == "skipped":
            expected_skip = [
                toks for pattern, toks in fault.skips.items() if id_matches(pattern, tid)
            ]
            if expected_skip:
                assert any(tok in entry["message"] for tok in tokens(expected_skip[0])), (
                    f"{fault.id}: {tid} skipped without saying why ({expected_skip[0]!r}): "
                    f"{entry['message']}"
                )
                continue
            assert any(f in entry["message"] for f in fault.fails), (
                f"{fault.id}: {tid} skipped for another reason: {entry['message']}"
            )
        if entry["outcome"] == "waived":
            assert tid in waived, f"{fault.id}: {tid} waived, but the baseline waives only {waived}"


def run_fault(twin: Twin, fault: Fault, phase: str, waived: set[str] = frozenset()) -> None:
    profile_text = fault.profile_edit(TWIN_PROFILE.read_text()) if fault.profile_edit else None
    try:
        fault.inject(twin)
    except BaseException:
        fault.revert(twin)  # half an injection must not leak into the next fault's run
        raise
    try:
        held = port_held(fault.hold_port) if fault.hold_port else nullcontext()
        with held:
            summary = twin.suite(
                *fault.suite_args,
                env=fault.suite_env(twin),
                profile_text=profile_text,
                phase=phase,
                layers=suite_layers(fault),
            )
    finally:
        fault.revert(twin)
    check_outcome(fault, summary, waived)


@pytest.mark.twin_preinstall
def test_preinstall_baseline_is_green(twin):
    check_green(twin.suite(phase="preinstall"), set())


@pytest.mark.twin_preinstall
@pytest.mark.parametrize("fault", PREINSTALL, ids=[f.id for f in PREINSTALL])
def test_preinstall_fault_fails_exactly_its_checks(twin, fault):
    run_fault(twin, fault, "preinstall")


@pytest.fixture(scope="module")
def baseline(twin) -> dict:
    """One full run on the healthy twin, before any fault: what every fault is compared to."""
    twin.wait_ready()
    return twin.suite()


@pytest.fixture(scope="module")
def baseline_waivers(baseline) -> set[str]:
    """The findings the twin profile waives on the healthy twin (the stock 8070 publish)."""
    waived = waived_by_profile(baseline)
    check_green(baseline, waived)
    return waived


@pytest.mark.twin
def test_baseline_is_green(baseline):
    check_green(baseline, waived_by_profile(baseline))


@pytest.mark.twin
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(f, id=f.id, marks=[] if in_ci(f) else [pytest.mark.slow_fault])
        for f in INSTALLED
    ],
)
def test_fault_fails_exactly_its_checks(twin, fault, baseline_waivers):
    run_fault(twin, fault, "installed", baseline_waivers)


@pytest.mark.twin
def test_twin_is_green_after_every_fault_was_reverted(twin, baseline_waivers):
    twin.wait_ready()
    check_green(twin.suite(), baseline_waivers)


@pytest.mark.twin
def test_reports_carry_no_secret(twin):
    """The bridge's password and every secret-looking value stay out of all report files,
    including when a failure quotes container logs and environments."""
    from criobe_verify.redact import parse_env_lines

    env = parse_env_lines(
        (TWIN_PROFILE.parent.parent / "twin/bridge/.env").read_text().splitlines()
    )
    password = env["CVAT_PWD"]
    fault = next(f for f in FAULTS if f.id == "bridge-wrong-admin-password")
    try:
        fault.inject(twin)
    except BaseException:
        fault.revert(twin)  # half an injection must not leak into the next fault's run
        raise
    try:
        twin.suite("-o", "log_cli_level=DEBUG", "--layer=services")
    finally:
        fault.revert(twin)
    twin.suite("--layer=services")
    reports = sorted(twin.workdir.glob("reports-*/*"))
    assert reports
    for path in reports:
        text = path.read_text(errors="replace")
        assert password not in text, f"{path} contains the bridge's CVAT password"
        assert "not-the-admin-password" not in text, f"{path} contains the injected password"


@pytest.mark.twin
def test_nothing_the_suite_created_is_left_in_cvat(twin, baseline_waivers):
    """After every run above, failing ones included, no project with the run prefix remains."""
    fault = next(f for f in FAULTS if f.id == "webhooks-worker-allowance-missing-events")
    run_fault(twin, fault, "installed", baseline_waivers)  # a webhooks check fails mid-way
    with twin.cvat() as cvat:
        projects = cvat.get(
            "/api/projects", params={"search": "criobe-verify-", "page_size": 100}
        ).json()["results"]
    left = [p["name"] for p in projects if p["name"].startswith("criobe-verify-")]
    assert not left, f"projects left behind: {left}"


def _outcomes(summary: dict) -> dict[str, str]:
    return {tid: e["outcome"] for tid, e in summary["checks"].items()}


@pytest.mark.twin
@pytest.mark.parametrize("fault_id", [None, "container-stopped"], ids=["healthy", "gate-skips"])
def test_parallel_run_finds_the_serial_outcomes(twin, fault_id, baseline_waivers):
    """-n 2 on the same twin: the same outcome for every check, healthy and under a fault
    whose failure makes the gate skip every layer above it (on whichever worker)."""
    fault = next((f for f in FAULTS if f.id == fault_id), None)
    if fault:
        fault.inject(twin)
    # The gate and the dependencies across workers are the point, not minutes of function calls.
    layers = cheap_layers()
    try:
        serial = twin.suite(layers=layers)
        parallel = twin.suite("-n", "2", layers=layers)
    finally:
        if fault:
            fault.revert(twin)
    assert _outcomes(parallel) == _outcomes(serial), (
        {k: (v, _outcomes(serial).get(k)) for k, v in _outcomes(parallel).items()
         if v != _outcomes(serial).get(k)},
        parallel["output"],
    )  # fmt: skip
    assert parallel["verdict"] == serial["verdict"]
    if fault:
        assert "skipped" in serial["totals"], serial["totals"]
        check_outcome(fault, parallel, baseline_waivers)
