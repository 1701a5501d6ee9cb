"""Waivers: a profile's reasoned exception to a policy check, as InSpec waivers are.

    [[waivers]]
    check = "tests/test_ports.py::test_internal_port_is_not_published_on_public_interface[8070]"
    reason = "the stock serverless overlay publishes 8070; the lab's firewall drops it"
    expires = 2027-06-30            # optional; from that day the finding fails again

    >>> import datetime
    >>> w = Waiver("tests/test_ports.py::*[8070]", "firewalled", datetime.date(2027, 6, 30))
    >>> w.matches("tests/test_ports.py::test_x[8070]"), w.active(datetime.date(2027, 7, 1))
    (True, False)

A waiver applies to policy checks only (a functional failure is never waived), is shown as
waived in every report, never hidden, and an expired one lets the finding fail again.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass


def id_matches(pattern: str, nodeid: str) -> bool:
    """A test-id pattern: `*` and `?` are wildcards; brackets are literal (test ids carry
    parameters in them, which fnmatch would read as character sets).

    >>> id_matches("tests/test_ports.py::*[8070]", "tests/test_ports.py::test_x[8070]")
    True
    """
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, nodeid) is not None


@dataclass(frozen=True)
class Waiver:
    check: str  # a test id, or an fnmatch pattern of test ids
    reason: str
    expires: datetime.date | None = None

    def matches(self, nodeid: str) -> bool:
        return id_matches(self.check, nodeid)

    def active(self, today: datetime.date | None = None) -> bool:
        today = today or datetime.date.today()
        return self.expires is None or today < self.expires

    def describe(self) -> str:
        until = f" until {self.expires.isoformat()}" if self.expires else ""
        return f"waived{until}: {self.reason}"


def waiver_for(nodeid: str, waivers: Iterable[Waiver]) -> Waiver | None:
    """The first waiver naming this check, active or not (an expired one is still reported)."""
    return next((w for w in waivers if w.matches(nodeid)), None)
