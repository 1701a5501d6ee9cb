"""Latency layer (policy): each function on its pipeline image, the first call of this run,
a warm-up, then p50/p95/max over N calls against the profile's budget for the hardware
(`--budgets gpu|cpu`, default the profile's [latency] budgets).

    pytest -m latency --budgets cpu

The CRIOBE docs give 1.1 s, 2.3 s, 6.8 s and 7.4 s at 1920x1920 on GPU for corners,
gridpose, LaMa and segmentation; the twin's CPU budgets leave room for a loaded 2-core
machine. A budget is a policy: exceeding it fails the run (exit 10) but gates nothing.
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
