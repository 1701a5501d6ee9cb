"""`criobe-verify compare BEFORE AFTER`: two baselines (or two summary.json files) compared
without a stack: checks that flipped, new and gone checks, configuration drift judged by the
profile, the lab's data that did not survive (criobe_verify/inventory.py), latency and e2e
stage times with their ratios, and the functions' answers on the sample images that changed
(criobe_verify/answer_drift.py).

    criobe-verify compare before/ after/                     # table on stdout,
                                                             # page in reports/compare.html
    criobe-verify compare before/ after/ --html up.html --profile lab.toml

The profile's `[baseline]` table (criobe_verify/profile.py: RISKY_DRIFT) says which drift is a
finding; the rest is information. Exit codes:

| code | meaning |
|---|---|
| 0 | nothing risky changed and no check flipped (information may still be listed) |
| 1 | a functional check that passed before does not now, or the lab's data did not survive: a project, task, job or webhook of BEFORE gone, or its labels, size, annotation counts, geometry or frame changed; or a function answers a sample image of BEFORE otherwise, beyond the profile's [inference] golden tolerances (criobe_verify/answer_drift.py) |
| 10 | risky configuration drift, or a policy check flipped, and no functional one |
| 4 | bad input: a path that is not there, a file that is not a baseline, an unknown format_version (one line on stderr) |
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from criobe_verify.answer_drift import AnswerChange, Tolerances, answer_changes
from criobe_verify.bad_input import InputError
from criobe_verify.baseline import Run, load_run
from criobe_verify.drift import Drift, drift, judge
from criobe_verify.inventory import DataChange, survived
from criobe_verify.layers import POLICY
from criobe_verify.verdict import EXIT_POLICY_FINDINGS, FAILING

GOOD = ("passed", "waived")  # a waived policy finding is accepted by the lab, as in the verdict
EXIT_BAD_INPUT = 4
LATENCY_FIELDS = ("first_s", "p50_s", "p95_s", "max_s")
LATENCY_NOT_COMPARED = "not compared: different image sizes"


@dataclass(frozen=True)
class Change:
    """A check whose outcome differs; `finding` is the first line of its outcome now."""

    check: str
    kind: str
    before: str
    after: str
    finding: str = ""


@dataclass(frozen=True)
class Timing:
    """One timed thing on both sides: a function's latency field, or an e2e stage."""

    what: str
    before: float | None
    after: float | None

    @property
    def ratio(self) -> float | None:
        if not self.before or self.after is None:
            return None
        return self.after / self.before


@dataclass
class Comparison:
    before: Run
    after: Run
    # None: a side has no fingerprint (a summary.json), the configuration was not compared.
    drift: list[Drift] | None = None
    # None: a side has no inventory (a summary.json, an older baseline), data not compared.
    data: list[DataChange] | None = None
    # None: a side kept no function answers (the inference layer not run), not compared.
    answers: list[AnswerChange] | None = None
    # Checks that passed (or were waived) before and do not now; the other changes of outcome.
    flips: list[Change] = field(default_factory=list)
    other_changes: list[Change] = field(default_factory=list)
    new: list[Change] = field(default_factory=list)
    gone: list[Change] = field(default_factory=list)
    # Per function, figures timed on the same image size on both sides (their ratio means
    # something); latency_image: the size ("1920×1920", "" where neither release recorded
    # one, or both sizes where they differ); latency_not_compared: the figures of the
    # functions timed on different sizes, shown side by side, never compared.
    latency: dict[str, list[Timing]] = field(default_factory=dict)
    latency_image: dict[str, str] = field(default_factory=dict)
    latency_not_compared: dict[str, list[Timing]] = field(default_factory=dict)
    stages: dict[str, list[Timing]] = field(default_factory=dict)

    @property
    def functional_flips(self) -> list[Change]:
        return [c for c in self.flips if c.kind != POLICY]

    @property
    def policy_flips(self) -> list[Change]:
        return [c for c in self.flips if c.kind == POLICY]

    @property
    def risky(self) -> list[Drift]:
        return [d for d in self.drift or [] if d.risky]

    @property
    def data_lost(self) -> list[DataChange]:
        """The lab's data gone or changed: a functional regression, like a flip."""
        return [d for d in self.data or [] if d.finding]

    @property
    def answers_changed(self) -> list[AnswerChange]:
        """Functions that answer the baseline's images otherwise: a functional regression."""
        return [a for a in self.answers or [] if a.finding]

    @property
    def exit_code(self) -> int:
        if self.functional_flips or self.data_lost or self.answers_changed:
            return 1
        if self.risky or self.policy_flips:
            return EXIT_POLICY_FINDINGS
        return 0

    @property
    def headline(self) -> str:
        parts = []
        if self.functional_flips:
            failing = sum(c.after in FAILING for c in self.functional_flips)
            parts.append(
                f"{len(self.functional_flips)} functional check(s) flipped ({failing} now "
                f"failing, the rest skipped or not run)"
            )
        if self.data_lost:
            parts.append(f"{len(self.data_lost)} item(s) of the lab's data lost or changed")
        if self.answers_changed:
            changed = {(a.function, a.image) for a in self.answers_changed}
            parts.append(
                f"{len(changed)} function answer(s) changed ({len(self.answers_changed)} "
                "element(s) beyond the tolerance)"
            )
        if self.policy_flips:
            parts.append(f"{len(self.policy_flips)} policy check(s) flipped")
        if self.risky:
            parts.append(f"{len(self.risky)} risky configuration change(s)")
        if not parts:
            info = (
                len(self.drift or []) + len(self.new) + len(self.gone) + len(self.data or [])
                + len(self.answers or [])
            )  # fmt: skip
            return "nothing risky changed and no check flipped" + (
                f" ({info} item(s) for information)" if info else ""
            )
        return "; ".join(parts)


def _outcome(entry: dict[str, Any] | None) -> str:
    return str((entry or {}).get("outcome", "absent"))


def _changes(before: Run, after: Run, comparison: Comparison) -> None:
    for check in sorted(set(before.checks) | set(after.checks)):
        a, b = before.checks.get(check), after.checks.get(check)
        kind = str((b or a or {}).get("kind", "functional"))
        change = Change(check, kind, _outcome(a), _outcome(b), (b or a or {}).get("finding", ""))
        if a is None:
            comparison.new.append(change)
        elif b is None:
            comparison.gone.append(change)
        elif change.before in GOOD and change.after not in GOOD:
            comparison.flips.append(change)
        elif change.before != change.after:
            comparison.other_changes.append(change)
    # The checks that fail now first: the ones skipped because of them follow.
    comparison.flips.sort(key=lambda c: c.after not in FAILING)


def _timings(before: dict[str, Any], after: dict[str, Any], fields: tuple[str, ...]) -> list:
    return [Timing(f, before.get(f), after.get(f)) for f in fields]


def _stage_seconds(e2e: dict[str, Any]) -> dict[str, float]:
    """A workflow's stages by name, in the order they ran."""
    return {s.get("name", "?"): s.get("duration_s") for s in e2e.get("stages") or []}


def latency_sizes(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The image size a function's figures are for, or both where they differ: a function
    timed on a larger image (the release that moved to the budgets' 1920×1920, a lab's own
    photo) is not slower for it. A side without the function says nothing; a side whose
    release did not record the size (before 1920×1920) counts as a different size only
    against one that did, since such a release timed the 1024×1024 sample.

    >>> latency_sizes({"image": "1920×1920"}, {"image": "1920×1920"})
    '1920×1920'
    >>> latency_sizes({"p95_s": 0.3}, {"image": "1920×1920"})
    'not recorded → 1920×1920'
    >>> latency_sizes({}, {"image": "1920×1920"}), latency_sizes({"p95_s": 1}, {"p95_s": 1})
    ('1920×1920', '')
    """
    if not before or not after:
        return (before or after).get("image") or ""
    a, b = before.get("image") or "", after.get("image") or ""
    return a if a == b else f"{a or 'not recorded'} → {b or 'not recorded'}"


def compare(
    before: Run,
    after: Run,
    risky: tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
    tolerances: Tolerances | None = None,
) -> Comparison:
    """The comparison of two runs; `risky` and `ignore` are the profile's `[baseline]`,
    `tolerances` its [inference] golden ones (default: the profile's defaults)."""
    comparison = Comparison(before, after)
    _changes(before, after, comparison)
    if before.answers and after.answers:
        comparison.answers = answer_changes(
            before.answers, after.answers, tolerances or Tolerances(), before.folder, after.folder
        )
    if before.fingerprint is not None and after.fingerprint is not None:
        comparison.drift = judge(drift(before.fingerprint, after.fingerprint), risky, ignore)
    if before.inventory is not None and after.inventory is not None:
        comparison.data = survived(before.inventory, after.inventory)
    for fn in sorted(set(before.latency) | set(after.latency)):
        a, b = before.latency.get(fn) or {}, after.latency.get(fn) or {}
        comparison.latency_image[fn] = sizes = latency_sizes(a, b)
        apart = "→" in sizes  # a larger image is not a slower function
        (comparison.latency_not_compared if apart else comparison.latency)[fn] = _timings(
            a, b, LATENCY_FIELDS
        )
    for workflow in sorted(set(before.e2e) | set(after.e2e)):
        a, b = before.e2e.get(workflow) or {}, after.e2e.get(workflow) or {}
        sa, sb = _stage_seconds(a), _stage_seconds(b)
        comparison.stages[workflow] = [
            *_timings(sa, sb, tuple(dict.fromkeys([*sa, *sb]))),
            Timing("wall", a.get("wall_s"), b.get("wall_s")),
        ]
    return comparison


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a usage error is exit 4, in one line
        self.exit(EXIT_BAD_INPUT, f"criobe-verify compare: {message}; expected: {self.usage}\n")


def main(argv: list[str]) -> int:
    from criobe_verify.compare_report import html_page, text_table
    from criobe_verify.paths import PROFILES_DIR
    from criobe_verify.profile import load_profile

    parser = _Parser(
        prog="criobe-verify compare",
        usage="criobe-verify compare BEFORE AFTER [--html PATH] [--profile FILE]",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("before", help="a baseline folder, its baseline.json or a summary.json")
    parser.add_argument("after", help="the same, after the change")
    parser.add_argument(
        "--html",
        default="reports/compare.html",
        help="where the page goes (default: reports/compare.html in the caller's folder)",
    )
    parser.add_argument(
        "--profile",
        default=str(PROFILES_DIR / "criobe.toml"),
        help="whose [baseline] table judges the drift (default: the shipped criobe.toml)",
    )
    args = parser.parse_args(argv)
    try:
        before, after = load_run(args.before), load_run(args.after)
        profile = load_profile(args.profile)
        policy = profile.baseline
    except InputError as exc:  # a baseline or a profile it cannot read
        print(exc.line, file=sys.stderr)
        return EXIT_BAD_INPUT
    comparison = compare(before, after, policy.risky, policy.ignore, Tolerances.of(profile))
    page = Path(args.html).resolve()
    try:
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(html_page(comparison), encoding="utf-8")
    except OSError as exc:
        print(
            f"criobe-verify: {args.html}: cannot write the page ({exc.strerror}); expected a "
            "writable path; fix: --html PATH",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(text_table(comparison))
    print(f"page: {page}")
    return comparison.exit_code
