"""A run in GitHub Actions: the verdict and the install guide's table as the job summary, each
failing check as an annotation, and how long the lab's job may have to run.

    criobe-verify github-summary reports/summary.json

writes the summary's markdown to the file $GITHUB_STEP_SUMMARY names (to stdout outside
Actions) and prints one workflow command per failing check: `::error` for a functional
failure, `::warning` for a policy finding. It reads only summary.json, which the run wrote
redacted; every line goes through the redactor again all the same, so a secret a future
field carries never reaches a log that anyone with read access to the repository sees.

    >>> command("error", "ports/bridge-on-gateway", "bridge: 100% down\\nsee logs")
    '::error title=ports/bridge-on-gateway::bridge: 100%25 down%0Asee logs'
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from criobe_verify.bad_input import EXIT_USAGE, PROG, InputError
from criobe_verify.profile import Profile
from criobe_verify.redact import REDACTOR
from criobe_verify.verdict import (
    SUMMARY_FORMAT_VERSION,
    Verdict,
    counts,
    first_line,
    fixes,
    guide_verdict,
)

USAGE = f"{PROG} github-summary reports/summary.json"
EXPECTED = f"the summary.json a run of {PROG} wrote (format_version {SUMMARY_FORMAT_VERSION})"


def escape_data(text: str) -> str:
    """A workflow command's message, as the runner unescapes it (actions/toolkit's
    escapeData): '%' first, so the escapes it adds are not escaped again.

    >>> escape_data("50% done\\r\\nnext")
    '50%25 done%0D%0Anext'
    """
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (title=…): also ':' and ',', which end it.

    >>> escape_property("e2e/two-stage, run: 1")
    'e2e/two-stage%2C run%3A 1'
    """
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, check_id: str, message: str) -> str:
    return (
        f"::{level} title={escape_property(REDACTOR(check_id))}::{escape_data(REDACTOR(message))}"
    )


def diagnosis(entry: dict[str, Any]) -> str:
    """A failing check in one line: what failed, and its first fix."""
    fix = fixes(entry)
    return first_line(entry) + (f" Fix: {fix[0]}" if fix else "")


def annotations(summary: dict[str, Any]) -> list[str]:
    """One workflow command per failing check, lowest layer first: functional failures as
    errors, policy findings as warnings. GitHub shows the first 10 of each kind per step and
    50 per job; the job summary lists them all."""
    checks = summary["checks"]
    # The verdict's own split (a check that errored counts as functional, whatever its kind).
    v = Verdict.of(checks)
    return [command("error", n, diagnosis(checks[n])) for n in v.functional_failures] + [
        command("warning", n, diagnosis(checks[n])) for n in v.policy_findings
    ]


def cell(text: Any) -> str:
    """A markdown table cell: one line, no '|' that ends it, no HTML that GitHub renders.

    >>> cell("a | b\\n<c>")
    'a \\\\| b &lt;c&gt;'
    """
    flat = " ".join(str(text).split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows),
        "",
    ]


def markdown(summary: dict[str, Any]) -> str:
    """The job summary: verdict and headline, counts, what was not verified, the failing
    checks with their fix, waivers, and the install guide's steps."""
    checks = summary["checks"]
    verdict = summary["verdict"]
    v = Verdict.of(checks)
    lines = [
        f"## {PROG}: {verdict['status'].upper()}",
        "",
        cell(verdict["headline"]),
        "",
        f"{counts(summary.get('totals') or {})} · profile `{summary.get('profile')}`, "
        f"stack `{summary.get('stack')}`, phase `{summary.get('phase')}`, "
        f"exit code {verdict['exit_code']}",
        "",
    ]
    if summary.get("stopped"):
        lines += [f"**Stopped:** {cell(summary['stopped'])}", ""]
    if summary.get("not_verified"):
        lines += ["### Not verified", ""]
        lines += _table(
            ["what", "layer", "why"],
            [[u["what"], u["layer"], u["reason"]] for u in summary["not_verified"]],
        )
    for title, ids in (
        ("Failing functional checks (lowest layer first)", v.functional_failures),
        ("Policy findings", v.policy_findings),
    ):
        if ids:
            lines += [f"### {title}", ""]
            lines += _table(
                ["check", "finding", "fix"],
                [[n, first_line(checks[n]), "; ".join(fixes(checks[n]))] for n in ids],
            )
    if summary.get("waived"):
        lines += ["### Waived policy findings", ""]
        lines += _table(["check", "waiver"], [[w["check"], w["waiver"]] for w in summary["waived"]])
    if summary.get("strict_problems"):
        lines += ["### Strict-run problems", ""]
        lines += [f"- {cell(p)}" for p in summary["strict_problems"]] + [""]
    lines += ["### Install guide steps", ""]
    lines += _table(
        ["step", "what the guide does", "the guide's own check", "checks", "verdict"],
        [
            [r["step"], r["title"], r["guide_checks"], len(r["checks"]), guide_verdict(r)]
            for r in summary.get("guide") or []
        ],
    )
    return REDACTOR("\n".join(lines))


def load_summary(path: str) -> dict[str, Any]:
    """summary.json, checked: InputError naming the file for anything else."""
    given = f"github-summary {path}"
    fix = f"pass the summary.json of a run ({PROG} --reports DIR writes DIR/summary.json)"
    file = Path(path)
    if not file.exists():
        raise InputError(given, "no such file", EXPECTED, fix)
    if not file.is_file():
        raise InputError(given, "not a file", EXPECTED, fix)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno} column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise InputError(given, f"not valid JSON{where}", EXPECTED, fix) from None
    except OSError as exc:
        raise InputError(given, f"cannot read it ({exc.strerror})", EXPECTED, fix) from None
    if not isinstance(data, dict) or data.get("format_version") != SUMMARY_FORMAT_VERSION:
        found = data.get("format_version") if isinstance(data, dict) else type(data).__name__
        raise InputError(given, f"not a summary of format_version 2 (found {found})", EXPECTED,
                         f"run this {PROG}'s release on the stack again")  # fmt: skip
    missing = [k for k in ("verdict", "checks") if not isinstance(data.get(k), dict)]
    if missing:
        raise InputError(given, f"no {' or '.join(missing)}", EXPECTED, fix)
    return data


def write_summary(text: str, environ: Mapping[str, str]) -> None:
    """Appended (each step's summary is a file of its own, and another tool may have
    written to it) where GITHUB_STEP_SUMMARY names it; stdout elsewhere."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        sys.stdout.write(text + "\n")
        return
    try:
        with open(target, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as exc:
        raise InputError(
            f"GITHUB_STEP_SUMMARY={target}",
            f"cannot write it ({exc.strerror})",
            "the job summary file the runner gives each step",
            "unset it to print the summary on stdout",
        ) from None


def main(args: list[str]) -> int:
    """`github-summary SUMMARY`: exit 0 once written (the suite's own step carries the run's
    exit code); 4 with one line on stderr for bad input."""
    try:
        if len(args) != 1 or args[0].startswith("-"):
            raise InputError("github-summary " + " ".join(args), "needs one summary.json",
                             USAGE, USAGE)  # fmt: skip
        summary = load_summary(args[0])
        text = markdown(summary)
        write_summary(text, os.environ)
    except InputError as exc:
        print(exc.line, file=sys.stderr)
        return EXIT_USAGE
    for line in annotations(summary):
        print(line)
    return 0


# --- the lab job's timeout -------------------------------------------------------------------

# What the profile does not bound: the ~250 other checks (probes with their own 10-30 s
# timeouts; about 2 minutes on the twin) and the report, with room for a slow host.
OTHER_CHECKS_S = 600.0
# A latency call of a function the profile gives no budget for (SAM, optional).
UNBUDGETED_CALL_S = 30.0
# E2E stages per workflow: corners detected; then, three-stage only, the grid task derived
# and its keypoints detected; then the corals task derived and its polygons detected
# (tests/test_e2e.py, each a Run._stage bounded by stage_timeout_s).
STAGES = {"two-stage": 3, "three-stage": 5}


def worst_case(profile: Profile, bring_up: bool = False) -> list[tuple[str, float]]:
    """What a run of this profile may take at worst, part by part (seconds); the lab job's
    `timeout-minutes` on the suite's step must cover their sum, or a slow run is cut before
    its reports say why. It sums:

    - each workflow of [e2e] workflows: its stages (STAGES) × stage_timeout_s, plus settle_s;
    - [latency]: per function, (1 first call + warmup + calls) × its budget ×
      timeout_margin (what latency/timeouts-fit lets a call take; slower fails that check),
      UNBUDGETED_CALL_S per call for a function without a budget for the profile's hardware;
    - OTHER_CHECKS_S for every other check, whose waits the profile does not set;
    - with bring_up (--stack up|twin, not the lab's attach job): the default --stack-timeout
      and [nuclio] ready_timeout_s.

    >>> from criobe_verify.paths import PROFILES_DIR
    >>> from criobe_verify.profile import load_profile
    >>> parts = dict(worst_case(load_profile(PROFILES_DIR / "criobe.toml")))
    >>> parts["e2e two-stage"]
    2703.0
    """
    parts = [
        (f"e2e {w}", STAGES[w] * profile.e2e.stage_timeout_s + profile.e2e.settle_s)
        for w in profile.e2e.workflows
    ]
    lat = profile.latency
    calls = 1 + lat.warmup + lat.calls
    for fn in profile.functions:
        budget = fn.budget_gpu_s if lat.budgets == "gpu" else fn.budget_cpu_s
        per_call = UNBUDGETED_CALL_S if budget is None else budget * lat.timeout_margin
        parts.append((f"latency {fn.name}", round(calls * per_call, 1)))
    parts.append(("other checks", OTHER_CHECKS_S))
    if bring_up:
        from criobe_verify.inputs import DEFAULT_STACK_TIMEOUT

        parts += [("bring-up", DEFAULT_STACK_TIMEOUT), ("functions ready", profile.nuclio.ready_timeout_s)]  # fmt: skip
    return parts
