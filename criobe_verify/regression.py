"""The regression layer: this run against the baseline a lab recorded before an upgrade.

    criobe-verify baseline ~/baselines/before --profile lab.toml    # before the upgrade
    criobe-verify --baseline ~/baselines/before --profile lab.toml  # after it

It is evaluated after every other layer (the gate never skips it: what failed below is what it
reports) and it is criobe_verify/compare.py's comparison, the baseline with this run (its
checks so far, the stack's fingerprint and the lab's inventory read now, its latency and e2e
timings). Each check reads one part of it:

| check | kind | fails when |
|---|---|---|
| regression/checks-still-pass | functional | a functional check that passed (or was waived) in the baseline does not now |
| regression/policy-checks-still-pass | policy | the same for a policy check |
| regression/lab-data-survived | functional | a project, task, job or webhook of the baseline is gone, or its labels, size, annotation counts, geometry or frame changed |
| regression/configuration-as-before | policy | a fingerprint difference the profile's `[baseline] risky` names |
| regression/latency-as-before | policy | a function's median call, or an e2e stage, much slower than in the baseline (the rule below) |
| regression/functions-answer-as-before | functional | a function answers an image of the baseline otherwise than it did, beyond the profile's [inference] golden tolerances (criobe_verify/answer_drift.py): a changed model or image, even when the answer still follows the contract |

Latency. Ten calls make a p95 that is the slowest call or nearly: one neighbour's burst, one
collection pause moves it, and a healthy stack restarted would read "slower". The median of
ten moves only when half the calls are slower, so the rule compares medians: a function is
slower when its p50 is at least LATENCY_RATIO times the baseline's and at least
LATENCY_FLOOR_S more (a 10 ms call at 25 ms is noise, not an upgrade's doing). An e2e stage is
timed once, polling included: a stage is slower at STAGE_RATIO times and STAGE_FLOOR_S more.
A function three times slower is above both; a restart's jitter (selftests/test_regression.py
replays both) is below.

    >>> from criobe_verify.compare import Timing
    >>> slower(Timing("p50_s", 0.30, 0.90), LATENCY_RATIO, LATENCY_FLOOR_S)
    True
    >>> slower(Timing("p50_s", 0.30, 0.45), LATENCY_RATIO, LATENCY_FLOOR_S)
    False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from criobe_verify.answer_drift import Tolerances
from criobe_verify.baseline import Run, answers_of, e2e_of, latency_of
from criobe_verify.compare import Change, Comparison, Timing, compare
from criobe_verify.compare_report import cell
from criobe_verify.diagnosis import Diagnosis

LAYER = "regression"
LATENCY_FIELD = "p50_s"
LATENCY_RATIO = 2.0
LATENCY_FLOOR_S = 0.1
STAGE_RATIO = 2.5
STAGE_FLOOR_S = 3.0
# Where a comparison run's state keeps this run's side (the report's "Before / after" reads it).
STATE_KEY = "regression-after"
SHOWN = 12  # items a message lists before "… and N more" (the report lists them all)


def slower(t: Timing, ratio: float, floor_s: float) -> bool:
    """Whether `after` is at least `ratio` times `before` and `floor_s` more."""
    if t.before is None or t.after is None or t.before <= 0:
        return False
    return t.after >= t.before * ratio and t.after - t.before >= floor_s


def without_layer(run: Run) -> Run:
    """A side without the regression layer's own checks (a baseline recorded with --baseline
    has them; comparing them with themselves says nothing)."""
    return replace(run, checks={k: v for k, v in run.checks.items() if v.get("layer") != LAYER})


def after_run(
    results: Mapping[str, Mapping[str, Any]],
    fingerprint: dict[str, Any] | None,
    inventory: dict[str, Any] | None,
) -> Run:
    """This run as the AFTER side: the checks' results so far (the run state's entries:
    outcome, kind, layer, finding, latency, e2e), the fingerprint and inventory read now."""
    checks = {}
    for check_id, entry in results.items():
        if entry.get("layer") == LAYER:
            continue
        kept = {k: entry[k] for k in ("outcome", "kind", "layer") if k in entry}
        if entry.get("finding"):
            kept["finding"] = entry["finding"]
        checks[check_id] = kept
    return Run(
        "this run",
        "run",
        "this run",
        checks,
        latency_of(results),
        e2e_of(results),
        fingerprint,
        inventory,
        answers_of(results),
    )


def run_as_dict(run: Run) -> dict[str, Any]:
    """The AFTER side as the run state keeps it (JSON), for the report."""
    return {
        "checks": run.checks,
        "latency": run.latency,
        "e2e": run.e2e,
        "fingerprint": run.fingerprint,
        "inventory": run.inventory,
        "answers": run.answers,
    }


def run_from_dict(data: Mapping[str, Any]) -> Run:
    return Run(
        "this run",
        "run",
        "this run",
        data.get("checks") or {},
        data.get("latency") or {},
        data.get("e2e") or {},
        data.get("fingerprint"),
        data.get("inventory"),
        data.get("answers") or {},
    )


def _listed(lines: list[str]) -> str:
    shown = "; ".join(lines[:SHOWN])
    return shown + (f"; … and {len(lines) - SHOWN} more" if len(lines) > SHOWN else "")


def _flip(c: Change) -> str:
    return f"{c.check} {c.before} → {c.after}" + (f" ({c.finding})" if c.finding else "")


def _finding(subject: str, what: str, lines: list[str], **said: str) -> Diagnosis | None:
    """N items found (`what` after the count), listed; None when there are none."""
    if not lines:
        return None
    return Diagnosis(subject, f"{len(lines)} {what}", observed=_listed(lines), **said)


@dataclass(frozen=True)
class Regression:
    """The comparison of the baseline with this run, as the regression checks ask it."""

    comparison: Comparison
    baseline: str  # the --baseline the lab gave

    @classmethod
    def of(
        cls,
        before: Run,
        after: Run,
        baseline: str,
        risky: tuple[str, ...] = (),
        ignore: tuple[str, ...] = (),
        tolerances: Tolerances | None = None,
    ) -> Regression:
        return cls(compare(without_layer(before), after, risky, ignore, tolerances), baseline)

    def flipped(self, kind: str) -> Diagnosis | None:
        """Checks of `kind` (functional or policy) that passed in the baseline and do not now."""
        c = self.comparison
        flips = c.functional_flips if kind == "functional" else c.policy_flips
        if not flips:
            return None
        return Diagnosis(
            "this run",
            f"{len(flips)} {kind} check(s) that passed in the baseline do not now",
            observed=_listed([_flip(f) for f in flips]),
            expected=f"every {kind} check of the baseline ({self.baseline}) to pass as it did",
            consequence="the upgrade broke what worked before it"
            if kind == "functional"
            else "the upgrade left the stack configured against the profile's policy",
            fix="each check's own diagnosis (the report's failures) says what to repair; roll "
            "the upgrade back (README: Before an upgrade) if it cannot wait",
        )

    def data_lost(self) -> Diagnosis | None:
        return _finding(
            "CVAT",
            "item(s) of the lab's data lost or changed since the baseline",
            [d.line for d in self.comparison.data_lost],
            expected="every project, task, job and webhook of the baseline still there with "
            "the same labels, size, annotation counts, geometry and frames",
            consequence="the lab's annotations or automation did not survive the upgrade",
            fix="stop annotating; restore CVAT's volumes from the backup taken before the "
            "upgrade (README: Before an upgrade), or repair the named objects",
        )

    def answers_changed(self) -> Diagnosis | None:
        return _finding(
            "the functions",
            "answer(s) on the baseline's images changed beyond the profile's tolerances",
            [a.line for a in self.comparison.answers if a.finding],
            expected="each function answering the baseline's images as it did, within "
            "[inference] golden_tolerance_px, golden_iou_min and golden_image_changed_max",
            consequence="the model or its image changed in the upgrade: the lab's annotations "
            "from now on differ from those made before it",
            fix="compare the function's image and weights in the report's drift; redeploy the "
            "model the lab validated, or, when the new one is meant, validate it on the lab's "
            "photos (--sample-image, --ground-truth) and record a new baseline",
        )

    def answers_compared(self) -> bool:
        """Whether both sides hold answers of some function on some image."""
        before, after = self.comparison.before.answers, self.comparison.after.answers
        return any(set(before.get(fn) or {}) & set(after.get(fn) or {}) for fn in before)

    def risky_drift(self) -> Diagnosis | None:
        return _finding(
            "the stack's configuration",
            "risky change(s) since the baseline",
            [d.line for d in self.comparison.risky],
            expected="the configuration the baseline recorded, for the settings the profile's "
            "[baseline] risky names",
            consequence="a setting the CRIOBE stack depends on changed in the upgrade",
            fix="restore the setting in the compose files or .env, or, if the change is meant, "
            "record a new baseline (criobe-verify baseline DIR) or waive the check",
        )

    def slowdowns(self) -> list[str]:
        """Each function (its median call) and e2e stage much slower than in the baseline,
        with before → after and the ratio."""
        out = []
        for fn, timings in self.comparison.latency.items():
            for t in timings:
                if t.what == LATENCY_FIELD and slower(t, LATENCY_RATIO, LATENCY_FLOOR_S):
                    p95 = next((x for x in timings if x.what == "p95_s"), None)
                    out.append(f"{fn} p50 {cell(t)} s" + (f", p95 {cell(p95)} s" if p95 else ""))
        for workflow, timings in self.comparison.stages.items():
            for t in timings:
                if slower(t, STAGE_RATIO, STAGE_FLOOR_S):
                    out.append(f"e2e {workflow} {t.what!r} {cell(t)} s")
        return out

    def slower(self) -> Diagnosis | None:
        return _finding(
            "this run",
            "timing(s) much slower than in the baseline",
            self.slowdowns(),
            expected=f"a function's median call under {LATENCY_RATIO:g}× the baseline's (or "
            f"less than {LATENCY_FLOOR_S * 1000:.0f} ms more), an e2e stage under "
            f"{STAGE_RATIO:g}× (or less than {STAGE_FLOOR_S:g} s more)",
            consequence="annotators wait longer for every automatic annotation",
            fix="compare the function's image, resources and GPU in the report's drift; a "
            "model moved to the CPU or a smaller worker count is the usual cause",
        )

    def timings_compared(self) -> bool:
        c = self.comparison
        return any(
            t.before is not None and t.after is not None
            for ts in [*c.latency.values(), *c.stages.values()]
            for t in ts
        )
