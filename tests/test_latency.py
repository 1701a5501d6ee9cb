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
import statistics
import time

import pytest

from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, fail

pytestmark = [pytest.mark.latency, pytest.mark.guide("step-6")]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@check("latency/within-budget", policy=True)
def test_function_latency_is_within_budget(
    expected_function,
    functions,
    sample,
    profile,
    pytestconfig,
    depends_on,
    report_note,
    request,
):
    fn = expected_function
    depends_on("inference/answers-sample")
    if functions.dashboard.function(fn.name) is None and fn.optional:
        pytest.skip(f"{fn.name}: optional in the profile and not deployed")
    hardware = pytestconfig.getoption("--budgets") or profile.latency.budgets
    budget = fn.budget_gpu_s if hardware == "gpu" else fn.budget_cpu_s
    body = sample.request(fn.role)
    first = functions.first_call_s.get(fn.name)
    if first is None:
        first = functions.call(fn.name, body).seconds
    for _ in range(profile.latency.warmup):
        functions.call(fn.name, body)
    seconds = []
    for _ in range(profile.latency.calls):
        call = functions.call(fn.name, body)
        if call.status != 200:
            fail(Diagnosis(f"nuclio-nuclio-{fn.name}", f"answered {call.status} while timed",
                           observed=call.text[:300], expected="200 on every call"))  # fmt: skip
        seconds.append(call.seconds)
    stats = {
        "function": fn.name,
        "first_s": round(first, 4),
        "p50_s": round(statistics.median(seconds), 4),
        "p95_s": round(percentile(seconds, 95), 4),
        "max_s": round(max(seconds), 4),
        "calls": len(seconds),
        "budget_s": budget,
        "hardware": hardware,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    # For the report's latency table and chart (user_properties travel with xdist reports).
    request.node.user_properties.append(("latency", json.dumps(stats)))
    report_note(
        f"{fn.name}: first call {first:.3f} s, p50 {stats['p50_s']:.3f} s, p95 "
        f"{stats['p95_s']:.3f} s, max {stats['max_s']:.3f} s over {len(seconds)} calls"
    )
    if budget is None:
        pytest.skip(f"{fn.name}: the profile gives no {hardware} budget (budget_{hardware}_s)")
    if stats["p95_s"] <= budget:
        return
    fail(
        Diagnosis(
            f"nuclio-nuclio-{fn.name}",
            f"p95 {stats['p95_s']:.2f} s over {len(seconds)} calls",
            observed=f"p50 {stats['p50_s']:.2f} s, max {stats['max_s']:.2f} s, first call "
            f"{first:.2f} s",
            expected=f"p95 ≤ {budget:g} s ({hardware} budget of profile {profile.name})",
            consequence="the pipeline's stages take longer than the lab planned for",
            fix="check the GPU is used (nvidia-smi inside the container), the model size and "
            "the image size; or adjust the budget in the profile",
        )
    )
