"""`criobe-verify`: run the suite with the report options set.

    criobe-verify                          # check the running stack (profiles/criobe.toml)
    criobe-verify --stack twin             # build and start the CI twin, check it, tear down
    criobe-verify --phase preinstall       # before installing
    criobe-verify --reports DIR -- -k ports   # anything after -- goes to pytest

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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
    reports = reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    # The suite's conftest.py and pytest.ini live at the project root: run from there so
    # users can call criobe-verify from anywhere.
    os.chdir(PROJECT_ROOT)
    return int(pytest.main(["-p", "no:cacheprovider", *report_args(reports), *args]))


if __name__ == "__main__":
    raise SystemExit(main())
