"""Regression layer (with --baseline DIR): this run against the baseline recorded before an
upgrade, evaluated after every other layer (criobe_verify/regression.py says each rule).

    criobe-verify baseline before/ --profile lab.toml       # before the upgrade
    criobe-verify --baseline before/ --profile lab.toml     # after it

A flip and the lab's lost data are functional failures; risky configuration drift and a much
slower function are policy findings; every other difference is listed in the report's
"Before / after" section for information.
"""

from __future__ import annotations

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.regression, pytest.mark.guide("post-install")]


@check("regression/checks-still-pass")
def test_functional_checks_that_passed_before_still_pass(regression):
    flipped = regression.flipped("functional")
    expect(flipped is None, lambda: flipped)


@check("regression/policy-checks-still-pass", policy=True)
def test_policy_checks_that_passed_before_still_pass(regression):
    flipped = regression.flipped("policy")
    expect(flipped is None, lambda: flipped)


@check("regression/lab-data-survived")
def test_the_labs_data_survived(regression):
    if regression.comparison.data is None:
        pytest.skip("the baseline holds no inventory (a summary.json or an older baseline)")
    lost = regression.data_lost()
    expect(lost is None, lambda: lost)


@check("regression/configuration-as-before", policy=True)
def test_configuration_is_as_before(regression):
    if regression.comparison.drift is None:
        pytest.skip("the baseline holds no fingerprint (a summary.json)")
    drift = regression.risky_drift()
    expect(drift is None, lambda: drift)


@check("regression/latency-as-before", policy=True)
def test_latency_is_as_before(regression):
    if not regression.timings_compared():
        pytest.skip("no function or e2e stage timed in both the baseline and this run")
    slower = regression.slower()
    expect(slower is None, lambda: slower)


@check("regression/functions-answer-as-before")
def test_functions_answer_as_before(regression):
    if not regression.answers_compared():
        pytest.skip("no function answered an image of the baseline in both runs (an older "
                    "baseline, or the inference layer not selected)")  # fmt: skip
    changed = regression.answers_changed()
    expect(changed is None, lambda: changed)
