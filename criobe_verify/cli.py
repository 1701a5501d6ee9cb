"""`criobe-verify`: run the suite with the report options set.

    criobe-verify                          # check the running stack (profiles/criobe.toml)
    criobe-verify --stack twin             # build and start the CI twin, check it, tear down
    criobe-verify --phase preinstall       # before installing
    criobe-verify --reports DIR -- -k ports   # anything after -- goes to pytest
    criobe-verify cleanup [--dry-run]      # what interrupted runs left in CVAT

Writes DIR/report.html (self-contained), DIR/junit.xml and DIR/summary.json (default
DIR: ./reports). The exit code is pytest's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from criobe_verify import PROJECT_ROOT


def report_args(reports: Path) -> list[str]:
    return [
        f"--html={reports / 'report.html'}",
        "--self-contained-html",
        f"--junitxml={reports / 'junit.xml'}",
        f"--summary-json={reports / 'summary.json'}",
    ]


# The suite's options that take a value. pytest reads its command line once before the
# suite's conftest is loaded, and then takes the value of `--stack-dir PATH` for a test path
# (rootdir PATH, no conftest, "unrecognized arguments"): pass them as `--opt=value`.
VALUE_OPTIONS = (
    "--stack", "--stack-dir", "--profile", "--phase", "--layer", "--gateway-ip",
    "--stack-timeout", "--summary-json", "--sample-image", "--ground-truth", "--budgets",
)  # fmt: skip


def join_option_values(args: list[str]) -> list[str]:
    """`--stack-dir PATH` → `--stack-dir=PATH` for the suite's own options.

    >>> join_option_values(["--stack", "up", "--stack-dir", "/srv/cvat", "-k", "ports"])
    ['--stack=up', '--stack-dir=/srv/cvat', '-k', 'ports']
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in VALUE_OPTIONS and i + 1 < len(args):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["cleanup"]:
        from criobe_verify.cleanup import main as cleanup

        os.chdir(PROJECT_ROOT)
        return cleanup(args[1:])
    reports = Path("reports")
    if "--reports" in args:
        i = args.index("--reports")
        try:
            reports = Path(args[i + 1])
        except IndexError:
            print("criobe-verify: --reports needs a directory", file=sys.stderr)
            return 4
        del args[i : i + 2]
    if "--" in args:
        args.remove("--")
    args = join_option_values(args)
    reports = reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    # The suite's conftest.py and pytest.ini live at the project root: run from there so
    # users can call criobe-verify from anywhere.
    os.chdir(PROJECT_ROOT)
    return int(pytest.main(["-p", "no:cacheprovider", *report_args(reports), *args]))


if __name__ == "__main__":
    raise SystemExit(main())
