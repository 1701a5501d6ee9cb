"""The wheel as a lab installs it: built from this checkout and installed in a clean virtualenv
beside PyPI's `fixtures` (scripts/wheel-venv.sh makes it), run from folders outside the checkout.

    scripts/wheel-venv.sh && pytest selftests/test_wheel.py -m wheel
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from selftests import PROJECT_ROOT

pytestmark = pytest.mark.wheel

VENV = Path(os.environ.get("CRIOBE_WHEEL_VENV", PROJECT_ROOT / ".venv-wheel"))
SHIPPED = ("twin", "profiles", "fixtures", "tests", "criobe_verify")


@pytest.fixture(scope="module")
def venv() -> Path:
    if not (VENV / "bin" / "criobe-verify").is_file():
        pytest.fail(f"no wheel installed in {VENV}: run scripts/wheel-venv.sh first", pytrace=False)
    return VENV


def _run(venv: Path, cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(venv / "bin" / cmd[0]), *cmd[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_wheel_carries_the_suite_and_no_top_level_fixtures_or_tests():
    (wheel,) = (PROJECT_ROOT / "dist").glob("criobe_verify-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"criobe_verify", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    tracked = subprocess.run(
        ["git", "ls-files", *SHIPPED], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    missing = [
        f
        for f in tracked
        if (f if f.startswith("criobe_verify/") else f"criobe_verify/{f}") not in names
    ]
    assert not missing, f"files of the checkout missing from the wheel: {missing[:10]}"
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"[pytest11]" in entry_points and b"criobe_verify.plugin" in entry_points


def test_pypis_fixtures_and_the_suites_live_side_by_side(venv: Path, tmp_path: Path):
    code = (
        "import fixtures, criobe_verify.fixtures as ours; "
        "print(fixtures.Fixture.__module__, ours.__name__)"
    )
    proc = _run(venv, tmp_path, "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["fixtures.fixture", "criobe_verify.fixtures"], proc.stdout


def test_installed_cli_runs_from_another_folder_with_relative_paths(venv: Path, tmp_path: Path):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.toml").write_text(
        (PROJECT_ROOT / "profiles" / "criobe.toml")
        .read_text()
        .replace('name = "criobe"', 'name = "lab-from-the-wheel"', 1)
    )
    proc = _run(
        venv, lab, "criobe-verify", "--profile", "lab.toml", "--phase", "preinstall",
        "--reports", "out", "--", "-k", "compose or engine",
    )  # fmt: skip
    assert proc.returncode in (0, 10), proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((lab / "out" / "summary.json").read_text())
    assert summary["profile"] == "lab-from-the-wheel"
    assert "site-packages/criobe_verify" in proc.stdout, "not the installed copy's checks"


def test_a_lab_runs_the_layers_from_its_own_pytest_project(venv: Path, tmp_path: Path):
    (tmp_path / "test_lab.py").write_text("def test_lab_own():\n    pass\n")
    proc = _run(
        venv, tmp_path, "pytest", "-p", "no:cacheprovider", "--pyargs", "criobe_verify.tests",
        "--phase=preinstall", "-k", "lab_own or compose", "test_lab.py",
    )  # fmt: skip
    assert proc.returncode in (0, 10), proc.stdout[-3000:]
    assert "test_lab.py ." in proc.stdout and "test_host.py ." in proc.stdout, proc.stdout


def test_update_golden_refuses_to_write_into_the_installed_package(venv: Path, tmp_path: Path):
    proc = _run(
        venv, tmp_path, "criobe-verify", "--stack", "twin", "--update-golden",
        "--layer", "inference", "--reports", "out",
    )  # fmt: skip
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "installed package" in proc.stderr and "golden_dir" in proc.stderr, proc.stderr
