"""A function's latency as the suite measures it: the first call of this run, a warm-up, then
p50/p95/max over N calls on the image of its pipeline stage, against the profile's budget for
the hardware; and the diagnosis of a function over budget.

    run = LatencyRun(fn, functions, sample, profile, hardware="gpu")
    stats = run.measure()
    expect(stats.p95_s <= run.budget, lambda: run.why_over_budget(stats))
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.profile import Function, Profile


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample.

    >>> percentile([0.1, 0.2, 0.3, 0.4, 5.0], 95), percentile([1.0], 50)
    (5.0, 1.0)
    """
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class LatencyStats:
    function: str
    first_s: float
    p50_s: float
    p95_s: float
    max_s: float
    calls: int
    budget_s: float | None
    hardware: str
    measured_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def note(self) -> str:
        return (
            f"{self.function}: first call {self.first_s:.3f} s, p50 {self.p50_s:.3f} s, p95 "
            f"{self.p95_s:.3f} s, max {self.max_s:.3f} s over {self.calls} calls"
        )


class LatencyRun:
    def __init__(
        self, fn: Function, functions: Any, sample: Any, profile: Profile, hardware: str
    ) -> None:
        if fn.optional and functions.dashboard.function(fn.name) is None:
            not_asked(f"{fn.name}: optional in the profile and not deployed")
        self.fn, self.functions, self.sample, self.profile = fn, functions, sample, profile
        self.hardware = hardware
        self.budget = fn.budget_gpu_s if hardware == "gpu" else fn.budget_cpu_s
        self.container = f"nuclio-nuclio-{fn.name}"

    def _timed(self, body: dict) -> float:
        call = self.functions.call(self.fn.name, body)
        if call.status != 200:
            fail(
                Diagnosis(
                    self.container,
                    f"answered {call.status} while timed",
                    observed=call.text[:300],
                    expected="200 on every call",
                )
            )
        return call.seconds

    def measure(self) -> LatencyStats:
        body = self.sample.request(self.fn.role)
        first = self.functions.first_call_s.get(self.fn.name)
        if first is None:
            first = self._timed(body)
        for _ in range(self.profile.latency.warmup):
            self._timed(body)
        seconds = [self._timed(body) for _ in range(self.profile.latency.calls)]
        return LatencyStats(
            function=self.fn.name,
            first_s=round(first, 4),
            p50_s=round(statistics.median(seconds), 4),
            p95_s=round(percentile(seconds, 95), 4),
            max_s=round(max(seconds), 4),
            calls=len(seconds),
            budget_s=self.budget,
            hardware=self.hardware,
            measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )

    def require_budget(self) -> float:
        if self.budget is None:
            pytest.skip(
                f"{self.fn.name}: the profile gives no {self.hardware} budget "
                f"(budget_{self.hardware}_s)"
            )
        return self.budget

    def why_over_budget(self, stats: LatencyStats) -> Diagnosis:
        return Diagnosis(
            self.container,
            f"p95 {stats.p95_s:.2f} s over {stats.calls} calls",
            observed=f"p50 {stats.p50_s:.2f} s, max {stats.max_s:.2f} s, first call "
            f"{stats.first_s:.2f} s",
            expected=f"p95 ≤ {self.budget:g} s ({self.hardware} budget of profile "
            f"{self.profile.name})",
            consequence="the pipeline's stages take longer than the lab planned for",
            fix="check the GPU is used (nvidia-smi inside the container), the model size and "
            "the image size; or adjust the budget in the profile",
        )
