"""A function's latency as the suite measures it: the first call of this run, a warm-up, then
p50/p95/max over N calls on the image of its pipeline stage at the size its budget was written
for, against the budget for the hardware its container has; and the diagnosis of a function
over budget.

    choice = choose_budget(option, GpuAccess.of(container.attrs), profile.latency.budgets)
    run = LatencyRun(fn, functions, latency_sample, profile, choice, first_sample=sample)
    stats = run.measure()
    expect(stats.p95_s <= run.budget, lambda: run.why_over_budget(stats))
    fit = run.timeout_fit(nuclio.function(fn), bridge_env)
    expect(not fit.too_short(), fit.too_short)

Which budget applies (choose_budget): `--budgets gpu|cpu` when given; else what the function's
container has, a GPU (any of Docker's three ways, criobe_verify/resources/gpu.py) or none; else,
where the container cannot be read, the profile's [latency] budgets. Every figure says the
image size it is for, and the budget the size it was written for ([latency] budget_image).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import pytest

from criobe_verify.coverage import not_asked
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.profile import Function, Profile
from criobe_verify.resources.gpu import GpuAccess


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample.

    >>> percentile([0.1, 0.2, 0.3, 0.4, 5.0], 95), percentile([1.0], 50)
    (5.0, 1.0)
    """
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class BudgetChoice:
    """Which of a function's budgets applies, gpu or cpu, and what chose it (said in the
    check's messages, the report and summary.json)."""

    hardware: Literal["gpu", "cpu"]
    source: str


def choose_budget(
    option: str | None, access: GpuAccess | None, default: str, unread: str = ""
) -> BudgetChoice:
    """--budgets when given; else what the function's container has (a GPU or none); else,
    where the container could not be read (`unread` says why), the profile's [latency]
    budgets (`default`).

    >>> choose_budget("gpu", None, "cpu").source
    '--budgets gpu'
    >>> choose_budget(None, GpuAccess.of({"HostConfig": {"Runtime": "runc"}}), "gpu")
    BudgetChoice(hardware='cpu', source='its container has no GPU (no device request (--gpus), no CDI device, runtime runc)')
    >>> choose_budget(None, None, "gpu", "the Docker engine does not answer").source
    '[latency] budgets = "gpu" in the profile (its container was not read: the Docker engine does not answer)'
    """
    if option:
        return BudgetChoice(option, f"--budgets {option}")  # type: ignore[arg-type]
    if access is not None:
        has = "has a GPU" if access.has_gpu else "has no GPU"
        return BudgetChoice(
            "gpu" if access.has_gpu else "cpu", f"its container {has} ({access.describe()})"
        )
    return BudgetChoice(
        default,  # type: ignore[arg-type]
        f'[latency] budgets = "{default}" in the profile (its container was not read: '
        f"{unread or 'unknown'})",
    )


def size_text(size: tuple[int, int]) -> str:
    """An image size as the messages say it.

    >>> size_text((1920, 1920))
    '1920×1920'
    """
    return f"{size[0]}×{size[1]}"


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
    # The size of the image the timed calls carried, of the one the first call carried (the
    # inference layer's sample where it called first), and of the one the budget is for.
    image: str = ""
    first_image: str = ""
    budget_image: str = ""
    budget_source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def note(self) -> str:
        first = f" (on {self.first_image})" if self.first_image != self.image else ""
        budget = (
            f"no {self.hardware} budget"
            if self.budget_s is None
            else f"{self.hardware} budget {self.budget_s:g} s for {self.budget_image}"
        )
        return (
            f"{self.function}: first call {self.first_s:.3f} s{first}, p50 {self.p50_s:.3f} s, "
            f"p95 {self.p95_s:.3f} s, max {self.max_s:.3f} s over {self.calls} calls on "
            f"{self.image}; {budget} ({self.budget_source})"
        )


# The stages the bridge calls itself, each bounded by its AUTO_ANN_TIMEOUT (SAM is CVAT's
# interactor only), and the bridge's bound when bridge/.env leaves it unset.
BRIDGE_ROLES = ("corners", "grid", "inpaint", "corals")
BRIDGE_DEFAULT_TIMEOUT_S = 900.0
EVENT_TIMEOUT_FIX = "spec.eventTimeout in the function's function.yaml, then redeploy it"


@dataclass(frozen=True)
class TimeoutFit:
    """The bounds on one call of a function against what it needs: max(first call, p95)
    times the profile's margin. Nuclio's eventTimeout (none: Nuclio 1.13 has no default and
    bounds nothing) and, for the stages the bridge calls, its AUTO_ANN_TIMEOUT."""

    stats: LatencyStats
    margin: float
    size: tuple[int, int]  # the image the calls were timed on
    event_timeout: str  # as the dashboard lists spec.eventTimeout; "" where none
    event_timeout_s: float | None
    bridge_timeout: str | None  # AUTO_ANN_TIMEOUT as bridge/.env gives it; None: not called

    @property
    def needed_s(self) -> float:
        return max(self.stats.first_s, self.stats.p95_s) * self.margin

    @property
    def bridge_timeout_s(self) -> float | None:
        if self.bridge_timeout is None:
            return None
        return float(self.bridge_timeout) if self.bridge_timeout else BRIDGE_DEFAULT_TIMEOUT_S

    def _need(self) -> str:
        s = self.stats
        first = f" on {s.first_image}" if s.first_image and s.first_image != s.image else ""
        return (
            f"{self.needed_s:.2f} s: max(first call {s.first_s:.2f} s{first}, p95 "
            f"{s.p95_s:.2f} s over {s.calls} calls) × margin {self.margin:g} ([latency] "
            f"timeout_margin), timed on a {size_text(self.size)} image"
        )

    def too_short(self) -> list[Diagnosis]:
        """One diagnosis per bound below what the function needs."""
        found = []
        name, container = self.stats.function, f"nuclio-nuclio-{self.stats.function}"
        if self.event_timeout_s is not None and self.event_timeout_s < self.needed_s:
            found.append(
                Diagnosis(
                    container,
                    f"eventTimeout {self.event_timeout} ({self.event_timeout_s:g} s) is below "
                    f"what {name} needs",
                    observed=self._need(),
                    expected=f"spec.eventTimeout ≥ {self.needed_s:.2f} s",
                    consequence="a slow call (a cold start, a loaded GPU, a larger image) is "
                    "cut off by the processor and CVAT answers 504 (cvat-ai/cvat#7274)",
                    fix=f"{EVENT_TIMEOUT_FIX} (a spec without one has no bound in Nuclio 1.13)",
                )
            )
        bridge_s = self.bridge_timeout_s
        if bridge_s is not None and bridge_s < self.needed_s:
            said = self.bridge_timeout or f"unset, the bridge's default {bridge_s:g}"
            found.append(
                Diagnosis(
                    "bridge",
                    f"AUTO_ANN_TIMEOUT {said} s is below what {name} needs",
                    observed=self._need(),
                    expected=f"AUTO_ANN_TIMEOUT ≥ {self.needed_s:.2f} s in bridge/.env",
                    consequence=f"the bridge gives up on {name} before it answers and the "
                    "pipeline's stage stalls",
                    fix=f"AUTO_ANN_TIMEOUT in bridge/.env (seconds), then docker compose ... "
                    f"up -d bridge; and {EVENT_TIMEOUT_FIX} if that is short too",
                )
            )
        return found


class LatencyRun:
    """sample: the image the calls are timed on (the fixture latency_sample); first_sample:
    the one the other layers call the functions with, whose size the first call is for where
    one of them called first."""

    def __init__(
        self,
        fn: Function,
        functions: Any,
        sample: Any,
        profile: Profile,
        choice: BudgetChoice,
        first_sample: Any = None,
    ) -> None:
        if fn.optional and functions.dashboard.function(fn.name) is None:
            not_asked(f"{fn.name}: optional in the profile and not deployed")
        self.fn, self.functions, self.sample, self.profile = fn, functions, sample, profile
        self.first_sample = first_sample or sample
        self.choice = choice
        self.hardware = choice.hardware
        self.budget = fn.budget_gpu_s if self.hardware == "gpu" else fn.budget_cpu_s
        side = profile.latency.budget_image
        self.budget_image = size_text((side, side))
        self.container = f"nuclio-nuclio-{fn.name}"
        self._stats: LatencyStats | None = None

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
        """The function timed once per run: the checks that read it share the calls."""
        if self._stats is None:
            self._stats = self._measure()
        return self._stats

    @property
    def bridge_calls_it(self) -> bool:
        return self.fn.role in BRIDGE_ROLES

    def timeout_fit(self, deployed: Any, bridge_env: dict[str, str] | None) -> TimeoutFit:
        """deployed: the function as the dashboard lists it (resources.nuclio.DeployedFunction);
        bridge_env: the bridge's environment where the bridge calls the function."""
        return TimeoutFit(
            stats=self.measure(),
            margin=self.profile.latency.timeout_margin,
            size=self.sample.stage_size(self.fn.role),
            event_timeout=deployed.event_timeout,
            event_timeout_s=deployed.event_timeout_s,
            bridge_timeout=None
            if bridge_env is None
            else (bridge_env.get("AUTO_ANN_TIMEOUT") or "").strip(),
        )

    def _measure(self) -> LatencyStats:
        role = self.fn.role
        first = self.functions.first_call_s.get(self.fn.name)
        first_image = self.first_sample.stage_size(role)
        body = self.sample.request(role)
        if first is None:
            first, first_image = self._timed(body), self.sample.stage_size(role)
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
            image=size_text(self.sample.stage_size(role)),
            first_image=size_text(first_image),
            budget_image=self.budget_image,
            budget_source=self.choice.source,
        )

    def require_budget(self) -> float:
        if self.budget is None:
            pytest.skip(
                f"{self.fn.name}: the profile gives no {self.hardware} budget "
                f"(budget_{self.hardware}_s), the one that applies: {self.choice.source}"
            )
        return self.budget

    def why_over_budget(self, stats: LatencyStats) -> Diagnosis:
        other = stats.image != self.budget_image
        return Diagnosis(
            self.container,
            f"p95 {stats.p95_s:.2f} s over {stats.calls} calls on a {stats.image} image",
            observed=f"p50 {stats.p50_s:.2f} s, max {stats.max_s:.2f} s, first call "
            f"{stats.first_s:.2f} s; timed on {self.sample.name}",
            why=f"the image timed is {stats.image}, not the {self.budget_image} the budget is for"
            if other
            else "",
            expected=f"p95 ≤ {self.budget:g} s ({self.hardware} budget of profile "
            f"{self.profile.name}, for a {self.budget_image} image; {self.hardware} because "
            f"{self.choice.source})",
            consequence="the pipeline's stages take longer than the lab planned for",
            fix="check the GPU is used (nvidia-smi inside the container), the model size and "
            "the image size; or adjust the budget in the profile",
        )
