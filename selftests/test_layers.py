"""Layer ordering and gating, phase selection and the strict-run rules, on a toy suite."""

from __future__ import annotations

import json

import pytest

from criobe_verify import PROJECT_ROOT
from criobe_verify.layers import LayerGate

TOY = """
import pytest

@pytest.mark.network
def test_dns():
    pass

@pytest.mark.host
def test_engine():
    assert False, "engine down"

@pytest.mark.host
@pytest.mark.phase("preinstall", "installed")
def test_disk():
    pass

@pytest.mark.containers
def test_running():
    pass
"""


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((PROJECT_ROOT / "conftest.py").read_text())
    pytester.makepyfile(test_toy=TOY)
    return pytester


def test_gate_names_the_first_failure_of_the_lowest_failing_layer():
    gate = LayerGate()
    assert gate.blocking("e2e") is None
    gate.record_failure("ports", "t::a")
    gate.record_failure("ports", "t::b")
    gate.record_failure("host", "t::h")
    assert gate.blocking("host") is None
    assert gate.blocking("ports") == "host layer failed: t::h"


def test_failing_lower_layer_skips_higher_layers_naming_the_check(toy):
    result = toy.runpytest_subprocess("-v", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*host layer failed: test_toy.py::test_engine*"])
    # Lowest layer first, whatever the file order.
    ran = [
        line.split("::")[1].split()[0]
        for line in result.outlines
        if line.startswith("test_toy.py::")
    ]
    assert ran == ["test_engine", "test_disk", "test_running", "test_dns"], ran


def test_preinstall_phase_keeps_only_preinstall_checks(toy):
    result = toy.runpytest_subprocess("-p", "no:cacheprovider", "--phase", "preinstall")
    result.assert_outcomes(passed=1)


def test_layer_option_selects_layers_and_rejects_unknown(toy):
    toy.runpytest_subprocess("-p", "no:cacheprovider", "--layer", "containers").assert_outcomes(
        passed=1
    )
    result = toy.runpytest_subprocess("-p", "no:cacheprovider", "--layer", "hosts")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--layer hosts: unknown layer*"])


def test_strict_run_fails_on_unexpected_skip_and_thin_layer(toy, tmp_path):
    summary = tmp_path / "s.json"
    toy.makepyfile(
        test_toy=TOY.replace('assert False, "engine down"', "pass").replace(
            "def test_dns():\n    pass", "def test_dns():\n    pytest.skip('no resolver')"
        )
    )
    result = toy.runpytest_subprocess(
        "-p", "no:cacheprovider", "--strict-skips", f"--summary-json={summary}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unexpected skip: test_toy.py::test_dns: no resolver*"])
    result.stdout.fnmatch_lines(["*layer containers: 1 tests collected, minimum 6*"])
    data = json.loads(summary.read_text())
    assert data["tests"]["test_toy.py::test_dns"]["outcome"] == "skipped"
    assert data["layers"]["host"] == {"passed": 2}
