"""Budgets on the image size they were written for, without a stack: which budget applies
(--budgets, else what the function's container has, else the profile) and says why; every
figure says the image size it is for, in the check's messages, summary.json's entry and the
report's table; the synthetic quadrat drawn at the budgets' size; a baseline keeping the size
and a comparison that never sets figures of different sizes against each other."""

from __future__ import annotations

import copy
import io
from types import SimpleNamespace

import pytest
from criobe_verify.fixtures.report import verdict_html
from criobe_verify.fixtures.sample import load_sample, synthetic_at
from PIL import Image

from criobe_verify.baseline import baseline_of, latency_of, run_of
from criobe_verify.compare import LATENCY_NOT_COMPARED, compare
from criobe_verify.compare_report import text_table
from criobe_verify.paths import PROFILES_DIR
from criobe_verify.profile import load_profile
from criobe_verify.resources.gpu import GpuAccess
from criobe_verify.resources.latency import BudgetChoice, LatencyRun, choose_budget
from criobe_verify.verdict import Verdict
from selftests.recorded_stack import RecordedStack
from selftests.test_baseline import DIGEST, SUMMARY
from selftests.twin import TWIN_PROFILE

GPU = GpuAccess.of({"HostConfig": {"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}})  # fmt: skip
NVIDIA_RUNTIME = GpuAccess.of(
    {"HostConfig": {"Runtime": "nvidia"}, "Config": {"Env": ["NVIDIA_VISIBLE_DEVICES=all"]}}
)
CPU = GpuAccess.of({"HostConfig": {"Runtime": "runc", "DeviceRequests": None}})


# --- which budget applies ---------------------------------------------------------------------


def test_budgets_option_wins_over_what_the_container_has():
    choice = choose_budget("cpu", GPU, "gpu")
    assert choice == BudgetChoice("cpu", "--budgets cpu")


def test_without_the_option_the_functions_container_decides_and_says_how():
    assert choose_budget(None, GPU, "cpu") == BudgetChoice(
        "gpu", "its container has a GPU (device request --gpus all)"
    )
    assert choose_budget(None, NVIDIA_RUNTIME, "cpu").source == (
        "its container has a GPU (runtime nvidia with NVIDIA_VISIBLE_DEVICES=all)"
    )
    on_cpu = choose_budget(None, CPU, "gpu")
    assert on_cpu.hardware == "cpu"
    assert on_cpu.source.startswith("its container has no GPU (no device request (--gpus)")


def test_where_the_container_cannot_be_read_the_profile_decides_and_says_why():
    choice = choose_budget(None, None, "gpu", "no container nuclio-nuclio-pth-lama")
    assert choice.hardware == "gpu"
    assert choice.source == (
        '[latency] budgets = "gpu" in the profile (its container was not read: no container '
        "nuclio-nuclio-pth-lama)"
    )


class _Functions:
    """Calls answered at once, timed as given; first_call_s as the inference layer leaves it."""

    def __init__(self, seconds: list[float], first: dict[str, float] | None = None) -> None:
        self.seconds = iter(seconds)
        self.first_call_s = dict(first or {})
        self.dashboard = SimpleNamespace(function=lambda name: {"name": name})
        self.bodies: list[dict] = []

    def call(self, name: str, body: dict) -> SimpleNamespace:
        self.bodies.append(body)
        return SimpleNamespace(status=200, text="", seconds=next(self.seconds))


def _run(profile_path, name: str, choice: BudgetChoice, functions: _Functions, sample):
    profile = load_profile(profile_path)
    fn = next(f for f in profile.functions if f.name == name)
    return LatencyRun(fn, functions, sample, profile, choice, first_sample=load_sample(None, None))


@pytest.fixture(scope="module")
def small() -> object:
    """The committed sample's scene drawn at 256x256: a size the budgets are not for."""
    return synthetic_at(256)


def test_the_budget_of_the_chosen_hardware_applies(small):
    gpu = _run(TWIN_PROFILE, "pth-lama", choose_budget(None, GPU, "cpu"), _Functions([]), small)
    cpu = _run(TWIN_PROFILE, "pth-lama", choose_budget(None, CPU, "gpu"), _Functions([]), small)
    assert (gpu.budget, cpu.budget) == (6.8, 6.0)


def test_no_budget_for_the_chosen_hardware_skips_saying_which_and_why(small):
    """criobe.toml gives GPU budgets only: a function on the CPU is not judged on time (its
    GPU check names a required GPU missing)."""
    run = _run(PROFILES_DIR / "criobe.toml", "pth-lama", choose_budget(None, CPU, "gpu"),
               _Functions([]), small)  # fmt: skip
    with pytest.raises(pytest.skip.Exception) as skipped:
        run.require_budget()
    said = str(skipped.value)
    assert "the profile gives no cpu budget (budget_cpu_s)" in said
    assert "the one that applies: its container has no GPU" in said


# --- every figure says its image size ---------------------------------------------------------


def test_each_figure_says_the_image_size_it_is_for(small):
    """The inference layer called first (on the committed 1024x1024 sample): the first call
    says so; the timed calls carry the 256x256 stage image; the budget is for 1920x1920."""
    functions = _Functions([0.5] * 12, first={"pth-lama": 0.9})
    run = _run(TWIN_PROFILE, "pth-lama", choose_budget(None, CPU, "gpu"), functions, small)
    stats = run.measure()
    assert Image.open(io.BytesIO(small.rectified_bytes)).size == (256, 256)
    assert len(functions.bodies) == 12 and functions.bodies[0]["keypoints"][-1] == [230.4, 256.0]
    entry = stats.as_dict()  # summary.json's latency entry, the report's table and chart
    assert (entry["image"], entry["first_image"], entry["budget_image"]) == (
        "256×256", "1024×1024", "1920×1920",
    )  # fmt: skip
    assert entry["budget_source"].startswith("its container has no GPU")
    assert stats.note.startswith(
        "pth-lama: first call 0.900 s (on 1024×1024), p50 0.500 s, p95 0.500 s, max 0.500 s "
        "over 10 calls on 256×256; cpu budget 6 s for 1920×1920 (its container has no GPU"
    )


def test_over_budget_names_both_sizes_and_the_budgets_source(small):
    functions = _Functions([7.5] * 13)  # latency alone: its own first call
    run = _run(TWIN_PROFILE, "pth-lama", choose_budget(None, CPU, "gpu"), functions, small)
    stats = run.measure()
    assert stats.first_image == stats.image == "256×256"
    text = str(run.why_over_budget(stats))
    assert "nuclio-nuclio-pth-lama: p95 7.50 s over 10 calls on a 256×256 image" in text
    assert "timed on synthetic quadrat (seed 7, drawn at 256×256)" in text
    assert "the image timed is 256×256, not the 1920×1920 the budget is for" in text
    assert (
        "expected p95 ≤ 6 s (cpu budget of profile twin, for a 1920×1920 image; cpu because "
        "its container has no GPU"
    ) in text


def test_the_timeouts_are_judged_on_the_same_image(small):
    functions = _Functions([0.5] * 12, first={"pth-lama": 0.9})
    run = _run(TWIN_PROFILE, "pth-lama", choose_budget("cpu", None, "cpu"), functions, small)
    deployed = SimpleNamespace(event_timeout="1s", event_timeout_s=1.0)
    (short,) = run.timeout_fit(deployed, None).too_short()
    assert "max(first call 0.90 s on 1024×1024, p95 0.50 s over 10 calls)" in short.observed
    assert "timed on a 256×256 image" in short.observed


def test_the_report_table_says_each_figures_size_and_the_budgets_source(small):
    functions = _Functions([0.5] * 12, first={"pth-lama": 0.9})
    stats = _run(TWIN_PROFILE, "pth-lama", choose_budget(None, CPU, "gpu"), functions, small)
    entry = {"outcome": "passed", "layer": "latency", "kind": "policy", "guide": ["step-6"],
             "latency": stats.measure().as_dict()}  # fmt: skip
    checks = {"latency/within-budget[pth-lama]": entry}
    page = "".join(verdict_html(Verdict.of(checks), checks))
    assert "<th>image</th>" in page and "<th>budget chosen by</th>" in page
    assert "<td>pth-lama</td><td>256×256</td><td>0.900 (on 1024×1024)</td>" in page
    assert "6.0 (cpu, for 1920×1920)" in page
    assert "its container has no GPU (no device request (--gpus)" in page


# --- the image drawn at the budgets' size ------------------------------------------------------


def test_the_budgets_size_is_drawn_from_the_committed_samples_seed(small):
    assert small.synthetic and small.name == "synthetic quadrat (seed 7, drawn at 256×256)"
    assert small.truth.photo_size == small.truth.rectified_size == (256, 256)
    assert Image.open(io.BytesIO(small.photo_bytes)).size == (256, 256)
    assert small.stage_size_text("corners") == "256×256"
    committed = synthetic_at(1024)  # the committed sample's own size: read, not drawn again
    assert committed.photo_bytes == load_sample(None, None).photo_bytes


def test_the_profiles_state_the_size_their_budgets_are_for():
    for path in (TWIN_PROFILE, PROFILES_DIR / "criobe.toml"):
        assert load_profile(path).latency.budget_image == 1920


# --- baselines and comparisons keep sizes apart -----------------------------------------------


def _with_image(summary: dict, image: str | None) -> dict:
    out = copy.deepcopy(summary)
    for entry in out["checks"].values():
        if entry.get("latency") and image is not None:
            entry["latency"]["image"] = image
    return out


def _run_of(summary: dict):
    return run_of(baseline_of(summary, RecordedStack().fingerprint(DIGEST), []), "recorded")


def test_a_baseline_records_the_image_size_of_its_figures():
    summary = _with_image(SUMMARY, "1920×1920")
    assert latency_of(summary["checks"])["pth-lama"]["image"] == "1920×1920"


def test_figures_at_different_sizes_are_not_compared():
    before = _run_of(_with_image(SUMMARY, "1024×1024"))
    after = _run_of(_with_image(SUMMARY, "1920×1920"))
    result = compare(before, after)
    assert result.latency == {}  # no ratio, so no rule of a later layer reads one
    assert result.latency_image["pth-lama"] == "1024×1024 → 1920×1920"
    lama = {t.what: t for t in result.latency_not_compared["pth-lama"]}
    assert lama["p95_s"].before == lama["p95_s"].after == 0.7575
    table = text_table(result)
    assert f"1024×1024 → 1920×1920 ({LATENCY_NOT_COMPARED})" in table
    assert "0.757 | 0.757" in table and "(×1.00)" not in table.split("Latency")[1].split("E2E")[0]


def test_a_baseline_that_did_not_record_its_size_is_not_compared_with_one_that_did():
    result = compare(_run_of(SUMMARY), _run_of(_with_image(SUMMARY, "1920×1920")))
    assert set(result.latency_not_compared) == set(result.latency_image) and not result.latency
    assert result.latency_image["pth-lama"] == "not recorded → 1920×1920"


def test_figures_at_the_same_size_are_compared_with_their_ratio():
    run = _run_of(_with_image(SUMMARY, "1920×1920"))
    result = compare(run, run)
    assert result.latency_not_compared == {}
    p95 = next(t for t in result.latency["pth-lama"] if t.what == "p95_s")
    assert p95.ratio == 1.0
    assert "1920×1920  0.334 → 0.334 (×1.00)" in text_table(result)
