"""`criobe-verify compare` on baselines built from recorded inputs (selftests/recorded_stack.py,
the twin's recorded summary.json): every kind of drift named as a lab reads it and judged by
the profile, a recreated stack giving none, flips and their exit codes, latency ratios, and
bad inputs refused with one line and exit 4."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from criobe_verify.baseline import FILE, baseline_of, load_run, run_of, write_baseline
from criobe_verify.compare import compare
from criobe_verify.compare_report import html_page, text_table
from criobe_verify.profile import RISKY_DRIFT, ProfileError, load_profile
from criobe_verify.verdict import EXIT_POLICY_FINDINGS
from selftests import PROJECT_ROOT
from selftests.recorded_stack import SECRETS, SMOKESCREEN_OPTS, RecordedStack
from selftests.test_baseline import DIGEST, SUMMARY


def _baseline(stack: RecordedStack | None = None, summary: dict | None = None) -> dict:
    return baseline_of(summary or SUMMARY, (stack or RecordedStack()).fingerprint(DIGEST), [])


def _run(stack: RecordedStack | None = None, summary: dict | None = None):
    # Through JSON, as compare reads a baseline from its file.
    return run_of(json.loads(json.dumps(_baseline(stack, summary))), "recorded")


def _compare(after: RecordedStack | None = None, summary: dict | None = None, **policy):
    return compare(_run(), _run(after, summary), policy.get("risky", RISKY_DRIFT),
                   policy.get("ignore", ()))  # fmt: skip


def test_a_baseline_compared_with_itself_reports_nothing():
    run = _run()
    result = compare(run, run, RISKY_DRIFT)
    assert (result.flips, result.new, result.gone, result.drift) == ([], [], [], [])
    assert result.exit_code == 0
    assert "nothing risky changed and no check flipped (exit 0)" in text_table(result)


def test_a_recreated_stack_with_the_same_configuration_gives_no_drift():
    """New container ids, start times, addresses, short-id aliases, restart counts and random
    function ports (in Docker's records and in the dashboard's status) are not drift."""
    before, after = RecordedStack(), RecordedStack().restarted()
    assert before.container("bridge")["Id"] != after.container("bridge")["Id"]
    port = "nuclio-nuclio-pth-yolo-gridcorners"
    assert (
        before.container(port)["NetworkSettings"]["Ports"]
        != after.container(port)["NetworkSettings"]["Ports"]
    )
    result = _compare(after)
    assert result.drift == [] and result.exit_code == 0


def _set(path: tuple, value) -> Callable[[RecordedStack], None]:
    """A change to one container's inspect record (path from the container's name)."""

    def change(stack: RecordedStack) -> None:
        record = stack.container(path[0])
        for key in path[1:-1]:
            record = record[key]
        record[path[-1]] = value

    return change


def _fn(field: str, value) -> Callable[[RecordedStack], None]:
    return lambda s: s.functions["pth-yolo-gridcorners"]["spec"].__setitem__(field, value)


def _env(name: str, var: str, value: str) -> Callable[[RecordedStack], None]:
    return lambda s: s.set_env(name, var, value)


def _leave_network(stack: RecordedStack) -> None:
    del stack.container("nuclio-nuclio-pth-yolo-gridcorners")["NetworkSettings"]["Networks"][
        "cvat_cvat"
    ]


def _drop_gpu(stack: RecordedStack) -> None:
    del stack.functions["pth-yolo-gridcorners"]["spec"]["resources"]["limits"]["nvidia.com/gpu"]


DRIFT = [
    ("image", _set(("cvat_server", "Config", "Image"), "cvat/server:v2.30.0"),
     "cvat_server image cvat/server:v2.29.0 → cvat/server:v2.30.0", True),
    ("image-id", _set(("bridge", "Image"), "sha256:" + "ab" * 32),
     "bridge image id sha256:", False),
    ("restart", _set(("cvat_db", "HostConfig", "RestartPolicy", "Name"), "unless-stopped"),
     "cvat_db restart policy always → unless-stopped", True),
    ("event-timeout", _fn("eventTimeout", "10s"),
     "pth-yolo-gridcorners eventTimeout 30s → 10s", True),
    ("gpu", _drop_gpu, "pth-yolo-gridcorners gpu 1 → (none)", True),
    ("workers", lambda s: s.functions["pth-yolo-gridcorners"]["spec"]["triggers"][
        "myHttpTrigger"].__setitem__("maxWorkers", 4),
     "pth-yolo-gridcorners triggers.myHttpTrigger.maxWorkers 1 → 4", True),
    ("function-gone", lambda s: s.functions.pop("pth-yolo-coralsegv4"),
     "function pth-yolo-coralsegv4 is gone", True),
    ("left-network", _leave_network, "nuclio-nuclio-pth-yolo-gridcorners left cvat_cvat", True),
    ("alias", _set(("cvat_server", "NetworkSettings", "Networks", "cvat_cvat", "Aliases"),
                   ["cvat_server"]),
     "cvat_server aliases on cvat_cvat cvat-server, cvat_server → cvat_server", True),
    ("port", _set(("nuclio", "HostConfig", "PortBindings"),
                  {"8070/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8070"}]}),
     "nuclio publishes 8070/tcp on 0.0.0.0:8070 → 127.0.0.1:8070", True),
    ("extra-host", _set(("cvat_worker_webhooks", "HostConfig", "ExtraHosts"), None),
     "cvat_worker_webhooks extra host bridge.gateway host-gateway → (none)", True),
    ("smokescreen", _env("cvat_server", "SMOKESCREEN_OPTS", "--allow-range=172.16.0.0/12"),
     f"cvat_server SMOKESCREEN_OPTS changed: {SMOKESCREEN_OPTS} → --allow-range=172.16.0.0/12",
     True),
    ("secret", _env("bridge", "CVAT_PWD", "another-password-1"), "bridge CVAT_PWD changed", True),
    ("env-added", _env("bridge", "LOG_LEVEL", "DEBUG"), "bridge LOG_LEVEL added", False),
    ("cvat-version", lambda s: s.about.__setitem__("version", "2.30.0"),
     "CVAT version 2.29.0 → 2.30.0", True),
    ("nuclio-version", lambda s: s.versions["dashboard"].__setitem__("label", "1.14.0"),
     "Nuclio version 1.13.0 → 1.14.0", True),
    ("sdk", lambda s: setattr(s, "bridge_cvat_sdk", "2.30.0"),
     "bridge cvat-sdk 2.29.0 → 2.30.0", True),
    ("container-gone", lambda s: s.containers.remove(s.container("cvat_db")),
     "container cvat_db is gone", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "line", "risky"), [d[1:] for d in DRIFT], ids=[d[0] for d in DRIFT]
)
def test_each_kind_of_drift_is_named_and_judged_by_the_default_risk_list(change, line, risky):
    after = RecordedStack()
    change(after)
    result = _compare(after)
    assert [(d.line[: len(line)], d.risky) for d in result.drift] == [(line, risky)]
    assert result.exit_code == (EXIT_POLICY_FINDINGS if risky else 0)
    table = text_table(result)
    heading = "Configuration drift: findings: 1" if risky else "Configuration drift: findings: none"
    assert heading in table and line in table


def test_a_changed_secret_is_named_and_no_value_is_shown():
    after = RecordedStack()
    after.set_env("bridge", "WEBHOOK_SECRET", "rotated-hook-secret")
    result = _compare(after)
    shown = text_table(result) + html_page(result)
    assert "bridge WEBHOOK_SECRET changed" in shown
    assert [v for v in [*SECRETS.values(), "rotated-hook-secret"] if v in shown] == []


def test_baselines_digested_with_different_keys_do_not_call_every_secret_changed():
    from criobe_verify.secret_digest import SecretDigest

    other = baseline_of(SUMMARY, RecordedStack().fingerprint(SecretDigest(b"x" * 40)), [])
    result = compare(_run(), run_of(other, "other key"))
    assert [d.line for d in result.drift] == [
        "secrets not compared: the baselines were digested with different keys (--baseline-key)"
    ]
    assert result.exit_code == 0


def test_the_profile_marks_what_is_risky_and_what_is_left_out(tmp_path: Path):
    after = RecordedStack()
    after.container("bridge")["Image"] = "sha256:" + "cd" * 32
    after.set_env("bridge", "LOG_LEVEL", "DEBUG")
    profile = tmp_path / "lab.toml"
    profile.write_text(
        (PROJECT_ROOT / "profiles" / "twin.toml").read_text()
        + '\n[baseline]\nrisky = ["container/*/image_id"]\n'
        + 'ignore = ["container/bridge/env/LOG_*"]\n'
    )
    policy = load_profile(profile).baseline
    result = _compare(after, risky=policy.risky, ignore=policy.ignore)
    assert [(d.key, d.risky) for d in result.drift] == [("container/bridge/image_id", True)]
    profile.write_text(profile.read_text().replace('"container/*/image_id"', "1"))
    with pytest.raises(
        ProfileError, match=r"baseline\.risky\[0\]: got 1; expected a drift key pattern"
    ):
        load_profile(profile)


def _summary_with(outcomes: dict[str, str]) -> dict:
    summary = copy.deepcopy(SUMMARY)
    for check, outcome in outcomes.items():
        entry = summary["checks"][check]
        entry["outcome"] = outcome
        entry["diagnoses"] = [{"subject": "cvat_server", "what": f"is {outcome} now\nmore"}]
    return summary


def test_a_functional_flip_exits_1_with_both_outcomes_and_the_new_finding():
    """The check that fails now comes first, the ones its layer's gate skipped after it."""
    result = _compare(
        summary=_summary_with(
            {"functions/nuclio-project-exists": "skipped", "services/cvat-health-working": "failed"}
        )
    )
    assert [(c.check, c.kind, c.before, c.after, c.finding) for c in result.flips] == [
        ("services/cvat-health-working", "functional", "passed", "failed",
         "cvat_server: is failed now"),
        ("functions/nuclio-project-exists", "functional", "passed", "skipped",
         "cvat_server: is skipped now"),
    ]  # fmt: skip
    assert result.exit_code == 1
    table = text_table(result)
    row = next(line for line in table.splitlines() if "services/cvat-health-working" in line)
    assert row.split()[:6] == [
        "services/cvat-health-working", "functional", "passed", "failed", "cvat_server:", "is",
    ]  # fmt: skip
    assert (
        "2 functional check(s) flipped (1 now failing, the rest skipped or not run) (exit 1)"
        in (table)
    )


def test_a_policy_flip_alone_exits_10_and_a_waived_finding_that_fails_again_is_one():
    over_budget = _summary_with({"latency/within-budget[pth-lama]": "failed"})
    result = _compare(summary=over_budget)
    assert [c.check for c in result.policy_flips] == ["latency/within-budget[pth-lama]"]
    assert result.exit_code == EXIT_POLICY_FINDINGS
    expired = _summary_with({"ports/internal-port-not-public[8070]": "failed"})
    result = _compare(summary=expired)
    assert [c.check for c in result.policy_flips] == ["ports/internal-port-not-public[8070]"]
    assert result.exit_code == EXIT_POLICY_FINDINGS


def test_new_and_gone_checks_are_listed_for_information():
    summary = copy.deepcopy(SUMMARY)
    summary["checks"]["regression/projects-survived"] = {"outcome": "passed", "kind": "functional"}
    del summary["checks"]["e2e/two-stage-exactly-once"]
    result = _compare(summary=summary)
    assert [c.check for c in result.new] == ["regression/projects-survived"]
    assert [(c.check, c.before, c.after) for c in result.gone] == [
        ("e2e/two-stage-exactly-once", "passed", "absent")
    ]
    assert result.exit_code == 0


def test_latency_and_stage_times_are_shown_before_and_after_with_their_ratio(tmp_path: Path):
    slower = copy.deepcopy(SUMMARY)
    slower["checks"]["latency/within-budget[pth-lama]"]["latency"]["p95_s"] = 1.515
    slower["checks"]["e2e/two-stage-exactly-once"]["e2e"]["wall_s"] = 6.83
    before = load_run(write_baseline(tmp_path / "before", _baseline()))
    result = compare(
        before, load_run(write_baseline(tmp_path / "after", _baseline(summary=slower)))
    )
    p95 = next(t for t in result.latency["pth-lama"] if t.what == "p95_s")
    assert (p95.before, p95.after, round(p95.ratio, 2)) == (0.7575, 1.515, 2.0)
    table = text_table(result)
    assert f"{0.7575:.3f} → 1.515 (×2.00)" in table and "3.415 → 6.830 (×2.00)" in table
    # The stages in the order they ran, though baseline.json's keys are sorted.
    assert [t.what for t in result.stages["two-stage"]] == [
        "corners detected", "warped task created", "corals detected", "wall",
    ]  # fmt: skip
    assert result.exit_code == 0  # shown, not judged: the latency layer's budgets judge


def test_the_page_charts_latency_and_stages_before_and_after_slower_ones_in_red(tmp_path: Path):
    """A function three times slower (p50) is drawn red, by the regression layer's rule; one
    whose p95 alone doubled is not (a restart's jitter moves p95). The page embeds the chart."""
    import base64
    import io

    from PIL import Image

    from criobe_verify.compare_report import timing_rows

    after = copy.deepcopy(SUMMARY)
    lama = after["checks"]["latency/within-budget[pth-lama]"]["latency"]
    lama["p95_s"] *= 2
    slow = after["checks"]["latency/within-budget[pth-yolo-coralsegv4]"]["latency"]
    slow["p50_s"], slow["p95_s"], slow["max_s"] = (slow[k] * 3 for k in ("p50_s", "p95_s", "max_s"))
    result = compare(_run(), _run(summary=after))
    functions, stages, flagged = timing_rows(result)
    labels = [label.split("\n")[0] for label, *_ in functions]
    assert "pth-lama" in labels and "pth-yolo-coralsegv4" in labels
    assert [label.split("\n")[0] for label in flagged] == ["pth-yolo-coralsegv4"]
    assert [label for label, *_ in stages][-1] == "two-stage: wall"
    page = html_page(result)
    png = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    width, height = Image.open(io.BytesIO(base64.b64decode(png))).size
    assert width > 400 and height > 0.4 * width  # two panels of rows, not an empty figure


def test_a_summary_json_compares_checks_and_says_the_configuration_was_not(tmp_path: Path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(_summary_with({"services/cvat-health-working": "failed"})))
    result = compare(_run(), load_run(path), RISKY_DRIFT)
    assert result.drift is None and result.exit_code == 1
    assert "configuration not compared: AFTER has no fingerprint (a summary.json)" in (
        text_table(result)
    )


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", "compare", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_cli_prints_the_table_writes_the_page_and_exits_with_the_verdict(tmp_path: Path):
    after = RecordedStack()
    _fn("eventTimeout", "10s")(after)
    write_baseline(tmp_path / "before", _baseline())
    write_baseline(tmp_path / "after", _baseline(after))
    proc = _cli(tmp_path, "before", "after")
    assert proc.returncode == EXIT_POLICY_FINDINGS, proc.stderr
    assert "pth-yolo-gridcorners eventTimeout 30s → 10s" in proc.stdout
    page = (tmp_path / "reports" / "compare.html").read_text()
    assert "pth-yolo-gridcorners eventTimeout 30s → 10s" in page
    same = _cli(tmp_path, "before", "before", "--html", "same.html")
    assert same.returncode == 0 and (tmp_path / "same.html").is_file()


# (id, argv in a folder holding the files below, what stderr's one line says). A file that
# is no baseline also gets what was expected and the fix; a usage error, the usage.
BAD = [
    ("missing", ["nowhere", "b"], "criobe-verify: nowhere: no such file or folder; expected a "
     "baseline folder"),
    ("folder", [".", "b"], "criobe-verify: .: a folder without baseline.json; expected"),
    ("not-json", ["x.json", "b"], "criobe-verify: x.json: not JSON"),
    ("no-version", ["list.json", "b"], "neither a baseline nor a summary.json"),
    ("baseline-v99", ["v99", "b"], "criobe-verify: v99: baseline format_version 99 is not known"),
    ("summary-v1", ["old.json", "b"], "summary.json format_version 1 is not known"),
    ("after-not-baseline", ["b", "x.json"], "criobe-verify: x.json: not JSON"),
    ("one-path", ["b"], "the following arguments are required: after; expected: "),
    ("bad-profile", ["b", "b", "--profile", "nope.toml"], "nope.toml: no such profile file"),
]  # fmt: skip
NOT_FILES = ("one-path", "bad-profile")


@pytest.mark.parametrize(("case", "argv", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_one_line_and_exit_4(tmp_path: Path, case, argv, says):
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "old.json").write_text('{"format_version": 1, "tests": {}}')
    (tmp_path / "v99").mkdir()
    (tmp_path / "v99" / FILE).write_text('{"format_version": 99, "kind": "criobe-verify baseline"}')
    write_baseline(tmp_path / "b", _baseline())
    proc = _cli(tmp_path, *argv)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert proc.stderr.startswith("criobe-verify") and "Traceback" not in proc.stderr
    if case not in NOT_FILES:
        assert "; expected " in proc.stderr and "; fix: " in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "reports").exists()
