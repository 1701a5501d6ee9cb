"""The run's verdict from its checks' outcomes: what a lab reads first.

    >>> checks = {
    ...     "t::engine": {"outcome": "passed", "layer": "host", "kind": "functional"},
    ...     "t::tag": {"outcome": "failed", "layer": "containers", "kind": "policy",
    ...                "diagnoses": [{"subject": "cvat_ui", "what": "image 'x'", "fix": "retag"}]},
    ... }
    >>> v = Verdict.of(checks)
    >>> v.status, v.exit_code
    ('works with policy findings', 10)

Outcomes: passed, failed, error, skipped, waived, not run. A check that did not run is never
counted as passed; strict runs (the twin, the fault harness) count it as a problem. A run that
works but left a layer or a check unverified says so in its headline, with why
(criobe_verify/coverage.py); a layer named by --require that was not verified makes the run
incomplete (exit 1).

    >>> skipped = {"e2e/two-stage-exactly-once": {"outcome": "skipped", "layer": "e2e",
    ...     "kind": "functional", "message": "no --sample-image given: real models …"}}
    >>> v = Verdict.of({**checks, **skipped}, absent={})
    >>> v.headline.split(" — ")[1]
    'not verified: the e2e layer (no --sample-image given)'
    >>> Verdict.of(skipped, absent={}, required=("e2e",)).status
    'incomplete'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from criobe_verify.coverage import Unverified, clause, open_skip, unverified
from criobe_verify.guide import GUIDE_STEPS
from criobe_verify.layers import FUNCTIONAL, LAYER_INDEX, POLICY

# Exit codes beyond pytest's (0 ok, 1 failed, 2 interrupted, 3 internal, 4 usage, 5 none).
EXIT_POLICY_FINDINGS = 10
"""Every functional check passed; only policy findings failed (a CI job may choose to warn)."""

NOT_RUN = "not run"
# summary.json's layout: 2 keys checks by stable id ("checks"), each with its node id
# (written by fixtures/report.py, read by `criobe-verify compare`).
SUMMARY_FORMAT_VERSION = 2
FAILING = ("failed", "error")


def clip_message(text: str, limit: int = 4000) -> str:
    r"""A failure's text for the summary: from its first "E " line (the diagnosis; the test's
    source above it says nothing new), its head and tail when long, since a diagnosis opens
    with what failed and ends with the assertion.

    >>> clip_message("def test():\n    assert x\nE   AssertionError: boom")
    'E   AssertionError: boom'
    >>> len(clip_message("E   " + "x" * 9000)) < 4100
    True
    """
    start = text.find("\nE   ")
    if start >= 0:
        text = text[start + 1 :]
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]}\n  … ({len(text) - head - tail} characters left out) …\n{text[-tail:]}"


def first_line(entry: dict[str, Any]) -> str:
    diagnoses = entry.get("diagnoses") or []
    if diagnoses:
        d = diagnoses[0]
        return f"{d.get('subject', '')}: {d.get('what', '')}".strip(": ")
    message = (entry.get("message") or "").strip()
    # A check that crashed (not a diagnosis): pytest's "E   TypeError: ..." line says what.
    errors = [line[1:].strip() for line in message.splitlines() if line.startswith("E ")]
    if errors:
        return errors[0][:300]
    return message.splitlines()[0][:300] if message else ""


def counts(totals: dict[str, int]) -> str:
    """The run's counts, split so that a skip never reads as a pass.

    >>> counts({"passed": 40, "skipped": 3, "waived": 1})
    '40 passed, 1 waived, 3 skipped, 0 not run'
    """
    waived = f"{totals['waived']} waived, " if totals.get("waived") else ""
    return (
        f"{totals.get('passed', 0)} passed, {waived}{totals.get('skipped', 0)} skipped, "
        f"{totals.get(NOT_RUN, 0)} not run"
    )


def fixes(entry: dict[str, Any]) -> list[str]:
    return [d["fix"] for d in entry.get("diagnoses") or [] if d.get("fix")]


@dataclass
class Verdict:
    status: str  # works | works with policy findings | broken | incomplete
    headline: str
    exit_code: int
    functional_failures: list[str] = field(default_factory=list)
    policy_findings: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    # Layers and checks the run did not verify, and why (criobe_verify/coverage.py).
    not_verified: list[Unverified] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        checks: dict[str, dict[str, Any]],
        problems: list[str] | None = None,
        stopped: str | None = None,
        absent: dict[str, str] | None = None,
        required: tuple[str, ...] = (),
    ) -> Verdict:
        """checks: check id → entry in run order; problems: strict-run violations; absent:
        layer → why the run has none of its checks; required: the layers --require names."""
        problems = list(problems or [])
        missing = unverified(checks, absent or {})
        required_missing = [u for u in missing if u.layer in required]
        order = sorted(checks, key=lambda n: LAYER_INDEX.get(checks[n].get("layer", ""), 99))
        functional = [
            n
            for n in order
            if checks[n]["outcome"] in FAILING
            and (checks[n].get("kind") == FUNCTIONAL or checks[n]["outcome"] == "error")
        ]
        policy = [
            n for n in order if checks[n]["outcome"] == "failed" and checks[n].get("kind") == POLICY
        ]
        waived = [n for n in order if checks[n]["outcome"] == "waived"]
        not_run = [n for n in order if checks[n]["outcome"] == NOT_RUN]
        totals = dict(Counter(e["outcome"] for e in checks.values()))
        verdict = cls(
            status="works",
            headline="",
            exit_code=0,
            functional_failures=functional,
            policy_findings=policy,
            waived=waived,
            not_run=not_run,
            problems=problems,
            totals=totals,
            not_verified=missing,
        )
        if stopped and not functional:
            verdict.status, verdict.exit_code = "incomplete", 1
            verdict.headline = f"the run stopped before every check ran: {stopped}"
        elif functional:
            lowest = functional[0]
            entry = checks[lowest]
            fix = fixes(entry)
            verdict.status, verdict.exit_code = "broken", 1
            verdict.headline = (
                f"lowest failing check: {lowest} ({entry.get('layer')} layer) — "
                f"{first_line(entry)}" + (f". Fix: {fix[0]}" if fix else "")
            )
        elif required_missing:
            # A CI job that must prove these layers: a skip there is a failure, not a pass.
            verdict.status, verdict.exit_code = "incomplete", 1
            verdict.headline = "required by --require, " + clause(required_missing)
        elif problems:
            verdict.status, verdict.exit_code = "incomplete", 1
            verdict.headline = f"{len(problems)} strict-run problem(s): {problems[0]}"
        elif policy:
            verdict.status, verdict.exit_code = "works with policy findings", EXIT_POLICY_FINDINGS
            verdict.headline = (
                f"every functional check passed; {len(policy)} policy finding(s) to fix, "
                f"first: {first_line(checks[policy[0]])}"
            )
        else:
            partial = missing or totals.get("skipped") or not_run
            every = "every check that ran" if partial else "every check"
            verdict.headline = f"{every} passed ({counts(totals)})"
        if verdict.exit_code in (0, EXIT_POLICY_FINDINGS) and missing:
            verdict.headline += " — " + clause(missing)
        return verdict


def guide_table(checks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per install-guide step: its checks, their verdict, and those of its checks that
    did not verify it (skipped or not run).

    >>> rows = guide_table({"e2e/two-stage-exactly-once": {"outcome": "skipped",
    ...     "layer": "e2e", "guide": ["post-install"], "message": "no --sample-image given"}})
    >>> [(r["verdict"], r["not_verified"]) for r in rows if r["step"] == "post-install"]
    [('not verified', ['e2e/two-stage-exactly-once'])]
    """
    rows = []
    for step in GUIDE_STEPS.values():
        mine = {n: e for n, e in checks.items() if step.id in (e.get("guide") or [])}
        outcomes = Counter(e["outcome"] for e in mine.values())
        # A skip the profile asks for (an optional function not deployed) leaves nothing of
        # the step unverified; any other skip, or a check that did not run, does.
        unchecked = sorted(n for n, e in mine.items() if e["outcome"] == NOT_RUN or open_skip(e))
        if not mine:
            verdict = "not checked"
        elif any(
            e["outcome"] in FAILING and (e.get("kind") == FUNCTIONAL or e["outcome"] == "error")
            for e in mine.values()
        ):
            verdict = "fails"
        elif outcomes.get("failed"):
            verdict = "policy findings"
        elif unchecked:
            verdict = "not verified"
        elif outcomes.get("waived"):
            verdict = "passes (waived findings)"
        else:
            verdict = "passes"
        rows.append(
            {
                "step": step.id,
                "title": step.title,
                "guide_checks": step.guide_checks,
                "checks": sorted(mine),
                "outcomes": dict(outcomes),
                "not_verified": unchecked,
                "verdict": verdict,
            }
        )
    return rows


def guide_verdict(row: dict[str, Any]) -> str:
    """A guide row's verdict as the reports show it: how much of a step was not verified.

    >>> guide_verdict({"verdict": "not verified", "not_verified": ["a"], "checks": ["a", "b"]})
    'not verified (1 of 2 checks)'
    """
    if row["verdict"] != "not verified":
        return row["verdict"]
    return f"not verified ({len(row['not_verified'])} of {len(row['checks'])} checks)"
