"""The pytest11 plugin: inert in a session that does not ask for the suite, awake in one that
does, and the CLI independent of the caller's folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from criobe_verify.paths import CHECKS_DIR, PROFILES_DIR, SAMPLE_DIR
from criobe_verify.plugin import _names_the_checks

LAB_TEST = """
import threading

import pytest


@pytest.mark.host  # a lab's own marker of that name: not the suite's host layer
def test_lab_own(pytestconfig):
    assert not hasattr(pytestconfig, "criobe_profile"), "the suite read a profile"
    assert threading.active_count() == 1, threading.enumerate()
"""


def test_plugin_is_inert_in_a_lab_session(pytester: pytest.Pytester):
    """Installed beside a lab's tests, the suite reads no profile, starts no thread, reorders
    or deselects nothing and writes no report."""
    pytester.makepyfile(test_lab=LAB_TEST)
    pytester.makeini("[pytest]\nmarkers =\n    host: the lab's own\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)
    assert "criobe-verify: " not in result.stdout.str()  # no verdict of its own
    made = {p.name for p in pytester.path.iterdir()} - {"test_lab.py", "tox.ini"}
    assert not made & {"reports", "report.html", "summary.json", "junit.xml"}, made


def test_a_lab_test_beside_the_suite_is_left_alone(pytester: pytest.Pytester):
    """`pytest --pyargs criobe_verify.tests` beside a lab's own tests: the lab's test, even
    marked `host`, is neither deselected by the suite's phase nor gated by its layers."""
    pytester.makepyfile(
        test_lab="import pytest\n\n@pytest.mark.host\ndef test_lab_own():\n    pass\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pyargs", "criobe_verify.tests", "--phase=preinstall",
        "-k", "lab_own or docker_engine_answers", "test_lab.py",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) >= 2, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_lab.py*"])


@pytest.mark.parametrize(
    ("arg", "pyargs", "selects"),
    [
        (str(CHECKS_DIR), False, True),
        (f"{CHECKS_DIR / 'test_gateway.py'}::test_smokescreen_is_listening", False, True),
        ("criobe_verify.tests", True, True),
        ("criobe_verify.tests.test_host", True, True),
        ("criobe_verify.testsuite", True, False),
        ("/srv/lab/tests", False, False),
    ],
)
def test_which_arguments_ask_for_the_suite(arg, pyargs, selects):
    assert _names_the_checks(arg, Path("/srv/lab"), pyargs) is selects


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_cli_reads_relative_paths_from_the_callers_folder(tmp_path: Path):
    """`cd ~/lab && criobe-verify --profile lab.toml --sample-image …`: every relative path is
    the caller's (the CLI used to change to the project's folder first)."""
    text = (PROFILES_DIR / "criobe.toml").read_text()
    (tmp_path / "lab.toml").write_text(text.replace('name = "criobe"', 'name = "lab-relative"', 1))
    photo = next((SAMPLE_DIR / "1-raw_jpg").iterdir())
    shutil.copy(photo, tmp_path / photo.name)
    shutil.copy(SAMPLE_DIR / "ground_truth.json", tmp_path / "truth.json")
    proc = _cli(
        tmp_path, "--reports", "out", "--profile", "lab.toml", "--phase", "preinstall",
        "--sample-image", photo.name, "--ground-truth", "truth.json", "--", "-k", "compose",
    )  # fmt: skip
    assert proc.returncode in (0, 1, 10), proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["profile"] == "lab-relative"


def test_cli_names_a_missing_relative_profile_with_the_callers_folder(tmp_path: Path):
    proc = _cli(tmp_path, "--reports", "out", "--profile", "nope.toml")
    assert proc.returncode == 4
    assert f"{tmp_path / 'nope.toml'}" in proc.stderr or "nope.toml: no such profile file" in (
        proc.stderr
    ), proc.stderr


def test_every_package_of_the_suite_is_in_the_wheel():
    """pyproject.toml lists the packages explicitly (fixtures/ and tests/ are mapped into
    criobe_verify): a new subpackage left out would be missing from the installed tool."""
    import tomllib

    from selftests import PROJECT_ROOT

    listed = set(
        tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        "criobe_verify." + ".".join(p.parent.relative_to(PROJECT_ROOT / "criobe_verify").parts)
        for p in (PROJECT_ROOT / "criobe_verify").rglob("__init__.py")
    }
    found = {name.rstrip(".") for name in found}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
