"""Guard against checks that cannot fail: every suite check (stable id) is named by a fault."""

from __future__ import annotations

import pytest

from selftests.fault_table import FAULTS, in_ci, tokens
from selftests.twin import TWIN_PROFILE


@pytest.fixture(scope="module")
def suite_ids() -> set[str]:
    """Every check's stable id, in both phases, as the twin's profile parametrizes them."""
    import contextlib
    import io

    from criobe_verify.guide import _collect

    with contextlib.redirect_stdout(io.StringIO()):
        return set(_collect(str(TWIN_PROFILE)))


def check_of(check_id: str) -> str:
    """A check is a test function; its parameters are the resources it is applied to."""
    return check_id.split("[", 1)[0]


def test_every_suite_check_is_named_by_a_fault(suite_ids):
    """By a fault CI runs: the ones it leaves out (SLOW_FAULTS=1) may only repeat what others
    prove."""
    named = {check_of(test_id) for fault in FAULTS if in_ci(fault) for test_id in fault.fails}
    checks = {check_of(test_id) for test_id in suite_ids}
    assert checks, "collected no suite tests"
    assert not checks - named, f"checks no fault makes fail: {sorted(checks - named)}"


def edited_suite_ids(fault, tmp_path) -> set[str]:
    """The ids the fault's edited twin profile collects (a profile edit may add checks: a
    function asked for a GPU has its GPU checked)."""
    import contextlib
    import io

    from criobe_verify.guide import _collect

    edited = tmp_path / f"{fault.id}.toml"
    edited.write_text(fault.profile_edit(TWIN_PROFILE.read_text()))
    with contextlib.redirect_stdout(io.StringIO()):
        return set(_collect(str(edited)))


def test_every_fault_names_existing_tests_and_a_message(suite_ids, tmp_path):
    for fault in FAULTS:
        assert fault.fails or fault.skips, fault.id
        ids = suite_ids
        if fault.profile_edit and not set(fault.fails) <= ids:
            ids = edited_suite_ids(fault, tmp_path)
        for test_id, fragment in fault.fails.items():
            assert test_id in ids, f"{fault.id}: {test_id} is not a suite test"
            assert all(tok.strip() for tok in tokens(fragment)), (
                f"{fault.id}: empty token for {test_id}"
            )


def test_checks_a_profile_edit_adds_are_named_by_a_fault(suite_ids, tmp_path):
    """Checks the twin's own profile does not collect (the GPU checks exist only where a
    function needs a GPU) are proven too: under the profile a fault runs them with."""
    added = set()
    for fault in FAULTS:
        if fault.profile_edit:
            added |= {check_of(i) for i in edited_suite_ids(fault, tmp_path) - suite_ids}
    named = {check_of(i) for fault in FAULTS if in_ci(fault) for i in fault.fails}
    assert "host/nvidia-gpus" in added, "no fault's profile asks a function for a GPU"
    assert not added - named, f"checks no fault makes fail: {sorted(added - named)}"


def test_a_fault_run_never_asks_for_an_opt_in_layer():
    """--layer regression without --baseline is a usage error (exit 4, no summary): the
    layers a fault run selects are the default ones."""
    from criobe_verify.layers import OPT_IN
    from selftests.fault_table import suite_layers

    for fault in FAULTS:
        assert not set(suite_layers(fault)) & set(OPT_IN), fault.id


def test_fault_ids_are_unique():
    ids = [fault.id for fault in FAULTS]
    assert len(ids) == len(set(ids))


def test_a_fault_ci_leaves_out_as_unit_proven_is_proven_by_the_unit_selftest():
    """Its finding's tokens are asserted by the checker's unit selftest, and its exact check
    (resource included) fails under another fault CI runs."""
    from selftests import PROJECT_ROOT

    unit = (PROJECT_ROOT / "selftests" / "test_shapes_and_accuracy.py").read_text()
    left_out = [f for f in FAULTS if "unit-proven" in f.tags]
    assert left_out
    in_ci_ids = {i for fault in FAULTS if in_ci(fault) for i in fault.fails}
    for fault in left_out:
        for check, said in fault.fails.items():
            assert check in in_ci_ids, f"{fault.id}: no fault CI runs fails {check}"
            missing = [t for t in tokens(said) if t not in unit]
            assert not missing, f"{fault.id}: the unit selftest asserts none of {missing}"
