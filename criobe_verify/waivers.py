"""Waivers: a profile's reasoned exception to a policy check, as InSpec waivers are.

    [[waivers]]
    check = "ports/internal-port-not-public[8070]"    # the check's stable id
    reason = "the stock serverless overlay publishes 8070; the lab's firewall drops it"
    expires = 2027-06-30            # optional; from that day the finding fails again

    >>> import datetime
    >>> w = Waiver("ports/internal-port-not-public[*]", "firewalled", datetime.date(2027, 6, 30))
    >>> w.matches("ports/internal-port-not-public[8070]"), w.active(datetime.date(2027, 7, 1))
    (True, False)

A waiver written with a node id from before stable ids
(`tests/test_ports.py::test_internal_port_is_not_published_on_public_interface[8070]`) still
applies; the run says which id to write instead.

A waiver applies to policy checks only (a functional failure is never waived), is shown as
waived in every report, never hidden, and an expired one lets the finding fail again.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Annotated

from msgspec import Meta, Struct


def id_matches(pattern: str, check_id: str) -> bool:
    """A check-id pattern: `*` and `?` are wildcards; brackets are literal (ids carry
    parameters in them, which fnmatch would read as character sets).

    >>> id_matches("ports/*[8070]", "ports/internal-port-not-public[8070]")
    True
    """
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, check_id) is not None


class Waiver(Struct, frozen=True, forbid_unknown_fields=True):
    """[[waivers]]: a policy finding the lab accepts, with its reason (and an optional end)."""

    # A check's stable id, or a pattern of ids (a node id from before also works).
    check: Annotated[
        str, Meta(min_length=1, description="a check's stable id, or a pattern of ids (*, ?)")
    ]
    reason: Annotated[
        str, Meta(pattern=r"\S", description="why the finding is accepted (not empty)")
    ]
    expires: Annotated[datetime.date, Meta(description="a date such as 2027-06-30")] | None = None

    def matches(self, check_id: str) -> bool:
        return id_matches(self.check, check_id)

    def active(self, today: datetime.date | None = None) -> bool:
        today = today or datetime.date.today()
        return self.expires is None or today < self.expires

    def describe(self) -> str:
        until = f" until {self.expires.isoformat()}" if self.expires else ""
        return f"waived{until}: {self.reason}"


def waiver_for(check_id: str, waivers: Iterable[Waiver]) -> Waiver | None:
    """The first waiver naming this check, active or not (an expired one is still reported)."""
    return next((w for w in waivers if w.matches(check_id)), None)
