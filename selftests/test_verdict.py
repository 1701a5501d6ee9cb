"""Honest partial verdicts on synthetic results: what did not run is named with why, counts are
split, the guide table says "not verified", --require turns such a skip into a failure, and a
run where everything ran (the twin's) still reads "every check passed"."""

from __future__ import annotations

from criobe_verify.coverage import unverified
from criobe_verify.layers import DEFAULT_LAYERS
from criobe_verify.verdict import Verdict, guide_table

SAMPLE_SKIP = "no --sample-image given: real models may find nothing on the synthetic quadrat"


def _entry(outcome: str, layer: str, message: str = "", **more) -> dict:
    entry = {"outcome": outcome, "layer": layer, "kind": "functional", "guide": [], **more}
    if message:
        entry["message"] = message
    return entry


def real_stack_without_sample() -> dict[str, dict]:
    """A real profile's run without --sample-image: every layer ran but the e2e run and the
    accuracy check skipped, and the profile's unused three-stage workflow skipped by choice."""
    checks = {f"{layer}/ok": _entry("passed", layer) for layer in DEFAULT_LAYERS if layer != "e2e"}
    checks["inference/accurate-on-sample[pth-yolo]"] = _entry(
        "skipped", "inference", SAMPLE_SKIP, kind="policy"
    )
    checks["e2e/two-stage-exactly-once"] = _entry(
        "skipped", "e2e", SAMPLE_SKIP, guide=["post-install"]
    )
    checks["e2e/three-stage-exactly-once"] = _entry(
        "skipped", "e2e", "profile criobe runs ['two-stage'] (e2e.workflows)", not_asked=True
    )
    return checks


def test_a_run_with_skipped_layers_names_them_with_why_and_splits_its_counts():
    v = Verdict.of(real_stack_without_sample(), absent={})
    assert (v.status, v.exit_code) == ("works", 0)
    assert v.headline == (
        "every check that ran passed (11 passed, 3 skipped, 0 not run) — not verified: "
        "inference/accurate-on-sample, the e2e layer (no --sample-image given)"
    )
    assert [(u.what, u.checks) for u in v.not_verified] == [
        ("inference/accurate-on-sample", ("inference/accurate-on-sample[pth-yolo]",)),
        ("the e2e layer", ("e2e/two-stage-exactly-once",)),
    ]


def test_a_run_where_everything_ran_claims_every_check_and_names_nothing():
    checks = {f"{layer}/ok": _entry("passed", layer) for layer in DEFAULT_LAYERS}
    checks["ports/internal-port-not-public[8070]"] = _entry("waived", "ports", kind="policy")
    v = Verdict.of(checks, absent={})
    assert v.headline == "every check passed (12 passed, 1 waived, 0 skipped, 0 not run)"
    assert v.not_verified == []


def test_a_layer_not_selected_is_said_as_the_users_choice():
    checks = {"host/ok": _entry("passed", "host")}
    absent = {layer: "not selected: --layer" for layer in DEFAULT_LAYERS if layer != "host"}
    v = Verdict.of(checks, absent=absent)
    assert v.status == "works"
    assert v.headline.endswith(
        "— not verified: the containers layer, the ports layer, the network layer, the gateway "
        "layer, the services layer, the functions layer, the reachability layer, the inference "
        "layer, the latency layer, the webhooks layer, the e2e layer (not selected: --layer)"
    )


def test_gate_skips_and_the_profiles_own_skips_leave_nothing_unverified():
    checks = {
        "host/engine": _entry("failed", "host"),
        "ports/ui": _entry("skipped", "ports", "host layer failed: host/engine"),
        "e2e/three-stage-exactly-once": _entry("skipped", "e2e", "profile …", not_asked=True),
        "e2e/two-stage-exactly-once": _entry("passed", "e2e"),
    }
    assert unverified(checks, {}) == []


def test_require_turns_a_skipped_layer_into_a_failure():
    v = Verdict.of(real_stack_without_sample(), absent={}, required=("e2e",))
    assert (v.status, v.exit_code) == ("incomplete", 1)
    assert v.headline == (
        "required by --require, not verified: the e2e layer (no --sample-image given)"
    )
    # A required layer that was verified changes nothing.
    assert Verdict.of(real_stack_without_sample(), absent={}, required=("host",)).exit_code == 0


def test_require_fails_a_layer_the_run_did_not_select():
    v = Verdict.of(
        {"host/ok": _entry("passed", "host")},
        absent={"e2e": "not selected: --layer"},
        required=("e2e",),
    )
    assert (v.status, v.exit_code) == ("incomplete", 1)
    assert v.headline.endswith("the e2e layer (not selected: --layer)")


def test_a_failure_still_reads_broken_whatever_was_required():
    checks = {"host/engine": _entry("failed", "host", message="E   engine down")}
    v = Verdict.of(checks, absent={"e2e": "not selected: --layer"}, required=("e2e",))
    assert (v.status, v.exit_code) == ("broken", 1)
    assert "not verified" not in v.headline


def test_policy_findings_headline_also_names_what_was_not_verified():
    checks = real_stack_without_sample()
    checks["containers/image-matches-profile[cvat_ui]"] = _entry(
        "failed", "containers", "E   tag", kind="policy"
    )
    v = Verdict.of(checks, absent={})
    assert v.exit_code == 10
    assert v.headline.endswith("(no --sample-image given)")


def test_guide_table_row_says_not_verified_and_which_checks():
    rows = {r["step"]: r for r in guide_table(real_stack_without_sample())}
    assert rows["post-install"]["verdict"] == "not verified"
    assert rows["post-install"]["not_verified"] == ["e2e/two-stage-exactly-once"]
    # An optional function the profile does not deploy leaves its step verified.
    optional = {
        "functions/deployed-and-ready[sam]": _entry(
            "skipped", "functions", "sam: optional", guide=["step-6"], not_asked=True
        ),
        "functions/deployed-and-ready[yolo]": _entry("passed", "functions", guide=["step-6"]),
    }
    assert {r["step"]: r["verdict"] for r in guide_table(optional)}["step-6"] == "passes"
