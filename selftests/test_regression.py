"""The regression layer without a stack: its rules on baselines built from the twin's recorded
summary (selftests/data/recorded) and a recorded stack, and `--baseline` as an input.

The latency rule is shown on both sides: a function three times slower is flagged; a healthy
stack restarted, whose ten calls put one neighbour's burst at p95 (p95 of ten calls is the
slowest call), is not."""

from __future__ import annotations

import copy
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from criobe_verify.baseline import Run, baseline_of, load_run, run_of, write_baseline
from criobe_verify.compare_report import before_after_html
from criobe_verify.layers import LAYER_NAMES, blocking_reason
from criobe_verify.profile import RISKY_DRIFT
from criobe_verify.regression import (
    LATENCY_RATIO,
    Regression,
    after_run,
    run_as_dict,
    run_from_dict,
)
from criobe_verify.resources.latency import percentile
from selftests.recorded_stack import RecordedStack
from selftests.test_baseline import DIGEST, SUMMARY

CORAL = "latency/within-budget[pth-yolo-coralsegv4]"


def _before() -> Run:
    return run_of(json.loads(json.dumps(baseline_of(SUMMARY, RecordedStack().fingerprint(DIGEST),
                                                    []))), "before/")  # fmt: skip


def _results(summary: dict) -> dict:
    """summary.json's checks as the run state holds them while the run goes on."""
    out = {}
    for check_id, e in summary["checks"].items():
        entry = {k: e[k] for k in ("outcome", "layer", "kind", "latency", "e2e") if k in e}
        if e.get("diagnoses"):
            d = e["diagnoses"][0]
            entry["finding"] = f"{d['subject']}: {d['what']}"
        out[check_id] = entry
    return out


def _regression(summary: dict | None = None, stack: RecordedStack | None = None) -> Regression:
    after = after_run(
        _results(summary or SUMMARY), (stack or RecordedStack()).fingerprint(DIGEST), None
    )
    return Regression.of(_before(), after, "before/", RISKY_DRIFT)


def _calls(summary: dict, check: str, seconds: list[float]) -> dict:
    """The latency check's statistics, as the latency layer computes them, from ten calls."""
    summary = copy.deepcopy(summary)
    summary["checks"][check]["latency"].update(
        p50_s=statistics.median(seconds), p95_s=percentile(seconds, 95), max_s=max(seconds)
    )
    return summary


# Ten calls of coralsegv4 on the twin (seconds), and the same stack restarted: the same calls
# but one, which a neighbour's burst made 3.5 times slower.
TEN = [0.27, 0.28, 0.26, 0.29, 0.28, 0.27, 0.30, 0.28, 0.29, 0.31]
RESTARTED = [0.29, 0.27, 0.30, 0.28, 1.05, 0.29, 0.27, 0.31, 0.30, 0.28]


def test_a_restarted_stack_whose_p95_is_one_slow_call_is_not_slower():
    before = _calls(SUMMARY, CORAL, TEN)
    restarted = _calls(SUMMARY, CORAL, RESTARTED)
    p95 = restarted["checks"][CORAL]["latency"]["p95_s"]
    assert p95 / before["checks"][CORAL]["latency"]["p95_s"] > 3  # p95 alone would flag it
    regression = Regression.of(
        run_of(json.loads(json.dumps(baseline_of(before, {}, []))), "before/"),
        after_run(_results(restarted), None, None),
        "before/",
    )
    assert regression.slowdowns() == [] and regression.slower() is None
    assert regression.timings_compared()


def test_a_function_three_times_slower_is_flagged_with_its_ratio():
    before = _calls(SUMMARY, CORAL, TEN)
    slow = _calls(SUMMARY, CORAL, [3 * s for s in TEN])
    regression = Regression.of(
        run_of(json.loads(json.dumps(baseline_of(before, {}, []))), "before/"),
        after_run(_results(slow), None, None),
        "before/",
    )
    (line,) = regression.slowdowns()
    assert line.startswith("pth-yolo-coralsegv4 p50 0.280 → 0.840 (×3.00) s, p95 ")
    text = str(regression.slower())
    assert "1 timing(s) much slower than in the baseline" in text
    assert f"median call under {LATENCY_RATIO:g}× the baseline's" in text


def test_e2e_stages_a_restart_jitter_passes_a_stage_three_times_slower_is_flagged():
    jitter, slow = copy.deepcopy(SUMMARY), copy.deepcopy(SUMMARY)
    for stage in jitter["checks"]["e2e/two-stage-exactly-once"]["e2e"]["stages"]:
        stage["duration_s"] *= 1.6
    (corals,) = [s for s in slow["checks"]["e2e/two-stage-exactly-once"]["e2e"]["stages"]
                 if s["name"] == "corals detected"]  # fmt: skip
    corals["duration_s"] *= 3
    assert _regression(jitter).slowdowns() == []
    assert _regression(slow).slowdowns() == [
        "e2e two-stage 'corals detected' 1.799 → 5.398 (×3.00) s"
    ]


def test_a_flip_names_the_check_both_outcomes_and_the_new_diagnosis():
    summary = copy.deepcopy(SUMMARY)
    check = "e2e/two-stage-exactly-once"
    entry = summary["checks"][check]
    entry["outcome"] = "failed"
    entry["diagnoses"] = [
        {"subject": "bridge", "what": "POST /webhooks/job-completed answered 404"}
    ]
    regression = _regression(summary)
    text = str(regression.flipped("functional"))
    assert f"{check} passed → failed (bridge: POST /webhooks/job-completed answered 404)" in text
    assert regression.flipped("policy") is None
    assert regression.comparison.exit_code == 1


def test_the_regression_layers_own_checks_are_never_compared():
    summary = copy.deepcopy(SUMMARY)
    summary["checks"]["regression/checks-still-pass"] = {
        "outcome": "failed", "layer": "regression", "kind": "functional"}  # fmt: skip
    before = run_of(json.loads(json.dumps(baseline_of(summary, {}, []))), "b")
    regression = Regression.of(before, after_run(_results(SUMMARY), None, None), "b")
    assert regression.comparison.gone == [] and regression.comparison.new == []


def test_risky_drift_is_a_finding_the_rest_information():
    smokescreen = RecordedStack()
    env = smokescreen.container("cvat_worker_webhooks")["Config"]["Env"]
    env[:] = [e if not e.startswith("SMOKESCREEN_OPTS=") else
              "SMOKESCREEN_OPTS=--allow-address=10.9.9.9" for e in env]  # fmt: skip
    text = str(_regression(stack=smokescreen).risky_drift())
    assert "1 risky change(s) since the baseline" in text
    assert "cvat_worker_webhooks SMOKESCREEN_OPTS changed: --allow-address=172.17.0.1 → " in text
    assert _regression().risky_drift() is None


def test_the_report_section_lists_flips_data_drift_and_latency(tmp_path: Path):
    summary = _calls(SUMMARY, CORAL, [3 * s for s in TEN])
    summary["checks"]["services/cvat-health-working"]["outcome"] = "failed"
    regression = _regression(summary)
    after = run_from_dict(json.loads(json.dumps(run_as_dict(regression.comparison.after))))
    page = "\n".join(before_after_html(Regression.of(_before(), after, "b").comparison))
    assert page.startswith('<div id="criobe-before-after"') and "Before / after" in page
    for title in ("Checks that passed before and do not now (1)", "Configuration drift",
                  "Latency, seconds per call", "services/cvat-health-working"):  # fmt: skip
        assert title in page


def test_the_regression_layer_is_last_ungated_and_only_with_a_baseline():
    assert LAYER_NAMES[-1] == "regression"
    failures = [("containers", "containers/running[cvat_ui]")]
    assert blocking_reason("e2e", failures) and blocking_reason("regression", failures) is None


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--baseline", "nowhere"], "criobe-verify: --baseline nowhere: no such file or folder; "
         "expected a baseline folder"),
        (["--baseline", "."], "criobe-verify: --baseline .: a folder without baseline.json; "),
        (["--layer", "regression"], "criobe-verify: --layer regression: compares this run with "
         "a baseline, and none was given; expected --baseline DIR"),
    ],
)  # fmt: skip
def test_a_bad_baseline_is_one_line_and_exit_4(tmp_path: Path, argv, says):
    proc = _cli(tmp_path, *argv, "--reports", "out")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert proc.stderr.startswith(says) and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_with_a_baseline_the_regression_checks_are_collected_last(tmp_path: Path):
    write_baseline(tmp_path / "before", baseline_of(SUMMARY, {}, []))
    assert load_run(tmp_path / "before").kind == "baseline"
    proc = _cli(tmp_path, "--baseline", "before", "--collect-only", "-q", "--reports", "r")
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids[-5:] and all("tests/test_regression.py::" in i for i in ids[-5:]), proc.stdout
    plain = _cli(tmp_path, "--collect-only", "-q", "--reports", "r")
    assert "test_regression.py" not in plain.stdout


def test_a_frame_read_before_that_no_longer_loads_is_data_lost():
    from criobe_verify.inventory import survived

    job = {"task_id": 1, "type": "annotation", "state": "new", "stage": "annotation"}
    sample = {"counts": {"shapes": 1, "tags": 0, "tracks": 0}, "geometry": "sha256:aa", "frame": 0}
    before = {
        "jobs": {"7": job},
        "sample": {"jobs": {"7": {**sample, "frame_sha256": "sha256:bb"}}},
    }
    lost = {**sample, "frame_unavailable": "GET /api/jobs/7/data answered 404"}
    after = {"jobs": {"7": job}, "sample": {"jobs": {"7": lost}}}
    assert [(c.line, c.finding) for c in survived(before, after)] == [
        ("job 7 frame 0 no longer loads: GET /api/jobs/7/data answered 404", True)
    ]


def test_every_regression_check_is_caught_by_an_upgrade_on_the_twin():
    """The fault-table rule for the regression layer (its faults are upgrades, in
    selftests/test_upgrades.py): each check is one an upgrade there expects to fail."""
    import re

    from criobe_verify.check_catalog import CheckCatalog

    upgrades = (Path(__file__).parent / "test_upgrades.py").read_text()
    expected = set(re.findall(r'expect_only\(\s*summary,\s*"(regression/[a-z-]+)"', upgrades))
    expected |= set(re.findall(r'also=\{"(regression/[a-z-]+)"', upgrades))
    ids = {c.check_id for c in CheckCatalog.read().checks if c.check_id.startswith("regression/")}
    assert len(ids) == 6 and ids <= expected, sorted(ids - expected)
