"""Run the whole suite N times against a running, healthy stack and print failures per check.

    .venv/bin/python scripts/stability.py 20                       # the twin (profiles/twin.toml)
    .venv/bin/python scripts/stability.py 5 --profile lab.toml     # a lab's stack, attached

Every layer runs, the e2e pipeline included; nothing is retried. A check that failed in any
run is listed with how often and the first line of each distinct finding, so a flaky check
shows as such instead of hiding behind a green rerun. Exit 0 when every run's every check
passed (or was waived), 1 otherwise. The figures belong in a note, not in a timed test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from criobe_verify.verdict import first_line

ROOT = Path(__file__).resolve().parent.parent
FAILING = ("failed", "error")


def run_once(profile: Path, reports: Path, extra: list[str]) -> tuple[dict, float]:
    """One attached run (`--stack attach`: the stack is left as it is); its summary.json."""
    cli = Path(sys.executable).with_name("criobe-verify")
    started = time.monotonic()
    proc = subprocess.run(
        [str(cli), "--profile", str(profile), "--reports", str(reports), "-q", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    summary_path = reports / "summary.json"
    if not summary_path.exists():
        sys.exit(f"stability: the run wrote no summary (exit {proc.returncode}): "
                 f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")  # fmt: skip
    return json.loads(summary_path.read_text()), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int, help="how many runs (the issue asks for 20)")
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles" / "twin.toml")
    parser.add_argument("extra", nargs="*", help="after --: more criobe-verify options")
    args = parser.parse_args(argv)
    failures: Counter[str] = Counter()
    findings: dict[str, set[str]] = defaultdict(set)
    checks_per_run: list[int] = []
    with tempfile.TemporaryDirectory(prefix="criobe-stability-") as tmp:
        for n in range(1, args.runs + 1):
            summary, seconds = run_once(args.profile, Path(tmp) / f"run-{n}", args.extra)
            checks = summary["checks"]
            failed = {cid: c for cid, c in checks.items() if c["outcome"] in FAILING}
            outcomes = Counter(c["outcome"] for c in checks.values())
            checks_per_run.append(len(checks))
            print(f"run {n}/{args.runs}: {len(checks)} checks, "
                  + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
                  + f" ({seconds:.0f} s)", flush=True)  # fmt: skip
            for cid, c in failed.items():
                failures[cid] += 1
                findings[cid].add(first_line(c))
    print()
    if not failures:
        print(f"stability: {args.runs} runs, {sum(checks_per_run)} check results, no failure")
        return 0
    print(f"stability: {args.runs} runs, failures per check:")
    for cid, count in failures.most_common():
        print(f"  {count}/{args.runs}  {cid}")
        for line in sorted(findings[cid]):
            print(f"           {line[:200]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
