"""Bad input, said in one line before anything runs: what was given, what is wrong with it,
what was expected and how to fix it.

    >>> error = InputError("--layer nosuchlayer", "unknown layer",
    ...                    expected="one of host, containers", fix="--layer host")
    >>> error.line
    'criobe-verify: --layer nosuchlayer: unknown layer; expected one of host, containers; fix: --layer host'

The line is redacted (a password inside a URL never shows) and never spans lines, so a CI
log shows it whole; the run then stops with pytest's usage exit code (4).

    >>> InputError("DOCKER_HOST=tcp://ops:hunter22@gpu:2376", "bad\\nformat").line
    'criobe-verify: DOCKER_HOST=tcp://ops:[REDACTED]@gpu:2376: bad format'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from criobe_verify.redact import REDACTOR

PROG = "criobe-verify"
# pytest's exit code for a usage error: what a bad input ends the run with.
EXIT_USAGE = 4


class InputError(ValueError):
    """An input the run cannot use. str(): `<input>: <problem>; expected …; fix: …`;
    `.line` prefixes the program's name, as printed."""

    def __init__(self, input: str, problem: str, expected: str = "", fix: str = "") -> None:
        self.input, self.problem, self.expected, self.fix = input, problem, expected, fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.input}: {self.problem}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return REDACTOR(" ".join(line.strip() for line in text.splitlines()))

    @property
    def line(self) -> str:
        return f"{PROG}: {self}"


def nearest(given: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to a misspelt one, closest first.

    >>> nearest("contaners", ["containers", "ports", "network"])
    ['containers']
    """
    return difflib.get_close_matches(given, list(known), n=n, cutoff=0.5)


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """'did you mean X?' for the nearest known name, or '' when none is near.

    >>> did_you_mean("contaners", ["containers", "ports"])
    'did you mean containers?'
    """
    close = nearest(given, known, n=1)
    return f"did you mean {close[0]}?" if close else ""
