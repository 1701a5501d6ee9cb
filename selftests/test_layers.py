"""Layer ordering and gating, the two kinds of checks, waivers, honest outcomes (not run,
-x, -n) and the strict-run rules, on a toy suite run by pytester with the suite's conftest."""

from __future__ import annotations

import json

import pytest

from criobe_verify.layers import blocking_reason
from criobe_verify.verdict import EXIT_POLICY_FINDINGS
from selftests import PROJECT_ROOT

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

POLICY_TOY = """
import pytest

@pytest.mark.host
def test_engine():
    pass

@pytest.mark.containers
@pytest.mark.policy
def test_image_tag():
    assert False, "cvat_ui runs v2.28.0"

@pytest.mark.ports
def test_ui():
    pass

@pytest.mark.network
@pytest.mark.parametrize("n", range(4))
def test_dns(n):
    pass
"""

TWIN_PROFILE = (PROJECT_ROOT / "profiles" / "twin.toml").read_text()
# A project of layer-marked checks of its own asks for the suite's hooks in its ini file.
SUITE_INI = "[pytest]\ncriobe_verify = true\n"


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=TOY)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", f"--summary-json={summary}", *args
    )
    return result, json.loads(summary.read_text()) if summary.exists() else {}


def _profile_with(pytester: pytest.Pytester, extra: str) -> str:
    path = pytester.path / "profile.toml"
    path.write_text(TWIN_PROFILE + "\n" + extra)
    return f"--profile={path}"


def test_gate_names_the_first_failure_of_the_lowest_failing_layer():
    failures = [("ports", "t::a"), ("ports", "t::b"), ("host", "t::h")]
    assert blocking_reason("e2e", []) is None
    assert blocking_reason("host", failures) is None
    assert blocking_reason("ports", failures) == "host layer failed: t::h"


def test_failing_lower_layer_skips_higher_layers_naming_the_check(toy):
    result, summary = _run(toy, "-v")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*host layer failed: test_toy.py::test_engine*"])
    # Lowest layer first, whatever the file order.
    ran = [
        line.split("::")[1].split()[0]
        for line in result.outlines
        if line.startswith("test_toy.py::")
    ]
    assert ran == ["test_engine", "test_disk", "test_running", "test_dns"], ran
    assert summary["verdict"]["status"] == "broken"
    assert "test_toy.py::test_engine" in summary["verdict"]["headline"]


def test_preinstall_phase_keeps_only_preinstall_checks(toy):
    toy.runpytest_subprocess("-p", "no:cacheprovider", "--phase", "preinstall").assert_outcomes(
        passed=1
    )


def test_layer_option_selects_layers_and_rejects_unknown(toy):
    toy.runpytest_subprocess("-p", "no:cacheprovider", "--layer", "containers").assert_outcomes(
        passed=1
    )
    result = toy.runpytest_subprocess("-p", "no:cacheprovider", "--layer", "hosts")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--layer hosts: unknown layer*"])


def test_policy_finding_skips_nothing_and_exits_with_its_own_code(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=POLICY_TOY)
    result, summary = _run(pytester)
    result.assert_outcomes(passed=6, failed=1)
    assert result.ret == EXIT_POLICY_FINDINGS
    assert summary["verdict"]["status"] == "works with policy findings"
    assert [f["check"] for f in summary["policy_findings"]] == ["test_toy.py::test_image_tag"]


def test_waived_finding_is_shown_as_waived_and_an_expired_waiver_fails_again(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=POLICY_TOY)
    waiver = '[[waivers]]\ncheck = "test_toy.py::test_image_tag"\nreason = "lab pins v2.28"\n'
    result, summary = _run(pytester, _profile_with(pytester, waiver + "expires = 2999-01-01\n"))
    assert result.ret == 0, result.stdout.str()
    assert summary["checks"]["test_toy.py::test_image_tag"]["outcome"] == "waived"
    assert summary["waived"] == [
        {
            "check": "test_toy.py::test_image_tag",
            "waiver": "waived until 2999-01-01: lab pins v2.28",
        }
    ]
    result.stdout.fnmatch_lines(["*waived: test_toy.py::test_image_tag*lab pins v2.28*"])

    result, summary = _run(pytester, _profile_with(pytester, waiver + "expires = 2020-01-01\n"))
    assert result.ret == EXIT_POLICY_FINDINGS
    entry = summary["checks"]["test_toy.py::test_image_tag"]
    assert entry["outcome"] == "failed" and "2020-01-01" in entry["waiver_expired"]


def test_a_functional_check_cannot_be_waived(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=POLICY_TOY)
    waiver = '[[waivers]]\ncheck = "test_toy.py::test_ui"\nreason = "no"\n'
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", _profile_with(pytester, waiver)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_toy.py::test_ui*only policy checks can be waived*"])


def test_checks_that_did_not_run_are_not_run_never_passed(toy):
    _result, summary = _run(toy, "-x")
    outcomes = {k: v["outcome"] for k, v in summary["checks"].items()}
    assert outcomes == {
        "test_toy.py::test_engine": "failed",
        "test_toy.py::test_disk": "not run",
        "test_toy.py::test_running": "not run",
        "test_toy.py::test_dns": "not run",
    }
    assert summary["totals"] == {"failed": 1, "not run": 3}


def test_parallel_run_gives_the_serial_outcomes_and_gate(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(
        test_toy=POLICY_TOY.replace(
            "def test_engine():\n    pass",
            "def test_engine():\n    import time; time.sleep(1); assert False",
        )
    )
    _, serial = _run(pytester)
    _, parallel = _run(pytester, "-n", "2")
    assert {k: v["outcome"] for k, v in parallel["checks"].items()} == {
        k: v["outcome"] for k, v in serial["checks"].items()
    }
    assert serial["checks"]["test_toy.py::test_dns[3]"]["outcome"] == "skipped"
    assert parallel["verdict"] == serial["verdict"]


def test_strict_run_fails_on_unexpected_skip_and_thin_layer(toy):
    toy.makepyfile(
        test_toy=TOY.replace('assert False, "engine down"', "pass").replace(
            "def test_dns():\n    pass", "def test_dns():\n    pytest.skip('no resolver')"
        )
    )
    result, data = _run(toy, "--strict-skips")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unexpected skip: test_toy.py::test_dns: no resolver*"])
    result.stdout.fnmatch_lines(["*layer containers: 1 tests collected, minimum 50*"])
    assert data["checks"]["test_toy.py::test_dns"]["outcome"] == "skipped"
    assert data["layers"]["host"] == {"passed": 2}


def test_strict_run_accepts_what_the_profile_does_not_ask_and_what_follows_a_failure(toy):
    """An optional function not deployed (NotAsked, carried along depends_on) and a skip
    behind a failed check are no strict problems: the profile asked for nothing there, and the
    failure already breaks the verdict. An open skip still is."""
    toy.makepyfile(
        test_toy=TOY.replace('assert False, "engine down"', "pass")
        + """
from criobe_verify.coverage import not_asked
from criobe_verify.layers import depends_on_a_failure

@pytest.mark.containers
def test_sam_exists():
    not_asked("sam: optional in profile twin and not deployed")

@pytest.mark.containers
def test_sam_running(depends_on):
    depends_on("test_toy.py::test_sam_exists")

@pytest.mark.containers
def test_ui_exists():
    assert False, "cvat_ui: no such container"

@pytest.mark.containers
def test_ui_running():
    pytest.skip(depends_on_a_failure("test_toy.py::test_ui_exists"))

@pytest.mark.containers
def test_webhook():
    pytest.skip("no receiver")
"""
    )
    _result, data = _run(toy, "--strict-skips", "-m", "host or containers")
    assert data["checks"]["test_toy.py::test_sam_running"]["not_asked"] is True
    assert data["strict_problems"] == ["unexpected skip: test_toy.py::test_webhook: no receiver"]


def test_strict_minimum_counts_the_selected_layers_only(toy):
    """-m picks checks by hand: no minimum; --layer picks whole layers: theirs applies."""
    toy.makepyfile(test_toy=TOY.replace('assert False, "engine down"', "pass"))
    result, data = _run(toy, "--strict-skips", "-m", "host or network")
    assert result.ret == pytest.ExitCode.OK, data["strict_problems"]
    result, data = _run(toy, "--strict-skips", "--layer", "host")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data["strict_problems"] == ["layer host: 2 tests collected, minimum 5"]


def test_unknown_guide_step_is_refused(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(
        test_toy='import pytest\n\n@pytest.mark.host\n@pytest.mark.guide("step-42")\n'
        "def test_x():\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown guide step 'step-42'*"])


def test_each_suite_module_holds_only_its_own_layers_checks():
    """fixtures.layers skips importing tests/test_<layer>.py when <layer> is not selected:
    that is only right while the module's checks all belong to <layer>."""
    import ast

    from criobe_verify.layers import LAYER_NAMES

    for path in sorted((PROJECT_ROOT / "tests").glob("test_*.py")):
        layer = path.stem.removeprefix("test_")
        assert layer in LAYER_NAMES, f"{path.name}: not named after a layer"
        marks = {
            node.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "mark"
            and node.attr in LAYER_NAMES
        }
        assert marks == {layer}, f"{path.name}: layer marks {sorted(marks)}, expected {layer!r}"


def test_every_check_has_a_stable_id_of_its_layer():
    """Every test function of the suite carries `@check("<layer>/<what>")`, its layer its
    module's, no id twice: waivers, baselines and the fault table name checks by it."""
    import ast

    seen: dict[str, str] = {}
    for path in sorted((PROJECT_ROOT / "tests").glob("test_*.py")):
        layer = path.stem.removeprefix("test_")
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            ids = [
                d.args[0].value
                for d in node.decorator_list
                if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "check"
            ]
            assert len(ids) == 1, f"{path.name}::{node.name}: expected one @check(...)"
            assert ids[0].startswith(f"{layer}/"), f"{node.name}: {ids[0]!r} is not of {layer}"
            assert ids[0] not in seen, f"{ids[0]!r}: {node.name} and {seen.get(ids[0])}"
            seen[ids[0]] = node.name
    assert len(seen) >= 50, f"found only {len(seen)} checks"


def test_a_waiver_by_node_id_still_applies_and_names_the_stable_id(pytester: pytest.Pytester):
    """A profile written before stable ids waives by node id: still honoured, and the run
    says which id to write instead."""
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(
        test_toy=POLICY_TOY.replace(
            "@pytest.mark.policy\ndef test_image_tag",
            "@pytest.mark.policy\n@check('containers/image-matches-profile')\ndef test_image_tag",
        ).replace("import pytest", "import pytest\nfrom criobe_verify.check import check")
    )
    profile = _profile_with(
        pytester,
        '[[waivers]]\ncheck = "tests/test_toy.py::test_image_tag"\nreason = "old style"\n',
    )
    result, summary = _run(pytester, profile)
    entry = summary["checks"]["containers/image-matches-profile"]
    assert entry["outcome"] == "waived", entry
    assert "write check = 'containers/image-matches-profile' instead" in result.stdout.str() + (
        result.stderr.str()
    )


DEPENDS_TOY = """
import pytest
from criobe_verify.check import check

@check("gateway/toy-listening")
@pytest.mark.gateway
@pytest.mark.parametrize("c", ["a", "b"])
def test_listening(c):
    assert c == "a", "not listening in b"

@check("gateway/toy-resolves")
@pytest.mark.gateway
@pytest.mark.parametrize("c", ["a", "b"])
def test_resolves(c):
    pass

@check("gateway/toy-answers")
@pytest.mark.gateway
@pytest.mark.parametrize("c", ["a", "b"])
def test_answers(c, depends_on):
    depends_on("gateway/toy-listening", "gateway/toy-resolves")
"""


def test_depends_on_takes_stable_ids_of_the_same_parameter(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=DEPENDS_TOY)
    result, summary = _run(pytester)
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    assert summary["checks"]["gateway/toy-answers[a]"]["outcome"] == "passed"
    skipped = summary["checks"]["gateway/toy-answers[b]"]
    assert skipped["message"] == "depends on gateway/toy-listening[b], which failed"


def test_checks_and_fixtures_state_findings_with_diagnoses_not_bare_asserts():
    """criobe-verify runs pytest with --assert=plain (no rewriting of ~60 modules at each
    start): a bare assert in a check or fixture would fail with no message at all."""
    import ast

    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"
        for folder in ("tests", "fixtures", "criobe_verify/resources")
        for path in sorted((PROJECT_ROOT / folder).glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert not offenders, f"bare asserts: {offenders}; use expect()/fail() with a Diagnosis"


SKIPPING_TOY = """
import pytest

@pytest.mark.host
def test_engine():
    pass

@pytest.mark.e2e
def test_pipeline():
    pytest.skip("no --sample-image given: real models may find nothing on the synthetic quadrat")
"""


def test_a_skipped_layer_is_named_and_require_makes_it_fail(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=SKIPPING_TOY)
    result, summary = _run(pytester, "--layer", "host,e2e")
    assert result.ret == 0, result.stdout.str()
    assert summary["verdict"]["status"] == "works"
    assert summary["verdict"]["headline"] == (
        "every check that ran passed (1 passed, 1 skipped, 0 not run) — not verified: the "
        "containers layer, the ports layer, the network layer, the gateway layer, the services "
        "layer, the functions layer, the reachability layer, the inference layer, the latency "
        "layer, the webhooks layer (not selected: --layer); the e2e layer (no --sample-image "
        "given)"
    )
    assert summary["counts"] == {"passed": 1, "waived": 0, "skipped": 1, "not_run": 0}
    assert summary["not_verified"][-1]["what"] == "the e2e layer"
    result.stdout.fnmatch_lines(["not verified: the e2e layer: no --sample-image given: *"])

    result, summary = _run(pytester, "--layer", "host,e2e", "--require", "e2e")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert summary["verdict"]["status"] == "incomplete"
    assert summary["verdict"]["headline"] == (
        "required by --require, not verified: the e2e layer (no --sample-image given)"
    )
    assert summary["required"] == ["e2e"]
    # Asking for a layer the run did not select cannot pass either.
    result, summary = _run(pytester, "--layer", "host", "--require", "e2e")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert summary["verdict"]["headline"].endswith("the e2e layer (not selected: --layer)")


def test_html_report_opens_with_the_verdict_and_says_waived(pytester):
    pytester.makeini(SUITE_INI)
    pytester.makepyfile(test_toy=POLICY_TOY)
    waiver = '[[waivers]]\ncheck = "test_toy.py::test_image_tag"\nreason = "lab pins v2.28"\n'
    report = pytester.path / "report.html"
    result, _ = _run(
        pytester, _profile_with(pytester, waiver), f"--html={report}", "--self-contained-html"
    )
    assert result.ret == 0, result.stdout.str()
    page = report.read_text()
    summary_at = page.index('<div class="summary">')
    # The verdict opens the summary, and the summary is drawn above the environment table.
    assert page.index('id="criobe-verdict"', summary_at) < page.index('class="run-count"')
    assert ".summary{order:1}#environment-header,#environment{order:2}" in page
    # The waived row's result reads "Waived"; its filter checkbox too.
    assert 'tbody.xfailed .col-result::before{content:"Waived"' in page
    assert "1 Waived," in page
