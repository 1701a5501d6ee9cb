"""Copies of the recorded contracts and reference files the selftests read.

    from selftests.data import CONTRACTS
    (CONTRACTS / "smokescreen" / "cases.json").read_text()

Copied from the developers' ../shared (read-only there): someone who clones the repository
has no ../shared, so nothing reads it at run time. Refresh them by copying again.
"""

from pathlib import Path

DATA = Path(__file__).resolve().parent
CONTRACTS = DATA / "contracts"
REFERENCE = DATA / "reference"
