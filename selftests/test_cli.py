"""Bad input gets one clear line and changes nothing."""

from __future__ import annotations

import subprocess
import sys

from criobe_verify import PROJECT_ROOT
from criobe_verify.compose import ComposeError, ComposeStack


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_stack_up_needs_a_checkout(tmp_path):
    proc = _run("--reports", str(tmp_path), "--", "--stack", "up")
    assert proc.returncode == 4
    assert "--stack up needs --stack-dir PATH" in proc.stderr


def test_xdist_with_a_stack_bring_up_is_refused(tmp_path):
    proc = _run("--reports", str(tmp_path), "--", "--stack", "twin", "-n", "2")
    assert proc.returncode == 4
    assert "-n with --stack twin|up is not supported yet" in proc.stderr


def test_reports_option_needs_a_directory():
    proc = _run("--reports")
    assert proc.returncode == 4 and "--reports needs a directory" in proc.stderr


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
