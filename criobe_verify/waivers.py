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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated

from msgspec import Meta, Struct

from criobe_verify.bad_input import InputError

if TYPE_CHECKING:
    from criobe_verify.check_catalog import CheckCatalog


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


def _made_of(parameter: str, words: Iterable[str]) -> bool:
    """Whether a check's parameter id is made of the profile's names (pytest joins the
    parameters of a check that has several with '-': `cvat_server-pth-lama`)."""
    one = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    return bool(one) and re.fullmatch(rf"(?:{one})(?:-(?:{one}))*", parameter) is not None


def checks_named(pattern: str, catalog: CheckCatalog, parameters: Iterable[str]) -> list:
    """The declared checks a waiver's pattern names, with a parameter the profile can give.
    Which check takes which parameter is the fixtures' business (pytest_generate_tests): any
    parameter the profile gives counts, so this errs on the side of a name that exists.

        >>> from criobe_verify.check_catalog import CheckCatalog
        >>> catalog = CheckCatalog.read()
        >>> [c.check_id for c in checks_named("ports/internal-*[8070]", catalog, ["8070", "traefik"])]
        ['ports/internal-port-not-public']
        >>> checks_named("ports/internal-port-not-public[8071]", catalog, ["8070"])
        []
    """
    parameters = list(parameters)
    legacy = "::" in pattern
    base, bracket, inside = pattern.partition("[")
    exact_parameter = bracket and pattern.endswith("]") and not set("*?") & set(inside)
    named = []
    for declared in catalog.checks:
        name = declared.node_id if legacy else declared.check_id
        if exact_parameter:
            hit = id_matches(base, name) and _made_of(inside[:-1], parameters)
        else:
            hit = id_matches(pattern, name) or any(
                id_matches(pattern, f"{name}[{p}]") for p in parameters
            )
        if hit:
            named.append(declared)
    return named


def check_waiver_targets(
    waivers: Iterable[Waiver],
    catalog: CheckCatalog,
    parameters: Iterable[str],
    source: str,
    names_own_check: Callable[[str], bool] = lambda pattern: False,
) -> None:
    """Raise InputError for the first waiver that names no check of the suite (a typo would
    otherwise waive nothing, silently), or that names functional checks alone.
    names_own_check: whether a pattern names a check of the lab's own project (collected in a
    session whose ini says `criobe_verify = true`)."""
    parameters = list(parameters)
    for i, waiver in enumerate(waivers):
        named = checks_named(waiver.check, catalog, parameters)
        if names_own_check(waiver.check):
            continue  # the lab's own check: its kind is known at collection (layers.py)
        where = f"{source}: waivers[{i}].check {waiver.check!r}"
        if not named:
            close = catalog.nearest(waiver.check)
            raise InputError(
                where,
                "names no check of the suite",
                "a check's stable id, a pattern of ids (*, ?) or a node id, with a parameter "
                "this profile gives (a container, function or port of it)",
                ("the nearest ids: " + ", ".join(close)) if close else "see the report's check ids",
            )
        if not any(c.policy for c in named):
            raise InputError(
                where,
                f"names only functional checks ({named[0].check_id})",
                "a policy check: a functional failure is never waived",
                "drop the waiver and fix what the check finds",
            )
