"""Guard against checks that cannot fail: every suite test id is named by a fault."""

from __future__ import annotations

import subprocess
import sys

import pytest

from selftests import PROJECT_ROOT
from selftests.fault_table import FAULTS, tokens
from selftests.twin import TWIN_PROFILE


def _collected(phase: str) -> set[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--profile={TWIN_PROFILE}",
            f"--phase={phase}",
            "tests",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


@pytest.fixture(scope="module")
def suite_ids() -> set[str]:
    return _collected("installed") | _collected("preinstall")


def check_of(test_id: str) -> str:
    """A check is a test function; its parameters are the resources it is applied to."""
    return test_id.split("[", 1)[0]


def test_every_suite_check_is_named_by_a_fault(suite_ids):
    """By a fault CI runs: the slow ones (SLOW_FAULTS=1) may only repeat what fast ones prove."""
    named = {
        check_of(test_id) for fault in FAULTS if "slow" not in fault.tags for test_id in fault.fails
    }
    checks = {check_of(test_id) for test_id in suite_ids}
    assert checks, "collected no suite tests"
    assert not checks - named, f"checks no fault makes fail: {sorted(checks - named)}"


def test_every_fault_names_existing_tests_and_a_message(suite_ids):
    for fault in FAULTS:
        assert fault.fails or fault.skips, fault.id
        for test_id, fragment in fault.fails.items():
            assert test_id in suite_ids, f"{fault.id}: {test_id} is not a suite test"
            assert all(tok.strip() for tok in tokens(fragment)), (
                f"{fault.id}: empty token for {test_id}"
            )


def test_fault_ids_are_unique():
    ids = [fault.id for fault in FAULTS]
    assert len(ids) == len(set(ids))
