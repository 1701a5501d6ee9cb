"""Keep passwords, tokens and webhook secrets out of reports, logs and failure messages.

    >>> r = Redactor()
    >>> r.add_environment({"CVAT_PWD": "s3cret!", "CVAT_URL": "http://cvat-server:8080"})
    >>> r("login as admin with s3cret!")
    'login as admin with [REDACTED]'

Values are learnt from environments (containers' and bridge/.env) by their key names;
the redactor also masks `KEY=value` pairs whose key looks secret, even for values it has
never seen, so a secret printed by a container before the suite read its env is hidden too,
and the password of a URL (`scheme://user:password@host`), wherever the URL came from: an
option, an environment variable (DOCKER_HOST, CRIOBE_STACK_HOST) or a profile value.

    >>> Redactor()("DOCKER_HOST=tcp://admin:hunter22@10.0.0.5:2376 does not answer")
    'DOCKER_HOST=tcp://admin:[REDACTED]@10.0.0.5:2376 does not answer'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SECRET_KEY = re.compile(r"(PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|SESSIONID)", re.I)
_PAIR = re.compile(
    r"(?P<key>\b[A-Za-z_][A-Za-z0-9_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_KEY)[A-Za-z0-9_]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<value>[^\s'\",}]+)",
    re.I,
)
_AUTH_HEADER = re.compile(
    r"(?P<scheme>\b(?:Token|Bearer|Basic))\s+(?P<value>[A-Za-z0-9+/=._-]{8,})"
)
# The password of a URL's userinfo; the user name stays (it says whose login it is).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)(?P<value>[^\s/@]+)@", re.I)
MASK = "[REDACTED]"


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def parse_env_lines(lines: Iterable[str]) -> dict[str, str]:
    """`KEY=value` lines (docker inspect Env, .env files) to a dict; comments ignored."""
    env: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip().strip("'\"")
    return env


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str) -> None:
        # Very short values would mask ordinary words; they are still caught as KEY=value.
        if value and len(value) >= 4:
            self._secrets.add(value)

    def add_environment(self, env: Mapping[str, str]) -> None:
        for key, value in env.items():
            if is_secret_key(key):
                self.add(value)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
        text = _PAIR.sub(
            lambda m: (
                m[0] if m["value"].startswith(MASK) else f"{m['key']}{m['sep']}{m['q']}{MASK}"
            ),
            text,
        )
        return _AUTH_HEADER.sub(lambda m: f"{m['scheme']} {MASK}", text)


REDACTOR = Redactor()
"""The process-wide redactor the report plugin applies to everything it writes."""
