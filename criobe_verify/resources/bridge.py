"""The CRIOBE bridge's own facts: the CVAT credentials and URL in its environment (bridge/.env),
the cvat-sdk it talks to CVAT with, what it answers on the stack network, what its log shows.
Each is asked from inside the bridge's container, as the bridge itself would see it.

    bridge = Bridge(env, find=container_named, prober=prober, profile=profile)
    sdk = bridge.cvat_sdk()
    expect(sdk.installed, lambda: bridge.why_no_sdk(sdk, server_version))

    >>> credentials_from_env({"CVAT_USERNAME": "lab", "CVAT_PASSWORD": "s3cret-B"})
    Credentials(CVAT_USERNAME='lab', CVAT_PASSWORD=[REDACTED])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from packaging import version as pv

from criobe_verify.containers import logs_tail
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.probe_answers import HttpAnswer as ProbedHttp
from criobe_verify.probe_answers import ModuleVersion
from criobe_verify.probes import ProbeUnavailable
from criobe_verify.profile import Profile
from criobe_verify.redact import REDACTOR
from criobe_verify.resources.base import Declared, Resource, RunFacts

# The bridge docs name two incompatible sets; either may be what a checkout uses.
CREDENTIAL_NAMES = (("CVAT_USER", "CVAT_PWD"), ("CVAT_USERNAME", "CVAT_PASSWORD"))
SDK_CALL = ("cvat_sdk_window",)
CONTAINER = "bridge"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    user_var: str
    password_var: str

    def __repr__(self) -> str:  # never print the password, even in a pytest locals dump
        return f"Credentials({self.user_var}={self.username!r}, {self.password_var}=[REDACTED])"


def credentials_from_env(env: Mapping[str, str]) -> Credentials | None:
    """The first documented name set that is filled in; its password becomes a secret the
    reports redact."""
    for user_var, password_var in CREDENTIAL_NAMES:
        if env.get(user_var) and env.get(password_var):
            REDACTOR.add(env[password_var])
            return Credentials(env[user_var], env[password_var], user_var, password_var)
    return None


def cvat_url_call(url: str) -> tuple[str, ...]:
    """The probe that GETs CVAT's about page at the bridge's CVAT_URL from inside it."""
    return ("http_get", url.rstrip("/") + "/api/server/about")


@dataclass(frozen=True)
class SdkWindow:
    """The bridge's cvat-sdk: its version, where it is installed, the servers it supports.

    >>> SdkWindow(True, "2.29.0", "/x", ("2.29", "2.30")).supports("2.29.0")
    True
    >>> SdkWindow(True, "2.22.0", "/x", ("2.22", "2.23")).supports("2.29.0")
    False
    """

    installed: bool
    version: str = ""
    file: str = ""
    supported: tuple[str, ...] = ()
    error: str = ""

    @classmethod
    def from_probe(cls, answer: ModuleVersion) -> SdkWindow:
        if not answer.ok:
            return cls(False, error=answer.error or "")
        return cls(True, answer.version, answer.file, answer.supported)

    def supports(self, server: str) -> bool:
        s = pv.Version(server)
        return any(
            (s.major, s.minor) == (v.major, v.minor) for v in map(pv.Version, self.supported)
        )


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer as a probe inside a container got it (ok: the request went through)."""

    url: str
    ok: bool
    status: int = 0
    body: str = ""
    error: str = ""

    @classmethod
    def from_probe(cls, url: str, answer: ProbedHttp) -> HttpAnswer:
        if not answer.ok:
            return cls(url, False, error=answer.error or "")
        return cls(url, True, answer.status or 0, answer.body)

    def same_as(self, status: int, body: str) -> bool:
        """Whether an answer recorded elsewhere (a webhook delivery) is this one."""
        return self.status == status and body.strip() == self.body.strip()


class Bridge(Resource):
    """The bridge container and its environment; the container is looked up on first use, so
    a check that needs only the environment runs without it. It declares the two probes it
    makes inside the bridge: its cvat-sdk, and CVAT's about page at its CVAT_URL."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        find: Callable[[str], Any],
        prober: Any,
        profile: Profile,
        strict: bool = False,
    ) -> None:
        super().__init__(CONTAINER, lambda: find(CONTAINER), prober, strict=strict)
        self.env, self.find, self.profile = env, find, profile
        self.credentials = credentials_from_env(env)

    @classmethod
    def probes(cls, param: Any, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        yield Declared(CONTAINER, SDK_CALL)
        if url := facts.bridge_env().get("CVAT_URL"):
            yield Declared(CONTAINER, cvat_url_call(url))

    # --- facts ---------------------------------------------------------------------------

    @property
    def cvat_url(self) -> str:
        return self.env.get("CVAT_URL", "")

    @property
    def webhook_target(self) -> str:
        """The URL a CVAT webhook reaches the bridge at (bridge.gateway, through Smokescreen),
        on the path the guide's verification registers (/health)."""
        g = self.profile.gateway
        return f"http://{g.hostname}:{g.port}{g.path}"

    @property
    def webhook_secret(self) -> str:
        return self.env.get("WEBHOOK_SECRET") or ""

    def cvat_sdk(self) -> SdkWindow:
        """The bridge's cvat-sdk as it imports it; skips when nothing can run inside."""
        try:
            return SdkWindow.from_probe(self._probe(*SDK_CALL))
        except ProbeUnavailable as exc:
            pytest.skip(f"cannot read the bridge's cvat-sdk: {exc}")

    def cvat_url_answer(self) -> HttpAnswer:
        """GET <CVAT_URL>/api/server/about from inside the bridge."""
        call = cvat_url_call(self.cvat_url)
        return HttpAnswer.from_probe(call[1], self._probe(*call))

    def secrets_in_log(self) -> dict[str, int]:
        """How often each secret (the CVAT password, WEBHOOK_SECRET) shows in the whole log,
        read as a stream: variable name → count, only those shown."""
        wanted = {var: s.encode() for var, s in self._secrets().items() if len(s) >= 4}
        found = dict.fromkeys(wanted, 0)
        tails = dict.fromkeys(wanted, b"")
        for chunk in self.container.logs(stream=True, follow=False, stdout=True, stderr=True):
            for var, secret in wanted.items():
                # A chunk can split a secret: keep the previous chunk's end, one byte too
                # short to hold the whole secret (so nothing is counted twice).
                window = tails[var] + chunk
                found[var] += window.count(secret)
                tails[var] = window[-(len(secret) - 1) :]
        return {var: n for var, n in found.items() if n}

    def _secrets(self) -> dict[str, str]:
        found = {}
        if self.credentials is not None:
            found[self.credentials.password_var] = self.credentials.password
        if self.webhook_secret:
            found["WEBHOOK_SECRET"] = self.webhook_secret
        return found

    def why_stopped(self) -> str:
        """Why the bridge cannot answer any more ('' while its container runs)."""
        try:
            container = self.container
            container.reload()
            state = container.attrs["State"]
        except Exception as exc:  # removed while a check waits on it
            return f"the bridge container is gone ({exc})"
        if state.get("Running"):
            return ""
        return f"the bridge container is {state.get('Status')} (exit code {state.get('ExitCode')})"

    def log_tail(self, lines: int = 25) -> str:
        return logs_tail(self.container, lines)

    # --- diagnoses -------------------------------------------------------------------------

    def why_no_credentials(self) -> Diagnosis:
        names = " or ".join(f"{u}/{p}" for u, p in CREDENTIAL_NAMES)
        return Diagnosis(
            CONTAINER,
            "no CVAT credentials in its environment",
            expected=f"{names} in bridge/.env",
            consequence="the bridge cannot log in to CVAT to create tasks or read annotations",
        )

    def why_no_sdk(self, sdk: SdkWindow, server: str) -> Diagnosis:
        return Diagnosis(
            CONTAINER,
            "has no importable cvat-sdk",
            observed=sdk.error,
            expected="cvat-sdk installed in the bridge's image",
            consequence="the bridge cannot talk to CVAT",
            fix=f"pip install cvat-sdk=={server} in the bridge's image",
        )

    def why_sdk_misses_the_server(self, sdk: SdkWindow, server: str) -> Diagnosis:
        s = pv.Version(server)
        windows = ", ".join(f"{v.major}.{v.minor}" for v in map(pv.Version, sdk.supported))
        return Diagnosis(
            CONTAINER,
            f"its cvat-sdk {sdk.version} ({sdk.file}) supports CVAT {windows}",
            observed=f"the server is {server}",
            expected=f"an SDK whose window covers {s.major}.{s.minor}",
            consequence="the SDK warns and may misread the server's answers",
            fix=f"pip install cvat-sdk=={server} in the bridge's image, then rebuild it "
            "(docker compose ... up -d --build bridge)",
        )

    def why_cvat_url_unset(self) -> Diagnosis:
        return Diagnosis(
            CONTAINER,
            "CVAT_URL is not set in its environment",
            expected="CVAT_URL=http://cvat-server:8080 in bridge/.env",
            consequence="the bridge cannot reach CVAT",
            fix="set it in bridge/.env",
        )

    def why_cvat_url_refused(self, answer: HttpAnswer) -> Diagnosis:
        host = httpx.URL(self.cvat_url).host
        return Diagnosis(
            CONTAINER,
            f"GET {answer.url} from inside the bridge "
            + (f"answered {answer.status}" if answer.ok else "failed"),
            observed=repr(answer.body)[:120] if answer.ok else answer.error,
            why=f"{host!r} contains '_', which Django's host validation refuses even with "
            "ALLOWED_HOSTS='*' (DisallowedHost, 400): use the alias cvat-server"
            if "_" in host
            else "",
            expected="200 from CVAT",
            consequence="every call the bridge makes to CVAT fails",
            fix="CVAT_URL=http://cvat-server:8080 in bridge/.env"
            + (f", or add {host!r} to ALLOWED_HOSTS on cvat_server" if "_" not in host else ""),
        )

    def why_log_shows_secrets(self, shown: Mapping[str, int]) -> Diagnosis:
        password_var = self.credentials.password_var if self.credentials else ""
        return Diagnosis(
            CONTAINER,
            "its log shows " + " and ".join(f"{var} ({n}×)" for var, n in shown.items()),
            observed="the value in docker logs bridge (not repeated here)",
            expected="secrets never logged (print '(set)' instead)",
            consequence="anyone with access to the Docker logs can log in to CVAT as admin"
            if password_var in shown
            else "anyone with access to the Docker logs can sign webhooks",
            fix="stop logging the settings' values in the bridge; then change the password "
            "in CVAT and bridge/.env, since the old one has been seen",
        )


def _direct_call(profile: Profile) -> tuple[str, ...]:
    url = f"http://{CONTAINER}:8000{profile.gateway.path}"
    return ("http_request", "POST", url, "", "{}")


class BridgeOnTheStack(Resource):
    """What the bridge answers a webhook-like POST sent straight to it on the stack network
    from cvat_server (bypassing Smokescreen): what a delivery that reached it must show."""

    SENDER = "cvat_server"

    def __init__(self, find: Callable[[str], Any], prober: Any, profile: Profile, *, strict: bool):
        super().__init__(self.SENDER, lambda: find(self.SENDER), prober, strict=strict)
        self.profile = profile

    @classmethod
    def probes(cls, param: Any, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        yield Declared(cls.SENDER, _direct_call(profile))

    def answer(self) -> HttpAnswer:
        call = _direct_call(self.profile)
        answer = HttpAnswer.from_probe(call[2], self._probe(*call))
        if not answer.ok:
            fail(
                Diagnosis(
                    CONTAINER,
                    f"a POST to {call[2]} from inside {self.SENDER} failed",
                    observed=answer.error,
                    consequence="the bridge cannot be reached on the stack network",
                )
            )
        return answer
