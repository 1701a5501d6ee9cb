"""Bad input gets one clear line and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from criobe_verify.compose import ComposeError, ComposeStack
from selftests import PROJECT_ROOT
from selftests.fake_checkout import fake_checkout

NO_ENGINE = "unix:///run/criobe-verify-no-such-docker.sock"


def _run(*args: str, engine: str | None = NO_ENGINE) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; DOCKER_HOST points nowhere unless a test needs the engine."""
    env = {**os.environ, "DOCKER_HOST": engine} if engine else dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_stack_up_needs_a_checkout(tmp_path):
    proc = _run("--reports", str(tmp_path), "--", "--stack", "up")
    assert proc.returncode == 4
    assert "criobe-verify: --stack up: needs --stack-dir PATH" in proc.stderr


def test_a_failed_bring_up_under_xdist_is_tried_once_and_runs_nothing(tmp_path):
    """-n 2 --stack up: one worker tries the bring-up (the others wait on its lock and read
    its result); the run exits 3 and every check is "not run", none "passed". The engine is
    nowhere, so the bring-up fails on its first step, naming the endpoint."""
    checkout = fake_checkout(tmp_path / "checkout")
    reports = tmp_path / "reports"
    proc = _run(
        "--reports", str(reports), "--", "--stack", "up", f"--stack-dir={checkout}", "-n", "2",
        "-m", "containers",
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["stopped"].startswith("bring-up failed: Docker engine: not reachable at ")
    assert NO_ENGINE in summary["stopped"]
    assert set(summary["totals"]) == {"not run"}, summary["totals"]
    assert (proc.stdout + proc.stderr).count("bring-up failed: Docker engine") >= 1


def test_reports_option_needs_a_directory():
    proc = _run("--reports")
    assert proc.returncode == 4 and "--reports: needs a directory" in proc.stderr


def test_a_directory_that_is_not_a_criobe_checkout_is_named(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    try:
        ComposeStack.for_checkout(tmp_path)
    except ComposeError as exc:
        message = str(exc)
    else:
        raise AssertionError("accepted a directory without the bridge and serverless overlays")
    assert "bridge/docker-compose.bridge.yml" in message
    assert "components/serverless/docker-compose.serverless.yml" in message
    assert "--recurse-submodules" in message


def test_readme_guide_table_is_the_checks_own():
    """The README's guide-step table is generated from the checks' markers: keep it so."""
    from criobe_verify.guide import _collect, markdown_table

    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme.split("<!-- guide-table -->\n", 1)[1].split("\n<!-- /guide-table -->", 1)[0]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        collection = _collect(str(PROJECT_ROOT / "profiles" / "criobe.toml"))
    assert table == markdown_table(collection), (
        "README guide table is stale: run python -m criobe_verify.guide"
    )


@pytest.mark.twin
def test_stack_up_refuses_to_take_over_a_running_project(tmp_path):
    """With the twin running, `--stack up` on a checkout of the same project must not start
    over it (nor stop it afterwards) unless asked to reuse it; nothing is touched."""
    import docker

    client = docker.from_env()
    before = {c.id: c.status for c in client.containers.list(all=True)}
    reports = tmp_path / "reports"
    proc = _run(
        "--reports", str(reports), "--", "--stack", "up", f"--stack-dir={PROJECT_ROOT / 'twin'}",
        "--layer", "host", engine=None,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout[-2000:]
    stopped = json.loads((reports / "summary.json").read_text())["stopped"]
    assert "is already running" in stopped and "--reuse-running" in stopped
    assert {c.id: c.status for c in client.containers.list(all=True)} == before


@pytest.mark.twin
def test_cleanup_removes_what_runs_left_and_nothing_else():
    import httpx

    from criobe_verify.redact import parse_env_lines

    env = parse_env_lines((PROJECT_ROOT / "twin/bridge/.env").read_text().splitlines())
    with httpx.Client(base_url="http://localhost:8080", headers={"Host": "localhost"}) as cvat:
        key = cvat.post(
            "/api/auth/login", json={"username": env["CVAT_USER"], "password": env["CVAT_PWD"]}
        ).json()["key"]
        cvat.headers["Authorization"] = f"Token {key}"
        cvat.cookies.clear()
        left = cvat.post("/api/projects", json={"name": "criobe-verify-20260101000000-abcdef-x"})
        kept = cvat.post("/api/projects", json={"name": "criobe-verify-notes-of-the-lab"})
        assert left.status_code == kept.status_code == 201
        try:
            dry = _run("cleanup", "--profile", "profiles/twin.toml", "--dry-run", engine=None)
            assert dry.returncode == 0 and "would delete project" in dry.stdout
            assert cvat.get(f"/api/projects/{left.json()['id']}").status_code == 200
            proc = _run("cleanup", "--profile", "profiles/twin.toml", engine=None)
            assert proc.returncode == 0, proc.stderr
            assert cvat.get(f"/api/projects/{left.json()['id']}").status_code == 404
            assert cvat.get(f"/api/projects/{kept.json()['id']}").status_code == 200
        finally:
            cvat.delete(f"/api/projects/{kept.json()['id']}")
            cvat.delete(f"/api/projects/{left.json()['id']}")


def test_the_cli_prints_the_profile_schema_for_an_editor():
    from criobe_verify.profile_schema import SCHEMA_FILE

    proc = _run("profile-schema")
    assert proc.returncode == 0 and json.loads(proc.stdout) == json.loads(SCHEMA_FILE.read_text())


def test_reports_equals_dir_is_accepted_and_made_once_the_input_is_valid(tmp_path):
    reports = tmp_path / "out" / "reports"
    proc = _run(f"--reports={reports}", "--phase", "preinstall")  # the engine is nowhere: 1
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert {p.name for p in reports.iterdir()} >= {"report.html", "junit.xml", "summary.json"}
