"""Latency layer (policy): each function on its pipeline image at the size its budget was
written for ([latency] budget_image: the synthetic quadrat drawn at 1920x1920, or the lab's
own photo with --sample-image, at the size it has), the first call of this run, a warm-up,
then p50/p95/max over N calls against its budget for the hardware: `--budgets gpu|cpu` when
given, else what its container has (a GPU or none), else the profile's [latency] budgets.

    pytest -m latency --budgets cpu

The CRIOBE docs give 1.1 s, 2.3 s, 6.8 s and 7.4 s at 1920x1920 on GPU for corners,
gridpose, LaMa and segmentation; the twin's CPU budgets leave room for a loaded 2-core
machine. A budget is a policy: exceeding it fails the run (exit 10) but gates nothing. Every
figure, in the messages, the report's table and chart and summary.json, says the image size
it is for and which budget applied and why.

The bounds on a call must fit what the function takes (functional): max(first call, p95) ×
[latency] timeout_margin within its spec.eventTimeout (none: Nuclio 1.13 bounds nothing) and,
for the stages the bridge calls, within the bridge's AUTO_ANN_TIMEOUT. The calls are timed on
the same image (its size is in the message).
"""

from __future__ import annotations

import json

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import expect

pytestmark = [pytest.mark.latency, pytest.mark.guide("step-6")]


@check("latency/within-budget", policy=True)
def test_function_latency_is_within_budget(
    expected_function, latency, depends_on, report_note, request
):
    depends_on("inference/answers-sample")
    run = latency(expected_function)
    stats = run.measure()
    # For the report's latency table and chart (user_properties travel with xdist reports).
    request.node.user_properties.append(("latency", json.dumps(stats.as_dict())))
    report_note(stats.note)
    budget = run.require_budget()
    expect(stats.p95_s <= budget, lambda: run.why_over_budget(stats))


@check("latency/timeouts-fit")
def test_timeouts_leave_the_function_the_time_it_needs(
    expected_function, latency, nuclio, depends_on, request
):
    """Functional: a bound below what a function takes cuts real calls off (a 504 in CVAT, a
    stalled stage in the bridge), whatever the budget says."""
    depends_on("inference/answers-sample")
    run = latency(expected_function)
    bridge_env = request.getfixturevalue("bridge_env") if run.bridge_calls_it else None
    fit = run.timeout_fit(nuclio.function(expected_function), bridge_env)
    expect(not fit.too_short(), fit.too_short)
